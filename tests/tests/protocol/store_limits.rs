//! What a server refuses to store, and the files it will not write
//! through: `annex.securehashesonly`, keys too long for their location
//! log, DATA longer than the key, and symlinks planted in `annex/tmp`.
//! Each refusal fails that key alone; the session goes on and the
//! repository stays clean for the real `git annex fsck`.

use std::fs;
use std::os::unix::fs::symlink;

use annexproxy_tests::p2p_driver::{Fixture, Shell, HELLO_KEY, NEW, NEW_KEY};
use annexproxy_tests::ServerKind;

use super::put::send_put;
use super::{compare_session, leftovers};

/// `NEW` under keys of hashes git-annex does not count as
/// cryptographically secure (and of no hash at all): each would verify
/// and be stored were it not for `annex.securehashesonly`.
const INSECURE_KEYS: [&str; 5] = [
    "WORM-s24-m1700000000--c.txt",
    "URL-s24--http&c%%example.com%c.txt",
    "MD5-s24--8d79fa2d635975366f336ebe9722d5ff",
    "MD5E-s24--8d79fa2d635975366f336ebe9722d5ff.txt",
    "SHA1-s24--e89c5036738b570772a8336e536bfd2105808371",
];

/// The session still answers.
#[track_caller]
fn assert_goes_on(sh: &mut Shell) {
    sh.send(&format!("CHECKPRESENT {HELLO_KEY}"));
    sh.expect("SUCCESS");
}

/// git-annex-shell ends the session at the first such PUT (it blocks the
/// transfer after PUT-FROM and never reads the DATA); we read the DATA,
/// answer FAILURE with the reason on stderr, and go on. Secure keys are
/// still stored.
#[test]
fn securehashesonly_refuses_insecure_keys() {
    for kind in [ServerKind::Real, ServerKind::Ours] {
        let fx = Fixture::new(kind);
        fx.env
            .oracle(&fx.repo, &["config", "annex.securehashesonly", "true"]);
        let mut sh = fx.shell();
        sh.hello(Some(4));
        if kind == ServerKind::Real {
            send_put(&mut sh, "c.txt", INSECURE_KEYS[0], 0, NEW, Some("VALID"));
            assert_eq!(sh.recv(), None, "the real server ends the session");
            let out = sh.finish();
            out.assert_exit(1);
            assert!(out.stderr.contains("securehashesonly"), "{}", out.show());
        } else {
            for key in INSECURE_KEYS {
                send_put(&mut sh, "c.txt", key, 0, NEW, Some("VALID"));
                sh.expect("FAILURE");
            }
            send_put(&mut sh, "c.txt", NEW_KEY, 0, NEW, Some("VALID"));
            sh.expect("SUCCESS");
            assert_goes_on(&mut sh);
            let out = sh.finish();
            out.assert_exit(0);
            assert!(
                out.stderr.matches("annex.securehashesonly").count() == INSECURE_KEYS.len(),
                "each refusal says why\n{}",
                out.show()
            );
            assert_eq!(fx.key_state(NEW_KEY), (true, true));
        }
        for key in INSECURE_KEYS {
            assert_eq!(fx.key_state(key), (false, false), "{kind:?}: {key}");
        }
        assert!(
            fs::read_dir(fx.repo.join("annex/tmp"))
                .map(|d| d.count() == 0)
                .unwrap_or(true),
            "{kind:?}: no partial upload left"
        );
        fx.assert_fsck_clean();
    }
}

/// The setting guards what comes in: an insecure key already present is
/// still served. git-annex means to refuse it but sends a DATA header
/// and dies ("short data write").
#[test]
fn securehashesonly_still_serves_what_is_there() {
    let key = INSECURE_KEYS[0];
    for kind in [ServerKind::Real, ServerKind::Ours] {
        let fx = Fixture::new(kind);
        let f = fx.env.root().join("content");
        fs::write(&f, NEW).expect("content");
        fx.env
            .oracle_annex(&fx.repo, &["setkey", key, &f.to_string_lossy()])
            .ok();
        fx.env
            .oracle(&fx.repo, &["config", "annex.securehashesonly", "true"]);
        let mut sh = fx.shell();
        sh.hello(Some(4));
        sh.send(&format!("GET 0 c.txt {key}"));
        sh.expect("DATA 24");
        if kind == ServerKind::Real {
            assert_eq!(sh.body(NEW.len()), b"", "the real server sends nothing");
            let out = sh.finish();
            out.assert_exit(1);
            assert!(out.stderr.contains("short data write"), "{}", out.show());
        } else {
            assert_eq!(sh.body(NEW.len()), NEW);
            sh.expect("VALID");
            sh.send("SUCCESS");
            assert_goes_on(&mut sh);
            sh.finish().assert_exit(0);
        }
    }
}

/// A WORM key of exactly `len` bytes.
fn key_of_len(len: usize) -> String {
    let key = format!("WORM-s1--{}", "k".repeat(len - 9));
    assert_eq!(key.len(), len);
    key
}

