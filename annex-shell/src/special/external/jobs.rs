//! A program that took ASYNC, shared by concurrent requests (several
//! sessions, a cluster's fan-out, p2phttp's jobs): each request is a job
//! with a number of its own, its lines and the program's tagged `J <n>`
//! on the one stdin and stdout (git-annex's `async_appendix`).
//!
//! One task reads the program's stdout and hands each line to the job
//! its number names; each job answers its own queries and waits for its
//! reply under the reply deadline. What leaves the program in an unknown
//! state ends it and fails every job in flight with one reason: it exits,
//! sends a line without a job number (ERROR included: git-annex relays
//! an untagged ERROR to every job), garbage, an overlong line, a line for
//! a job it was not given, or a job of it stays silent past the deadline.
//! A FAILURE reply fails only its job.
//!
//! A request given up (its session went away) leaves its job running in
//! the program: the job is drained in the background (queries answered,
//! the reply dropped), so the program's other jobs are not disturbed.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::process::ChildStdin;
use tokio::sync::{mpsc, OwnedSemaphorePermit};

use super::driver::{
    kill_group, read_line, stderr_note, Driver, ExternalError, Limits, Line, Process,
};
use super::host::Host;
use super::protocol::{self, Message, Reply, Request, JOB};

/// Lines a job's queue holds before the reader waits for the job.
const QUEUE: usize = 16;

/// One ASYNC program and its jobs in flight.
pub(super) struct Jobs {
    program: String,
    limits: Limits,
    host: Arc<Host>,
    /// To the writer, which owns the program's stdin: dropped before
    /// `process`, so the program sees its stdin close first.
    lines: mpsc::UnboundedSender<String>,
    table: Arc<Mutex<Table>>,
    /// Asked to exit (or killed, once dead) when the last user goes.
    process: Process,
}

#[derive(Default)]
struct Table {
    /// The last job number given.
    last: u64,
    running: HashMap<u64, mpsc::Sender<String>>,
    /// Why the program is gone: set once; no job starts after.
    dead: Option<String>,
    /// The program's process group, until it may have been reaped (then
    /// the number could name another's).
    pid: Option<i32>,
}

impl Table {
    /// Record why the program ended, kill it, and close every job's
    /// queue: each job then fails with `why`.
    fn end(&mut self, why: String) {
        if self.dead.is_none() {
            self.dead = Some(why);
        }
        self.running.clear();
        if let Some(pid) = self.pid {
            kill_group(pid);
        }
    }
}

fn lock(table: &Mutex<Table>) -> MutexGuard<'_, Table> {
    // A panic while it was held left whole values behind.
    table.lock().unwrap_or_else(|e| e.into_inner())
}

impl Jobs {
    /// Take over `driver`'s program, which took ASYNC and is prepared
    /// (PREPARE was its job 1); `None` if it is not running.
    pub(super) fn take(driver: Driver) -> Option<Arc<Jobs>> {
        let program = driver.program().to_owned();
        let (limits, host) = (driver.limits(), driver.shared_host());
        let mut process = driver.into_process()?;
        let stdin = process.stdin.take()?;
        let stdout = process.stdout.take()?;
        let table = Arc::new(Mutex::new(Table {
            last: JOB,
            pid: process.pid(),
            ..Table::default()
        }));
        let reader = read_jobs(
            program.clone(),
            stdout,
            limits.line,
            table.clone(),
            process.last_words(),
        );
        tokio::spawn(reader);
        let (lines, queue) = mpsc::unbounded_channel();
        let writer = write_jobs(program.clone(), stdin, queue, table.clone(), limits.reply);
        tokio::spawn(writer);
        Some(Arc::new(Jobs {
            program,
            limits,
            host,
            lines,
            table,
            process,
        }))
    }

    /// Whether the program ended (a new one must be started).
    pub(super) fn is_dead(&self) -> bool {
        lock(&self.table).dead.is_some()
    }

