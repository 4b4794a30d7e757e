//! Where git-annex 10.20261026 ends the session and we deliberately do not
//! (README's compatibility table), and other places where the two differ on
//! purpose: each side's own behaviour is asserted explicitly.

use std::time::Duration;

use annexproxy_tests::p2p_driver::{Fixture, Outcome, Shell, HELLO_KEY, NEW, NEW_KEY};
use annexproxy_tests::ServerKind;

use super::assert_same_state;

fn fixtures() -> [Fixture; 2] {
    [
        Fixture::new(ServerKind::Real),
        Fixture::new(ServerKind::Ours),
    ]
}

/// The real server died: no reply, stdout closed, exit 1, `says` on stderr.
#[track_caller]
fn assert_real_died(out: &Outcome, says: &str) {
    out.assert_exit(1);
    assert!(
        out.stderr.contains(says),
        "stderr should say {says:?}\n{}",
        out.show()
    );
}

/// While one session holds LOCKCONTENT, another REMOVEs the key: git-annex
/// dies with "content is locked"; we answer FAILURE and go on.
#[test]
fn remove_of_locked_content() {
    for fx in fixtures() {
        let mut holder = fx.shell();
        holder.hello(Some(4));
        holder.send(&format!("LOCKCONTENT {HELLO_KEY}"));
        holder.expect("SUCCESS");

        let mut sh = fx.shell();
        sh.hello(Some(4));
        sh.send(&format!("REMOVE {HELLO_KEY}"));
        match fx.kind() {
            ServerKind::Real => {
                assert_eq!(sh.recv(), None);
                assert_real_died(&sh.finish(), "content is locked");
            }
            ServerKind::Ours => {
                sh.expect("FAILURE");
                sh.send(&format!("CHECKPRESENT {HELLO_KEY}"));
                sh.expect("SUCCESS");
                let out = sh.finish();
                out.assert_exit(0);
            }
        }
        holder.send("UNLOCKCONTENT");
        holder.send(&format!("REMOVE {HELLO_KEY}"));
        holder.expect("SUCCESS");
        holder.finish().assert_exit(0);
        assert_eq!(fx.key_state(HELLO_KEY), (false, false), "{:?}", fx.kind());
        fx.assert_fsck_clean();
    }
}

/// A second PUT of a small key that another session is receiving:
/// git-annex answers PUT-FROM (from what the partial file holds) and then
/// dies ("transfer already in progress"); ours writes each small PUT to a
/// file of its own without a transfer lock (`shared/src/store/incoming.rs`),
/// so the second stores the key too, from 0. The first upload completes
/// either way, and the object is intact. (A large key's second receiver is
/// refused, `second_receiver_of_a_key_is_refused` in the store's tests.)
#[test]
fn put_while_another_session_receives_the_key() {
    let mut states = Vec::new();
    let fxs = fixtures();
    for fx in &fxs {
        let mut first = fx.shell();
        first.hello(Some(4));
        first.send(&format!("PUT c.txt {NEW_KEY}"));
        first.expect("PUT-FROM 0");
        first.send(&format!("DATA {}", NEW.len()));
        first.send_raw(&NEW[..7]);
        match fx.kind() {
            ServerKind::Real => wait_for_file(&fx.tmp_path(NEW_KEY)),
            ServerKind::Ours => wait_for_put_file(&fx.repo.join("annex/othertmp")),
        }

        let mut second = fx.shell();
        second.hello(Some(4));
        second.send(&format!("PUT c.txt {NEW_KEY}"));
        // The offset is the partial file's length, as the first session
        // has written it so far (both servers take the transfer lock only
        // after answering PUT).
        let from = second.recv().unwrap_or_default();
        let from: usize = match from.strip_prefix("PUT-FROM ").map(str::parse) {
            Some(Ok(n)) if n <= 7 => n,
            _ => panic!("{:?}: expected PUT-FROM 0..=7, got {from:?}", fx.kind()),
        };
        second.send(&format!("DATA {}", NEW.len() - from));
        second.send_raw(&NEW[from..]);
        second.send("VALID");
        match fx.kind() {
            ServerKind::Real => {
                assert_eq!(second.recv(), None);
                assert_real_died(&second.finish(), "transfer already in progress");
            }
            ServerKind::Ours => {
                assert_eq!(from, 0, "a small PUT is never resumed from another's file");
                second.expect("SUCCESS");
                second.send(&format!("CHECKPRESENT {NEW_KEY}"));
                second.expect("SUCCESS");
                let out = second.finish();
                out.assert_exit(0);
                out.assert_quiet();
            }
        }
        first.send_raw(&NEW[7..]);
        first.send("VALID");
        first.expect("SUCCESS");
        let out = first.finish();
        out.assert_exit(0);
        out.assert_quiet();
        states.push(fx.key_state(NEW_KEY));
    }
    assert_eq!(states, [(true, true), (true, true)]);
    assert_same_state(&fxs, &[NEW_KEY]);
}

