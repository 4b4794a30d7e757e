//! `git-annex-shell p2pstdio` driven with raw protocol lines, against the
//! real git-annex-shell and ours on byte-identical repositories; the replies
//! must be the same after normalising the server UUID and timestamps, and
//! so must the exit code and whether anything went to stderr.
//!
//! The scripts use `expect` for the facts observed from git-annex
//! 10.20261026 (so both sides are pinned to them) and `recv` where only
//! equality matters. Deliberate differences are in `protocol/differences.rs`,
//! hostile input (ours only) in `protocol/bad_input.rs`.

#[path = "protocol/bad_input.rs"]
mod bad_input;
#[path = "protocol/differences.rs"]
mod differences;

use annexproxy_tests::p2p_driver::{
    assert_same, big_content, big_key, sha256e_key, Fixture, Outcome, Shell, ABSENT_KEY, HELLO,
    HELLO_KEY, NEW, NEW_KEY,
};
use annexproxy_tests::{pseudo_random_bytes, ServerKind};

/// Runs `scenario` on a fresh fixture per server; the sessions it returns
/// must match pairwise. Returns the fixtures `[real, ours]` for checks on
/// the repositories afterwards.
fn compare(scenario: impl Fn(&Fixture) -> Vec<Outcome>) -> [Fixture; 2] {
    let real = Fixture::new(ServerKind::Real);
    let real_out = scenario(&real);
    let ours = Fixture::new(ServerKind::Ours);
    let ours_out = scenario(&ours);
    assert_eq!(real_out.len(), ours_out.len(), "same number of sessions");
    for (r, o) in real_out.iter().zip(&ours_out) {
        assert_same(r, o);
    }
    [real, ours]
}

/// One session with the default environment.
fn compare_session(script: impl Fn(&mut Shell)) -> [Fixture; 2] {
    compare(|fx| {
        let mut sh = fx.shell();
        script(&mut sh);
        vec![sh.finish()]
    })
}

/// After a session that changed content: both repositories agree on what
/// they hold and log for `keys`, and the real fsck is clean in ours.
fn assert_same_state(fixtures: &[Fixture; 2], keys: &[&str]) {
    let [real, ours] = fixtures;
    for key in keys {
        assert_eq!(
            real.key_state(key),
            ours.key_state(key),
            "(content present, location log says present) for {key}: real vs ours"
        );
    }
    ours.assert_fsck_clean();
}

/// `PUT` then `DATA` with `body`, then `VALID` (v1+).
fn put(sh: &mut Shell, file: &str, key: &str, from: u64, body: &[u8], validity: Option<&str>) {
    sh.send(&format!("PUT {file} {key}"));
    sh.expect(&format!("PUT-FROM {from}"));
    sh.send(&format!("DATA {}", body.len()));
    sh.send_raw(body);
    if let Some(v) = validity {
        sh.send(v);
    }
}

// ----- version negotiation ------------------------------------------------

#[test]
fn version_negotiation() {
    compare_session(|sh| {
        sh.hello(None);
        for (ask, answer) in [
            ("VERSION 4", "VERSION 4"),
            ("VERSION 1", "VERSION 1"),
            ("VERSION 0", "VERSION 0"),
            ("VERSION 99", "VERSION 4"),
            ("VERSION 4abc", "VERSION 4"),
            ("VERSION abc", "ERROR unknown command"),
            ("VERSION", "ERROR unknown command"),
            ("VERSION 2", "VERSION 2"),
        ] {
            sh.send(ask);
            sh.expect(answer);
        }
        sh.send(&format!("CHECKPRESENT {HELLO_KEY}"));
        sh.expect("SUCCESS");
    });
}

