//! A raw driver for `git-annex-shell p2pstdio DIR CLIENTUUID`: no ssh, no
//! client, just scripted bytes in and the server's bytes out, recorded as a
//! transcript that can be compared between the real server and ours.
//!
//! - [`Fixture`]: one server repository for one [`ServerKind`], copied from a
//!   template that the real git-annex prepared once per test process, so the
//!   real server and ours start from byte-identical repositories (same UUID,
//!   same objects, same branch).
//! - [`Shell`]: the running server; every line sent and received goes into
//!   its transcript.
//! - [`Outcome`]: transcript, exit code and stderr of a finished session,
//!   with [`assert_same`] for the Real-vs-Ours check.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::OnceLock;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::env::{ServerKind, TestEnv};
use crate::tools;

/// The client UUID every session announces.
pub const CLIENT_UUID: &str = "c1e47000-0000-4000-8000-00000000c0de";

/// Content present in the template repository, with its key.
pub const HELLO: &[u8] = b"hello\n";
pub const HELLO_KEY: &str =
    "SHA256E-s6--5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03.txt";

/// Content absent from the template, for PUT.
pub const NEW: &[u8] = b"client file with spaces\n";
pub const NEW_KEY: &str =
    "SHA256E-s24--d11e3e14f341d3ddcd3c3aa84b948366cf74c67c1170196aced47f163cb6998b.txt";

/// A well-formed key nobody has.
pub const ABSENT_KEY: &str =
    "SHA256E-s5--0000000000000000000000000000000000000000000000000000000000000000";

/// Size of the big object in the template: more than one 64 KiB chunk, so
/// offsets land inside later chunks.
pub const BIG_LEN: usize = 200_000;

/// How long one read may wait for the server before the test fails.
const READ_TIMEOUT: Duration = Duration::from_secs(20);

/// Seed of the big object's bytes.
const BIG_SEED: u64 = 0x5eed;

/// The big object's bytes.
pub fn big_content() -> Vec<u8> {
    crate::pseudo_random_bytes(BIG_SEED, BIG_LEN)
}

/// The big object's key (SHA256E with extension `.bin`).
pub fn big_key() -> &'static str {
    &template().big_key
}

struct Template {
    /// The prepared bare repository.
    repo: PathBuf,
    big_key: String,
    uuid: String,
}

/// Statics are never dropped, so the template (named after the test
/// process's pid) stays in the temp dir until a later run sweeps it.
const TEMPLATE_PREFIX: &str = "annexproxy-p2p-template-";

fn template() -> &'static Template {
    static T: OnceLock<Template> = OnceLock::new();
    T.get_or_init(make_template)
}

fn sha256_hex(bytes: &[u8]) -> String {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("sha256sum (coreutils) runs");
    child
        .stdin
        .take()
        .expect("stdin was piped")
        .write_all(bytes)
        .expect("feeding sha256sum");
    let out = child.wait_with_output().expect("sha256sum output");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .expect("sha256sum prints a hash")
        .to_string()
}

/// The SHA256E key git-annex gives `content` in a file ending in `ext`
/// (with its dot, or empty).
pub fn sha256e_key(content: &[u8], ext: &str) -> String {
    format!("SHA256E-s{}--{}{ext}", content.len(), sha256_hex(content))
}