    /// `request` as a job of its own; `permit` (one of the remote's
    /// jobs) is held until the program is done with it.
    pub(super) async fn request<T>(
        self: &Arc<Self>,
        request: Request,
        handle: impl FnMut(Reply) -> Option<Result<T, String>>,
        permit: OwnedSemaphorePermit,
    ) -> Result<T, ExternalError> {
        let name = request.name();
        let mut job = self.open(name, permit)?;
        let result = match self.send(job.id, &request.line(), name) {
            Ok(()) => job.serve(name, handle).await,
            Err(e) => Err(e),
        };
        job.done = true;
        result
    }

    /// A new job: its number and queue.
    fn open(
        self: &Arc<Self>,
        name: &'static str,
        permit: OwnedSemaphorePermit,
    ) -> Result<Job, ExternalError> {
        let (tx, rx) = mpsc::channel(QUEUE);
        let mut table = lock(&self.table);
        if let Some(why) = &table.dead {
            return Err(self.ended_with(name, why.clone()));
        }
        table.last += 1;
        let id = table.last;
        table.running.insert(id, tx);
        Ok(Job {
            jobs: self.clone(),
            id,
            rx: Some(rx),
            done: false,
            draining: false,
            permit: Some(permit),
        })
    }

    /// End the program: every job in flight fails with `why`.
    fn end(&self, why: String) {
        tracing::warn!(program = %self.program, "{why}; ending it and its jobs");
        lock(&self.table).end(why);
    }

    fn ended_with(&self, request: &'static str, why: String) -> ExternalError {
        ExternalError::Ended {
            program: self.program.clone(),
            request,
            why,
        }
    }

    /// Why the program went, for job `request`.
    fn ended(&self, request: &'static str) -> ExternalError {
        let why = lock(&self.table).dead.clone();
        self.ended_with(request, why.unwrap_or_else(|| "ended".into()))
    }

    /// Queue job `id`'s line for the writer.
    fn send(&self, id: u64, line: &str, request: &'static str) -> Result<(), ExternalError> {
        let text = protocol::tag_job(line, id) + "\n";
        tracing::trace!(program = %self.program, "> {}", text.trim_end());
        self.lines.send(text).map_err(|_| self.ended(request))
    }
}

impl Drop for Jobs {
    /// The program is asked to exit (killed if it ended badly); it is
    /// reaped after, so its number is forgotten first.
    fn drop(&mut self) {
        let mut table = lock(&self.table);
        self.process.kill = table.dead.is_some();
        table.pid = None;
    }
}

/// One request's job.
struct Job {
    jobs: Arc<Jobs>,
    id: u64,
    rx: Option<mpsc::Receiver<String>>,
    /// The request got its answer, or the program ended: nothing to
    /// drain.
    done: bool,
    /// It is the drain of a request given up.
    draining: bool,
    permit: Option<OwnedSemaphorePermit>,
}

impl Job {
    /// Serve the job's lines until its reply: answer its queries, hand
    /// the reply to `handle`.
    async fn serve<T>(
        &mut self,
        name: &'static str,
        mut handle: impl FnMut(Reply) -> Option<Result<T, String>>,
    ) -> Result<T, ExternalError> {
        let jobs = self.jobs.clone();
        let Some(rx) = self.rx.as_mut() else {
            return Err(jobs.ended(name));
        };
        loop {
            let line = match tokio::time::timeout(jobs.limits.reply, rx.recv()).await {
                Err(_) => {
                    let after = jobs.limits.reply;
                    jobs.end(format!(
                        "did not answer job {} ({name}) within {} s",
                        self.id,
                        after.as_secs()
                    ));
                    return Err(ExternalError::Timeout {
                        program: jobs.program.clone(),
                        request: name,
                        after,
                    });
                }
                Ok(None) => return Err(jobs.ended(name)),
                Ok(Some(line)) => line,
            };
            let garbage = |line: String| {
                jobs.end(format!("sent {line:?} for job {} ({name})", self.id));
                ExternalError::Garbage {
                    program: jobs.program.clone(),
                    request: name,
                    line,
                }
            };
            match protocol::parse(&line) {
                Some(Message::Reply(reply)) => {
                    return match handle(reply) {
                        Some(Ok(t)) => Ok(t),
                        Some(Err(why)) => Err(ExternalError::Failed {
                            program: jobs.program.clone(),
                            why,
                        }),
                        None => Err(garbage(line)),
                    }
                }
                Some(Message::Query(q)) => {
                    if let Some(answer) = jobs.host.answer(&q) {
                        for line in answer.lines() {
                            jobs.send(self.id, &line, name)?;
                        }
                    }
                }
                _ => return Err(garbage(line)),
            }
        }
    }
}

