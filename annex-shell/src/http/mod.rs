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
pub mod directory;
pub mod forge;
pub mod git;
mod idle;
mod locks;
mod reply;
mod requests;
pub mod route;
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
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 512,
            jobs: 8,
            queue: 256,
            header_timeout: Duration::from_secs(20),
            idle_timeout: Duration::from_secs(120),
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
}

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
}

/// Listen and serve until killed; `ready` hears the bound address (or
/// the socket's path).
pub async fn serve(opts: Options, ready: impl FnOnce(String)) -> Result<(), HttpError> {
    let repos = if opts.directory.is_empty() {
        check_repo(&opts.dir)?;
        None
    } else {
        let roots = opts.directory.clone();
        let found = tokio::task::spawn_blocking(move || {
            directory::Repos::new(&roots, directory::RESCAN_EVERY)
        })
        .await
        .expect("the first walk of --directory does not panic")?;
        Some(Arc::new(found))
    };
    let tls = opts.tls.as_ref().map(tls::acceptor).transpose()?;
    let (addr, socket) = (opts.addr, opts.socket);
    let state = Arc::new(State {
        dir: opts.dir,
        auth: opts.auth,
        jobs: Arc::new(Semaphore::new(opts.limits.jobs.max(1))),
        waiting: AtomicUsize::new(0),
        locks: locks::Locks::new(opts.locked_files, opts.lock_retention),
        limits: opts.limits,
        tls,
        repos,
        forge_headers: opts.forge_headers,
    });
    let connections = Arc::new(Semaphore::new(state.limits.max_connections.max(1)));
    if let Some(path) = socket {
        return unix::serve(&path, state, connections, ready).await;
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| HttpError::Bind { addr, source })?;
    let bound = listener.local_addr().map_err(HttpError::Accept)?;
    tracing::info!(%bound, "p2phttp listening");
    ready(bound.to_string());
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
        match Arc::clone(&connections).try_acquire_owned() {
            Ok(slot) => {
                tokio::spawn(accepted(stream, peer, Arc::clone(&state), slot));
            }
            Err(_) => refuse_busy(stream),
        }
    }
}

fn check_repo(dir: &Path) -> Result<(), HttpError> {
    let bad = |why: String| HttpError::Repo {
        dir: dir.to_owned(),
        why,
    };
    let repo = annex::repo::Repo::open(dir).map_err(|e| bad(e.to_string()))?;
    repo.uuid()
        .map(|_| ())
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
        None => connection(stream, peer(false), Arc::clone(&state), slot).await,
        Some(acceptor) => {
            let deadline = state.limits.header_timeout;
            if let Some(tls) = tls::handshake(acceptor, stream, deadline).await {
                connection(tls, peer(true), Arc::clone(&state), slot).await;
            }
        }
    }
}

async fn connection<S>(stream: S, peer: forge::Peer, state: Arc<State>, _slot: OwnedSemaphorePermit)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let activity = idle::Activity::new();
    let io = hyper_util::rt::TokioIo::new(idle::Watched::new(stream, activity.clone()));
    let svc_state = Arc::clone(&state);
    let service = hyper::service::service_fn(move |req| handle(req, peer, Arc::clone(&svc_state)));
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(state.limits.header_timeout)
        .serve_connection(io, service);
    let served = idle::watch(conn, activity, state.limits.idle_timeout).await;
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
}

impl Request<'_> {
    /// The API version (0 for the unversioned endpoint).
    fn api_version(&self) -> u32 {
        self.ep.version.unwrap_or(0)
    }

    /// A session holding a `--jobs` slot.
    async fn open(&self) -> Result<SessionClient, Response<Body>> {
        let permit = self.job_slot().await.ok_or_else(reply::busy)?;
        let mut s = self.open_session().await?;
        s.permit = Some(permit);
        Ok(s)
    }

    /// A session with no `--jobs` slot (for locks).
    async fn open_session(&self) -> Result<SessionClient, Response<Body>> {
        let server = self.ep.server.as_str();
        let target = Target {
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
        };
        SessionClient::open(target)
            .await
            .map_err(|e| reply::session_error(&e))
    }

    /// Waits for a job slot, unless too many wait already.
    async fn job_slot(&self) -> Option<OwnedSemaphorePermit> {
        let jobs = Arc::clone(&self.state.jobs);
        if let Ok(p) = Arc::clone(&jobs).try_acquire_owned() {
            return Some(p);
        }
        let waiting = &self.state.waiting;
        if waiting.fetch_add(1, Ordering::AcqRel) >= self.state.limits.queue {
            waiting.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        let slot = tokio::time::timeout(self.state.limits.idle_timeout, jobs.acquire_owned()).await;
        waiting.fetch_sub(1, Ordering::AcqRel);
        slot.ok()?.ok()
    }
}

async fn handle(
    req: hyper::Request<Incoming>,
    peer: forge::Peer,
    state: Arc<State>,
) -> Result<Response<Body>, Infallible> {
    let (parts, body) = req.into_parts();
    if let Some(g) = git::GitRequest::parse(&parts.method, parts.uri.path(), parts.uri.query()) {
        return Ok(git::serve(g, parts, body, peer, state).await);
    }
    let ep = match route::parse(&parts.method, parts.uri.path(), parts.uri.query()) {
        Ok(ep) => ep,
        Err(e) => return Ok(reply::route_error(&e)),
    };
    let span = tracing::info_span!("p2phttp", op = ep.op.name(), server = %ep.server);
    let _entered = span.enter();
    let mode = match forge::authorize(&state.auth, peer, &parts.headers, ep.op.class()) {
        Ok(m) => m,
        Err(d) => return Ok(reply::denied(d)),
    };
    drop(_entered);
    let Some(dir) = repository(&state, parts.uri.path(), &ep.server).await else {
        return Ok(reply::empty(hyper::StatusCode::NOT_FOUND));
    };
    let data_length = parts
        .headers
        .get(reply::DATA_LENGTH)
        .map(|v| v.to_str().ok().and_then(|s| s.trim().parse::<u64>().ok()));
    let r = Request {
        state: &state,
        dir,
        ep: &ep,
        mode,
    };
    Ok(dispatch(&r, data_length, body).await)
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

async fn dispatch(
    r: &Request<'_>,
    data_length: Option<Option<u64>>,
    body: Incoming,
) -> Response<Body> {
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