#[test]
fn no_version_is_version_0() {
    compare_session(|sh| {
        sh.hello(None);
        sh.send(&format!("GET 0 a.txt {HELLO_KEY}"));
        sh.expect("DATA 6");
        assert_eq!(sh.body(6), HELLO);
        // v0 has no VALID: the next thing we hear answers the next request
        sh.send("SUCCESS");
        sh.send(&format!("GET 0 a.txt {ABSENT_KEY}"));
        sh.expect("DATA 0");
        sh.send("FAILURE");
        sh.send(&format!("CHECKPRESENT {HELLO_KEY}"));
        sh.expect("SUCCESS");
        // a v0/v1 verdict must be SUCCESS or FAILURE
        sh.send(&format!("GET 6 a.txt {HELLO_KEY}"));
        sh.expect("DATA 0");
        sh.send("SUCCESS-PLUS");
        sh.expect("ERROR expected SUCCESS or FAILURE");
        sh.send(&format!("CHECKPRESENT {ABSENT_KEY}"));
        sh.expect("FAILURE");
    });
}

// ----- CHECKPRESENT and GET -----------------------------------------------

#[test]
fn checkpresent() {
    compare_session(|sh| {
        sh.hello(Some(4));
        sh.send(&format!("CHECKPRESENT {HELLO_KEY}"));
        sh.expect("SUCCESS");
        sh.send(&format!("CHECKPRESENT {ABSENT_KEY}"));
        sh.expect("FAILURE");
        sh.send(&format!("CHECKPRESENT {}", big_key()));
        sh.expect("SUCCESS");
        // the key is the rest of the line, spaces included: a key nobody has
        sh.send(&format!("CHECKPRESENT {HELLO_KEY} extra"));
        sh.expect("FAILURE");
        sh.send(&format!("CHECKPRESENT {HELLO_KEY}\r"));
        sh.expect("SUCCESS");
    });
}

#[test]
fn get_at_offsets() {
    let big = big_content();
    let [_, ours] = compare_session(|sh| {
        sh.hello(Some(4));
        sh.send(&format!("GET 0 a.txt {HELLO_KEY}"));
        sh.expect("DATA 6");
        assert_eq!(sh.body(6), HELLO);
        sh.expect("VALID");
        sh.send("SUCCESS");
        sh.send(&format!("GET 2 a.txt {HELLO_KEY}"));
        sh.expect("DATA 4");
        assert_eq!(sh.body(4), &HELLO[2..]);
        sh.expect("VALID");
        sh.send("SUCCESS");
        // the middle of the big object, past the first 64 KiB chunk
        let off = 70_001;
        sh.send(&format!("GET {off} big.bin {}", big_key()));
        sh.expect(&format!("DATA {}", big.len() - off));
        assert!(
            sh.body(big.len() - off) == big[off..],
            "big body from {off}"
        );
        sh.expect("VALID");
        sh.send("SUCCESS-PLUS");
        for off in [6, 7, 1_000_000] {
            sh.send(&format!("GET {off} a.txt {HELLO_KEY}"));
            sh.expect("DATA 0");
            sh.expect("VALID");
            sh.send("FAILURE");
        }
        sh.send(&format!("GET 0 a.txt {ABSENT_KEY}"));
        sh.expect("DATA 0");
        sh.expect("INVALID");
        sh.send("FAILURE-PLUS");
        // a wrong verdict gets an ERROR and the session goes on
        sh.send(&format!("GET 0 a.txt {HELLO_KEY}"));
        sh.expect("DATA 6");
        sh.body(6);
        sh.expect("VALID");
        sh.send("VALID");
        sh.expect("ERROR expected SUCCESS or SUCCESS-PLUS or FAILURE or FAILURE-PLUS");
        sh.send(&format!("CHECKPRESENT {HELLO_KEY}"));
        sh.expect("SUCCESS");
        // ERROR as a verdict is accepted in v2+ (no reply)
        sh.send(&format!("GET 5 a.txt {HELLO_KEY}"));
        sh.expect("DATA 1");
        sh.body(1);
        sh.expect("VALID");
        sh.send("ERROR could not store");
        sh.send(&format!("CHECKPRESENT {HELLO_KEY}"));
        sh.expect("SUCCESS");
    });
    // GET is read-only
    assert!(ours.key_state(HELLO_KEY) == (true, true));
}