fn make_template() -> Template {
    let base = std::env::temp_dir();
    // Sweep the templates of test processes that are gone.
    if let Ok(entries) = std::fs::read_dir(&base) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(rest) = name.strip_prefix(TEMPLATE_PREFIX) else {
                continue;
            };
            let pid = rest.split('-').next().unwrap_or_default();
            if !Path::new("/proc").join(pid).exists() {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    let dir = tempfile::Builder::new()
        .prefix(&format!("{TEMPLATE_PREFIX}{}-", std::process::id()))
        .tempdir_in(&base)
        .expect("template dir")
        .keep();
    let env = TestEnv::new(ServerKind::Real);
    let repo = env.server_bare("repo.git");
    env.server_annex_init(&repo, "p2p template");
    let big = big_content();
    let big_key = sha256e_key(&big, ".bin");
    assert_eq!(sha256e_key(HELLO, ".txt"), HELLO_KEY);
    assert_eq!(sha256e_key(NEW, ".txt"), NEW_KEY);
    for (content, key) in [(HELLO.to_vec(), HELLO_KEY), (big, big_key.as_str())] {
        let f = env.root().join("content");
        std::fs::write(&f, content).expect("writing template content");
        env.oracle_annex(&repo, &["setkey", key, &f.to_string_lossy()])
            .ok();
    }
    let uuid = env.server_uuid(&repo);
    assert!(!uuid.is_empty(), "template repository has a UUID");
    let dest = dir.join("repo.git");
    copy_tree(&repo, &dest);
    Template {
        repo: dest,
        big_key,
        uuid,
    }
}

fn copy_tree(from: &Path, to: &Path) {
    let out = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .output()
        .expect("cp runs");
    assert!(
        out.status.success(),
        "cp -a {} {}: {}",
        from.display(),
        to.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One server repository (a copy of the template) in its own [`TestEnv`].
pub struct Fixture {
    pub env: TestEnv,
    pub repo: PathBuf,
}

impl Fixture {
    pub fn new(kind: ServerKind) -> Fixture {
        let t = template();
        let env = TestEnv::new(kind);
        let repo = env.srv.join("repo.git");
        copy_tree(&t.repo, &repo);
        Fixture { env, repo }
    }

    pub fn kind(&self) -> ServerKind {
        self.env.kind
    }

    /// The repository's UUID (the same for every fixture).
    pub fn uuid(&self) -> &'static str {
        &template().uuid
    }

    /// `annex/tmp/<key>`, where a partial upload waits for its resume.
    pub fn tmp_path(&self, key: &str) -> PathBuf {
        self.repo.join("annex/tmp").join(key)
    }

    /// Starts `git-annex-shell p2pstdio <repo> CLIENT_UUID`.
    pub fn shell(&self) -> Shell {
        self.shell_with(&self.repo.to_string_lossy(), CLIENT_UUID, &[])
    }

    /// Like [`Fixture::shell`] with extra server environment variables.
    pub fn shell_env(&self, vars: &[(&str, &str)]) -> Shell {
        self.shell_with(&self.repo.to_string_lossy(), CLIENT_UUID, vars)
    }

    /// Starts `git-annex-shell p2pstdio <dir> <client_uuid>` with the clean
    /// environment the ssh stand-in gives the server, in the server's home.
    pub fn shell_with(&self, dir: &str, client_uuid: &str, vars: &[(&str, &str)]) -> Shell {
        let mut cmd = self.command(&["p2pstdio", dir, client_uuid]);
        for (k, v) in vars {
            cmd.env(k, v);
        }
        Shell::spawn(cmd, self.env.kind)
    }

    /// `git-annex-shell ARGS…` with the clean environment the ssh stand-in
    /// gives the server, in the server's home; not started.
    pub fn command(&self, args: &[&str]) -> Command {
        let bin = self
            .env
            .server_path
            .split(':')
            .next()
            .map(|d| Path::new(d).join("git-annex-shell"))
            .expect("server PATH starts with the server bin dir");
        let user = tools::user_name();
        let mut cmd = Command::new(bin);
        cmd.env_clear()
            .env("HOME", &self.env.server_home)
            .env("PATH", &self.env.server_path)
            .env("USER", &user)
            .env("LOGNAME", &user)
            .env("SHELL", "/bin/sh")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("SSH_CLIENT", "127.0.0.1 40000 22")
            .env("SSH_CONNECTION", "127.0.0.1 40000 127.0.0.1 22");
        cmd.args(args).current_dir(&self.env.server_home);
        cmd
    }

    /// Real `git annex fsck` in the repository finds nothing wrong. The
    /// one complaint allowed is "No known copies" of a key whose content
    /// really is gone: a session that removed the only copy is right to
    /// leave that behind.
    #[track_caller]
    pub fn assert_fsck_clean(&self) {
        let out = self.env.oracle_annex(&self.repo, &["fsck", "--quiet"]);
        if out.success() && !out.stderr.contains("**") {
            return;
        }
        for line in out.stderr.lines().map(str::trim) {
            let fine = match line.strip_prefix("** No known copies exist of ") {
                Some(key) => !self.env.server_has_content(&self.repo, key),
                None => {
                    line.is_empty() || (line.starts_with("fsck: ") && line.ends_with(" failed"))
                }
            };
            assert!(
                fine,
                "real git-annex fsck in the {:?} server's repo is not clean ({line:?}):\n{out}",
                self.kind()
            );
        }
    }

    /// (content present, location log says present) for `key`, by the real
    /// git-annex.
    pub fn key_state(&self, key: &str) -> (bool, bool) {
        (
            self.env.server_has_content(&self.repo, key),
            self.env.server_log_says_present(&self.repo, key),
        )
    }
}

/// A running `git-annex-shell p2pstdio`.
pub struct Shell {
    kind: ServerKind,
    child: Child,
    stdin: Option<ChildStdin>,
    out: Receiver<Vec<u8>>,
    buf: Vec<u8>,
    eof: bool,
    stderr: Option<JoinHandle<Vec<u8>>>,
    log: Vec<String>,
}

/// How a byte string shows in a transcript.
pub fn show(bytes: &[u8]) -> String {
    bytes.escape_ascii().to_string()
}

/// FNV-1a, to name a body in a transcript without printing it.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

impl Shell {
    /// Starts any prepared `git-annex-shell` command (a proxied remote's
    /// `--uuid`, a repository outside a [`Fixture`]).
    pub fn start(cmd: Command, kind: ServerKind) -> Shell {
        Shell::spawn(cmd, kind)
    }

    fn spawn(mut cmd: Command, kind: ServerKind) -> Shell {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("git-annex-shell starts");
        let mut stdout = child.stdout.take().expect("stdout was piped");
        let mut stderr = child.stderr.take().expect("stderr was piped");
        let (tx, rx) = mpsc::channel();
        // Drained by threads, so a server with a lot to say never blocks
        // while the test is still writing.
        std::thread::spawn(move || {
            let mut chunk = vec![0u8; 64 * 1024];
            loop {
                match stdout.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if tx.send(chunk[..n].to_vec()).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        let stderr = std::thread::spawn(move || {
            let mut all = Vec::new();
            let _ = stderr.read_to_end(&mut all);
            all
        });
        Shell {
            kind,
            stdin: child.stdin.take(),
            child,
            out: rx,
            buf: Vec::new(),
            eof: false,
            stderr: Some(stderr),
            log: Vec::new(),
        }
    }

    /// The server process's id (to watch its memory, say).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn kind(&self) -> ServerKind {
        self.kind
    }

    /// The transcript so far.
    pub fn log(&self) -> &[String] {
        &self.log
    }

    /// Adds a note of the test's own to the transcript.
    pub fn note(&mut self, text: &str) {
        self.log.push(format!("## {text}"));
    }

    fn write(&mut self, bytes: &[u8]) {
        // A server that already hung up makes this fail; what it said before
        // (and its exit) is what the transcript compares.
        if let Some(w) = self.stdin.as_mut() {
            if w.write_all(bytes).and_then(|()| w.flush()).is_err() {
                self.stdin = None;
            }
        }
    }

    /// Sends `line` and a newline.
    pub fn send(&mut self, line: &str) {
        self.log.push(format!(">> {line}"));
        let mut bytes = line.as_bytes().to_vec();
        bytes.push(b'\n');
        self.write(&bytes);
    }

    /// Sends `line` and a newline, recorded as `shown` (for lines that
    /// carry a value that differs from run to run, like a timestamp).
    pub fn send_as(&mut self, line: &str, shown: &str) {
        self.log.push(format!(">> {shown}"));
        let mut bytes = line.as_bytes().to_vec();
        bytes.push(b'\n');
        self.write(&bytes);
    }

    /// Sends raw bytes (a DATA body, a line with odd bytes...).
    pub fn send_raw(&mut self, bytes: &[u8]) {
        if bytes.len() <= 80 {
            self.log.push(format!(">> raw \"{}\"", show(bytes)));
        } else {
            self.log
                .push(format!(">> raw {} bytes #{:016x}", bytes.len(), fnv(bytes)));
        }
        self.write(bytes);
    }

    /// Sends raw bytes without recording them (bulk traffic).
    pub fn send_quiet(&mut self, bytes: &[u8]) {
        self.write(bytes);
    }

    /// Closes our end of stdin: the server sees EOF.
    pub fn close(&mut self) {
        if self.stdin.take().is_some() {
            self.log.push(">> <eof>".into());
        }
    }

    /// Waits for more output; false at EOF.
    fn fill(&mut self, deadline: Instant) -> bool {
        if self.eof {
            return false;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match self.out.recv_timeout(left) {
            Ok(chunk) => {
                self.buf.extend_from_slice(&chunk);
                true
            }
            Err(RecvTimeoutError::Disconnected) => {
                self.eof = true;
                false
            }
            Err(RecvTimeoutError::Timeout) => self.fail("timed out waiting for the server"),
        }
    }

    /// The next line (without its newline); `None` when the server closed
    /// stdout first (recorded as `<eof>`, with any partial line).
    pub fn recv(&mut self) -> Option<String> {
        self.recv_quiet(true)
    }

    fn recv_quiet(&mut self, record: bool) -> Option<String> {
        let deadline = Instant::now() + READ_TIMEOUT;
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).take(i).collect();
                let line = String::from_utf8_lossy(&line).into_owned();
                if record {
                    self.log.push(format!("<< {line}"));
                }
                return Some(line);
            }
            if !self.fill(deadline) {
                let rest = std::mem::take(&mut self.buf);
                if rest.is_empty() {
                    self.log.push("<< <eof>".into());
                } else {
                    self.log.push(format!("<< <eof after \"{}\">", show(&rest)));
                }
                return None;
            }
        }
    }

    /// Reads the next line and fails the test unless it is `want`.
    #[track_caller]
    pub fn expect(&mut self, want: &str) {
        let got = self.recv();
        if got.as_deref() != Some(want) {
            self.fail(&format!("expected {want:?}, got {got:?}"));
        }
    }

    /// The next `n` lines, unrecorded (bulk traffic); stops at EOF.
    pub fn recv_many(&mut self, n: usize) -> Vec<String> {
        let mut lines = Vec::with_capacity(n);
        for _ in 0..n {
            match self.recv_quiet(false) {
                Some(l) => lines.push(l),
                None => break,
            }
        }
        lines
    }

    /// A DATA body of `n` bytes; fewer if the server closed stdout first.
    pub fn body(&mut self, n: usize) -> Vec<u8> {
        let deadline = Instant::now() + READ_TIMEOUT;
        while self.buf.len() < n && self.fill(deadline) {}
        let take = n.min(self.buf.len());
        let body: Vec<u8> = self.buf.drain(..take).collect();
        if body.len() <= 80 {
            self.log.push(format!("<< raw \"{}\"", show(&body)));
        } else {
            self.log
                .push(format!("<< raw {} bytes #{:016x}", body.len(), fnv(&body)));
        }
        body
    }

    /// `<< AUTH-SUCCESS <uuid>` then, unless `version` is None, the
    /// `VERSION` exchange.
    #[track_caller]
    pub fn hello(&mut self, version: Option<u32>) {
        let first = self.recv().unwrap_or_default();
        if !first.starts_with("AUTH-SUCCESS ") {
            self.fail(&format!("expected AUTH-SUCCESS, got {first:?}"));
        }
        if let Some(v) = version {
            self.send(&format!("VERSION {v}"));
            self.expect(&format!("VERSION {}", v.min(4)));
        }
    }

    #[track_caller]
    fn fail(&mut self, why: &str) -> ! {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let stderr = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        panic!(
            "{:?} server: {why}\n--- transcript ---\n{}\n--- stderr ---\n{}",
            self.kind,
            self.log.join("\n"),
            String::from_utf8_lossy(&stderr)
        );
    }

    /// Closes stdin, records whatever the server still says, and waits for
    /// it to exit.
    pub fn finish(mut self) -> Outcome {
        self.close();
        while self.recv().is_some() {}
        let deadline = Instant::now() + READ_TIMEOUT;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(s)) => break s,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                _ => self.fail("server did not exit after EOF"),
            }
        };
        let stderr = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        Outcome {
            kind: self.kind,
            transcript: std::mem::take(&mut self.log),
            code: status.code(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }
    }
}

