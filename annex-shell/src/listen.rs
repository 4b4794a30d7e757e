//! `annexproxy serve-p2p`: a listener for P2P peers, the part of git-annex's
//! remotedaemon that serves tor and generic P2P networks
//! (`RemoteDaemon/Transport/{Tor,P2PGeneric}.hs`).
//!
//! Each connection must first `AUTH <uuid> <token>` with a token from
//! `annex/creds/p2pauth` (`AUTH-FAILURE` lets it try again, anything else
//! gets `ERROR`); then it gets the same session git-annex-shell p2pstdio
//! serves, read-write, CONNECT included.
//!
//! Connections run on threads of their own, each with a small runtime:
//! the session's repository work (locks, fsync, git) blocks, and must not
//! hold up other peers. At most [`MAX_CONNECTIONS`] sessions run at once,
//! as in git-annex; further authenticated peers wait for one to end.
//!
//! Anyone who can reach the socket can connect, so what a peer holds before
//! it has authenticated is bounded apart: it has [`AUTH_TIMEOUT`] from
//! connecting to a good `AUTH` (then it is closed), at most
//! [`MAX_UNAUTHENTICATED`] such peers are accepted at once (further ones
//! wait in the listen queue), and only an authenticated peer takes one of
//! the session slots. Idle connections can then delay the owner's peers,
//! but not shut them out.

use std::net::SocketAddr;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use annex::p2p::{Connection, Message};
use annex::repo::Repo;
use annex::transport::auth::{AuthToken, Creds};
use annex::transport::p2paddr::P2pAddress;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::backend::local::Local;
use crate::restrict::Rules;
use crate::session::{ServeError, Session};

pub const MAX_CONNECTIONS: usize = 100;

/// Peers accepted at once that have not authenticated yet. Each costs a
/// thread until it authenticates or its [`AUTH_TIMEOUT`] runs out.
pub const MAX_UNAUTHENTICATED: usize = 128;

/// Time from accepting a connection to its successful `AUTH`.
pub const AUTH_TIMEOUT: Duration = Duration::from_secs(30);

/// What the peers of one listener may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Sessions (authenticated peers) at once.
    pub max_connections: usize,
    /// Peers at once that have not authenticated yet.
    pub max_unauthenticated: usize,
    /// Time from connecting to a successful `AUTH`.
    pub auth_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: MAX_CONNECTIONS,
            max_unauthenticated: MAX_UNAUTHENTICATED,
            auth_timeout: AUTH_TIMEOUT,
        }
    }
}

/// Where to listen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Unix(PathBuf),
    /// Loopback only: the protocol is not encrypted.
    Tcp(SocketAddr),
}

#[derive(Clone, Debug)]
pub struct ListenOptions {
    pub endpoint: Endpoint,
    /// Accept the tokens stored for this address; `None`: those stored
    /// without one (tor's).
    pub address: Option<P2pAddress>,
    pub limits: Limits,
    /// Serve this proxied remote or cluster (a name `proxy.log` gives it,
    /// or its UUID) instead of the repository itself: the listener of a
    /// tor hidden service for a cluster. git-annex's P2P protocol has no
    /// way to pick a proxied remote after AUTH, so each needs a listener.
    pub serve_for: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("{addr} is not a loopback address: the P2P protocol is not encrypted (put tor or an ssh tunnel in front)")]
    NotLoopback { addr: SocketAddr },
    #[error("{} is in use by a running listener", path.display())]
    SocketInUse { path: PathBuf },
    #[error("cannot listen on {what}: {source}")]
    Bind {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("accepting a connection: {0}")]
    Accept(#[source] std::io::Error),
}

/// What a connected socket is, for either kind of endpoint.
enum Stream {
    Unix(std::os::unix::net::UnixStream),
    Tcp(std::net::TcpStream),
}

enum Listener {
    Unix(std::os::unix::net::UnixListener),
    Tcp(std::net::TcpListener),
}