#[test]
fn get_with_percent_in_associated_file() {
    compare_session(|sh| {
        sh.hello(Some(4));
        sh.send(&format!("GET 0 dir/a%%b%c.txt {HELLO_KEY}"));
        sh.expect("DATA 6");
        sh.body(6);
        sh.expect("VALID");
        sh.send("SUCCESS");
        // no associated file at all: two spaces
        sh.send(&format!("GET 0  {HELLO_KEY}"));
        sh.expect("DATA 6");
        sh.body(6);
        sh.expect("VALID");
        sh.send("SUCCESS");
    });
}

#[test]
fn absolute_associated_file_is_unparseable() {
    compare_session(|sh| {
        sh.hello(Some(4));
        sh.send(&format!("GET 0 /etc/passwd {HELLO_KEY}"));
        sh.expect("ERROR unknown command");
        sh.send(&format!("PUT /tmp/x {NEW_KEY}"));
        sh.expect("ERROR unknown command");
        sh.send(&format!("CHECKPRESENT {HELLO_KEY}"));
        sh.expect("SUCCESS");
    });
}

// ----- PUT ------------------------------------------------------------------

#[test]
fn put_fresh() {
    let fixtures = compare_session(|sh| {
        sh.hello(Some(4));
        sh.send(&format!("CHECKPRESENT {NEW_KEY}"));
        sh.expect("FAILURE");
        put(sh, "c%d.txt", NEW_KEY, 0, NEW, Some("VALID"));
        sh.expect("SUCCESS");
        sh.send(&format!("CHECKPRESENT {NEW_KEY}"));
        sh.expect("SUCCESS");
        sh.send(&format!("GET 0 c.txt {NEW_KEY}"));
        sh.expect(&format!("DATA {}", NEW.len()));
        assert_eq!(sh.body(NEW.len()), NEW);
        sh.expect("VALID");
        sh.send("SUCCESS");
    });
    assert_same_state(&fixtures, &[NEW_KEY]);
    assert_eq!(fixtures[1].key_state(NEW_KEY), (true, true));
}

#[test]
fn put_version_0_and_1() {
    let fixtures = compare(|fx| {
        // v0: DATA and nothing after it
        let mut sh = fx.shell();
        sh.hello(None);
        put(&mut sh, "c.txt", NEW_KEY, 0, NEW, None);
        sh.expect("SUCCESS");
        let first = sh.finish();
        // v1 with INVALID and the right bytes: verified in full, stored
        let mut sh = fx.shell();
        sh.hello(Some(1));
        sh.send(&format!("REMOVE {NEW_KEY}"));
        sh.expect("SUCCESS");
        put(&mut sh, "c.txt", NEW_KEY, 0, NEW, Some("INVALID"));
        sh.expect("SUCCESS");
        vec![first, sh.finish()]
    });
    assert_same_state(&fixtures, &[NEW_KEY]);
}

#[test]
fn put_resumes_a_partial_upload() {
    let fixtures = compare(|fx| {
        let tmp = fx.tmp_path(NEW_KEY);
        std::fs::create_dir_all(tmp.parent().expect("tmp dir")).expect("annex/tmp");
        std::fs::write(&tmp, &NEW[..10]).expect("partial upload");
        let mut sh = fx.shell();
        sh.hello(Some(4));
        put(&mut sh, "c.txt", NEW_KEY, 10, &NEW[10..], Some("VALID"));
        sh.expect("SUCCESS");
        sh.send(&format!("CHECKPRESENT {NEW_KEY}"));
        sh.expect("SUCCESS");
        let out = sh.finish();
        assert!(
            !tmp.exists(),
            "{:?}: partial file moved into place",
            fx.kind()
        );
        vec![out]
    });
    assert_same_state(&fixtures, &[NEW_KEY]);
}

