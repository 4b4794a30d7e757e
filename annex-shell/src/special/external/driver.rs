//! One process of a `git-annex-remote-NAME` program, driven over its
//! stdin and stdout with the [`super::protocol`] codec, one request at a
//! time ([`super::pool`] runs several, or hands a program that takes
//! ASYNC to [`super::jobs`] once it is prepared).
//!
//! The program starts at the first request that needs it: VERSION,
//! EXTENSIONS, then PREPARE (INITREMOTE instead, for `initremote`).
//! Every line it sends must come within the reply deadline of the one
//! before (PROGRESS and the other queries count, so a long transfer that
//! reports progress never times out) and be shorter than the line limit.
//! A program that exits, hangs, sends an overlong line or garbage, or
//! sends ERROR fails the request under way with the reason, and is ended;
//! the next request starts it again, as git-annex starts a new one after
//! a protocol error. A FAILURE reply fails only that request.
//!
//! Its stderr is read apart: each line is logged, and the last few are
//! kept to say why a program exited.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use super::host::Host;
use super::pipe::keep_stderr;
pub(super) use super::pipe::{read_line, Line};
use super::protocol::{self, Message, Reply, Request, VERSIONS};

/// Lines of the program's stderr kept for an error message.
pub(super) const STDERR_KEPT: usize = 4;

/// How long a program whose stdin closed may take to exit before it is
/// killed.
const EXIT_GRACE: Duration = Duration::from_secs(2);

/// The bounds a program must keep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest silence while we wait for its next line.
    pub reply: Duration,
    /// Longest line, in bytes.
    pub line: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            reply: Duration::from_secs(120),
            line: 256 * 1024,
        }
    }
}

/// Why a request to the program did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum ExternalError {
    #[error("cannot run {program} (is it on PATH?): {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{program} exited while handling {request}{}", stderr_note(.stderr))]
    Exited {
        program: String,
        request: &'static str,
        stderr: String,
    },
    #[error("{program} did not answer {request} within {} s", .after.as_secs())]
    Timeout {
        program: String,
        request: &'static str,
        after: Duration,
    },
    /// Every one of the program's `annexproxy.externaljobs` slots stayed
    /// taken for as long as a reply may take.
    #[error("{program}: all {jobs} slots stayed busy for {} s; {request} not sent", .after.as_secs())]
    Busy {
        program: String,
        request: &'static str,
        jobs: usize,
        after: Duration,
    },
    #[error("{program} sent a line longer than {limit} bytes while handling {request}")]
    LineTooLong {
        program: String,
        request: &'static str,
        limit: usize,
    },
    #[error("{program}: external special remote protocol error, unexpectedly received {line:?} while handling {request}")]
    Garbage {
        program: String,
        request: &'static str,
        line: String,
    },
    #[error("{program}: external special remote error: {message}")]
    Program { program: String, message: String },
    #[error("{program} speaks protocol version {version}; annexproxy speaks 1 and 2")]
    Version { program: String, version: u32 },
    #[error("{program}: {why}")]
    Failed { program: String, why: String },
    /// An ASYNC program shared by several jobs went wrong: every job in
    /// flight fails with the reason.
    #[error("{program} {why}; its job {request} failed with it")]
    Ended {
        program: String,
        request: &'static str,
        why: String,
    },
    #[error("talking to {program}: {source}")]
    Io {
        program: String,
        #[source]
        source: std::io::Error,
    },
}

pub(super) fn stderr_note(stderr: &str) -> String {
    if stderr.is_empty() {
        String::new()
    } else {
        format!(" (its last words: {stderr})")
    }
}

impl ExternalError {
    /// Whether the program can go on after this: only a FAILURE reply
    /// leaves it in a known state.
    fn keeps_program(&self) -> bool {
        matches!(self, ExternalError::Failed { .. })
    }
}