impl Listener {
    fn bind(endpoint: &Endpoint) -> Result<(Listener, String), ListenError> {
        match endpoint {
            Endpoint::Tcp(addr) => {
                if !addr.ip().is_loopback() {
                    return Err(ListenError::NotLoopback { addr: *addr });
                }
                let l = std::net::TcpListener::bind(addr).map_err(|source| ListenError::Bind {
                    what: addr.to_string(),
                    source,
                })?;
                let bound = l.local_addr().map_err(ListenError::Accept)?;
                Ok((Listener::Tcp(l), bound.to_string()))
            }
            Endpoint::Unix(path) => {
                remove_stale_socket(path)?;
                let bind_err = |source| ListenError::Bind {
                    what: path.display().to_string(),
                    source,
                };
                let l = std::os::unix::net::UnixListener::bind(path).map_err(bind_err)?;
                // Anyone may connect, as with git-annex's socket: tor runs
                // as a user of its own, and a peer must AUTH with a token
                // before it can do anything.
                open_to_all(path).map_err(bind_err)?;
                Ok((Listener::Unix(l), path.display().to_string()))
            }
        }
    }

    fn accept(&self) -> std::io::Result<Stream> {
        match self {
            Listener::Unix(l) => l.accept().map(|(s, _)| Stream::Unix(s)),
            Listener::Tcp(l) => l.accept().map(|(s, _)| Stream::Tcp(s)),
        }
    }
}

/// Adds read and write for group and others to the socket's mode.
fn open_to_all(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)?.permissions().mode();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode | 0o066))
}

/// A socket file left by a listener that is gone is removed, as git-annex
/// does; one that still answers is someone's, and kept.
fn remove_stale_socket(path: &Path) -> Result<(), ListenError> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(ListenError::SocketInUse {
                    path: path.to_owned(),
                });
            }
            std::fs::remove_file(path).map_err(|source| ListenError::Bind {
                what: path.display().to_string(),
                source,
            })
        }
        _ => Ok(()),
    }
}

/// Counts running connections; `acquire` waits while there are `max`.
struct Slots {
    max: usize,
    used: Mutex<usize>,
    freed: Condvar,
}

impl Slots {
    fn new(max: usize) -> Arc<Slots> {
        Arc::new(Slots {
            max: max.max(1),
            used: Mutex::new(0),
            freed: Condvar::new(),
        })
    }

    fn acquire(self: &Arc<Self>) -> SlotGuard {
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        while *used >= self.max {
            used = self.freed.wait(used).unwrap_or_else(|p| p.into_inner());
        }
        *used += 1;
        SlotGuard(Arc::clone(self))
    }
}

struct SlotGuard(Arc<Slots>);

impl Drop for SlotGuard {
    fn drop(&mut self) {
        let mut used = self.0.used.lock().unwrap_or_else(|p| p.into_inner());
        *used -= 1;
        self.0.freed.notify_one();
    }
}

/// Listen and serve until killed. `ready` is told where we listen (the
/// bound port, when 0 was asked for) once peers can connect.
pub fn serve(
    dir: &Path,
    opts: &ListenOptions,
    ready: impl FnOnce(&str),
) -> Result<(), ListenError> {
    let (listener, bound) = Listener::bind(&opts.endpoint)?;
    ready(&bound);
    let sessions = Slots::new(opts.limits.max_connections);
    let unauthenticated = Slots::new(opts.limits.max_unauthenticated);
    loop {
        // A slot frees when a peer gives up, runs out of AUTH time, or
        // authenticated and got a session slot.
        let pending = unauthenticated.acquire();
        let stream = match listener.accept() {
            Ok(s) => s,
            // A peer that hung up before we got to it, or a momentary
            // shortage of descriptors, must not stop the listener.
            Err(e) if is_transient(&e) => continue,
            Err(e) => return Err(ListenError::Accept(e)),
        };
        let peer = Peer {
            dir: dir.to_owned(),
            address: opts.address.clone(),
            serve_for: opts.serve_for.clone(),
            auth_timeout: opts.limits.auth_timeout,
            pending,
            sessions: Arc::clone(&sessions),
        };
        let spawned = std::thread::Builder::new()
            .name("p2p-peer".into())
            .spawn(move || {
                if let Err(e) = serve_connection(stream, peer) {
                    if !e.is_hangup() {
                        eprintln!("annexproxy serve-p2p: {e}");
                    }
                }
            });
        if let Err(e) = spawned {
            eprintln!("annexproxy serve-p2p: cannot start a thread for a peer: {e}");
        }
    }
}