/// Waits for a small PUT's own file (`put.<pid>.<n>`) in `othertmp`.
fn wait_for_put_file(othertmp: &std::path::Path) {
    for _ in 0..2000 {
        let found = std::fs::read_dir(othertmp).is_ok_and(|mut d| {
            d.any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().starts_with("put.")))
        });
        if found {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("no put.* file appeared in {}", othertmp.display());
}

fn wait_for_file(p: &std::path::Path) {
    for _ in 0..2000 {
        if p.exists() {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("{} never appeared", p.display());
}

/// CONNECT under p2pstdio: git-annex refuses ("relaying to git not
/// supported"); we run git-upload-pack and tunnel it.
#[test]
fn connect_upload_pack() {
    for fx in fixtures() {
        let mut sh = fx.shell();
        sh.hello(Some(4));
        sh.send("CONNECT git-upload-pack");
        match fx.kind() {
            ServerKind::Real => {
                assert_eq!(sh.recv(), None);
                assert_real_died(&sh.finish(), "relaying to git not supported");
            }
            ServerKind::Ours => {
                // git's ref advertisement, in one or more DATA, up to its flush
                let mut advert = Vec::new();
                while !advert.ends_with(b"0000") {
                    advert.extend(read_data(&mut sh));
                }
                let text = String::from_utf8_lossy(&advert);
                assert!(
                    text.contains("refs/heads/git-annex"),
                    "ref advertisement: {text}"
                );
                // a flush packet: the client wants nothing
                sh.send("DATA 4");
                sh.send_raw(b"0000");
                sh.send("CONNECTDONE 0");
                sh.expect("CONNECTDONE 0");
                assert_eq!(
                    sh.recv(),
                    None,
                    "the session ends after CONNECT, CONNECTDONE sent once"
                );
                sh.finish().assert_exit(0);
            }
        }
    }
}

/// The body of the next `DATA n`.
fn read_data(sh: &mut Shell) -> Vec<u8> {
    let header = sh.recv().unwrap_or_default();
    match header.strip_prefix("DATA ").and_then(|n| n.parse().ok()) {
        Some(len) => sh.body(len),
        None => panic!("DATA expected, got {header:?}\n{}", sh.log().join("\n")),
    }
}

/// NOTIFYCHANGE under p2pstdio: git-annex refuses ("change notification not
/// available"); we wait and answer CHANGED with the new ref value.
#[test]
fn notifychange() {
    for fx in fixtures() {
        let mut sh: Shell = fx.shell();
        sh.hello(Some(4));
        sh.send("NOTIFYCHANGE");
        match fx.kind() {
            ServerKind::Real => {
                assert_eq!(sh.recv(), None);
                assert_real_died(&sh.finish(), "change notification not available");
            }
            ServerKind::Ours => {
                // The server takes its "before" picture when it reads
                // NOTIFYCHANGE, at a moment we cannot see; so a new ref
                // keeps moving between two commits until it answers.
                let rev = |r: &str| {
                    let out = fx.env.oracle(&fx.repo, &["rev-parse", r]).ok();
                    out.stdout.trim().to_string()
                };
                let shas = [rev("git-annex"), rev("git-annex~1")];
                let answered = std::sync::atomic::AtomicBool::new(false);
                let line = std::thread::scope(|scope| {
                    scope.spawn(|| {
                        for sha in shas.iter().cycle().take(100) {
                            if answered.load(std::sync::atomic::Ordering::SeqCst) {
                                break;
                            }
                            std::thread::sleep(Duration::from_millis(200));
                            fx.env
                                .oracle(&fx.repo, &["update-ref", "refs/heads/topic", sha])
                                .ok();
                        }
                    });
                    let line = sh.recv();
                    answered.store(true, std::sync::atomic::Ordering::SeqCst);
                    line
                });
                let ok = shas
                    .iter()
                    .any(|sha| line.as_deref() == Some(&format!("CHANGED {sha}")));
                assert!(ok, "CHANGED with the new ref value expected, got {line:?}");
                sh.send(&format!("CHECKPRESENT {HELLO_KEY}"));
                sh.expect("SUCCESS");
                sh.finish().assert_exit(0);
            }
        }
    }
}

/// EOF in the middle of a DATA body: both keep the partial upload for a
/// resume. git-annex then still writes FAILURE and exits 1 (its read of
/// VALID hits the closed stdin); we exit 0 without a reply, since nobody is
/// left to read one.
#[test]
fn eof_mid_data_keeps_the_partial_upload() {
    let fxs = fixtures();
    for fx in &fxs {
        let mut sh = fx.shell();
        sh.hello(Some(4));
        sh.send(&format!("PUT c.txt {NEW_KEY}"));
        sh.expect("PUT-FROM 0");
        sh.send(&format!("DATA {}", NEW.len()));
        sh.send_raw(&NEW[..10]);
        let out = sh.finish();
        match fx.kind() {
            ServerKind::Real => {
                assert_eq!(
                    out.normalised().last().map(String::as_str),
                    Some("<< <eof>")
                );
                assert!(
                    out.normalised().contains(&"<< FAILURE".to_string()),
                    "{}",
                    out.show()
                );
                out.assert_exit(1);
            }
            ServerKind::Ours => {
                assert!(
                    !out.normalised().iter().any(|l| l == "<< FAILURE"),
                    "{}",
                    out.show()
                );
                out.assert_exit(0);
                assert!(!out.stderr.contains("panicked"), "{}", out.show());
            }
        }
        assert_eq!(
            std::fs::read(fx.tmp_path(NEW_KEY)).ok().as_deref(),
            Some(&NEW[..10]),
            "{:?} keeps the partial upload",
            fx.kind()
        );

        // the next PUT resumes from there, the same on both
        let mut sh = fx.shell();
        sh.hello(Some(4));
        sh.send(&format!("PUT c.txt {NEW_KEY}"));
        sh.expect("PUT-FROM 10");
        sh.send(&format!("DATA {}", NEW.len() - 10));
        sh.send_raw(&NEW[10..]);
        sh.send("VALID");
        sh.expect("SUCCESS");
        let out = sh.finish();
        out.assert_exit(0);
        out.assert_quiet();
    }
    assert_same_state(&fxs, &[NEW_KEY]);
}

/// A stored key's location log line: git-annex journals it before it
/// answers, so git-annex in the repository sees it while the session goes
/// on; ours is owed until the session commits and then goes straight into
/// the branch, with no journal file per key (README's compatibility
/// table). Once the session is over both repositories say the same.
#[test]
fn the_location_line_waits_for_the_sessions_commit() {
    for fx in fixtures() {
        let commits = || fx.env.branch_commits(&fx.repo);
        let before = commits();
        let mut sh = fx.shell();
        sh.hello(Some(4));
        sh.send(&format!("PUT c.txt {NEW_KEY}"));
        sh.expect("PUT-FROM 0");
        sh.send(&format!("DATA {}", NEW.len()));
        sh.send_raw(NEW);
        sh.send("VALID");
        sh.expect("SUCCESS");
        // Answered after the PUT's bookkeeping, whatever it is.
        sh.send(&format!("CHECKPRESENT {NEW_KEY}"));
        sh.expect("SUCCESS");
        let journal_files = std::fs::read_dir(fx.repo.join("annex/journal"))
            .map(|d| d.count())
            .unwrap_or(0);
        let (present, logged) = fx.key_state(NEW_KEY);
        assert!(present, "{:?}", fx.kind());
        match fx.kind() {
            ServerKind::Real => assert!(logged && journal_files == 1),
            ServerKind::Ours => assert!(!logged && journal_files == 0),
        }
        sh.finish().assert_exit(0);
        assert_eq!(fx.key_state(NEW_KEY), (true, true), "{:?}", fx.kind());
        assert_eq!(commits(), before + 1, "{:?}: one commit", fx.kind());
    }
}
