//! One HTTP request's P2P session: the server's session loop run over an
//! in-process pipe, with the HTTP handler as its client.
//!
//! The session is the very one ssh clients get ([`crate::session`] over
//! the local repository, a proxied peer or the cluster gateway, chosen by
//! the server UUID the URL names), so READONLY/APPENDONLY rules, verified
//! stores, resumable partials, content locks and the location log behave
//! the same over HTTP. It runs on a blocking-pool thread, because its
//! repository work (fsync, locks, git) blocks, and must not hold up the
//! threads that serve HTTP.

use std::path::Path;

use annex::p2p::{ConnError, Connection, FileTaker, Message};
use annex::repo::Repo;
use tokio::io::{DuplexStream, ReadHalf, WriteHalf};
use tokio::sync::oneshot;

use crate::backend::local::Local;
use crate::restrict::Rules;
use crate::session::Session;

/// Bytes the pipe between the handler and its session buffers: enough
/// for a few chunks of a body in flight.
const PIPE_BUFFER: usize = 256 * 1024;

pub type Pipe = Connection<ReadHalf<DuplexStream>, WriteHalf<DuplexStream>>;

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The URL's server UUID is neither this repository nor a remote or
    /// cluster it serves: 404.
    #[error("no such repository")]
    NotServed,
    #[error("the repository cannot be served: {0}")]
    Repo(String),
    #[error(transparent)]
    Conn(#[from] ConnError),
    /// The session ended before it answered.
    #[error("the session ended early")]
    Ended,
    #[error("unexpected answer {0}")]
    Unexpected(&'static str),
    /// The session answered ERROR.
    #[error("{0}")]
    Refused(String),
}

/// What a request asks to talk to.
#[derive(Clone, Debug)]
pub struct Target<'a> {
    pub dir: &'a Path,
    pub server: &'a str,
    pub client: &'a str,
    pub version: u32,
    pub bypass: Vec<String>,
    pub rules: Rules,
    /// Nodes a cluster request reaches at once; `None`: `annex.jobs`.
    pub cluster_jobs: Option<usize>,
}

impl Target<'_> {
    /// What sessions for this target have in common, so a pooled one can
    /// serve the next request like it ([`super::pool`]). The repository
    /// is part of it: with `--directory`, a UUID a request names need not
    /// be the repository its path names.
    pub fn pool_key(&self) -> String {
        format!(
            "{}\0{}\0{}\0{}\0{}\0{:?}",
            self.dir.display(),
            self.server,
            self.client,
            self.version,
            self.bypass.join(","),
            self.rules
        )
    }
}

/// The client end of a running session.
pub struct SessionClient {
    pub conn: Pipe,
    /// Files the session hands over as GET bodies, to be sent from here.
    pub files: FileTaker,
    pub version: u32,
    done: tokio::task::JoinHandle<()>,
    /// The `--jobs` slot the session holds, if any.
    pub permit: Option<tokio::sync::OwnedSemaphorePermit>,
    /// Its [`Target::pool_key`].
    target: String,
    /// The repository proxying, when the session is with a proxied
    /// remote or a cluster (it holds node connections).
    proxied_by: Option<std::path::PathBuf>,
}

enum Served {
    Local(Box<Local>),
    Node(Repo, String, annex::transport::NodeRemote),
    Cluster(Repo, String),
    /// A special remote the repository serves itself.
    Special(Repo, Box<crate::special::SpecialRemote>),
}

impl SessionClient {
    /// Start a session for `t` and speak its opening: greeting, VERSION
    /// (from version 1) and BYPASS (from version 2, when there is one).
    pub async fn open(t: Target<'_>) -> Result<SessionClient, SessionError> {
        let (ours, theirs) = tokio::io::duplex(PIPE_BUFFER);
        let (giver, files) = annex::p2p::file_handoff();
        let (found_tx, found_rx) = oneshot::channel();
        let handle = tokio::runtime::Handle::current();
        let (dir, server, client) = (t.dir.to_owned(), t.server.to_owned(), t.client.to_owned());
        let (rules, cluster_jobs) = (t.rules, t.cluster_jobs);
        let target = t.pool_key();
        let done = tokio::task::spawn_blocking(move || {
            let served = match resolve(&dir, &server, client) {
                Ok(s) => s,
                Err(e) => {
                    let _ = found_tx.send(Err(e));
                    return;
                }
            };
            let _ = found_tx.send(Ok(!matches!(served, Served::Local(_))));
            let (r, w) = tokio::io::split(theirs);
            let conn = Connection::new(r, w).with_file_handoff(giver);
            handle.block_on(run(served, conn, rules, cluster_jobs));
        });
        let proxied = found_rx.await.map_err(|_| SessionError::Ended)??;
        let (r, w) = tokio::io::split(ours);
        let mut s = SessionClient {
            conn: Connection::new(r, w),
            files,
            version: t.version,
            done,
            permit: None,
            target,
            proxied_by: proxied.then(|| t.dir.to_owned()),
        };
        match s.read().await? {
            Message::AuthSuccess(_) => {}
            m => return Err(unexpected(&m)),
        }
        if t.version > 0 {
            s.version = match s.ask(Message::Version(t.version)).await? {
                Message::Version(v) => v,
                m => return Err(unexpected(&m)),
            };
        }
        if !t.bypass.is_empty() && Message::Bypass(Vec::new()).known_in(s.version) {
            s.conn.write_message(&Message::Bypass(t.bypass)).await?;
        }
        Ok(s)
    }

