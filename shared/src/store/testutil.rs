//! Test helpers: scratch repositories made by the real git-annex.
//!
//! The binary is looked for in `$ANNEX_TEST_GIT_ANNEX_DIR`, then the
//! workspace's `.venv/bin` (where `scripts/install-git-annex.sh` puts it),
//! then `PATH`. Tests that need it fail when it is missing: a compatibility
//! test that silently passes without its oracle proves nothing
//! (`scripts/install-git-annex.sh` installs it).

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::ObjectStore;

pub(crate) fn git_annex_dir() -> Option<PathBuf> {
    let has = |d: &Path| d.join("git-annex").is_file() && d.join("git-annex-shell").exists();
    if let Some(d) = env::var_os("ANNEX_TEST_GIT_ANNEX_DIR").map(PathBuf::from) {
        return has(&d).then_some(d);
    }
    let ws = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin");
    if has(&ws) {
        return Some(ws);
    }
    env::split_paths(&env::var_os("PATH")?).find(|d| has(d))
}

pub(crate) fn real_git_annex_shell() -> Option<PathBuf> {
    git_annex_dir().map(|d| d.join("git-annex-shell"))
}

/// `PATH` with the real git-annex first, for it and the git it runs.
pub(crate) fn path_env() -> std::ffi::OsString {
    let mut dirs: Vec<PathBuf> = git_annex_dir().into_iter().collect();
    if let Some(p) = env::var_os("PATH") {
        dirs.extend(env::split_paths(&p));
    }
    env::join_paths(dirs).expect("PATH entries join")
}

pub(crate) fn command(program: &str, cwd: &Path) -> Command {
    let mut c = Command::new(program);
    c.current_dir(cwd)
        .env("PATH", path_env())
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com");
    c
}

fn run(mut c: Command) -> Output {
    let out = c.output().expect("spawn");
    assert!(
        out.status.success(),
        "{c:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A repository created with `git init` + `git annex init`.
pub(crate) struct RealRepo {
    _dir: tempfile::TempDir,
    path: PathBuf,
    bare: bool,
}

impl RealRepo {
    pub(crate) fn init() -> RealRepo {
        RealRepo::make(false)
    }

    pub(crate) fn init_bare() -> RealRepo {
        RealRepo::make(true)
    }

    fn make(bare: bool) -> RealRepo {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("repo");
        std::fs::create_dir(&path).expect("mkdir");
        let mut c = command("git", &path);
        c.args(["init", "-q"]);
        if bare {
            c.arg("--bare");
        }
        run(c);
        let mut c = command("git", &path);
        c.args(["annex", "init", "scratch"]);
        run(c);
        RealRepo {
            _dir: dir,
            path,
            bare,
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn path_str(&self) -> &str {
        self.path.to_str().expect("tempdir paths are UTF-8")
    }

    pub(crate) fn gitdir(&self) -> PathBuf {
        if self.bare {
            self.path.clone()
        } else {
            self.path.join(".git")
        }
    }

    pub(crate) fn store(&self) -> ObjectStore {
        ObjectStore::new(self.gitdir(), self.bare, 0)
    }

    /// Runs `git annex ARGS`, returning its output whether or not it worked.
    pub(crate) fn annex(&self, args: &[&str]) -> Output {
        let mut c = command("git", &self.path);
        c.arg("annex").args(args);
        c.output().expect("spawn git annex")
    }

    pub(crate) fn uuid(&self) -> String {
        let mut c = command("git", &self.path);
        c.args(["config", "annex.uuid"]);
        String::from_utf8_lossy(&run(c).stdout).trim().to_owned()
    }
}

/// Fails the calling test when the real git-annex is not installed.
macro_rules! require_git_annex {
    () => {
        assert!(
            $crate::store::testutil::git_annex_dir().is_some(),
            "real git-annex not found: run scripts/install-git-annex.sh"
        );
    };
}
pub(crate) use require_git_annex;

/// A real `git-annex-shell p2pstdio` session, protocol version 4.
pub(crate) struct P2pSession {
    child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    stdout: std::io::BufReader<std::process::ChildStdout>,
}

pub(crate) const CLIENT_UUID: &str = "11111111-2222-3333-4444-555555555555";

impl P2pSession {
    pub(crate) fn start(repo: &RealRepo) -> P2pSession {
        use std::process::Stdio;
        let shell = real_git_annex_shell().expect("checked by require_git_annex");
        let mut child = command(shell.to_str().expect("utf-8 path"), repo.path())
            .args(["p2pstdio", repo.path_str(), CLIENT_UUID])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn git-annex-shell");
        let stdin = child.stdin.take();
        let stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
        let mut s = P2pSession {
            child,
            stdin,
            stdout,
        };
        assert!(s.read_line().starts_with("AUTH-SUCCESS "));
        s.send(b"VERSION 4\n");
        assert_eq!(s.read_line(), "VERSION 4");
        s
    }

    pub(crate) fn send(&mut self, bytes: &[u8]) {
        use std::io::Write;
        let stdin = self.stdin.as_mut().expect("open");
        stdin.write_all(bytes).expect("write to git-annex-shell");
        stdin.flush().expect("flush");
    }

    /// One reply line without its newline; empty at end of stream.
    pub(crate) fn read_line(&mut self) -> String {
        use std::io::BufRead;
        let mut line = String::new();
        let _ = self.stdout.read_line(&mut line);
        line.trim_end_matches('\n').to_owned()
    }

    /// Closes stdin and waits for the server to exit.
    pub(crate) fn close(mut self) {
        self.stdin.take();
        let _ = self.child.wait();
    }

    /// Ends the server abruptly, as a dropped ssh connection would.
    pub(crate) fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for P2pSession {
    fn drop(&mut self) {
        self.stdin.take();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
