//! Hostile and broken input, against our server only. Every session must
//! end without a panic, each bad message must get a clear ERROR (or the
//! connection closes), and nothing outside the repository may change:
//! canary files beside the repository and above it are checked, and so is
//! the whole tree around the repository for new files.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use annexproxy_tests::p2p_driver::{Fixture, Outcome, Shell, HELLO_KEY, NEW, NEW_KEY};
use annexproxy_tests::ServerKind;

/// Every file, dir and symlink under `root` except inside `skip`, with what
/// it holds.
fn snapshot(root: &Path, skip: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p == skip {
                continue;
            }
            let Ok(meta) = fs::symlink_metadata(&p) else {
                continue;
            };
            let what = if meta.file_type().is_symlink() {
                format!("link {:?}", fs::read_link(&p).ok())
            } else if meta.is_dir() {
                todo.push(p.clone());
                "dir".to_string()
            } else {
                format!("file {:?}", fs::read(&p).ok())
            };
            out.insert(p, what);
        }
    }
    out
}

/// Our server on a fresh fixture, with canaries planted around the repo.
struct Hostile {
    fx: Fixture,
    before: BTreeMap<PathBuf, String>,
}

impl Hostile {
    fn new() -> Hostile {
        let fx = Fixture::new(ServerKind::Ours);
        let srv = fx.repo.parent().expect("repo has a parent").to_path_buf();
        let root = fx.env.root().to_path_buf();
        for dir in [&srv, &root, &fx.env.server_home] {
            fs::write(dir.join("canary"), "do not touch\n").expect("canary");
            fs::write(dir.join("x"), "x\n").expect("canary x");
        }
        fs::create_dir_all(srv.join("evil")).expect("canary dir");
        let before = snapshot(&root, &fx.repo);
        Hostile { fx, before }
    }

    fn shell(&self) -> Shell {
        self.fx.shell()
    }

    /// Finish `sh` and check the rules every hostile session must keep.
    #[track_caller]
    fn check(&self, sh: Shell) -> Outcome {
        let out = sh.finish();
        assert!(
            !out.stderr.contains("panicked"),
            "server panicked\n{}",
            out.show()
        );
        assert!(
            out.code.is_some(),
            "server killed by a signal\n{}",
            out.show()
        );
        let after = snapshot(self.fx.env.root(), &self.fx.repo);
        if after != self.before {
            let changed: Vec<_> = after
                .iter()
                .filter(|(p, w)| self.before.get(*p) != Some(w))
                .map(|(p, _)| p.display().to_string())
                .chain(
                    self.before
                        .keys()
                        .filter(|p| !after.contains_key(*p))
                        .map(|p| format!("{} (removed)", p.display())),
                )
                .collect();
            panic!(
                "files outside the repository changed: {changed:#?}\n{}",
                out.show()
            );
        }
        out
    }
}

/// Sends `line` and reads one reply; true if it starts with one of `ok`
/// (an empty `ok` list allows nothing), false if the server closed the
/// connection. Anything else fails the test.
#[track_caller]
fn step(sh: &mut Shell, line: &[u8], ok: &[&str]) -> Option<String> {
    let mut bytes = line.to_vec();
    bytes.push(b'\n');
    sh.send_raw(&bytes);
    let reply = sh.recv()?;
    assert!(
        ok.iter().any(|p| reply.starts_with(p)),
        "reply {reply:?} to {:?} is none of {ok:?}\n{}",
        String::from_utf8_lossy(line),
        sh.log().join("\n")
    );
    Some(reply)
}

const UNKNOWN: &[&str] = &["ERROR unknown command"];

#[test]
fn line_of_40000_bytes_without_newline() {
    let h = Hostile::new();
    let mut sh = h.shell();
    sh.hello(Some(4));
    sh.send_raw(&vec![b'A'; 40_000]);
    // no reply can come and the server must not wait for the rest forever
    assert_eq!(sh.recv(), None);
    let out = h.check(sh);
    assert_ne!(out.code, Some(0), "a fatal protocol error\n{}", out.show());
}

#[test]
fn line_of_40000_bytes_with_newline() {
    let h = Hostile::new();
    let mut sh = h.shell();
    sh.hello(Some(4));
    let mut line = b"CHECKPRESENT SHA256E-s1--".to_vec();
    line.extend(std::iter::repeat_n(b'a', 40_000));
    line.push(b'\n');
    sh.send_raw(&line);
    sh.send(&format!("CHECKPRESENT {HELLO_KEY}"));
    assert_eq!(sh.recv(), None, "git-annex gives up on such a line too");
    h.check(sh);
}

