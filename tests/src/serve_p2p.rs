//! `annexproxy serve-p2p` run by a test: started as the server user, it
//! says where it listens; dropped, it is killed.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{tools, TestEnv};

/// A running `annexproxy serve-p2p`, killed when dropped.
pub struct Listener {
    child: Child,
    /// What it printed after `listening on `.
    pub bound: String,
}

impl Listener {
    pub fn start(env: &TestEnv, server: &Path, on: &[&str]) -> Listener {
        Listener::start_command(env, server, "serve-p2p", on, &[])
    }

    /// `annexproxy SUBCOMMAND args...` in `server`, with `vars` added to
    /// its environment, once it says where it listens.
    pub fn start_command(
        env: &TestEnv,
        server: &Path,
        subcommand: &str,
        args: &[&str],
        vars: &[(&str, &str)],
    ) -> Listener {
        let mut cmd = Command::new(tools::ours_bin_dir().join("annexproxy"));
        cmd.env_clear()
            .env("HOME", &env.server_home)
            .env("PATH", &env.server_path)
            .env("USER", tools::user_name())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .envs(vars.iter().copied())
            .arg("-C")
            .arg(server)
            .arg(subcommand)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("start annexproxy {subcommand}: {e}"));
        let mut line = String::new();
        let stdout = child.stdout.take().expect("stdout was piped");
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the listening line");
        let bound = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("{subcommand} said {line:?}, not `listening on …`"))
            .to_owned();
        Listener { child, bound }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
    }

    /// Its exit status, if it exits within `within`.
    pub fn exited_within(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < within {
            if let Some(s) = self.child.try_wait().expect("wait for the server") {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub fn port(&self) -> u16 {
        let port = self.bound.rsplit(':').next().unwrap_or_default();
        port.parse()
            .unwrap_or_else(|_| panic!("no port in {:?}", self.bound))
    }

    /// Waits until no peer session is running (each runs on a thread named
    /// `p2p-peer`, and commits the journal as it ends).
    pub fn wait_idle(&self) {
        let tasks = PathBuf::from(format!("/proc/{}/task", self.child.id()));
        let start = Instant::now();
        loop {
            let busy = std::fs::read_dir(&tasks)
                .map(|d| {
                    d.filter_map(Result::ok)
                        .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
                        .any(|comm| comm.trim() == "p2p-peer")
                })
                .unwrap_or(false);
            if !busy {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "peer sessions still running after 30s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A new token `server` accepts, from `annexproxy p2p-token add`.
pub fn add_token(env: &TestEnv, server: &Path) -> String {
    let token = env
        .annexproxy(server, &["p2p-token", "add"])
        .ok()
        .stdout
        .trim()
        .to_owned();
    assert_eq!(
        token.len(),
        128,
        "a token as git-annex makes them: {token:?}"
    );
    token
}

/// A directory holding the real `git-remote-tor-annex` (the git-annex
/// binary under that name), to put first on a client command's PATH.
pub fn real_tor_helper_dir(env: &TestEnv) -> PathBuf {
    let bin = env.root().join("tor-helper-bin");
    std::fs::create_dir_all(&bin).expect("mkdir");
    std::os::unix::fs::symlink(tools::real_annex_binary(), bin.join("git-remote-tor-annex"))
        .expect("symlink");
    bin
}

/// Puts `dir` first on the PATH `cmd` will run with.
pub fn with_path_first(cmd: &mut Command, dir: &Path) {
    let path = cmd
        .get_envs()
        .find(|(k, _)| *k == "PATH")
        .and_then(|(_, v)| v.map(|v| v.to_string_lossy().into_owned()))
        .unwrap_or_default();
    cmd.env("PATH", format!("{}:{path}", dir.display()));
}

/// Writes `git-annex-p2p-unixsock` into `dir`: the program git-annex (and
/// our transport) runs for `p2p-annex::unixsock:ADDRESS`, connecting its
/// stdin/stdout to the unix socket ADDRESS and shutting the socket's write
/// side when stdin ends.
pub fn write_unixsock_program(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).expect("mkdir");
    let python = tools::venv_dir().join("bin/python3");
    let script = r#"#!PYTHON
import os, socket, sys, threading
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
def up():
    while True:
        b = os.read(0, 65536)
        if not b:
            break
        s.sendall(b)
    s.shutdown(socket.SHUT_WR)
threading.Thread(target=up, daemon=True).start()
out = sys.stdout.buffer
while True:
    b = s.recv(65536)
    if not b:
        break
    out.write(b)
    out.flush()
"#
    .replace("PYTHON", &python.to_string_lossy());
    let path = dir.join("git-annex-p2p-unixsock");
    std::fs::write(&path, script).expect("write");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}