#[test]
fn put_big_content_in_many_chunks() {
    let content = pseudo_random_bytes(7, 150_000);
    let key = sha256e_key(&content, ".bin");
    let fixtures = compare_session(|sh| {
        sh.hello(Some(4));
        put(sh, "big2.bin", &key, 0, &content, Some("VALID"));
        sh.expect("SUCCESS");
        sh.send(&format!("GET 149999 big2.bin {key}"));
        sh.expect("DATA 1");
        assert_eq!(sh.body(1), &content[149_999..]);
        sh.expect("VALID");
        sh.send("SUCCESS");
    });
    assert_same_state(&fixtures, &[&key]);
}

#[test]
fn put_resume_onto_a_corrupt_partial() {
    let fixtures = compare(|fx| {
        let tmp = fx.tmp_path(NEW_KEY);
        std::fs::create_dir_all(tmp.parent().expect("tmp dir")).expect("annex/tmp");
        std::fs::write(&tmp, b"CLIENT FIL").expect("bad partial upload");
        let mut sh = fx.shell();
        sh.hello(Some(4));
        put(&mut sh, "c.txt", NEW_KEY, 10, &NEW[10..], Some("VALID"));
        sh.expect("FAILURE");
        // the bad partial is gone, so the next PUT starts over
        put(&mut sh, "c.txt", NEW_KEY, 0, NEW, Some("VALID"));
        sh.expect("SUCCESS");
        vec![sh.finish()]
    });
    assert_same_state(&fixtures, &[NEW_KEY]);
}

#[test]
fn put_onto_a_partial_longer_than_the_key() {
    let fixtures = compare(|fx| {
        let tmp = fx.tmp_path(NEW_KEY);
        std::fs::create_dir_all(tmp.parent().expect("tmp dir")).expect("annex/tmp");
        let mut long = NEW.to_vec();
        long.extend_from_slice(b"and then some");
        std::fs::write(&tmp, &long).expect("oversized partial upload");
        let mut sh = fx.shell();
        sh.hello(Some(4));
        sh.send(&format!("PUT c.txt {NEW_KEY}"));
        sh.recv();
        sh.send("DATA 0");
        sh.send("VALID");
        sh.recv();
        sh.send(&format!("CHECKPRESENT {NEW_KEY}"));
        sh.recv();
        vec![sh.finish()]
    });
    assert_same_state(&fixtures, &[NEW_KEY]);
}

#[test]
fn put_of_present_key_already_have() {
    compare_session(|sh| {
        sh.hello(Some(4));
        sh.send(&format!("PUT a.txt {HELLO_KEY}"));
        sh.expect("ALREADY-HAVE");
        sh.send(&format!("CHECKPRESENT {HELLO_KEY}"));
        sh.expect("SUCCESS");
    });
}

#[test]
fn put_corrupt_data_with_valid_fails() {
    let fixtures = compare(|fx| {
        let mut sh = fx.shell();
        sh.hello(Some(4));
        let mut bad = NEW.to_vec();
        bad[3] ^= 1;
        put(&mut sh, "c.txt", NEW_KEY, 0, &bad, Some("VALID"));
        sh.expect("FAILURE");
        sh.send(&format!("CHECKPRESENT {NEW_KEY}"));
        sh.expect("FAILURE");
        // nothing of the bad upload is kept for a resume
        put(&mut sh, "c.txt", NEW_KEY, 0, NEW, Some("VALID"));
        sh.expect("SUCCESS");
        let out = sh.finish();
        assert!(!out.stderr.is_empty(), "{:?} says why", fx.kind());
        vec![out]
    });
    assert_same_state(&fixtures, &[NEW_KEY]);
}

#[test]
fn put_wrong_size_fails() {
    let fixtures = compare_session(|sh| {
        sh.hello(Some(4));
        put(sh, "c.txt", NEW_KEY, 0, &NEW[..20], Some("VALID"));
        sh.expect("FAILURE");
        put(
            sh,
            "c.txt",
            NEW_KEY,
            0,
            b"client file with spaces\n!",
            Some("INVALID"),
        );
        sh.expect("FAILURE");
        sh.send(&format!("CHECKPRESENT {NEW_KEY}"));
        sh.expect("FAILURE");
    });
    assert_same_state(&fixtures, &[NEW_KEY]);
}