impl Drop for Job {
    /// A job given up before its answer goes on in the background until
    /// the program answers it (or ends), keeping its permit meanwhile. A
    /// drain itself given up (the runtime shutting down) or with no
    /// runtime to go on in ends the program: its answer would name a job
    /// no one waits for.
    fn drop(&mut self) {
        if !self.done {
            let runtime = tokio::runtime::Handle::try_current();
            match (self.draining, runtime) {
                (false, Ok(runtime)) => {
                    let rest = Job {
                        jobs: self.jobs.clone(),
                        id: self.id,
                        rx: self.rx.take(),
                        done: false,
                        draining: true,
                        permit: self.permit.take(),
                    };
                    runtime.spawn(drain(rest));
                    return;
                }
                _ => self.jobs.end(format!("lost job {}", self.id)),
            }
        }
        lock(&self.jobs.table).running.remove(&self.id);
    }
}

async fn drain(mut job: Job) {
    tracing::debug!(program = %job.jobs.program, job = job.id, "draining a job given up");
    let _ = job.serve("(given up)", |_| Some(Ok(()))).await;
    job.done = true;
}

/// Write the jobs' lines in turn, each whole (a request given up midway
/// never leaves half a line). A program that does not take a line within
/// the reply deadline is ended; one whose stdin is closed is left for the
/// reader to say why (it exited, most likely).
async fn write_jobs(
    program: String,
    mut stdin: ChildStdin,
    mut lines: mpsc::UnboundedReceiver<String>,
    table: Arc<Mutex<Table>>,
    deadline: Duration,
) {
    while let Some(text) = lines.recv().await {
        let sent = async {
            stdin.write_all(text.as_bytes()).await?;
            stdin.flush().await
        };
        match tokio::time::timeout(deadline, sent).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::debug!(program = %program, "writing to it: {e}");
                return;
            }
            Err(_) => {
                let why = format!("did not read its input within {} s", deadline.as_secs());
                tracing::warn!(program = %program, "{why}; ending its jobs");
                lock(&table).end(why);
                return;
            }
        }
    }
}

/// Hand each line of the program's to the job it names, until the
/// program ends or misbehaves; then end it and every job in flight.
async fn read_jobs(
    program: String,
    mut stdout: tokio::io::BufReader<tokio::process::ChildStdout>,
    limit: usize,
    table: Arc<Mutex<Table>>,
    last_words: impl Future<Output = String>,
) {
    let why = loop {
        let line = match read_line(&mut stdout, limit).await {
            Err(e) => break format!("could not be read: {e}"),
            Ok(Line::Eof) => break format!("exited{}", stderr_note(&last_words.await)),
            Ok(Line::TooLong) => break format!("sent a line longer than {limit} bytes"),
            Ok(Line::Text(bytes)) => bytes,
        };
        let Ok(text) = String::from_utf8(line) else {
            break "sent a line that is not UTF-8".to_owned();
        };
        tracing::trace!(program = %program, "< {text}");
        let Some((id, message)) = protocol::split_job(&text) else {
            break match protocol::parse(&text) {
                Some(Message::Error(m)) => format!("sent external special remote error: {m}"),
                _ => format!("sent {text:?} with no job number"),
            };
        };
        let queue = lock(&table).running.get(&id).cloned();
        let Some(queue) = queue else {
            break format!("answered for job {id}, which it was not given: {text:?}");
        };
        // A job that ended meanwhile drops the line.
        let _ = queue.send(message.to_owned()).await;
    };
    tracing::warn!(program = %program, "{why}; ending its jobs");
    lock(&table).end(why);
}

#[cfg(test)]
#[path = "jobs_tests.rs"]
mod tests;
