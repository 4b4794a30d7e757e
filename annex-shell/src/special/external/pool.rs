//! One remote's program shared by every user of the remote in this
//! process: the sessions of `p2phttp` and `serve-p2p`, a cluster's nodes,
//! a session's own requests. At most `annexproxy.externaljobs` requests
//! reach it at once; more wait their turn, each no longer than the
//! program may stay silent (`annexproxy.externaltimeout`).
//!
//! A program that takes ASYNC runs once and serves those requests as
//! concurrent jobs ([`super::jobs`]); one that does not runs as many
//! times as requests are in flight, each process doing one thing at a
//! time ([`super::driver`]), as git-annex starts one per thread. Idle
//! processes are kept for later requests; all end when the last user of
//! the remote goes.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::Duration;

use tokio::sync::Semaphore;

use super::driver::{Driver, ExternalError, Limits};
use super::host::Host;
use super::jobs::Jobs;
use super::protocol::{Reply, Request};
use crate::special::config::Params;

/// What makes two users' programs the same one: everything the program
/// is started with and answered from.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct ProgramId {
    pub program: String,
    pub cwd: PathBuf,
    pub git_dir: PathBuf,
    pub remote: String,
    pub uuid: String,
    pub params: Params,
    pub reply: Duration,
    pub jobs: usize,
}

/// The programs in use in this process.
static PROGRAMS: LazyLock<Mutex<HashMap<ProgramId, Weak<Program>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// The program `id` names: the one in use, or a new one.
pub(super) fn shared(id: ProgramId) -> Arc<Program> {
    let mut programs = PROGRAMS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = programs.get(&id).and_then(Weak::upgrade) {
        return p;
    }
    programs.retain(|_, p| p.strong_count() > 0);
    let p = Arc::new(Program::new(&id));
    programs.insert(id, Arc::downgrade(&p));
    p
}

/// A remote's program, however many processes of it run.
pub(super) struct Program {
    program: String,
    cwd: PathBuf,
    limits: Limits,
    host: Arc<Host>,
    /// One per request in flight.
    permits: Arc<Semaphore>,
    /// How many permits there are, for errors.
    jobs: usize,
    slots: tokio::sync::Mutex<Slots>,
}

#[derive(Default)]
struct Slots {
    /// The ASYNC program, while it lives.
    jobs: Option<Arc<Jobs>>,
    /// Processes of a program without ASYNC, each between requests.
    idle: Vec<Driver>,
}

/// What serves one request.
enum Lease {
    Jobs(Arc<Jobs>),
    Driver(Box<Driver>),
}

impl Program {
    fn new(id: &ProgramId) -> Program {
        let host = Host::new(&id.remote, &id.uuid, &id.git_dir, id.params.clone());
        Program {
            program: id.program.clone(),
            cwd: id.cwd.clone(),
            limits: Limits {
                reply: id.reply,
                ..Limits::default()
            },
            host: Arc::new(host),
            permits: Arc::new(Semaphore::new(id.jobs.max(1))),
            jobs: id.jobs.max(1),
            slots: tokio::sync::Mutex::new(Slots::default()),
        }
    }

    /// Send `request` and take its reply with `handle` (as
    /// [`Driver::request`]), as a job of the ASYNC program or on a
    /// process of its own.
    pub(super) async fn request<T>(
        &self,
        request: Request,
        handle: impl FnMut(Reply) -> Option<Result<T, String>>,
    ) -> Result<T, ExternalError> {
        // A slot's holder may keep talking without end (PROGRESS, DEBUG);
        // a request queued behind it waits no longer than a reply may.
        let wait = self.limits.reply;
        let permit = tokio::time::timeout(wait, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| ExternalError::Busy {
                program: self.program.clone(),
                request: request.name(),
                jobs: self.jobs,
                after: wait,
            })?
            .map_err(|_| self.gone())?;
        match self.lease().await? {
            Lease::Jobs(jobs) => jobs.request(request, handle, permit).await,
            Lease::Driver(mut driver) => {
                let result = driver.request(request, handle).await;
                // Given up midway, the driver goes with the request: its
                // program is not left mid-exchange for the next one.
                self.slots.lock().await.idle.push(*driver);
                result
            }
        }
    }

    /// The ASYNC program while it lives, else an idle process, else a new
    /// one (started here, so that a program taking ASYNC runs once).
    async fn lease(&self) -> Result<Lease, ExternalError> {
        let mut slots = self.slots.lock().await;
        if let Some(jobs) = &slots.jobs {
            if !jobs.is_dead() {
                return Ok(Lease::Jobs(jobs.clone()));
            }
            slots.jobs = None;
        }
        if let Some(driver) = slots.idle.pop() {
            return Ok(Lease::Driver(Box::new(driver)));
        }
        let mut driver = Driver::new(
            self.program.clone(),
            &self.cwd,
            self.limits,
            self.host.clone(),
        );
        driver.ready().await?;
        if !driver.is_async() {
            return Ok(Lease::Driver(Box::new(driver)));
        }
        tracing::debug!(program = %self.program, "ASYNC: one process for every job");
        let jobs = Jobs::take(driver).ok_or_else(|| self.gone())?;
        slots.jobs = Some(jobs.clone());
        Ok(Lease::Jobs(jobs))
    }

    fn gone(&self) -> ExternalError {
        ExternalError::Io {
            program: self.program.clone(),
            source: std::io::ErrorKind::NotConnected.into(),
        }
    }
}
