//! Test helpers: scratch repositories made by the real git-annex, found
//! by [`testkit`]. Tests that need it fail when it is missing: a
//! compatibility test that silently passes without its oracle proves
//! nothing (`scripts/install-git-annex.sh` installs it).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::ObjectStore;

pub(crate) use testkit::real_git_annex_shell;

pub(crate) fn command(program: &str, cwd: &Path) -> Command {
    let mut c = testkit::command(program, cwd);
    c.env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com");
    c
}

fn run(mut c: Command) -> Output {
    testkit::run_ok(&mut c)
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
        testkit::annex_bin_dir();
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
        let shell = real_git_annex_shell();
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

/// The names in `dir`, sorted (none when it does not exist).
pub(crate) fn names_in(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}