/// A running program.
pub(super) struct Process {
    child: Option<Child>,
    pub(super) stdin: Option<ChildStdin>,
    pub(super) stdout: Option<BufReader<ChildStdout>>,
    /// ASYNC negotiated: our lines carry a job number.
    asynchronous: bool,
    stderr: Arc<Mutex<VecDeque<String>>>,
    /// The task reading stderr; it ends when the program does.
    stderr_reader: Option<tokio::task::JoinHandle<()>>,
    /// Killed at once when dropped (it misbehaved), rather than asked to
    /// exit.
    pub(super) kill: bool,
}

impl Process {
    /// The program runs in a process group of its own: ending it ends
    /// what it started too (rclone under git-annex-remote-rclone, a
    /// `sleep` under a shell).
    fn kill_group(child: &Child) {
        if let Some(pid) = Process::group(child) {
            kill_group(pid);
        }
    }

    fn group(child: &Child) -> Option<i32> {
        child.id().and_then(|p| i32::try_from(p).ok())
    }

    /// The program's process group (its pid), while it has not been
    /// reaped.
    pub(super) fn pid(&self) -> Option<i32> {
        self.child.as_ref().and_then(Process::group)
    }

    /// Why the program is gone: the last lines of its stderr (read to
    /// their end, waited for at most 2 s: a loaded machine took more than
    /// half a second to deliver a dead program's last line).
    pub(super) fn last_words(&self) -> impl std::future::Future<Output = String> + Send + 'static {
        let reader = self.stderr_reader.as_ref().map(|r| r.abort_handle());
        let kept = self.stderr.clone();
        async move {
            if let Some(reader) = reader {
                let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
                while !reader.is_finished() && tokio::time::Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            kept.lock()
                .map(|k| Vec::from(k.clone()).join(" / "))
                .unwrap_or_default()
        }
    }
}

/// SIGKILL to the process group `pid` leads.
pub(super) fn kill_group(pid: i32) {
    let _ = nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );
}

impl Drop for Process {
    /// Closing stdin asks the program to exit; one that does not within
    /// [`EXIT_GRACE`] is killed (and it is killed anyway when no runtime
    /// is left to wait for it).
    fn drop(&mut self) {
        drop(self.stdin.take());
        let Some(mut child) = self.child.take() else {
            return;
        };
        if self.kill {
            Process::kill_group(&child);
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            Process::kill_group(&child);
            return;
        };
        let graceful = !self.kill;
        runtime.spawn(async move {
            if graceful && tokio::time::timeout(EXIT_GRACE, child.wait()).await.is_ok() {
                return;
            }
            Process::kill_group(&child);
            let _ = child.wait().await;
        });
    }
}

/// One program for one remote, started when first needed.
pub struct Driver {
    program: String,
    cwd: PathBuf,
    limits: Limits,
    host: Arc<Host>,
    running: Option<Process>,
    prepared: bool,
}

impl Driver {
    /// The driver of `program` (`git-annex-remote-<externaltype>`, found
    /// on PATH), run in `cwd`.
    pub fn new(program: String, cwd: &Path, limits: Limits, host: Arc<Host>) -> Driver {
        Driver {
            program,
            cwd: cwd.to_owned(),
            limits,
            host,
            running: None,
            prepared: false,
        }
    }

    pub fn program(&self) -> &str {
        &self.program
    }

    pub fn host(&self) -> &Host {
        &self.host
    }

    pub(super) fn shared_host(&self) -> Arc<Host> {
        self.host.clone()
    }

    pub(super) fn limits(&self) -> Limits {
        self.limits
    }

    /// Whether the program runs and took ASYNC.
    pub(super) fn is_async(&self) -> bool {
        self.running.as_ref().is_some_and(|p| p.asynchronous)
    }

    /// The running program, taken over (by [`super::jobs::Jobs`]).
    pub(super) fn into_process(mut self) -> Option<Process> {
        self.running.take()
    }

    /// Start the program if it is not running, and PREPARE it.
    pub(super) async fn ready(&mut self) -> Result<(), ExternalError> {
        let result = self.prepared_inner().await;
        if let Err(e) = &result {
            self.end(e);
        }
        result
    }

    /// After an error that leaves the program in an unknown state: kill
    /// it (the next request starts it again).
    fn end(&mut self, e: &ExternalError) {
        if !e.keeps_program() {
            tracing::warn!(program = %self.program, "{e}; ending it");
            if let Some(p) = self.running.as_mut() {
                p.kill = true;
            }
            self.stop();
        }
    }

