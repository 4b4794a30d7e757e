//! Running a command and reporting it well when it does not do what a
//! scenario expected.

use std::fmt;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// What one finished command did.
#[derive(Debug, Clone)]
pub struct Out {
    /// The command line, for messages.
    pub cmdline: String,
    pub dir: PathBuf,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    /// Killed after [`COMMAND_TIMEOUT`].
    pub timed_out: bool,
}

impl Out {
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// Exit code, or -1 when killed by a signal.
    pub fn code(&self) -> i32 {
        self.status.code().unwrap_or(-1)
    }

    /// Panics unless the command succeeded.
    #[track_caller]
    pub fn ok(self) -> Out {
        if !self.success() {
            panic!("command failed but should have succeeded:\n{self}");
        }
        self
    }

    /// Panics unless the command failed.
    #[track_caller]
    pub fn fails(self) -> Out {
        if self.success() {
            panic!("command succeeded but should have failed:\n{self}");
        }
        self
    }

    /// stdout and stderr together, for message checks that should not care
    /// which stream git-annex picked.
    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }

    /// Panics unless stdout or stderr contains `needle`.
    #[track_caller]
    pub fn says(self, needle: &str) -> Out {
        if !self.all().contains(needle) {
            panic!("expected output to contain {needle:?}:\n{self}");
        }
        self
    }

    /// Panics if stdout or stderr contains `needle`.
    #[track_caller]
    pub fn never_says(self, needle: &str) -> Out {
        if self.all().contains(needle) {
            panic!("expected output not to contain {needle:?}:\n{self}");
        }
        self
    }
}

impl fmt::Display for Out {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "$ (cd {} && {})", self.dir.display(), self.cmdline)?;
        if self.timed_out {
            writeln!(
                f,
                "status: {} (killed: still running after {COMMAND_TIMEOUT:?})",
                self.status
            )?;
        } else {
            writeln!(f, "status: {}", self.status)?;
        }
        writeln!(f, "--- stdout ---\n{}", self.stdout.trim_end())?;
        write!(f, "--- stderr ---\n{}", self.stderr.trim_end())
    }
}

/// Human-readable command line of `cmd`.
pub fn describe(cmd: &Command) -> String {
    let mut parts = vec![cmd.get_program().to_string_lossy().into_owned()];
    parts.extend(cmd.get_args().map(|a| {
        let a = a.to_string_lossy();
        if a.is_empty() || a.contains(|c: char| c.is_whitespace() || "'\"$\\".contains(c)) {
            crate::standin::sh_quote(&a)
        } else {
            a.into_owned()
        }
    }));
    parts.join(" ")
}

/// How long one command may run before it is taken to hang. Generous:
/// the slowest step (a 200 MB copy) takes seconds.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(180);

/// Runs `cmd` to completion, capturing both streams, with no stdin. Panics
/// only when the program cannot be started at all. A command still running
/// after [`COMMAND_TIMEOUT`] is killed together with everything it started
/// (it runs in its own process group, which includes the server sessions
/// it opened through the ssh stand-in), and comes back with `timed_out`.
#[track_caller]
pub fn run(cmd: Command, dir: &Path) -> Out {
    run_with_timeout(cmd, dir, COMMAND_TIMEOUT)
}

/// [`run`] with another time limit.
#[track_caller]
pub fn run_with_timeout(cmd: Command, dir: &Path, timeout: Duration) -> Out {
    start(cmd, dir).finish(timeout)
}

/// A command started in its own process group and still running: a
/// scenario can act while it works (watch a file grow, kill it), then
/// collect what it did.
pub struct Running {
    cmdline: String,
    dir: PathBuf,
    child: std::process::Child,
    stdout: std::thread::JoinHandle<Vec<u8>>,
    stderr: std::thread::JoinHandle<Vec<u8>>,
    started: Instant,
}

/// Starts `cmd` as [`run`] does, without waiting for it. Panics only when
/// the program cannot be started at all.
#[track_caller]
pub fn start(mut cmd: Command, dir: &Path) -> Running {
    let cmdline = describe(&cmd);
    cmd.current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => panic!("could not start `{cmdline}` in {}: {e}", dir.display()),
    };
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    Running {
        cmdline,
        dir: dir.to_path_buf(),
        child,
        stdout,
        stderr,
        started: Instant::now(),
    }
}

impl Running {
    /// SIGKILLs the command and everything it started (its process group,
    /// which includes the server sessions it opened through the stand-in).
    pub fn kill_group(&self) {
        kill_group(self.child.id());
    }

    /// Whether the command itself has exited.
    pub fn has_exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Waits for the command, killing its process group once `timeout`
    /// (counted from its start) has passed.
    #[track_caller]
    pub fn finish(self, timeout: Duration) -> Out {
        let Running {
            cmdline,
            dir,
            mut child,
            stdout,
            stderr,
            started: start,
        } = self;
        let mut timed_out = false;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if start.elapsed() > timeout && !timed_out => {
                    timed_out = true;
                    kill_group(child.id());
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(2)),
                Err(e) => panic!("waiting for `{cmdline}`: {e}"),
            }
        };
        // Server sessions inherit the client's stderr, so the streams end only
        // when they do; one that hangs is killed like a hanging client.
        while !(stdout.is_finished() && stderr.is_finished()) {
            if start.elapsed() > timeout && !timed_out {
                timed_out = true;
                kill_group(child.id());
            }
            if start.elapsed() > timeout + Duration::from_secs(10) {
                panic!("`{cmdline}`: output still open 10s after killing its process group");
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let join = |h: std::thread::JoinHandle<Vec<u8>>| {
            String::from_utf8_lossy(&h.join().unwrap_or_default()).into_owned()
        };
        Out {
            cmdline,
            dir,
            status,
            stdout: join(stdout),
            stderr: join(stderr),
            timed_out,
        }
    }
}

fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut p) = pipe {
            // a read error just ends the capture; the status tells the story
            let _ = p.read_to_end(&mut buf);
        }
        buf
    })
}

/// SIGKILLs one process (of a scenario's server side, found by the test).
pub fn kill(pid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status();
}

/// SIGKILLs the process group `pgid` (one this harness created).
fn kill_group(pgid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pgid}")])
        .status();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_both_streams_and_status() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo out; echo err >&2; exit 3"]);
        let out = run(cmd, Path::new("/"));
        assert_eq!(out.code(), 3);
        assert_eq!(out.stdout, "out\n");
        assert_eq!(out.stderr, "err\n");
        assert!(!out.timed_out);
        assert!(out
            .to_string()
            .contains("$ (cd / && sh -c 'echo out; echo err >&2; exit 3')"));
    }

    #[test]
    fn a_hanging_command_and_its_children_are_killed() {
        let mut cmd = Command::new("sh");
        // the background child keeps stdout open after sh itself is gone
        cmd.args(["-c", "sleep 30 & echo started"]);
        let start = Instant::now();
        let out = run_with_timeout(cmd, Path::new("/"), Duration::from_millis(300));
        assert!(out.timed_out, "{out}");
        assert_eq!(out.stdout, "started\n");
        assert!(start.elapsed() < Duration::from_secs(10));
    }
}
