//! Resource limits: a client must not be able to exhaust the server.
//! Each test plays a client that misbehaves on purpose (stops reading,
//! sends no newline, opens connections and says nothing) and watches the
//! server's memory in `/proc` or whether it still serves others.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use annexproxy_tests::p2p_driver::{Fixture, CLIENT_UUID, HELLO_KEY};
use annexproxy_tests::serve_p2p::{add_token, Listener};
use annexproxy_tests::{pseudo_random_bytes, ServerKind, TestEnv};

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

/// Runs `git-annex-shell ARGS…` on a fresh repository and feeds it up to
/// 64 MiB of `byte` with no newline: it must stop reading once that is
/// longer than a protocol line, stay small, and fail saying why.
fn assert_refuses_endless_line(args: &[&str], byte: u8) {
    let fx = Fixture::new(ServerKind::Ours);
    let repo = fx.repo.to_string_lossy().into_owned();
    let mut argv = vec![args[0], repo.as_str()];
    argv.extend_from_slice(&args[1..]);
    let mut child = fx
        .command(&argv)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("git-annex-shell starts");
    let pid = child.id();
    let mut stdin = child.stdin.take().expect("stdin was piped");
    let chunk = vec![byte; MIB as usize];
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
        stderr.contains("longer than 32767 characters"),
        "says why: {stderr:?}"
    );
}

/// `transferinfo` reads the client's progress lines; a "line" of 64 MiB
/// with no newline used to be held whole (the issue measured 313 MB for
/// 300 MB sent).
#[test]
fn transferinfo_refuses_an_endless_line() {
    assert_refuses_endless_line(&["transferinfo", HELLO_KEY], b'7');
}

/// `lockcontent` and `notifychanges` read stdin only to see it close; they
/// too held a line whole.
#[test]
fn lockcontent_and_notifychanges_refuse_an_endless_line() {
    assert_refuses_endless_line(&["lockcontent", HELLO_KEY], b'7');
    assert_refuses_endless_line(&["notifychanges"], b'7');
}

/// The P2P codec bounds a line by its characters, and a stray UTF-8
/// continuation byte starts none: 64 MiB of them with no newline used to
/// be buffered whole by p2pstdio, waiting for the line to end.
#[test]
fn p2pstdio_refuses_an_endless_line_of_stray_bytes() {
    assert_refuses_endless_line(&["p2pstdio", CLIENT_UUID], 0x80);
}