#[test]
fn put_invalid_with_data_0_fails() {
    compare_session(|sh| {
        sh.hello(Some(4));
        put(sh, "c.txt", NEW_KEY, 0, b"", Some("INVALID"));
        sh.expect("FAILURE");
        sh.send(&format!("CHECKPRESENT {NEW_KEY}"));
        sh.expect("FAILURE");
    });
}

#[test]
fn put_data_present() {
    let fixtures = compare(|fx| {
        let mut sh = fx.shell();
        sh.hello(Some(4));
        // nothing arrived out of band
        sh.send(&format!("PUT c.txt {NEW_KEY}"));
        sh.expect("PUT-FROM 0");
        sh.send("DATA-PRESENT");
        sh.expect("FAILURE");
        // now the client puts it there itself before saying DATA-PRESENT
        sh.send(&format!("PUT c.txt {NEW_KEY}"));
        sh.expect("PUT-FROM 0");
        let f = fx.env.root().join("out-of-band");
        std::fs::write(&f, NEW).expect("content file");
        fx.env
            .oracle_annex(&fx.repo, &["setkey", NEW_KEY, &f.to_string_lossy()])
            .ok();
        sh.send("DATA-PRESENT");
        sh.expect("SUCCESS");
        // DATA-PRESENT is v4: in v3 it is not DATA
        sh.send("VERSION 3");
        sh.expect("VERSION 3");
        sh.send(&format!("PUT c.txt {ABSENT_KEY}"));
        sh.expect("PUT-FROM 0");
        sh.send("DATA-PRESENT");
        sh.expect("ERROR expected DATA");
        vec![sh.finish()]
    });
    assert_same_state(&fixtures, &[NEW_KEY, ABSENT_KEY]);
}

#[test]
fn put_error_instead_of_data() {
    compare_session(|sh| {
        sh.hello(Some(4));
        sh.send(&format!("PUT c.txt {NEW_KEY}"));
        sh.expect("PUT-FROM 0");
        sh.send("ERROR cannot read the file after all");
        // no reply: the next answer is the probe's
        sh.send(&format!("CHECKPRESENT {HELLO_KEY}"));
        sh.expect("SUCCESS");
    });
}

#[test]
fn put_wrong_message_after_put_from() {
    compare_session(|sh| {
        sh.hello(Some(4));
        for wrong in [
            "SUCCESS".to_string(),
            "FOO".to_string(),
            format!("CHECKPRESENT {HELLO_KEY}"),
            format!("PUT c.txt {NEW_KEY}"),
            "VALID".to_string(),
        ] {
            sh.send(&format!("PUT c.txt {NEW_KEY}"));
            sh.expect("PUT-FROM 0");
            // consumed, not executed
            sh.send(&wrong);
            sh.expect("ERROR expected DATA");
        }
        sh.send(&format!("CHECKPRESENT {NEW_KEY}"));
        sh.expect("FAILURE");
    });
}

#[test]
fn put_wrong_message_instead_of_valid() {
    let fixtures = compare_session(|sh| {
        sh.hello(Some(4));
        put(sh, "c.txt", NEW_KEY, 0, NEW, Some("SUCCESS"));
        sh.recv();
        sh.recv();
        sh.send(&format!("CHECKPRESENT {NEW_KEY}"));
        sh.recv();
    });
    assert_same_state(&fixtures, &[NEW_KEY]);
}

#[test]
fn eof_after_data_before_valid() {
    let fixtures = compare(|fx| {
        let mut sh = fx.shell();
        sh.hello(Some(4));
        put(&mut sh, "c.txt", NEW_KEY, 0, NEW, None);
        let out = sh.finish();
        vec![out]
    });
    assert_same_state(&fixtures, &[NEW_KEY]);
}

// ----- LOCKCONTENT, REMOVE, timestamps --------------------------------------