    /// Send `request` (after PREPARE, unless it is INITREMOTE) and take
    /// its reply with `handle`: `Some(Ok)` ends it, `Some(Err(why))` is a
    /// failure reply, `None` a reply that does not belong to it.
    pub async fn request<T>(
        &mut self,
        request: Request,
        handle: impl FnMut(Reply) -> Option<Result<T, String>>,
    ) -> Result<T, ExternalError> {
        let result = self.request_inner(request, handle).await;
        if let Err(e) = &result {
            self.end(e);
        }
        result
    }

    async fn request_inner<T>(
        &mut self,
        request: Request,
        handle: impl FnMut(Reply) -> Option<Result<T, String>>,
    ) -> Result<T, ExternalError> {
        if request == Request::InitRemote {
            if self.running.is_none() {
                self.start().await?;
            }
        } else {
            self.prepared_inner().await?;
        }
        self.exchange(request, handle).await
    }

    async fn prepared_inner(&mut self) -> Result<(), ExternalError> {
        if self.running.is_none() {
            self.start().await?;
        }
        if !self.prepared {
            self.exchange(Request::Prepare, |r| match r {
                Reply::PrepareSuccess => Some(Ok(())),
                Reply::PrepareFailure(why) => Some(Err(or_no_reason("PREPARE", why))),
                _ => None,
            })
            .await
            .map_err(|e| match e {
                // A program that cannot prepare is started again next time.
                ExternalError::Failed { program, why } => ExternalError::Program {
                    program,
                    message: why,
                },
                e => e,
            })?;
            self.prepared = true;
        }
        Ok(())
    }

    /// End the program: its stdin closes, and it is killed if it has not
    /// exited soon after (the next request starts it again).
    pub fn stop(&mut self) {
        self.running = None;
        self.prepared = false;
    }