#[test]
fn nul_bytes_in_lines() {
    let h = Hostile::new();
    let mut sh = h.shell();
    sh.hello(Some(4));
    step(&mut sh, b"CHECKPRESENT SHA256E-s1--a\0b", UNKNOWN).expect("session goes on");
    step(&mut sh, b"\0\0\0", UNKNOWN).expect("session goes on");
    step(&mut sh, b"CHECK\0PRESENT x", UNKNOWN).expect("session goes on");
    step(&mut sh, b"REMOVE SHA256E-s1--\0", UNKNOWN).expect("session goes on");
    // in an associated file a NUL is just a strange name
    let put = format!("PUT a\0b {NEW_KEY}");
    step(&mut sh, put.as_bytes(), &["PUT-FROM 0"]).expect("session goes on");
    sh.send("ERROR changed my mind");
    step(
        &mut sh,
        format!("CHECKPRESENT {HELLO_KEY}").as_bytes(),
        &["SUCCESS"],
    )
    .expect("still in step");
    h.check(sh).assert_exit(0);
}

#[test]
fn invalid_utf8() {
    let h = Hostile::new();
    let mut sh = h.shell();
    sh.hello(Some(4));
    step(&mut sh, b"CHECKPRESENT \xff\xfe", UNKNOWN).expect("session goes on");
    step(&mut sh, b"\xff", UNKNOWN).expect("session goes on");
    step(&mut sh, b"VERSION \xc3", UNKNOWN).expect("session goes on");
    step(&mut sh, b"BYPASS \xff", UNKNOWN).expect("session goes on");
    // an associated file is only displayed: decoded lossily
    let mut get = b"GET 0 \xff\xfe.txt ".to_vec();
    get.extend_from_slice(HELLO_KEY.as_bytes());
    step(&mut sh, &get, &["DATA 6"]).expect("session goes on");
    sh.body(6);
    sh.expect("VALID");
    sh.send("SUCCESS");
    // an ERROR text is too; it ends the session
    sh.send_raw(b"ERROR \xff\xfe bye\n");
    assert_eq!(sh.recv(), None);
    h.check(sh).assert_exit(0);
}

/// Keys whose names try to leave `annex/objects` or `annex/tmp`. WORM keys
/// have no hash to check, so their PUT really stores whatever is sent.
fn hostile_keys() -> Vec<String> {
    let mut keys: Vec<String> = [
        "SHA256E-s1--../../../x",
        "SHA256E-s1--..",
        "SHA256E-s1--.",
        "SHA256E-s1--a/b",
        "SHA256E-s1--/etc/passwd",
        "WORM-s1--../../../../x",
        "WORM-s1--../../../../../../../../../../../../tmp/annexproxy-escape",
        "WORM-s1--..",
        "WORM-s1--.",
        "WORM-s1--&s..&c..",
        "WORM-s1--x\u{7f}y",
        "..-s1--x",
        "../../x-s1--y",
        "../../../x",
        "..",
        "/etc/passwd",
    ]
    .map(String::from)
    .to_vec();
    keys.push(format!("WORM-s1--{}", "a".repeat(300)));
    keys.push(format!("WORM-s1--{}", "b/".repeat(3000)));
    keys.push(format!("SHA256E-s1--{}", "c".repeat(20_000)));
    keys
}