/// One accepted connection and what it may take.
struct Peer {
    dir: PathBuf,
    address: Option<P2pAddress>,
    serve_for: Option<String>,
    auth_timeout: Duration,
    /// Held until the peer has authenticated and has a session slot.
    pending: SlotGuard,
    sessions: Arc<Slots>,
}

fn is_transient(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | Interrupted | WouldBlock
    ) || matches!(
        e.raw_os_error(),
        Some(nix::libc::EMFILE | nix::libc::ENFILE)
    )
}

fn serve_connection(stream: Stream, peer: Peer) -> Result<(), ServeError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = {
        // Sockets join the runtime's reactor as they are converted.
        let _in_runtime = runtime.enter();
        match stream {
            Stream::Unix(s) => {
                s.set_nonblocking(true)?;
                let (r, w) = tokio::net::UnixStream::from_std(s)?.into_split();
                run_peer(&runtime, Connection::new(r, w), peer)
            }
            Stream::Tcp(s) => {
                s.set_nonblocking(true)?;
                let (r, w) = tokio::net::TcpStream::from_std(s)?.into_split();
                run_peer(&runtime, Connection::new(r, w), peer)
            }
        }
    };
    // A git child of CONNECT that outlives the peer must not keep the
    // thread.
    runtime.shutdown_background();
    result
}

/// AUTH within the peer's time, then a session once a slot is free. The
/// wait for a slot blocks this thread, outside the runtime.
fn run_peer<R, W>(
    runtime: &tokio::runtime::Runtime,
    mut conn: Connection<R, W>,
    peer: Peer,
) -> Result<(), ServeError>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    let authed = runtime.block_on(async {
        let auth = authenticate(&peer.dir, &mut conn, peer.address.as_ref());
        tokio::time::timeout(peer.auth_timeout, auth).await
    });
    let authed = match authed {
        Ok(Ok(Some(a))) => a,
        // Silent, idle or gone: the connection closes.
        Ok(Ok(None)) | Err(_) => return Ok(()),
        Ok(Err(e)) => return Err(e),
    };
    let _session = peer.sessions.acquire();
    drop(peer.pending);
    runtime.block_on(serve_authenticated(authed, conn, peer.serve_for.as_deref()))
}

/// A peer whose `AUTH` was accepted, and the repository it reached.
pub struct Authenticated {
    repo: Repo,
    my_uuid: String,
    client_uuid: String,
}

/// One peer: the AUTH exchange, then the session.
pub async fn serve_peer<R, W>(
    dir: &Path,
    mut conn: Connection<R, W>,
    address: Option<&P2pAddress>,
    serve_for: Option<&str>,
) -> Result<(), ServeError>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    match authenticate(dir, &mut conn, address).await? {
        Some(authed) => serve_authenticated(authed, conn, serve_for).await,
        None => Ok(()),
    }
}

/// The AUTH exchange; `None` when the peer leaves first.
pub async fn authenticate<R, W>(
    dir: &Path,
    conn: &mut Connection<R, W>,
    address: Option<&P2pAddress>,
) -> Result<Option<Authenticated>, ServeError>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    let repo = Repo::open(dir)?;
    let my_uuid = repo.uuid().ok_or_else(|| {
        ServeError::Fatal(format!("{} is not a git-annex repository", dir.display()))
    })?;
    let creds = Creds::new(&repo.annex_dir());
    let Some(client_uuid) = await_auth(conn, &creds, address).await? else {
        return Ok(None);
    };
    Ok(Some(Authenticated {
        repo,
        my_uuid,
        client_uuid,
    }))
}