    /// Start the program: its VERSION, then EXTENSIONS.
    async fn start(&mut self) -> Result<(), ExternalError> {
        let mut child = Command::new(&self.program)
            .current_dir(&self.cwd)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .process_group(0)
            .spawn()
            .map_err(|source| ExternalError::Spawn {
                program: self.program.clone(),
                source,
            })?;
        let stderr = Arc::new(Mutex::new(VecDeque::new()));
        let stderr_reader = child
            .stderr
            .take()
            .map(|err| tokio::spawn(keep_stderr(self.program.clone(), err, stderr.clone())));
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(self.io(std::io::Error::other("no pipes to the program")));
        };
        self.running = Some(Process {
            child: Some(child),
            stdin: Some(stdin),
            stdout: Some(BufReader::new(stdout)),
            asynchronous: false,
            stderr,
            stderr_reader,
            kill: false,
        });
        self.prepared = false;
        match self.next_message("VERSION").await? {
            (Message::Version(v), _) if VERSIONS.contains(&v) => {}
            (Message::Version(version), _) => {
                return Err(ExternalError::Version {
                    program: self.program.clone(),
                    version,
                })
            }
            (_, line) => return Err(self.garbage("VERSION", line)),
        }
        let wanted = self
            .exchange(Request::Extensions, |r| match r {
                Reply::Extensions(l) => Some(Ok(l)),
                Reply::UnsupportedRequest => Some(Ok(Vec::new())),
                _ => None,
            })
            .await?;
        let asynchronous = wanted.iter().any(|e| e == "ASYNC");
        tracing::debug!(program = %self.program, ?wanted, "started");
        if let Some(p) = self.running.as_mut() {
            p.asynchronous = asynchronous;
        }
        Ok(())
    }

    /// Send one request and serve the program's queries until its reply.
    async fn exchange<T>(
        &mut self,
        request: Request,
        mut handle: impl FnMut(Reply) -> Option<Result<T, String>>,
    ) -> Result<T, ExternalError> {
        let name = request.name();
        self.send(&request.line()).await?;
        loop {
            let (message, line) = self.next_message(name).await?;
            match message {
                Message::Reply(reply) => {
                    return match handle(reply) {
                        Some(Ok(t)) => Ok(t),
                        Some(Err(why)) => Err(ExternalError::Failed {
                            program: self.program.clone(),
                            why,
                        }),
                        None => Err(self.garbage(name, line)),
                    }
                }
                Message::Query(q) => {
                    if let Some(answer) = self.host.answer(&q) {
                        for line in answer.lines() {
                            self.send(&line).await?;
                        }
                    }
                }
                Message::Error(message) => {
                    return Err(ExternalError::Program {
                        program: self.program.clone(),
                        message,
                    })
                }
                Message::Version(_) => return Err(self.garbage(name, line)),
            }
        }
    }

    async fn send(&mut self, line: &str) -> Result<(), ExternalError> {
        let program = self.program.clone();
        let io = |source| ExternalError::Io { program, source };
        let Some(p) = self.running.as_mut() else {
            return Err(io(std::io::ErrorKind::NotConnected.into()));
        };
        let text = protocol::tag(line, p.asynchronous) + "\n";
        tracing::trace!(program = %self.program, "> {}", text.trim_end());
        let Some(stdin) = p.stdin.as_mut() else {
            return Err(io(std::io::ErrorKind::NotConnected.into()));
        };
        let sent = async {
            stdin.write_all(text.as_bytes()).await?;
            stdin.flush().await
        };
        match sent.await {
            Ok(()) => Ok(()),
            // The program went away: say so with what it said last.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(self.exited("write").await),
            Err(e) => Err(io(e)),
        }
    }

    /// The program's next line, parsed; the line itself for errors.
    async fn next_message(
        &mut self,
        request: &'static str,
    ) -> Result<(Message, String), ExternalError> {
        let limits = self.limits;
        let Some(p) = self.running.as_mut() else {
            return Err(self.exited(request).await);
        };
        let Some(stdout) = p.stdout.as_mut() else {
            return Err(self.exited(request).await);
        };
        let read = read_line(stdout, limits.line);
        let line = match tokio::time::timeout(limits.reply, read).await {
            Err(_) => {
                return Err(ExternalError::Timeout {
                    program: self.program.clone(),
                    request,
                    after: limits.reply,
                })
            }
            Ok(Err(e)) => return Err(self.io(e)),
            Ok(Ok(Line::Eof)) => return Err(self.exited(request).await),
            Ok(Ok(Line::TooLong)) => {
                return Err(ExternalError::LineTooLong {
                    program: self.program.clone(),
                    request,
                    limit: limits.line,
                })
            }
            Ok(Ok(Line::Text(bytes))) => bytes,
        };
        let Ok(text) = String::from_utf8(line) else {
            return Err(self.garbage(request, "(not UTF-8)".into()));
        };
        tracing::trace!(program = %self.program, "< {text}");
        let asynchronous = self.running.as_ref().is_some_and(|p| p.asynchronous);
        let parsed = protocol::untag(&text, asynchronous).and_then(protocol::parse);
        match parsed {
            Some(m) => Ok((m, text)),
            None => Err(self.garbage(request, text)),
        }
    }

    fn garbage(&self, request: &'static str, line: String) -> ExternalError {
        ExternalError::Garbage {
            program: self.program.clone(),
            request,
            line,
        }
    }

    fn io(&self, source: std::io::Error) -> ExternalError {
        ExternalError::Io {
            program: self.program.clone(),
            source,
        }
    }

    /// The program is gone: why, with the last lines of its stderr (read
    /// to their end, briefly waited for).
    async fn exited(&mut self, request: &'static str) -> ExternalError {
        let mut stderr = String::new();
        if let Some(p) = self.running.as_ref() {
            stderr = p.last_words().await;
        }
        ExternalError::Exited {
            program: self.program.clone(),
            request,
            stderr,
        }
    }
}

/// `PREPARE failed with no reason given`, as git-annex words an empty
/// failure.
pub fn or_no_reason(request: &str, why: String) -> String {
    if why.is_empty() {
        format!("{request} failed with no reason given")
    } else {
        why
    }
}

#[cfg(test)]
#[path = "driver_tests.rs"]
mod tests;