/// Every key-taking verb on one hostile key; true if something was stored.
fn exercise_key(sh: &mut Shell, key: &str) -> bool {
    let k = key.as_bytes();
    let line = |verb: &str| [verb.as_bytes(), k].concat();
    let fail_or_error = &["FAILURE", "ERROR"];
    let Some(_) = step(sh, &line("CHECKPRESENT "), fail_or_error) else {
        return false;
    };
    let Some(_) = step(sh, &line("LOCKCONTENT "), fail_or_error) else {
        return false;
    };
    let Some(reply) = step(sh, &line("GET 0 f "), &["DATA 0", "ERROR"]) else {
        return false;
    };
    if reply == "DATA 0" {
        if sh.recv().is_none() {
            return false;
        }
        sh.send("FAILURE");
    }
    let Some(reply) = step(sh, &line("PUT f "), &["PUT-FROM 0", "ERROR"]) else {
        return false;
    };
    let mut stored = false;
    if reply == "PUT-FROM 0" {
        sh.send("DATA 1");
        sh.send_raw(b"z");
        sh.send("VALID");
        match sh.recv().as_deref() {
            None => return false,
            Some("SUCCESS") => stored = true,
            Some(r) => assert!(r == "FAILURE" || r.starts_with("ERROR"), "PUT result {r:?}"),
        }
        let Some(_) = step(sh, &line("CHECKPRESENT "), &["SUCCESS", "FAILURE"]) else {
            return stored;
        };
    }
    let Some(_) = step(sh, &line("REMOVE "), &["SUCCESS", "FAILURE", "ERROR"]) else {
        return stored;
    };
    let Some(_) = step(
        sh,
        &line("REMOVE-BEFORE 99999999999 "),
        &["SUCCESS", "FAILURE", "ERROR"],
    ) else {
        return stored;
    };
    step(
        sh,
        format!("CHECKPRESENT {HELLO_KEY}").as_bytes(),
        &["SUCCESS"],
    );
    stored
}

#[test]
fn keys_that_try_to_leave_the_repository() {
    for key in hostile_keys() {
        let h = Hostile::new();
        let mut sh = h.shell();
        sh.hello(Some(4));
        let stored = exercise_key(&mut sh, &key);
        let out = h.check(sh);
        assert!(
            !Path::new("/tmp/annexproxy-escape").exists(),
            "a key escaped to /tmp\n{}",
            out.show()
        );
        if stored {
            h.fx.assert_fsck_clean();
        }
    }
}

#[test]
fn client_uuids_that_try_to_leave_the_repository() {
    for uuid in ["..", ".", "../../..", "../canary", "a/../../..", "/"] {
        let h = Hostile::new();
        let repo = h.fx.repo.to_string_lossy().into_owned();
        let mut sh = h.fx.shell_with(&repo, uuid, &[]);
        sh.hello(Some(4));
        // GET and PUT record transfers under the client's UUID
        'session: {
            let get = format!("GET 0 a.txt {HELLO_KEY}");
            let Some(_) = step(&mut sh, get.as_bytes(), &["DATA 6"]) else {
                break 'session;
            };
            sh.body(6);
            if sh.recv().is_none() {
                break 'session;
            }
            sh.send("FAILURE");
            let put = format!("PUT c.txt {NEW_KEY}");
            let Some(_) = step(&mut sh, put.as_bytes(), &["PUT-FROM 0"]) else {
                break 'session;
            };
            sh.send(&format!("DATA {}", NEW.len()));
            sh.send_raw(&NEW[..5]);
        }
        h.check(sh);
    }
}

#[test]
fn huge_and_negative_numbers() {
    let h = Hostile::new();
    let mut sh = h.shell();
    sh.hello(Some(4));
    let unexpected = &["ERROR unexpected command"];
    step(&mut sh, b"DATA 18446744073709551615", unexpected).expect("session goes on");
    step(&mut sh, b"DATA 18446744073709551616", &["ERROR"]).expect("session goes on");
    step(&mut sh, b"DATA -1", &["ERROR"]).expect("session goes on");
    step(&mut sh, b"VERSION -1", UNKNOWN).expect("session goes on");
    step(
        &mut sh,
        format!("GET -1 a.txt {HELLO_KEY}").as_bytes(),
        UNKNOWN,
    )
    .expect("session goes on");
    step(
        &mut sh,
        format!("GET 18446744073709551616 a.txt {HELLO_KEY}").as_bytes(),
        UNKNOWN,
    )
    .expect("session goes on");
    step(
        &mut sh,
        format!("REMOVE-BEFORE -5 {HELLO_KEY}").as_bytes(),
        UNKNOWN,
    )
    .expect("session goes on");
    // the largest offset is just past the end
    let get = format!("GET 18446744073709551615 a.txt {HELLO_KEY}");
    step(&mut sh, get.as_bytes(), &["DATA 0"]).expect("session goes on");
    sh.expect("VALID");
    sh.send("SUCCESS");
    for bad in ["DATA -1", "DATA 18446744073709551616", "DATA x", "DATA"] {
        let put = format!("PUT c.txt {NEW_KEY}");
        step(&mut sh, put.as_bytes(), &["PUT-FROM 0"]).expect("session goes on");
        step(&mut sh, bad.as_bytes(), &["ERROR expected DATA"]).expect("session goes on");
    }
    step(
        &mut sh,
        format!("CHECKPRESENT {HELLO_KEY}").as_bytes(),
        &["SUCCESS"],
    )
    .expect("in step");
    h.check(sh).assert_exit(0);
}