#[test]
fn lockcontent_and_unlockcontent() {
    compare_session(|sh| {
        sh.hello(Some(4));
        sh.send(&format!("LOCKCONTENT {HELLO_KEY}"));
        sh.expect("SUCCESS");
        sh.send("UNLOCKCONTENT");
        sh.send(&format!("LOCKCONTENT {ABSENT_KEY}"));
        sh.expect("FAILURE");
        sh.send("UNLOCKCONTENT");
        sh.expect("ERROR unexpected command");
        sh.send(&format!("LOCKCONTENT {HELLO_KEY}"));
        sh.expect("SUCCESS");
        sh.send("UNLOCKCONTENT");
        // unlocked again: it can be removed
        sh.send(&format!("REMOVE {HELLO_KEY}"));
        sh.expect("SUCCESS");
    });
}

#[test]
fn lockcontent_followed_by_another_message() {
    compare_session(|sh| {
        sh.hello(Some(4));
        for other in [
            format!("CHECKPRESENT {HELLO_KEY}"),
            "FOO".into(),
            format!("REMOVE {HELLO_KEY}"),
        ] {
            sh.send(&format!("LOCKCONTENT {HELLO_KEY}"));
            sh.expect("SUCCESS");
            // consumed, not executed
            sh.send(&other);
            sh.expect("ERROR expected UNLOCKCONTENT");
        }
        sh.send(&format!("CHECKPRESENT {HELLO_KEY}"));
        sh.expect("SUCCESS");
    });
}

#[test]
fn remove_present_and_absent() {
    let fixtures = compare_session(|sh| {
        sh.hello(Some(4));
        sh.send(&format!("REMOVE {ABSENT_KEY}"));
        sh.expect("SUCCESS");
        sh.send(&format!("REMOVE {HELLO_KEY}"));
        sh.expect("SUCCESS");
        sh.send(&format!("CHECKPRESENT {HELLO_KEY}"));
        sh.expect("FAILURE");
        sh.send(&format!("REMOVE {HELLO_KEY}"));
        sh.expect("SUCCESS");
        sh.send(&format!("GET 0 a.txt {HELLO_KEY}"));
        sh.expect("DATA 0");
        sh.expect("INVALID");
        sh.send("FAILURE");
    });
    assert_same_state(&fixtures, &[HELLO_KEY, ABSENT_KEY]);
    assert_eq!(fixtures[1].key_state(HELLO_KEY), (false, false));
}

#[test]
fn gettimestamp_and_remove_before() {
    let fixtures = compare(|fx| {
        let mut sh = fx.shell();
        sh.hello(Some(4));
        sh.send("GETTIMESTAMP");
        let line = sh.recv().unwrap_or_default();
        let t: u64 = match line.strip_prefix("TIMESTAMP ").map(str::parse) {
            Some(Ok(t)) => t,
            _ => panic!("{:?}: TIMESTAMP expected, got {line:?}", fx.kind()),
        };
        sh.send_as(
            &format!("REMOVE-BEFORE {} {HELLO_KEY}", t - 1),
            &format!("REMOVE-BEFORE <t-1> {HELLO_KEY}"),
        );
        sh.expect("FAILURE");
        sh.send(&format!("REMOVE-BEFORE 1 {}", big_key()));
        sh.expect("FAILURE");
        sh.send(&format!("CHECKPRESENT {HELLO_KEY}"));
        sh.expect("SUCCESS");
        sh.send_as(
            &format!("REMOVE-BEFORE {} {HELLO_KEY}", t + 1000),
            &format!("REMOVE-BEFORE <t+1000> {HELLO_KEY}"),
        );
        sh.expect("SUCCESS");
        sh.send(&format!("CHECKPRESENT {HELLO_KEY}"));
        sh.expect("FAILURE");
        // absent content is "removed" whatever the deadline
        sh.send(&format!("REMOVE-BEFORE 1 {ABSENT_KEY}"));
        sh.expect("SUCCESS");
        let out = sh.finish();
        vec![out]
    });
    assert_same_state(&fixtures, &[HELLO_KEY, big_key()]);
}