/// The session of a peer that authenticated.
pub async fn serve_authenticated<R, W>(
    authed: Authenticated,
    conn: Connection<R, W>,
    serve_for: Option<&str>,
) -> Result<(), ServeError>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    let Authenticated {
        repo,
        my_uuid,
        client_uuid,
    } = authed;
    // The session's first words are our AUTH-SUCCESS (the proxied
    // remote's or the cluster's UUID when serving one of them).
    let Some(name) = serve_for else {
        let store = repo.store();
        let local = Local::new(repo, store, my_uuid, client_uuid);
        return Session::new(conn, local, Rules::OPEN).run().await;
    };
    let served = match resolve_served(&repo, &my_uuid, name)? {
        Target::Node(node) => {
            crate::proxy::relay_session(conn, &repo, my_uuid, node, Rules::OPEN, false).await
        }
        Target::Cluster(uuid) => {
            crate::cluster::gateway_session(conn, repo, uuid, Rules::OPEN).await
        }
        Target::Special(remote) => {
            crate::special::serve_session(conn, &repo, remote, Rules::OPEN).await
        }
    };
    // Whatever the back-end: a request it refused failed inside the
    // session, which went on; what ends the session comes back as it is
    // (a node lost, the client's connection), and a client that hung up
    // is no error.
    served.or_else(|e| if e.is_hangup() { Ok(()) } else { Err(e) })
}

enum Target {
    Node(annex::transport::NodeRemote),
    Cluster(String),
    Special(crate::special::SpecialRemote),
}

/// What `--for NAME` names, as p2pstdio with `--uuid` would serve it.
fn resolve_served(repo: &Repo, my_uuid: &str, name: &str) -> Result<Target, ServeError> {
    let served = crate::builtins::served_remotes(repo, my_uuid);
    let Some(s) = served.iter().find(|s| s.name == name || s.uuid == name) else {
        let mut names: Vec<&str> = served.iter().map(|s| s.name.as_str()).collect();
        names.sort_unstable();
        return Err(ServeError::Fatal(format!(
            "this repository serves no proxied remote or cluster named {name:?} (it serves: {})",
            if names.is_empty() {
                "none".to_owned()
            } else {
                names.join(", ")
            }
        )));
    };
    match crate::proxy::select(repo, my_uuid, &s.uuid) {
        Ok(crate::proxy::Selection::Node(node)) => Ok(Target::Node(node)),
        Ok(crate::proxy::Selection::Cluster(uuid)) => Ok(Target::Cluster(uuid)),
        Ok(crate::proxy::Selection::Special(remote)) => Ok(Target::Special(remote)),
        Ok(crate::proxy::Selection::Unserved(e)) => Err(ServeError::Fatal(e.to_string())),
        Ok(_) => Err(ServeError::Fatal(format!("{name}: no longer served"))),
        Err(e) => Err(ServeError::Fatal(e.to_string())),
    }
}

/// Check `--for NAME` before listening, so a typo fails at once.
pub fn check_served(dir: &Path, name: &str) -> Result<(), ServeError> {
    let repo = Repo::open(dir)?;
    let my_uuid = repo.uuid().ok_or_else(|| {
        ServeError::Fatal(format!("{} is not a git-annex repository", dir.display()))
    })?;
    resolve_served(&repo, &my_uuid, name).map(|_| ())
}

/// Reads messages until a valid `AUTH`; returns the peer's UUID, or `None`
/// when it leaves first. Tokens are read again for each try, so a token
/// added or removed counts from the next connection attempt on.
async fn await_auth<R, W>(
    conn: &mut Connection<R, W>,
    creds: &Creds,
    address: Option<&P2pAddress>,
) -> Result<Option<String>, ServeError>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    loop {
        let msg = match conn.read_message().await {
            Ok(Some(m)) => m,
            Ok(None) => return Ok(None),
            Err(e) if e.is_recoverable() => {
                conn.write_message(&Message::Error("unknown command".into()))
                    .await?;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        match msg {
            Message::Auth { uuid, token } => {
                let allowed = creds
                    .allowed(address)
                    .map_err(|e| ServeError::Fatal(e.to_string()))?;
                let ok = AuthToken::parse(&token).is_some_and(|t| allowed.allows(&t));
                if ok {
                    return Ok(Some(uuid));
                }
                conn.write_message(&Message::AuthFailure).await?;
            }
            // As everywhere in the protocol: the peer gave up.
            Message::Error(_) => return Ok(None),
            _ => {
                conn.write_message(&Message::Error("unexpected command".into()))
                    .await?
            }
        }
    }
}

#[cfg(test)]
#[path = "listen_tests.rs"]
mod tests;