/// `DATA 18446744073709551615` after PUT-FROM: the server must stream what
/// comes, never try to hold it, and give up at EOF.
#[test]
fn data_of_u64_max_then_eof() {
    let h = Hostile::new();
    let mut sh = h.shell();
    sh.hello(Some(4));
    step(
        &mut sh,
        format!("PUT c.txt {NEW_KEY}").as_bytes(),
        &["PUT-FROM 0"],
    )
    .expect("PUT-FROM");
    sh.send("DATA 18446744073709551615");
    sh.send_raw(&vec![b'z'; 300_000]);
    let out = h.check(sh);
    assert!(
        !out.transcript.iter().any(|l| l == "<< SUCCESS"),
        "{}",
        out.show()
    );
    let tmp = fs::metadata(h.fx.tmp_path(NEW_KEY))
        .map(|m| m.len())
        .unwrap_or(0);
    assert!(tmp <= 300_000, "partial upload of {tmp} bytes");
    h.fx.assert_fsck_clean();
}

#[test]
fn data_shorter_than_announced_then_eof() {
    let h = Hostile::new();
    let mut sh = h.shell();
    sh.hello(Some(4));
    step(
        &mut sh,
        format!("PUT c.txt {NEW_KEY}").as_bytes(),
        &["PUT-FROM 0"],
    )
    .expect("PUT-FROM");
    // as long as the key says (a longer DATA is refused before writing,
    // see `store_limits`), but cut short: the partial stays for a resume
    sh.send(&format!("DATA {}", NEW.len()));
    sh.send_raw(&NEW[..10]);
    let out = h.check(sh);
    out.assert_exit(0);
    assert_eq!(
        fs::read(h.fx.tmp_path(NEW_KEY)).ok().as_deref(),
        Some(&NEW[..10])
    );
    h.fx.assert_fsck_clean();
}

#[test]
fn last_line_without_newline() {
    let h = Hostile::new();
    let mut sh = h.shell();
    sh.hello(Some(4));
    sh.send_raw(format!("REMOVE {HELLO_KEY}").as_bytes());
    let out = h.check(sh);
    out.assert_exit(0);
    assert_eq!(
        h.fx.key_state(HELLO_KEY),
        (true, true),
        "a cut-off line is not executed"
    );
}

#[test]
fn ten_thousand_pipelined_checkpresents() {
    const N: usize = 10_000;
    let h = Hostile::new();
    let mut sh = h.shell();
    sh.hello(Some(4));
    let absent = "SHA256E-s5--0000000000000000000000000000000000000000000000000000000000000000";
    let mut all = Vec::new();
    for i in 0..N {
        let key = if i % 2 == 0 { HELLO_KEY } else { absent };
        all.extend_from_slice(format!("CHECKPRESENT {key}\n").as_bytes());
    }
    let start = Instant::now();
    sh.send_quiet(&all);
    let replies = sh.recv_many(N);
    let took = start.elapsed();
    assert_eq!(replies.len(), N, "every CHECKPRESENT answered");
    for (i, r) in replies.iter().enumerate() {
        let want = if i % 2 == 0 { "SUCCESS" } else { "FAILURE" };
        assert_eq!(r, want, "reply {i}");
    }
    assert!(
        took < Duration::from_secs(10),
        "{N} CHECKPRESENTs took {took:?}"
    );
    h.check(sh).assert_exit(0);
}

#[test]
fn many_pipelined_bad_lines() {
    const N: usize = 5_000;
    let h = Hostile::new();
    let mut sh = h.shell();
    sh.hello(Some(4));
    let mut all = Vec::new();
    for i in 0..N {
        all.extend_from_slice(format!("NONSENSE {i}\nSUCCESS\n").as_bytes());
    }
    let start = Instant::now();
    sh.send_quiet(&all);
    let replies = sh.recv_many(2 * N);
    let took = start.elapsed();
    assert_eq!(replies.len(), 2 * N);
    for pair in replies.chunks(2) {
        assert_eq!(pair, ["ERROR unknown command", "ERROR unexpected command"]);
    }
    assert!(
        took < Duration::from_secs(10),
        "{} bad lines took {took:?}",
        2 * N
    );
    h.check(sh).assert_exit(0);
}