/// Keys of 244 to 251 bytes fit a file name (object, temp file, transfer
/// lock) but not their location log's journal file (`abc_def_KEY.log`).
/// git-annex stores the object, fails to log it and answers FAILURE; we
/// refuse before storing (no object without a log), with the same answers.
#[test]
fn keys_too_long_for_their_location_log() {
    let keys: Vec<String> = [243, 244, 248, 251].map(key_of_len).to_vec();
    let fixtures = compare_session(|sh| {
        sh.hello(Some(4));
        for key in &keys {
            send_put(sh, "k", key, 0, b"z", Some("VALID"));
            sh.recv();
        }
        assert_goes_on(sh);
    });
    let ours = &fixtures[1];
    assert_eq!(ours.key_state(&keys[0]), (true, true), "243 bytes: stored");
    for key in &keys[1..] {
        assert_eq!(
            ours.key_state(key),
            (false, false),
            "{} bytes: no object that cannot be logged",
            key.len()
        );
    }
    assert_eq!(
        leftovers(ours)
            .iter()
            .filter(|f| f.starts_with("annex/tmp"))
            .count(),
        0
    );
    ours.assert_fsck_clean();
}

/// DATA longer than the key's size is never written: here 10 MB announced
/// for a 24-byte key, half of it sent before the client hangs up. Nothing
/// may stay in annex/tmp (the partial used to keep every byte, for a
/// "resume"). Then the same with a full body, in a session that goes on.
#[test]
fn data_longer_than_the_key_is_not_written() {
    let fx = Fixture::new(ServerKind::Ours);
    let junk = vec![b'x'; 5_000_000];
    let tmp = fx.tmp_path(NEW_KEY);

    let mut sh = fx.shell();
    sh.hello(Some(4));
    sh.send(&format!("PUT c.txt {NEW_KEY}"));
    sh.expect("PUT-FROM 0");
    sh.send("DATA 10000000");
    sh.send_quiet(&junk);
    sh.finish();
    assert!(
        fs::symlink_metadata(&tmp).is_err(),
        "partial upload of an impossible body left: {} bytes",
        fs::metadata(&tmp).map(|m| m.len()).unwrap_or(0)
    );

    // A resumed upload whose body overshoots: the partial cannot be the
    // key with it either and goes, as a failed verification would.
    fs::write(&tmp, &NEW[..10]).expect("partial upload");
    let mut sh = fx.shell();
    sh.hello(Some(4));
    let mut body = NEW[10..].to_vec();
    body.extend_from_slice(&junk[..1000]);
    send_put(&mut sh, "c.txt", NEW_KEY, 10, &body, Some("VALID"));
    sh.expect("FAILURE");
    assert!(fs::symlink_metadata(&tmp).is_err(), "partial dropped");
    // the key itself is still welcome
    send_put(&mut sh, "c.txt", NEW_KEY, 0, NEW, Some("VALID"));
    sh.expect("SUCCESS");
    assert_goes_on(&mut sh);
    let out = sh.finish();
    out.assert_exit(0);
    assert!(out.stderr.contains("24 bytes"), "says why\n{}", out.show());
    assert_eq!(fx.key_state(NEW_KEY), (true, true));
    fx.assert_fsck_clean();
}

/// A symlink planted as the partial upload is not written through: the
/// upload starts over at 0 (the link removed) and the object stored is a
/// regular file. (git-annex appends to the link's target and moves the
/// link into the object store.) A symlinked `annex/tmp` fails a key over
/// 1 MiB; a smaller one does not go through `annex/tmp` (it is written to a
/// file of its own in `annex/othertmp`) and is stored.
#[test]
fn symlinks_in_annex_tmp_are_not_followed() {
    let fx = Fixture::new(ServerKind::Ours);
    let outside = fx.env.root().join("outside");
    fs::write(&outside, &NEW[..10]).expect("link target");
    let tmp = fx.tmp_path(NEW_KEY);
    fs::create_dir_all(tmp.parent().expect("annex/tmp")).expect("annex/tmp");
    symlink(&outside, &tmp).expect("planted symlink");

    let mut sh = fx.shell();
    sh.hello(Some(4));
    send_put(&mut sh, "c.txt", NEW_KEY, 0, NEW, Some("VALID"));
    sh.expect("SUCCESS");
    assert_goes_on(&mut sh);
    sh.finish().assert_exit(0);
    assert_eq!(
        fs::read(&outside).expect("target"),
        &NEW[..10],
        "target untouched"
    );
    let stored = fx.env.oracle_peek(&fx.repo, &["contentlocation", NEW_KEY]);
    let object = fx.repo.join(stored.stdout.trim());
    let meta = fs::symlink_metadata(&object).expect("object stored");
    assert!(meta.is_file(), "object is a regular file, not {meta:?}");
    fx.assert_fsck_clean();

    // annex/tmp itself a symlink to a directory elsewhere
    let elsewhere = fx.env.root().join("elsewhere");
    fs::create_dir_all(&elsewhere).expect("dir");
    fs::remove_dir_all(fx.repo.join("annex/tmp")).expect("rm annex/tmp");
    symlink(&elsewhere, fx.repo.join("annex/tmp")).expect("symlinked annex/tmp");
    let big = vec![b'x'; 1_100_000];
    let key = "WORM-s1100000-m1--big.bin";
    let small = "WORM-s24-m1--c.txt";
    let mut sh = fx.shell();
    sh.hello(Some(4));
    send_put(&mut sh, "big.bin", key, 0, &big, Some("VALID"));
    sh.expect("FAILURE");
    send_put(&mut sh, "c.txt", small, 0, NEW, Some("VALID"));
    sh.expect("SUCCESS");
    assert_goes_on(&mut sh);
    sh.finish().assert_exit(0);
    assert_eq!(
        fs::read_dir(&elsewhere).expect("dir").count(),
        0,
        "nothing written elsewhere"
    );
    assert_eq!(fx.key_state(key), (false, false));
    assert_eq!(fx.key_state(small), (true, true));
}
