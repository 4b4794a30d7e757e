//! `annexproxy p2phttp`: git-annex's P2P protocol over HTTP (API v0–v4,
//! the `annex+http://` remotes of git-annex 10.2024 and later), served
//! from the same session loop and back-ends as ssh.
//!
//! # How a request is served
//!
//! [`route`] turns method, path and query into an [`route::Endpoint`];
//! [`auth`] decides, from the auth options and the `Authorization`
//! header, which mode the request runs in (or answers 401/403); then each
//! request drives one P2P session ([`session`]) as its client, over an
//! in-process pipe, the way git-annex runs P2P sessions behind its own
//! HTTP server. That session is the one ssh clients get: the local
//! repository, a proxied remote or a cluster gateway, chosen by the
//! server UUID in the URL, with the mode's READONLY/APPENDONLY rules
//! applied by the session's one gate. Nothing about keys, locks, verified
//! stores or partial uploads is implemented twice. (Calling a
//! [`crate::backend::Backend`] directly would need a Connection adapter
//! for DATA anyway, and a second copy of the mode checks and of the
//! proxy and cluster selection; the pipe costs one copy of each body
//! through memory.)
//!
//! A session's repository work blocks (fsync, locks, git), so sessions
//! run on the blocking pool, at most `--jobs` at once doing work; further
//! requests queue up to [`Limits::queue`] and are then answered 503. A GET
//! lets go of its slot once its body streams, so readers that stop
//! reading cannot take every slot; they are cut off after
//! [`Limits::idle_timeout`] without progress. Content locks hold a
//! session each, capped by `--lockedfiles`, not by `--jobs`.
//!
//! # The HTTP stack
//!
//! hyper 1's HTTP/1.1 server on tokio, without a framework: the API is
//! nine endpoints whose values may be `[base64]`-wrapped and whose
//! unknown versions must be 404, which a 200-line router says more
//! plainly than extractors would; and the connection-level behaviour
//! (header deadline, connection cap answered 503, TCP_NODELAY, streamed
//! request bodies for keeplocked and put) is set here directly.
//!
//! Around that core: [`tls`] (HTTPS), [`directory`] (many repositories),
//! [`git`] with `cgi` (git's smart HTTP and `/config` beside the API),
//! [`forge`] (who decides a request's mode) and `unix` (`--socket`).

pub mod auth;
mod cgi;
mod content;
pub mod directory;
pub mod forge;
pub mod git;
mod idle;
mod locks;
pub mod metrics;
mod pool;
mod range;
mod reply;
mod requests;
pub mod route;
mod sendfile;
mod session;
pub mod tls;
mod transfer;
mod unix;

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::Response;
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::Instrument;

use crate::restrict::{Rules, ServerMode};
use auth::AuthConfig;
pub use locks::{DEFAULT_LOCKED_FILES, RETENTION};
use reply::Body;
use route::{Endpoint, Op};
use session::{SessionClient, Target};

/// git-annex's default p2phttp port.
pub const DEFAULT_PORT: u16 = 9417;

/// What clients may hold.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Open connections; one more is answered 503 and closed.
    pub max_connections: usize,
    /// Sessions doing work at once (`--jobs`).
    pub jobs: usize,
    /// Requests waiting for a job slot; one more is answered 503.
    pub queue: usize,
    /// From connecting (or a request's first byte) to its full headers.
    pub header_timeout: Duration,
    /// A body (either way) that makes no progress for this long is cut
    /// off; a connection with no traffic for this long is closed once its
    /// request (if any) ends, and dropped after twice that.
    pub idle_timeout: Duration,
    /// `--proxyconnections`: idle sessions with a proxied remote or a
    /// cluster (each holding its node connections) kept per repository
    /// for the next request; `None`: as many as `jobs`.
    pub proxy_connections: Option<usize>,
    /// `--clusterjobs`: nodes a cluster request reaches at once; `None`:
    /// the repository's `annex.jobs`, as over ssh.
    pub cluster_jobs: Option<usize>,
    /// The most a git request (http-backend) may take in all.
    pub git_deadline: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 512,
            jobs: 8,
            queue: 256,
            header_timeout: Duration::from_secs(20),
            idle_timeout: Duration::from_secs(120),
            proxy_connections: None,
            cluster_jobs: None,
            git_deadline: Duration::from_secs(3600),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Options {
    pub dir: PathBuf,
    pub addr: SocketAddr,
    pub auth: AuthConfig,
    pub limits: Limits,
    pub locked_files: usize,
    pub lock_retention: Duration,
    /// `--certfile` and friends: serve HTTPS only.
    pub tls: Option<tls::TlsFiles>,
    /// `--directory`: serve every repository under these, not `dir`.
    pub directory: Vec<PathBuf>,
    /// `--forge-headers`: believe a loopback peer's user and mode headers.
    pub forge_headers: bool,
    /// `--socket`: listen on this unix socket instead of `addr`.
    pub socket: Option<PathBuf>,
    /// After a shutdown signal, how long requests in flight may go on.
    pub grace: Duration,
}