#[test]
fn timestamps_use_the_same_clock() {
    let stamp = |kind| {
        let fx = Fixture::new(kind);
        let mut sh = fx.shell();
        sh.hello(Some(4));
        sh.send("GETTIMESTAMP");
        let line = sh.recv().unwrap_or_default();
        line.strip_prefix("TIMESTAMP ")
            .and_then(|n| n.parse::<i64>().ok())
            .unwrap_or_else(|| panic!("{kind:?}: TIMESTAMP expected, got {line:?}"))
    };
    let (real, ours) = (stamp(ServerKind::Real), stamp(ServerKind::Ours));
    assert!(
        (real - ours).abs() <= 5,
        "GETTIMESTAMP: real {real}, ours {ours}: not the same clock"
    );
}

#[test]
fn timestamp_messages_in_old_versions() {
    compare_session(|sh| {
        sh.hello(None);
        sh.send("GETTIMESTAMP");
        sh.recv();
        sh.send(&format!("REMOVE-BEFORE 1 {HELLO_KEY}"));
        sh.recv();
        sh.send(&format!("CHECKPRESENT {HELLO_KEY}"));
        sh.expect("SUCCESS");
    });
}

// ----- odd messages -----------------------------------------------------------

#[test]
fn bypass_is_ignored() {
    compare_session(|sh| {
        sh.hello(Some(4));
        sh.send("BYPASS 11111111-2222-3333-4444-555555555555 other");
        sh.send("BYPASS");
        sh.send("VERSION 4");
        sh.expect("VERSION 4");
        sh.send(&format!("CHECKPRESENT {HELLO_KEY}"));
        sh.expect("SUCCESS");
    });
}

#[test]
fn unknown_verbs_and_wrong_arity() {
    compare_session(|sh| {
        sh.hello(Some(4));
        for line in [
            "FOO bar".to_string(),
            String::new(),
            " ".into(),
            format!("checkpresent {HELLO_KEY}"),
            format!(" CHECKPRESENT {HELLO_KEY}"),
            "CHECKPRESENT".into(),
            "CHECKPRESENT not-a-key".into(),
            "UNLOCKCONTENT extra".into(),
            "GETTIMESTAMP now".into(),
            "GET 0 x".into(),
            format!("GET x {HELLO_KEY}"),
            format!("REMOVE-BEFORE {HELLO_KEY}"),
            format!("REMOVE-BEFORE soon {HELLO_KEY}"),
            "PUT".into(),
            "SUCCESS extra".into(),
            "CONNECT git-upload-archive".into(),
            "AUTH x bad!token".into(),
        ] {
            sh.send(&line);
            sh.expect("ERROR unknown command");
        }
        sh.send(&format!("CHECKPRESENT {HELLO_KEY}"));
        sh.expect("SUCCESS");
    });
}

#[test]
fn response_verbs_at_top_level() {
    compare_session(|sh| {
        sh.hello(Some(4));
        for line in [
            "SUCCESS",
            "FAILURE",
            "SUCCESS-PLUS 11111111-2222-3333-4444-555555555555",
            "FAILURE-PLUS",
            "VALID",
            "INVALID",
            "PUT-FROM 0",
            "ALREADY-HAVE",
            "ALREADY-HAVE-PLUS x",
            "TIMESTAMP 5",
            "AUTH-SUCCESS x",
            "AUTH-FAILURE",
            "CONNECTDONE 0",
            "CHANGED abc",
            "DATA-PRESENT",
            "UNLOCKCONTENT",
            // DATA at top level: its "body" is not read; the next line is a message
            "DATA 3",
        ] {
            sh.send(line);
            sh.expect("ERROR unexpected command");
        }
        sh.send(&format!("CHECKPRESENT {HELLO_KEY}"));
        sh.expect("SUCCESS");
    });
}

