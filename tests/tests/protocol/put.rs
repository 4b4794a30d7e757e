//! PUT: fresh, resumed, refused, corrupt, and every way it can end early.

use annexproxy_tests::p2p_driver::{
    sha256e_key, Fixture, Shell, ABSENT_KEY, CLIENT_UUID, HELLO_KEY, NEW, NEW_KEY,
};
use annexproxy_tests::{pseudo_random_bytes, ServerKind};

use super::{
    assert_same_content, assert_same_leftovers, assert_same_state, compare, compare_session, Script,
};

/// `PUT` then `DATA` with `body`, then `VALID` (v1+).
pub fn send_put(
    sh: &mut Shell,
    file: &str,
    key: &str,
    from: u64,
    body: &[u8],
    validity: Option<&str>,
) {
    sh.send(&format!("PUT {file} {key}"));
    sh.expect(&format!("PUT-FROM {from}"));
    sh.send(&format!("DATA {}", body.len()));
    sh.send_raw(body);
    if let Some(v) = validity {
        sh.send(v);
    }
}

#[test]
fn put_fresh() {
    let fixtures = compare_session(|sh| {
        sh.hello(Some(4));
        sh.send(&format!("CHECKPRESENT {NEW_KEY}"));
        sh.expect("FAILURE");
        send_put(sh, "c%d.txt", NEW_KEY, 0, NEW, Some("VALID"));
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
        send_put(&mut sh, "c.txt", NEW_KEY, 0, NEW, None);
        sh.expect("SUCCESS");
        let first = sh.finish();
        // v1 with INVALID and the right bytes: verified in full, stored
        let mut sh = fx.shell();
        sh.hello(Some(1));
        sh.send(&format!("REMOVE {NEW_KEY}"));
        sh.expect("SUCCESS");
        send_put(&mut sh, "c.txt", NEW_KEY, 0, NEW, Some("INVALID"));
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
        send_put(&mut sh, "c.txt", NEW_KEY, 10, &NEW[10..], Some("VALID"));
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
        send_put(sh, "big2.bin", &key, 0, &content, Some("VALID"));
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
        send_put(&mut sh, "c.txt", NEW_KEY, 10, &NEW[10..], Some("VALID"));
        sh.expect("FAILURE");
        // the bad partial is gone, so the next PUT starts over
        send_put(&mut sh, "c.txt", NEW_KEY, 0, NEW, Some("VALID"));
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
        send_put(&mut sh, "c.txt", NEW_KEY, 0, &bad, Some("VALID"));
        sh.expect("FAILURE");
        sh.send(&format!("CHECKPRESENT {NEW_KEY}"));
        sh.expect("FAILURE");
        // nothing of the bad upload is kept for a resume
        send_put(&mut sh, "c.txt", NEW_KEY, 0, NEW, Some("VALID"));
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
        send_put(sh, "c.txt", NEW_KEY, 0, &NEW[..20], Some("VALID"));
        sh.expect("FAILURE");
        send_put(
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
        send_put(sh, "c.txt", NEW_KEY, 0, b"", Some("INVALID"));
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
    // what the refused PUTs leave behind is checked in
    // `aborted_puts_leave_the_same_files`
    assert_same_content(&fixtures, &[NEW_KEY, ABSENT_KEY]);
}

/// Every way a PUT can end without storing anything, each in a fresh pair
/// of repositories: the files left under `annex/tmp` and `annex/transfer`
/// must be the same.
#[test]
fn aborted_puts_leave_the_same_files() {
    type Abort = fn(&mut Shell);
    let aborts: [(&str, Abort); 7] = [
        ("ERROR instead of DATA", |sh| sh.send("ERROR no")),
        ("wrong message instead of DATA", |sh| {
            sh.send("SUCCESS");
            sh.expect("ERROR expected DATA");
        }),
        ("DATA-PRESENT, nothing there", |sh| {
            sh.send("DATA-PRESENT");
            sh.expect("FAILURE");
        }),
        ("DATA 0 + INVALID", |sh| {
            sh.send("DATA 0");
            sh.send("INVALID");
            sh.expect("FAILURE");
        }),
        ("corrupt DATA + VALID", |sh| {
            sh.send(&format!("DATA {}", NEW.len()));
            sh.send_raw(&[b'!'; 24]);
            sh.send("VALID");
            sh.expect("FAILURE");
        }),
        ("short DATA + VALID", |sh| {
            sh.send("DATA 3");
            sh.send_raw(&NEW[..3]);
            sh.send("VALID");
            sh.expect("FAILURE");
        }),
        ("EOF mid-DATA", |sh| {
            sh.send(&format!("DATA {}", NEW.len()));
            sh.send_raw(&NEW[..3]);
            sh.close();
        }),
    ];
    let cases = aborts.map(|(what, abort)| {
        let script: Script = Box::new(move |sh: &mut Shell| {
            sh.send(&format!("PUT c.txt {NEW_KEY}"));
            sh.expect("PUT-FROM 0");
            abort(sh);
        });
        (what, script)
    });
    assert_same_leftovers(cases);
}

/// The failed-transfer record an interrupted PUT leaves names the
/// associated file, decoded the same way (`%` is a space that comes back
/// as `_`, `%%` is `%`); its first line is the time.
#[test]
fn failed_transfer_record_names_the_file() {
    let record = |kind| {
        let fx = Fixture::new(kind);
        let mut sh = fx.shell();
        sh.hello(Some(4));
        sh.send(&format!("PUT dir/c%d.txt%%x {NEW_KEY}"));
        sh.expect("PUT-FROM 0");
        sh.send(&format!("DATA {}", NEW.len()));
        sh.send_raw(&NEW[..3]);
        sh.finish();
        let dir = fx
            .repo
            .join("annex/transfer/failed/download")
            .join(CLIENT_UUID);
        let text = std::fs::read_to_string(dir.join(NEW_KEY))
            .unwrap_or_else(|e| panic!("{kind:?}: failed transfer record: {e}"));
        let mut lines = text.lines();
        let time = lines.next().unwrap_or_default().to_string();
        assert!(
            time.ends_with('s') && time[..time.len() - 1].parse::<f64>().is_ok(),
            "{kind:?}: time line {time:?}"
        );
        lines.map(str::to_string).collect::<Vec<_>>()
    };
    assert_eq!(record(ServerKind::Real), ["dir/c_d.txt%x"]);
    assert_eq!(record(ServerKind::Ours), ["dir/c_d.txt%x"]);
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
        send_put(sh, "c.txt", NEW_KEY, 0, NEW, Some("SUCCESS"));
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
        send_put(&mut sh, "c.txt", NEW_KEY, 0, NEW, None);
        let out = sh.finish();
        vec![out]
    });
    assert_same_state(&fixtures, &[NEW_KEY]);
}

/// Keys with names that need escaping on disk (`/`, `%`, `&`, `:`, `..`)
/// and no hash to check: both servers store them at the same paths, log
/// them the same way, and can give them back.
#[test]
fn put_keys_with_odd_names() {
    let keys = [
        "WORM-s1--../../../../x",
        "WORM-s1--..",
        "WORM-s1--&s..&c..%:",
        "..-s1--x",
        "WORM-s1-m1700000000--a:b%c/d&e",
        "URL-s1--http&c%%example.com%a%b",
    ];
    let fixtures = compare_session(|sh| {
        sh.hello(Some(4));
        for key in keys {
            send_put(sh, "odd", key, 0, b"z", Some("VALID"));
            sh.expect("SUCCESS");
            sh.send(&format!("GET 0 odd {key}"));
            sh.expect("DATA 1");
            sh.body(1);
            sh.expect("VALID");
            sh.send("SUCCESS");
        }
    });
    assert_same_state(&fixtures, &keys);
    let objects = |fx: &Fixture| {
        let out = std::process::Command::new("find")
            .arg("annex/objects")
            .args(["-type", "f"])
            .current_dir(&fx.repo)
            .output()
            .expect("find runs");
        let mut files: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(String::from)
            .collect();
        files.sort();
        files
    };
    assert_eq!(
        objects(&fixtures[0]),
        objects(&fixtures[1]),
        "object paths: real vs ours"
    );
}

/// The answer to PUT costs no file: the transfer lock, the transfer's
/// info file, the space check and the partial file wait until PUT-FROM
/// has gone out, as in git-annex (which takes them when DATA comes), so a
/// PUT's round trip is a stat. Pinned with a FIFO where our info file
/// goes: opening it for writing waits for a reader, so a server that
/// wrote the info file before answering would never answer PUT. (Ours
/// only: git-annex writes that file by a rename, replacing the FIFO.) A
/// key over 1 MiB: smaller ones get no info file at all
/// (`a_small_put_makes_no_transfer_lock_or_info_file`).
#[test]
fn put_from_goes_out_before_the_transfer_files_are_made() {
    let fx = Fixture::new(ServerKind::Ours);
    let content = pseudo_random_bytes(9, 1_100_000);
    let key = sha256e_key(&content, ".bin");
    let info = fx
        .repo
        .join("annex/transfer/download")
        .join(CLIENT_UUID)
        .join(&key);
    std::fs::create_dir_all(info.parent().expect("has a parent")).expect("mkdir");
    let made = std::process::Command::new("mkfifo")
        .arg(&info)
        .status()
        .expect("mkfifo runs");
    assert!(made.success());
    let mut sh = fx.shell();
    sh.hello(Some(4));
    sh.send(&format!("PUT c.txt {key}"));
    sh.expect("PUT-FROM 0");
    // The server writes the info file once it has answered; read it (in a
    // thread, so a server that never opens it fails the test, not hangs).
    let (tx, rx) = std::sync::mpsc::channel();
    let fifo = info.clone();
    std::thread::spawn(move || {
        let _ = tx.send(std::fs::read_to_string(fifo));
    });
    sh.send(&format!("DATA {}", content.len()));
    sh.send_quiet(&content);
    sh.send("VALID");
    let written = rx
        .recv_timeout(std::time::Duration::from_secs(20))
        .expect("the server writes the transfer's info file")
        .expect("read the FIFO");
    assert!(written.ends_with("s\nc.txt\n"), "{written:?}");
    sh.expect("SUCCESS");
    sh.finish().assert_exit(0);
    assert_eq!(fx.key_state(&key), (true, true));
    assert!(!info.exists(), "the info file goes when the transfer ends");
}

/// Files under `dir`, relative to it.
fn files_under(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else if let Ok(rel) = p.strip_prefix(dir) {
                out.push(rel.display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// A PUT of a key of at most 1 MiB from offset 0 takes no transfer lock
/// and writes no transfer info file (the key's bytes go to a file of its
/// own, `annex/othertmp/put.<pid>.<n>`): two files fewer created and
/// deleted per small key. Looked at in the middle of the body, when
/// git-annex (and ours before) holds both.
#[test]
fn a_small_put_makes_no_transfer_lock_or_info_file() {
    let fx = Fixture::new(ServerKind::Ours);
    let transfer = fx.repo.join("annex/transfer");
    let mut sh = fx.shell();
    sh.hello(Some(4));
    sh.send(&format!("PUT c.txt {NEW_KEY}"));
    sh.expect("PUT-FROM 0");
    sh.send(&format!("DATA {}", NEW.len()));
    sh.send_raw(&NEW[..7]);
    // The receiving file exists once the server has taken DATA in hand.
    let receiving = || {
        fx.tmp_path(NEW_KEY).exists()
            || files_under(&fx.repo.join("annex/othertmp"))
                .iter()
                .any(|f| f.starts_with("put."))
    };
    let start = std::time::Instant::now();
    while !receiving() {
        assert!(
            start.elapsed().as_secs() < 20,
            "the server never opened a file"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert_eq!(files_under(&transfer), Vec::<String>::new(), "mid-body");
    sh.send_raw(&NEW[7..]);
    sh.send("VALID");
    sh.expect("SUCCESS");
    sh.finish().assert_exit(0);
    assert_eq!(fx.key_state(NEW_KEY), (true, true));
    assert_eq!(files_under(&transfer), Vec::<String>::new(), "after");
    // Nothing but spare inodes (the committed journal file's).
    let left = files_under(&fx.repo.join("annex/othertmp"));
    assert!(left.iter().all(|f| f.starts_with("spare/")), "{left:?}");
    fx.assert_fsck_clean();
}

/// A small PUT's own file left by a server process that is gone (as one
/// killed mid-body leaves it) is removed by the next session's first
/// small PUT.
#[test]
fn a_dead_servers_small_put_file_is_swept() {
    let fx = Fixture::new(ServerKind::Ours);
    let othertmp = fx.repo.join("annex/othertmp");
    std::fs::create_dir_all(&othertmp).expect("othertmp");
    let mut child = std::process::Command::new("true").spawn().expect("true");
    let dead = child.id();
    child.wait().expect("true ran");
    let left = othertmp.join(format!("put.{dead}.0"));
    std::fs::write(&left, &NEW[..7]).expect("left behind");
    let mut sh = fx.shell();
    sh.hello(Some(4));
    send_put(&mut sh, "c.txt", NEW_KEY, 0, NEW, Some("VALID"));
    sh.expect("SUCCESS");
    sh.finish().assert_exit(0);
    assert!(!left.exists(), "swept");
    assert_eq!(fx.key_state(NEW_KEY), (true, true));
}

/// The location log is written once the answer is out (the client logs
/// the change in its own and goes on to its next file meanwhile), so a
/// log that cannot be written no longer turns a stored key into FAILURE:
/// the object is there, the answer says so, the reason goes to stderr and
/// `git annex fsck` logs the key later. Here the journal's place is taken
/// by a file; a REMOVE of the key fails to log the same way.
#[test]
fn a_log_that_cannot_be_written_after_the_answer_is_told() {
    let fx = Fixture::new(ServerKind::Ours);
    let journal = fx.repo.join("annex/journal");
    let _ = std::fs::remove_dir_all(&journal);
    std::fs::write(&journal, b"not a directory").expect("plant");
    let mut sh = fx.shell();
    sh.hello(Some(4));
    send_put(&mut sh, "c.txt", NEW_KEY, 0, NEW, Some("VALID"));
    sh.expect("SUCCESS");
    sh.send(&format!("CHECKPRESENT {NEW_KEY}"));
    sh.expect("SUCCESS");
    sh.send(&format!("REMOVE {NEW_KEY}"));
    sh.expect("SUCCESS");
    sh.send(&format!("CHECKPRESENT {NEW_KEY}"));
    sh.expect("FAILURE");
    let out = sh.finish();
    assert!(
        out.stderr
            .contains(&format!("{NEW_KEY}: stored, but not logged"))
            && out
                .stderr
                .contains(&format!("{NEW_KEY}: removed, but not logged")),
        "{}",
        out.show()
    );
    std::fs::remove_file(&journal).expect("unplant");
    assert_eq!(fx.key_state(NEW_KEY), (false, false));
}