/// `git` on the bare repository `repo` with `input` on stdin; its stdout.
fn git(repo: &Path, args: &[&str], input: &[u8]) -> String {
    let mut child = Command::new("git")
        .arg("--git-dir")
        .arg(repo)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("git runs");
    child
        .stdin
        .take()
        .expect("stdin was piped")
        .write_all(input)
        .expect("feeding git");
    let out = child.wait_with_output().expect("git output");
    assert!(out.status.success(), "git {args:?} failed");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A commit on `refs/heads/big` holding `files` incompressible blobs of
/// `each` bytes; its id.
fn commit_big_blobs(repo: &Path, files: u64, each: u64) -> String {
    let mut tree = String::new();
    for i in 0..files {
        let blob = pseudo_random_bytes(0xb16 + i, each as usize);
        let id = git(repo, &["hash-object", "-w", "--stdin"], &blob);
        tree.push_str(&format!("100644 blob {id}\tblob{i}\n"));
    }
    let tree = git(repo, &["mktree"], tree.as_bytes());
    let commit = git(repo, &["commit-tree", &tree, "-m", "big"], b"");
    git(repo, &["update-ref", "refs/heads/big", &commit], b"");
    commit
}

/// A p2pstdio client on raw pipes, reading only when told to.
struct RawClient {
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl RawClient {
    fn send(&mut self, bytes: &[u8]) {
        self.stdin.write_all(bytes).expect("server reads");
        self.stdin.flush().expect("flush");
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("server writes");
        line.trim_end_matches('\n').to_owned()
    }

    /// The next message: `Ok(body)` of a `DATA`, `Err(line)` for another.
    fn message(&mut self) -> Result<Vec<u8>, String> {
        let line = self.line();
        let Some(len) = line.strip_prefix("DATA ").and_then(|n| n.parse().ok()) else {
            return Err(line);
        };
        let mut body = vec![0; len];
        self.stdout.read_exact(&mut body).expect("DATA body");
        Ok(body)
    }
}

/// One pkt-line.
fn pkt(text: &str) -> String {
    format!("{:04x}{text}", text.len() + 4)
}

/// CONNECT git-upload-pack by a client that asks for a 48 MiB pack and
/// then stops reading: git's output used to be queued without bound in
/// the server (200 MB for a 200 MB pack). The server must hold only a few
/// chunks, and hand over the whole pack once the client reads again.
#[test]
fn connect_holds_back_git_output_from_a_client_that_stops_reading() {
    const FILES: u64 = 3;
    const EACH: u64 = 16 * MIB;
    let fx = Fixture::new(ServerKind::Ours);
    let want = commit_big_blobs(&fx.repo, FILES, EACH);
    let repo = fx.repo.to_string_lossy().into_owned();
    let mut child = fx
        .command(&["p2pstdio", &repo, CLIENT_UUID])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("git-annex-shell starts");
    let pid = child.id();
    let mut c = RawClient {
        stdin: child.stdin.take().expect("stdin was piped"),
        stdout: BufReader::new(child.stdout.take().expect("stdout was piped")),
    };
    assert!(c.line().starts_with("AUTH-SUCCESS "));
    c.send(b"CONNECT git-upload-pack\n");
    let mut advert = Vec::new();
    while !advert.ends_with(b"0000") {
        advert.extend(c.message().expect("ref advertisement in DATA"));
    }
    let request = format!("{}0000{}", pkt(&format!("want {want}\n")), pkt("done\n"));
    c.send(format!("DATA {}\n{request}", request.len()).as_bytes());

    // The client reads nothing while git packs 48 MiB.
    let mut peak = 0;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(8) && peak < 64 * MIB {
        peak = peak.max(peak_rss(pid).unwrap_or(0));
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        peak < 32 * MIB,
        "the server grew to {} MiB holding git's output for a client that does not read",
        peak / MIB
    );

    let mut got = Vec::new();
    let end = loop {
        match c.message() {
            Ok(body) => got.extend(body),
            Err(line) => break line,
        }
    };
    assert_eq!(end, "CONNECTDONE 0", "git-upload-pack succeeded");
    assert!(got.starts_with(b"0008NAK\nPACK"), "a pack follows the NAK");
    assert!(
        got.len() as u64 > FILES * EACH,
        "the whole pack arrived: {} bytes",
        got.len()
    );
    drop(c);
    wait_exit(&mut child, Duration::from_secs(20));
}

/// A repository served by `annexproxy serve-p2p` on a loopback port with
/// `flags`; the listener, the repository's UUID and a token it accepts.
fn listener(env: &TestEnv, flags: &[&str]) -> (Listener, String, String) {
    let server = env.server_bare("server.git");
    env.annexproxy(&server, &["init", "server"]).ok();
    let token = add_token(env, &server);
    let mut on = vec!["--listen", "127.0.0.1:0"];
    on.extend_from_slice(flags);
    let l = Listener::start(env, &server, &on);
    (l, env.server_uuid(&server), token)
}

fn connect(l: &Listener) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", l.port())).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(15)))
        .expect("timeout");
    s
}

/// Sends AUTH and returns the reply line (empty if the connection closed).
fn auth(s: &mut TcpStream, token: &str) -> String {
    s.write_all(format!("AUTH {CLIENT_UUID} {token}\n").as_bytes())
        .expect("send AUTH");
    let mut line = String::new();
    let _ = BufReader::new(s).read_line(&mut line);
    line.trim_end().to_owned()
}

/// How long until the server closes `s` (reading and dropping what it
/// says); fails the test after 15 s.
fn time_to_close(s: &mut TcpStream) -> Duration {
    let start = Instant::now();
    let mut buf = [0u8; 256];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return start.elapsed(),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return start.elapsed(),
            Err(e) => panic!("the server kept an idle connection open ({e})"),
        }
    }
}

/// 100 connections that never AUTH (anyone who can reach the socket can
/// open them) used to take every session slot of a listener with the
/// default limits, so the owner's peer was never served.
#[test]
fn idle_connections_do_not_shut_out_an_authenticated_peer() {
    let env = TestEnv::new(ServerKind::Ours);
    let (l, uuid, token) = listener(&env, &[]);
    let idle: Vec<TcpStream> = (0..100).map(|_| connect(&l)).collect();
    let mut peer = connect(&l);
    assert_eq!(auth(&mut peer, &token), format!("AUTH-SUCCESS {uuid}"));
    drop(idle);
}

/// A peer has the AUTH timeout from connecting to authenticate, however
/// busy it keeps the line; peers beyond the unauthenticated cap wait to be
/// accepted and are served once the idle ones are gone.
#[test]
fn unauthenticated_peers_are_timed_out_and_capped() {
    let env = TestEnv::new(ServerKind::Ours);
    let (l, uuid, token) = listener(&env, &["--auth-timeout", "2", "--max-unauthenticated", "2"]);
    let mut idle = connect(&l);
    let mut chatty = connect(&l);
    let start = Instant::now();
    let mut waiting = connect(&l);
    // Messages that are no AUTH do not buy more time.
    chatty
        .write_all(b"VERSION 1\nVERSION 1\nVERSION 1\n")
        .expect("send");
    assert_eq!(auth(&mut waiting, &token), format!("AUTH-SUCCESS {uuid}"));
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(1500),
        "the third peer was accepted at once ({waited:?}) beyond a cap of 2"
    );
    for s in [&mut idle, &mut chatty] {
        let open_for = time_to_close(s) + waited;
        assert!(
            open_for < Duration::from_secs(10),
            "closed only after {open_for:?}"
        );
    }
}