    pub fn target(&self) -> &str {
        &self.target
    }

    /// The repository proxying for the session's remote or cluster.
    pub fn proxied_by(&self) -> Option<&Path> {
        self.proxied_by.as_deref()
    }

    /// Whether the session loop still runs (it ends when it fails).
    pub fn is_running(&self) -> bool {
        !self.done.is_finished()
    }

    /// The next message; the session ending is [`SessionError::Ended`].
    pub async fn read(&mut self) -> Result<Message, SessionError> {
        self.conn.read_message().await?.ok_or(SessionError::Ended)
    }

    /// Send a request and read its answer.
    pub async fn ask(&mut self, msg: Message) -> Result<Message, SessionError> {
        self.conn.write_message(&msg).await?;
        self.read().await
    }

    /// Hang up and wait for the session to end, so what it stored or
    /// committed is in place before the HTTP answer goes out.
    pub async fn close(self) {
        let SessionClient {
            conn,
            files,
            done,
            permit,
            ..
        } = self;
        // A file handed over and not sent is cut off with the taker: the
        // session then ends rather than wait for it.
        drop(files);
        drop(conn);
        let _permit = permit;
        if let Err(e) = done.await {
            tracing::warn!("p2phttp session thread: {e}");
        }
    }
}

pub fn unexpected(m: &Message) -> SessionError {
    match m {
        Message::Error(e) => SessionError::Refused(e.clone()),
        m => SessionError::Unexpected(m.verb()),
    }
}

/// Which back-end serves `server`: this repository, or a proxied remote
/// or cluster it serves (git-annex's proxy rules, as for ssh).
fn resolve(dir: &Path, server: &str, client: String) -> Result<Served, SessionError> {
    let repo = Repo::open(dir).map_err(|e| SessionError::Repo(e.to_string()))?;
    let my_uuid = repo
        .uuid()
        .ok_or_else(|| SessionError::Repo("not a git-annex repository".into()))?;
    if server == my_uuid {
        let store = repo.store();
        let local = Local::new(repo, store, my_uuid, client).pooled();
        return Ok(Served::Local(Box::new(local)));
    }
    match crate::proxy::select(&repo, &my_uuid, server) {
        Ok(crate::proxy::Selection::Node(node)) => Ok(Served::Node(repo, my_uuid, node)),
        Ok(crate::proxy::Selection::Cluster(uuid)) => Ok(Served::Cluster(repo, uuid)),
        Ok(crate::proxy::Selection::Special(remote)) => Ok(Served::Special(repo, Box::new(remote))),
        Ok(crate::proxy::Selection::Unserved(e)) => Err(SessionError::Repo(e.to_string())),
        Ok(_) => Err(SessionError::NotServed),
        Err(e) => Err(SessionError::Repo(e.to_string())),
    }
}

async fn run(served: Served, conn: Pipe, rules: Rules, cluster_jobs: Option<usize>) {
    let result = match served {
        Served::Local(local) => Session::new(conn, *local, rules).run().await,
        Served::Node(repo, my_uuid, node) => {
            crate::proxy::relay_session(conn, &repo, my_uuid, node, rules, false).await
        }
        Served::Cluster(repo, uuid) => {
            let jobs = cluster_jobs.unwrap_or_else(|| repo.jobs());
            crate::cluster::gateway_session_with_jobs(conn, repo, uuid, rules, jobs, false).await
        }
        Served::Special(repo, remote) => {
            crate::special::serve_session(conn, &repo, *remote, rules).await
        }
    };
    match result {
        Err(e) if !e.is_hangup() => tracing::warn!("p2phttp session: {e}"),
        _ => {}
    }
}