#[test]
fn auth_after_auth() {
    compare_session(|sh| {
        sh.hello(Some(4));
        sh.send("AUTH 11111111-2222-3333-4444-555555555555 abc123");
        sh.expect("ERROR unexpected command");
        sh.send("AUTH  ");
        sh.expect("ERROR unexpected command");
        sh.send(&format!("CHECKPRESENT {HELLO_KEY}"));
        sh.expect("SUCCESS");
    });
}

// ----- how sessions end ---------------------------------------------------------

#[test]
fn error_from_client_ends_the_session() {
    compare(|fx| {
        let mut sh = fx.shell();
        sh.hello(Some(4));
        sh.send("ERROR client gives up");
        sh.send(&format!("CHECKPRESENT {HELLO_KEY}"));
        let out = sh.finish();
        out.assert_exit(0);
        out.assert_quiet();
        vec![out]
    });
}

#[test]
fn eof_ends_the_session_cleanly() {
    compare(|fx| {
        let mut sh = fx.shell();
        sh.hello(Some(4));
        let out = sh.finish();
        out.assert_exit(0);
        out.assert_quiet();
        vec![out]
    });
}

#[test]
fn eof_mid_line() {
    compare_session(|sh| {
        sh.hello(Some(4));
        sh.send_raw(b"CHECKPRES");
    });
}

#[test]
fn eof_mid_line_after_a_full_message() {
    compare_session(|sh| {
        sh.hello(Some(4));
        sh.send_raw(format!("CHECKPRESENT {HELLO_KEY}").as_bytes());
    });
}

// ----- restricted modes -----------------------------------------------------------

#[test]
fn read_only_mode() {
    let fixtures = compare(|fx| {
        let mut sh = fx.shell_env(&[("GIT_ANNEX_SHELL_READONLY", "1")]);
        sh.hello(Some(4));
        sh.send(&format!("PUT c.txt {NEW_KEY}"));
        sh.expect("ERROR this repository is read-only; write access denied");
        sh.send(&format!("PUT a.txt {HELLO_KEY}"));
        sh.recv();
        for remove in [
            format!("REMOVE {HELLO_KEY}"),
            format!("REMOVE-BEFORE 99999999999 {HELLO_KEY}"),
            format!("REMOVE {ABSENT_KEY}"),
        ] {
            sh.send(&remove);
            sh.expect("ERROR this repository is read-only; write access denied");
        }
        // reading and locking still work
        sh.send(&format!("LOCKCONTENT {HELLO_KEY}"));
        sh.expect("SUCCESS");
        sh.send("UNLOCKCONTENT");
        sh.send(&format!("GET 0 a.txt {HELLO_KEY}"));
        sh.expect("DATA 6");
        sh.body(6);
        sh.expect("VALID");
        sh.send("SUCCESS");
        sh.send(&format!("CHECKPRESENT {HELLO_KEY}"));
        sh.expect("SUCCESS");
        vec![sh.finish()]
    });
    assert_same_state(&fixtures, &[HELLO_KEY, NEW_KEY]);
}

#[test]
fn append_only_mode() {
    let fixtures = compare(|fx| {
        let mut sh = fx.shell_env(&[("GIT_ANNEX_SHELL_APPENDONLY", "1")]);
        sh.hello(Some(4));
        for remove in [
            format!("REMOVE {HELLO_KEY}"),
            format!("REMOVE-BEFORE 99999999999 {HELLO_KEY}"),
            format!("REMOVE {ABSENT_KEY}"),
        ] {
            sh.send(&remove);
            sh.expect("ERROR this repository is append-only; removal denied");
        }
        // adding works
        put(&mut sh, "c.txt", NEW_KEY, 0, NEW, Some("VALID"));
        sh.expect("SUCCESS");
        sh.send(&format!("CHECKPRESENT {HELLO_KEY}"));
        sh.expect("SUCCESS");
        vec![sh.finish()]
    });
    assert_same_state(&fixtures, &[HELLO_KEY, NEW_KEY]);
}