/// Default of [`Options::grace`].
pub const DEFAULT_GRACE: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("{}: {why}", dir.display())]
    Repo { dir: PathBuf, why: String },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("accepting a connection: {0}")]
    Accept(#[source] std::io::Error),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error(transparent)]
    Directory(#[from] directory::DirectoryError),
    #[error("cannot listen on {}: {source}", path.display())]
    Socket {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("--socket serves plain HTTP: give TLS to the proxy in front")]
    SocketTls,
}

/// What every request shares.
struct State {
    dir: PathBuf,
    auth: AuthConfig,
    limits: Limits,
    jobs: Arc<Semaphore>,
    waiting: AtomicUsize,
    locks: Arc<locks::Locks>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    /// With `--directory`: the repositories, found by UUID or path.
    repos: Option<Arc<directory::Repos>>,
    forge_headers: bool,
    /// Turns true when the server is shutting down.
    stopping: tokio::sync::watch::Receiver<bool>,
    pool: Arc<pool::Pool>,
    metrics: Arc<metrics::Metrics>,
    /// The served repository's UUID (none with `--directory`): requests
    /// for others go to proxied nodes.
    uuid: Option<String>,
}

/// Listen and serve until `shutdown` resolves; `ready` hears the bound
/// address (or the socket's path). Then no connection is accepted,
/// connections close after the request in flight, and requests have
/// [`Options::grace`] to finish; sessions still open are then left
/// (partial uploads stay on disk, to be resumed), and the pooled ones
/// closed, committing the journal.
pub async fn serve(
    opts: Options,
    ready: impl FnOnce(String),
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), HttpError> {
    let (repos, uuid) = if opts.directory.is_empty() {
        (None, Some(check_repo(&opts.dir)?))
    } else {
        let roots = opts.directory.clone();
        let found = tokio::task::spawn_blocking(move || {
            directory::Repos::new(&roots, directory::RESCAN_EVERY)
        })
        .await
        .expect("the first walk of --directory does not panic")?;
        (Some(Arc::new(found)), None)
    };
    let tls = opts.tls.as_ref().map(tls::acceptor).transpose()?;
    let (addr, socket) = (opts.addr, opts.socket);
    let (stop_tx, stopping) = tokio::sync::watch::channel(false);
    let state = Arc::new(State {
        dir: opts.dir,
        auth: opts.auth,
        jobs: Arc::new(Semaphore::new(opts.limits.jobs.max(1))),
        waiting: AtomicUsize::new(0),
        locks: locks::Locks::new(opts.locked_files, opts.lock_retention),
        stopping,
        pool: pool::Pool::new(
            opts.limits.jobs.max(1),
            opts.limits.proxy_connections.unwrap_or(opts.limits.jobs),
        ),
        metrics: Arc::default(),
        uuid,
        limits: opts.limits,
        tls,
        repos,
        forge_headers: opts.forge_headers,
    });
    let max = state.limits.max_connections.max(1);
    let connections = Arc::new(Semaphore::new(max));
    let serving = async {
        if let Some(path) = &socket {
            return unix::serve(path, Arc::clone(&state), Arc::clone(&connections), ready).await;
        }
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| HttpError::Bind { addr, source })?;
        let bound = listener.local_addr().map_err(HttpError::Accept)?;
        tracing::info!(%bound, "p2phttp listening");
        ready(bound.to_string());
        accept(listener, &state, &connections).await;
        Ok(())
    };
    tokio::select! {
        served = serving => served?,
        () = shutdown => {}
    }
    let _ = stop_tx.send(true);
    tracing::info!(grace = ?opts.grace, "p2phttp: shutting down");
    let all = u32::try_from(max).unwrap_or(u32::MAX);
    let drained = tokio::time::timeout(opts.grace, connections.acquire_many(all)).await;
    if drained.is_err() {
        tracing::warn!("p2phttp: requests still running after the grace period are cut off");
    }
    state.pool.close_idle(Duration::ZERO).await;
    Ok(())
}

