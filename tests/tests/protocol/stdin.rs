//! What our server reads its requests from, against our server only: a
//! pipe (as from sshd) is read by the session's own thread, with no reader
//! thread to wake per request and stdin's flags left alone; a regular
//! file or a terminal, which the reactor cannot wait for, still serves.

use std::io::Write;
use std::process::{Command, Stdio};

use annexproxy_tests::p2p_driver::{sha256e_key, Fixture, CLIENT_UUID, HELLO_KEY};
use annexproxy_tests::{pseudo_random_bytes, ServerKind};

use super::put::send_put;

/// The names of the threads of process `pid`.
fn threads(pid: u32) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("the server's threads")
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
        .map(|n| n.trim().to_string())
        .collect();
    names.sort();
    names
}

/// The open flags of descriptor `fd` of process `pid` (octal in fdinfo).
fn open_flags(pid: u32, fd: u32) -> u32 {
    let info = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")).expect("fdinfo");
    let flags = info
        .lines()
        .find_map(|l| l.strip_prefix("flags:"))
        .expect("a flags line");
    u32::from_str_radix(flags.trim(), 8).expect("octal flags")
}

const O_NONBLOCK: u32 = 0o4000;

/// Requests on a pipe are read by the session's thread: between requests
/// the server has no stdin reader thread and no runtime workers (one
/// thread waits for the client; another would have to be woken for each
/// request), stdin is still blocking, and PUT and GET of a body larger
/// than one pipe's worth go through as before.
#[test]
fn a_pipe_is_read_by_the_sessions_own_thread() {
    let fx = Fixture::new(ServerKind::Ours);
    let mut sh = fx.shell();
    sh.hello(Some(4));
    sh.send(&format!("CHECKPRESENT {HELLO_KEY}"));
    sh.expect("SUCCESS");
    let pid = sh.pid();
    let names = threads(pid);
    assert!(
        !names.iter().any(|n| n == "threadio-read"),
        "a thread reads stdin: {names:?}"
    );
    assert!(
        !names.iter().any(|n| n.starts_with("tokio-r")),
        "runtime worker threads: {names:?}"
    );
    assert_eq!(
        open_flags(pid, 0) & O_NONBLOCK,
        0,
        "stdin made non-blocking"
    );
    // Several pipes' worth, read across many waits for the client.
    let big = pseudo_random_bytes(16, 700_000);
    let key = sha256e_key(&big, ".bin");
    send_put(&mut sh, "big.bin", &key, 0, &big, Some("VALID"));
    sh.expect("SUCCESS");
    sh.send(&format!("GET 0 big.bin {key}"));
    sh.expect(&format!("DATA {}", big.len()));
    assert!(sh.body(big.len()) == big, "GET gave back what PUT stored");
    sh.expect("VALID");
    sh.send("SUCCESS");
    assert_eq!(
        open_flags(pid, 0) & O_NONBLOCK,
        0,
        "stdin made non-blocking"
    );
    let out = sh.finish();
    out.assert_exit(0);
    out.assert_quiet();
    assert_eq!(fx.key_state(&key), (true, true));
}

/// The answers to `requests` from a server whose stdin is a regular file
/// holding them: the reactor cannot wait for a file, a thread reads it.
#[test]
fn a_regular_file_on_stdin_is_served() {
    let fx = Fixture::new(ServerKind::Ours);
    let dir = tempfile::tempdir().expect("tempdir");
    let script = dir.path().join("requests");
    std::fs::write(&script, format!("VERSION 1\nCHECKPRESENT {HELLO_KEY}\n")).expect("script");
    let repo = fx.repo.to_string_lossy().into_owned();
    let out = fx
        .command(&["p2pstdio", &repo, CLIENT_UUID])
        .stdin(std::fs::File::open(&script).expect("open"))
        .output()
        .expect("git-annex-shell runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        out.status.success() && lines.len() == 3 && lines[0].starts_with("AUTH-SUCCESS "),
        "{out:?}"
    );
    assert_eq!(lines[1..], ["VERSION 1", "SUCCESS"], "{out:?}");
}

/// A terminal on stdin (someone trying the server by hand): it is read by
/// a thread, its flags untouched, and the session ends at end of input.
#[test]
fn a_terminal_on_stdin_is_served() {
    let fx = Fixture::new(ServerKind::Ours);
    let repo = fx.repo.to_string_lossy().into_owned();
    let server = fx.command(&["p2pstdio", &repo, CLIENT_UUID]);
    let program = server.get_program().to_string_lossy().into_owned();
    // python opens the terminal pair (no terminal library in this crate),
    // runs the server on its far end, types two requests and then ^D.
    let drive = r#"
import os, pty, subprocess, sys, fcntl, termios
m, s = pty.openpty()
attrs = termios.tcgetattr(s)
flags = fcntl.fcntl(s, fcntl.F_GETFL)
p = subprocess.Popen(sys.argv[1:], stdin=s, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
first = p.stdout.readline()
os.write(m, b"VERSION 1\nCHECKPRESENT " + os.environ["KEY"].encode() + b"\n")
answers = [p.stdout.readline(), p.stdout.readline()]
os.write(m, b"\x04")
rest, err = p.communicate(timeout=30)
sys.stdout.write(first.decode() + "".join(a.decode() for a in answers) + rest.decode())
sys.stdout.write("exit %d\n" % p.returncode)
sys.stdout.write("same flags %s\n" % (fcntl.fcntl(s, fcntl.F_GETFL) == flags and termios.tcgetattr(s) == attrs))
sys.stderr.write(err.decode())
"#;
    let mut cmd = Command::new("python3");
    cmd.arg("-c")
        .arg(drive)
        .arg(&program)
        .args(server.get_args());
    cmd.env_clear();
    for (k, v) in server.get_envs() {
        if let Some(v) = v {
            cmd.env(k, v);
        }
    }
    if let Some(d) = server.get_current_dir() {
        cmd.current_dir(d);
    }
    let out = cmd
        .env("KEY", HELLO_KEY)
        .stdin(Stdio::null())
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines.len() == 5 && lines[0].starts_with("AUTH-SUCCESS "),
        "{out:?}"
    );
    assert_eq!(
        lines[1..],
        ["VERSION 1", "SUCCESS", "exit 0", "same flags True"],
        "{out:?}"
    );
    let _ = std::io::stderr().write_all(&out.stderr);
}