impl Drop for Shell {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// What one finished session showed.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub kind: ServerKind,
    pub transcript: Vec<String>,
    /// Exit code; `None` when killed by a signal.
    pub code: Option<i32>,
    pub stderr: String,
}

impl Outcome {
    /// The transcript with the server UUID and timestamps made stable.
    pub fn normalised(&self) -> Vec<String> {
        let uuid = &template().uuid;
        self.transcript
            .iter()
            .map(|l| {
                let l = l.replace(uuid.as_str(), "<server-uuid>");
                match l.strip_prefix("<< TIMESTAMP ") {
                    Some(n) if n.chars().all(|c| c.is_ascii_digit()) => "<< TIMESTAMP <t>".into(),
                    _ => l,
                }
            })
            .collect()
    }

    pub fn show(&self) -> String {
        format!(
            "--- {:?}: exit {:?} ---\n{}\n--- stderr ---\n{}",
            self.kind,
            self.code,
            self.transcript.join("\n"),
            self.stderr
        )
    }

    /// Panics (showing the session) unless the server exited with `code`.
    #[track_caller]
    pub fn assert_exit(&self, code: i32) {
        assert_eq!(self.code, Some(code), "exit code\n{}", self.show());
    }

    /// Panics unless stderr is empty.
    #[track_caller]
    pub fn assert_quiet(&self) {
        assert!(self.stderr.is_empty(), "stderr not empty\n{}", self.show());
    }

    /// Panics unless the normalised transcript is `want`.
    #[track_caller]
    pub fn assert_transcript(&self, want: &[&str]) {
        assert_eq!(self.normalised(), want, "transcript\n{}", self.show());
    }
}

/// The Real-vs-Ours check: the same normalised transcript, exit code, and
/// stderr empty on both or on neither.
#[track_caller]
pub fn assert_same(real: &Outcome, ours: &Outcome) {
    let same = real.normalised() == ours.normalised()
        && real.code == ours.code
        && real.stderr.is_empty() == ours.stderr.is_empty();
    if !same {
        let (a, b) = (real.normalised(), ours.normalised());
        let first = a
            .iter()
            .zip(b.iter())
            .position(|(x, y)| x != y)
            .unwrap_or(a.len().min(b.len()));
        panic!(
            "the real server and ours differ (first transcript difference at line {first})\n{}\n{}",
            real.show(),
            ours.show()
        );
    }
}