async fn accept(
    listener: tokio::net::TcpListener,
    state: &Arc<State>,
    connections: &Arc<Semaphore>,
) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok((s, peer)) => (s, peer.ip()),
            // A peer gone before we got to it, or a shortage of fds, must
            // not stop the server.
            Err(e) => {
                tracing::warn!("p2phttp accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Small requests and answers go out at once, not after the
        // peer's delayed ACK (git-annex's 40 ms per upload).
        let _ = stream.set_nodelay(true);
        match Arc::clone(connections).try_acquire_owned() {
            Ok(slot) => {
                tokio::spawn(accepted(stream, peer, Arc::clone(state), slot));
            }
            Err(_) => refuse_busy(stream),
        }
    }
}

fn check_repo(dir: &Path) -> Result<String, HttpError> {
    let bad = |why: String| HttpError::Repo {
        dir: dir.to_owned(),
        why,
    };
    let repo = annex::repo::Repo::open(dir).map_err(|e| bad(e.to_string()))?;
    repo.uuid()
        .ok_or_else(|| bad("not a git-annex repository".into()))
}

/// The answer to a connection over the cap.
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 18\r\nConnection: close\r\n\r\ntoo many clients\r\n";

/// One connection over the cap: 503, written without waiting, and closed.
fn refuse_busy(stream: TcpStream) {
    let _ = stream.try_write(BUSY);
    tracing::info!("p2phttp: connection refused, at the connection cap");
}

/// A new connection: through TLS first when the server has it.
async fn accepted(stream: TcpStream, ip: IpAddr, state: Arc<State>, slot: OwnedSemaphorePermit) {
    let peer = |secure| forge::Peer::new(secure, Some(ip), state.forge_headers);
    match &state.tls {
        None => {
            // Plain TCP: file bodies go out by sendfile.
            let files = sendfile::FileSlot::default();
            let io = sendfile::Sendfile::new(stream, files.clone());
            connection(io, peer(false), Arc::clone(&state), slot, Some(files)).await;
        }
        Some(acceptor) => {
            let deadline = state.limits.header_timeout;
            if let Some(tls) = tls::handshake(acceptor, stream, deadline).await {
                connection(tls, peer(true), Arc::clone(&state), slot, None).await;
            }
        }
    }
}

