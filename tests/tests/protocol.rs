//! `git-annex-shell p2pstdio` driven with raw protocol lines, against the
//! real git-annex-shell and ours on byte-identical repositories; the replies
//! must be the same after normalising the server UUID and timestamps, and
//! so must the exit code and whether anything went to stderr.
//!
//! The scripts use `expect` for the facts observed from git-annex
//! 10.20261026 (so both sides are pinned to them) and `recv` where only
//! equality matters. PUT is in `protocol/put.rs`, deliberate differences
//! in `protocol/differences.rs`, hostile input (ours only) in
//! `protocol/bad_input.rs`, removal without a lock file in
//! `protocol/removal.rs`. The harness side is
//! `annexproxy_tests::p2p_driver`.

#[path = "protocol/bad_input.rs"]
mod bad_input;
#[path = "protocol/differences.rs"]
mod differences;
#[path = "protocol/put.rs"]
mod put;
#[path = "protocol/removal.rs"]
mod removal;
#[path = "protocol/store_limits.rs"]
mod store_limits;

use annexproxy_tests::p2p_driver::{
    assert_same, big_content, big_key, Fixture, Outcome, Shell, ABSENT_KEY, HELLO, HELLO_KEY, NEW,
    NEW_KEY,
};
use annexproxy_tests::ServerKind;
use put::send_put;

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
fn assert_same_content(fixtures: &[Fixture; 2], keys: &[&str]) {
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

/// [`assert_same_content`], and the same partial uploads and transfer
/// records are left behind.
fn assert_same_state(fixtures: &[Fixture; 2], keys: &[&str]) {
    assert_same_content(fixtures, keys);
    let [real, ours] = fixtures;
    assert_eq!(
        leftovers(real),
        leftovers(ours),
        "what is under annex/tmp, annex/transfer and annex/objects: real vs ours"
    );
}

/// Files a session leaves under `annex/tmp` and `annex/transfer`, relative
/// to the repository.
fn leftovers(fx: &Fixture) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![
        fx.repo.join("annex/tmp"),
        fx.repo.join("annex/transfer"),
        fx.repo.join("annex/objects"),
    ];
    while let Some(dir) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let Ok(rel) = p.strip_prefix(&fx.repo) else {
                continue;
            };
            if p.is_dir() {
                // The object directories too: ours makes a small key's
                // before its body comes, and must not leave them when no
                // object goes in. (Not annex/transfer's: git-annex makes
                // a transfer lock's where ours needs none.)
                if rel.starts_with("annex/objects") {
                    out.push(format!("{}/", rel.display()));
                }
                todo.push(p);
            } else {
                out.push(rel.display().to_string());
            }
        }
    }
    out.sort();
    out
}

type Script = Box<dyn Fn(&mut Shell)>;

/// Runs each script (after the VERSION exchange) in a fresh pair of
/// repositories and compares what is left under `annex/tmp`,
/// `annex/transfer` and `annex/objects`.
fn assert_same_leftovers<const N: usize>(cases: [(&str, Script); N]) {
    let mut table = Vec::new();
    for (what, script) in cases {
        let fxs = [
            Fixture::new(ServerKind::Real),
            Fixture::new(ServerKind::Ours),
        ];
        for fx in &fxs {
            let mut sh = fx.shell();
            sh.hello(Some(4));
            script(&mut sh);
            sh.finish();
        }
        let [real, ours] = &fxs;
        let (r, o) = (leftovers(real), leftovers(ours));
        if r != o {
            table.push(format!("{what}:\n  real: {r:?}\n  ours: {o:?}"));
        }
    }
    assert!(
        table.is_empty(),
        "what is left under annex/tmp, annex/transfer and annex/objects differs:\n{}",
        table.join("\n")
    );
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

/// Which verdicts after a GET each version accepts silently.
#[test]
fn get_verdicts_by_version() {
    compare_session(|sh| {
        sh.hello(None);
        let get = |sh: &mut Shell, verdict: &str| {
            sh.send(&format!("GET 0 a.txt {HELLO_KEY}"));
            sh.expect("DATA 6");
            sh.body(6);
            sh.expect("VALID");
            sh.send(verdict);
        };
        sh.send("VERSION 1");
        sh.expect("VERSION 1");
        get(sh, "ERROR nope");
        get(sh, "SUCCESS-PLUS x");
        sh.expect("ERROR expected SUCCESS or FAILURE");
        get(sh, "FAILURE-PLUS");
        sh.expect("ERROR expected SUCCESS or FAILURE");
        sh.send("VERSION 2");
        sh.expect("VERSION 2");
        get(sh, "FAILURE-PLUS x y");
        get(sh, "SUCCESS-PLUS");
        get(sh, "ERROR nope");
        sh.send(&format!("CHECKPRESENT {HELLO_KEY}"));
        sh.expect("SUCCESS");
    });
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

/// GETs record uploads (and failed ones) the same way.
#[test]
fn gets_leave_the_same_files() {
    fn get(sh: &mut Shell, key: &str, verdict: Option<&str>) {
        sh.send(&format!("GET 0 a.txt {key}"));
        let header = sh.recv().unwrap_or_default();
        let len = header
            .strip_prefix("DATA ")
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        sh.body(len);
        sh.recv();
        match verdict {
            Some(v) => sh.send(v),
            None => sh.close(),
        }
    }
    assert_same_leftovers([
        (
            "GET + SUCCESS",
            Box::new(|sh: &mut Shell| get(sh, HELLO_KEY, Some("SUCCESS"))) as Script,
        ),
        (
            "GET + FAILURE",
            Box::new(|sh: &mut Shell| get(sh, HELLO_KEY, Some("FAILURE"))),
        ),
        (
            "GET + ERROR",
            Box::new(|sh: &mut Shell| get(sh, HELLO_KEY, Some("ERROR x"))),
        ),
        (
            "GET absent + FAILURE",
            Box::new(|sh: &mut Shell| get(sh, ABSENT_KEY, Some("FAILURE"))),
        ),
        (
            "GET + EOF",
            Box::new(|sh: &mut Shell| get(sh, HELLO_KEY, None)),
        ),
    ]);
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
        send_put(&mut sh, "c.txt", NEW_KEY, 0, NEW, Some("VALID"));
        sh.expect("SUCCESS");
        sh.send(&format!("CHECKPRESENT {HELLO_KEY}"));
        sh.expect("SUCCESS");
        vec![sh.finish()]
    });
    assert_same_state(&fixtures, &[HELLO_KEY, NEW_KEY]);
}
