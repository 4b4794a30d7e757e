//! Resource limits: a client must not be able to exhaust the server.
//! Each test plays a client that misbehaves on purpose (stops reading,
//! sends no newline, opens connections and says nothing) and watches the
//! server's memory in `/proc` or whether it still serves others.

use std::io::{Read, Write};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use annexproxy_tests::p2p_driver::{Fixture, HELLO_KEY};
use annexproxy_tests::ServerKind;

const MIB: u64 = 1024 * 1024;

/// Peak resident memory of process `pid`, while it runs.
fn peak_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Waits for `child` to exit, failing the test after `limit`.
fn wait_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("the server did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `transferinfo` reads the client's progress lines; a "line" of 64 MiB
/// with no newline used to be held whole (the issue measured 313 MB for
/// 300 MB sent). It must be refused once it is longer than a protocol
/// line, with a message, and the server must stay small.
#[test]
fn transferinfo_refuses_an_endless_line() {
    let fx = Fixture::new(ServerKind::Ours);
    let repo = fx.repo.to_string_lossy().into_owned();
    let mut child = fx
        .command(&["transferinfo", &repo, HELLO_KEY])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("git-annex-shell starts");
    let pid = child.id();
    let mut stdin = child.stdin.take().expect("stdin was piped");
    let chunk = vec![b'7'; MIB as usize];
    let mut sent = 0u64;
    let mut peak = 0;
    for _ in 0..64 {
        if stdin.write_all(&chunk).is_err() {
            break;
        }
        sent += MIB;
        peak = peak.max(peak_rss(pid).unwrap_or(0));
    }
    drop(stdin);
    let status = wait_exit(&mut child, Duration::from_secs(20));
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("stderr was piped")
        .read_to_string(&mut stderr)
        .expect("stderr");
    assert!(
        peak < 32 * MIB,
        "the server grew to {} MiB on a line it should have refused",
        peak / MIB
    );
    assert!(
        sent < 16 * MIB,
        "the server went on reading ({} MiB) after the line was too long",
        sent / MIB
    );
    assert!(!status.success(), "a too-long line is an error: {status}");
    assert!(
        stderr.contains("line longer than 32767 characters"),
        "says why: {stderr:?}"
    );
}