async fn connection<S>(
    stream: S,
    peer: forge::Peer,
    state: Arc<State>,
    _slot: OwnedSemaphorePermit,
    files: Option<sendfile::FileSlot>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let activity = idle::Activity::new();
    let io = hyper_util::rt::TokioIo::new(idle::Watched::new(stream, activity.clone()));
    let svc_state = Arc::clone(&state);
    // Body chunks written as they are, never copied into hyper's buffer:
    // sendfile's markers must reach the socket ([`sendfile`]).
    let writev = files.is_some();
    let service = hyper::service::service_fn(move |req| {
        handle(req, peer, Arc::clone(&svc_state), files.clone())
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(state.limits.header_timeout);
    if writev {
        builder.writev(true);
    }
    let conn = builder.serve_connection(io, service);
    let stopping = state.stopping.clone();
    let served = idle::watch(conn, activity, state.limits.idle_timeout, stopping).await;
    if let Some(Err(e)) = served {
        tracing::debug!("p2phttp connection: {e}");
    }
}

/// One request, as the client is to see it.
pub(crate) struct Request<'a> {
    state: &'a State,
    /// The repository serving it.
    dir: PathBuf,
    ep: &'a Endpoint,
    mode: ServerMode,
    /// Where file bodies go by sendfile (plain TCP only).
    files: Option<sendfile::FileSlot>,
}

impl Request<'_> {
    /// The API version (0 for the unversioned endpoint).
    fn api_version(&self) -> u32 {
        self.ep.version.unwrap_or(0)
    }

    /// A session holding a `--jobs` slot: a pooled one for the same
    /// target if one waits, else a new one.
    async fn open(&self) -> Result<SessionClient, Response<Body>> {
        self.open_from(true).await
    }

    /// With `pooled` false, always a new session: for a request that
    /// ends its session (putoffset hangs up mid-PUT), so a pooled one,
    /// with lines in the journal to commit, is not closed for it.
    async fn open_from(&self, pooled: bool) -> Result<SessionClient, Response<Body>> {
        let permit = self.job_slot().await.ok_or_else(reply::busy)?;
        let target = self.target();
        let reused = if pooled {
            self.state.pool.take(&target.pool_key())
        } else {
            None
        };
        let mut s = match reused {
            Some(s) => s,
            None => SessionClient::open(target)
                .await
                .map_err(|e| reply::session_error(&e))?,
        };
        s.permit = Some(permit);
        Ok(s)
    }

    /// A new session with no `--jobs` slot (for locks).
    async fn open_session(&self) -> Result<SessionClient, Response<Body>> {
        SessionClient::open(self.target())
            .await
            .map_err(|e| reply::session_error(&e))
    }

    /// `s` answered its request cleanly: keep it for the next one.
    fn release(&self, s: SessionClient) {
        self.state.pool.put(s);
    }

    fn target(&self) -> Target<'_> {
        let server = self.ep.server.as_str();
        Target {
            dir: &self.dir,
            server,
            // The unversioned endpoint has no client; as git-annex, the
            // server stands in for it.
            client: self.ep.client.as_deref().unwrap_or(server),
            // The unversioned endpoint speaks the newest protocol inside,
            // so a missing key is told from an empty one.
            version: self.ep.version.unwrap_or(annex::p2p::MAX_PROTOCOL_VERSION),
            bypass: self.ep.bypass.clone(),
            rules: Rules::from(self.mode),
            cluster_jobs: self.state.limits.cluster_jobs,
        }
    }

    async fn job_slot(&self) -> Option<OwnedSemaphorePermit> {
        job_slot(self.state).await
    }
}

/// Waits for a `--jobs` slot, unless too many wait already.
async fn job_slot(state: &State) -> Option<OwnedSemaphorePermit> {
    let jobs = Arc::clone(&state.jobs);
    if let Ok(p) = Arc::clone(&jobs).try_acquire_owned() {
        return Some(p);
    }
    let waiting = &state.waiting;
    if waiting.fetch_add(1, Ordering::AcqRel) >= state.limits.queue {
        waiting.fetch_sub(1, Ordering::AcqRel);
        return None;
    }
    let slot = tokio::time::timeout(state.limits.idle_timeout, jobs.acquire_owned()).await;
    waiting.fetch_sub(1, Ordering::AcqRel);
    slot.ok()?.ok()
}

async fn handle(
    req: hyper::Request<Incoming>,
    peer: forge::Peer,
    state: Arc<State>,
    files: Option<sendfile::FileSlot>,
) -> Result<Response<Body>, Infallible> {
    let (parts, body) = req.into_parts();
    if let Some(g) = git::GitRequest::parse(&parts.method, parts.uri.path(), parts.uri.query()) {
        return Ok(git::serve(g, parts, body, peer, state).await);
    }
    if let Some(r) = operations(&parts, &state) {
        return Ok(r);
    }
    let ep = match route::parse(&parts.method, parts.uri.path(), parts.uri.query()) {
        Ok(ep) => ep,
        Err(e) => return Ok(reply::route_error(&e)),
    };
    // One span per request; its outcome is logged when it is answered.
    let span = tracing::info_span!(
        "p2phttp",
        op = ep.op.name(),
        server = %ep.server,
        key = ep.op.key().map(tracing::field::display),
    );
    let started = std::time::Instant::now();
    let decided =
        span.in_scope(|| forge::authorize(&state.auth, peer, &parts.headers, ep.op.class()));
    let response = match decided {
        Ok(mode) => match repository(&state, parts.uri.path(), &ep.server).await {
            None => reply::empty(hyper::StatusCode::NOT_FOUND),
            Some(dir) => {
                let r = Request {
                    state: &state,
                    dir,
                    ep: &ep,
                    mode,
                    files,
                };
                dispatch(&r, &parts.headers, body)
                    .instrument(span.clone())
                    .await
            }
        },
        Err(d) => reply::denied(d),
    };
    let status = response.status().as_u16();
    state.metrics.count(ep.op.name(), status);
    if status >= 500 && state.uuid.as_deref().is_some_and(|u| u != ep.server) {
        state.metrics.node_failures.fetch_add(1, Ordering::Relaxed);
    }
    let bytes = response
        .headers()
        .get(reply::DATA_LENGTH)
        .and_then(|v| v.to_str().ok());
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    span.in_scope(|| tracing::info!(status, bytes, elapsed_ms, "request done"));
    Ok(response)
}

/// The repository a request is for: the one served, or with
/// `--directory` the one its path or server UUID names.
async fn repository(state: &State, path: &str, server: &str) -> Option<PathBuf> {
    let Some(repos) = &state.repos else {
        return Some(state.dir.clone());
    };
    let repos = Arc::clone(repos);
    let (prefix, server) = (directory::prefix_of(path), server.to_owned());
    // A walk of the roots blocks.
    tokio::task::spawn_blocking(move || repos.find(&prefix, &server))
        .await
        .ok()
        .flatten()
}

/// The health and metrics endpoints, which need no auth and no session.
fn operations(parts: &hyper::http::request::Parts, state: &State) -> Option<Response<Body>> {
    if parts.method != hyper::Method::GET && parts.method != hyper::Method::HEAD {
        return None;
    }
    match parts.uri.path() {
        metrics::HEALTH_PATH => Some(reply::text(hyper::StatusCode::OK, "ok\n")),
        metrics::METRICS_PATH => {
            let text = state.metrics.render(state.pool.idle_count());
            Some(reply::text(hyper::StatusCode::OK, text))
        }
        _ => None,
    }
}

async fn dispatch(r: &Request<'_>, headers: &hyper::HeaderMap, body: Incoming) -> Response<Body> {
    let header = |name| headers.get(name).map(|v| v.to_str().unwrap_or_default());
    let data_length = header(reply::DATA_LENGTH).map(|v| v.trim().parse::<u64>().ok());
    match r.ep.op.clone() {
        Op::Get {
            key,
            file,
            offset,
            head,
        } => {
            let a = transfer::GetArgs {
                key,
                file,
                offset,
                head,
                // Only the endpoint for plain HTTP clients takes a Range.
                range: header(hyper::header::RANGE.as_str())
                    .filter(|_| r.ep.version.is_none())
                    .map(str::to_owned),
            };
            transfer::get(r, a).await
        }
        Op::CheckPresent(key) => requests::check_present(r, key).await,
        Op::Remove(key) => requests::remove(r, key, None).await,
        Op::RemoveBefore { key, timestamp } => requests::remove(r, key, Some(timestamp)).await,
        Op::GetTimestamp => requests::timestamp(r).await,
        Op::PutOffset(key) => requests::put_offset(r, key).await,
        Op::LockContent(key) => locks::lock_content(r, key).await,
        Op::KeepLocked(id) => locks::keep_locked(r, &id, body).await,
        Op::Put {
            key,
            file,
            offset,
            data_present,
        } => {
            let len = match data_length {
                Some(Some(n)) => n,
                Some(None) => {
                    return reply::text(
                        hyper::StatusCode::BAD_REQUEST,
                        "Error parsing header X-git-annex-data-length failed: X-git-annex-data-length parse error",
                    )
                }
                None => {
                    return reply::text(
                        hyper::StatusCode::BAD_REQUEST,
                        "Header X-git-annex-data-length is required",
                    )
                }
            };
            let a = transfer::PutArgs {
                key,
                file,
                offset,
                data_present,
                len,
            };
            transfer::put(r, a, body).await
        }
    }
}
