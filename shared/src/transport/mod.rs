//! Ways to reach another repository's git-annex-shell and speak the P2P
//! protocol with it: a local path ([`local`]) or an ssh URL ([`ssh`]); and
//! peers at P2P addresses ([`p2paddr`]: tor through [`socks`], generic P2P
//! networks), which want an auth token ([`auth`]) and are reached as
//! nodes by [`peer`].
//!
//! Local paths and ssh spawn a child whose stdin/stdout carry the
//! protocol, as does a `p2p-annex::` network's program; a child's stderr
//! is drained concurrently (a child blocked on a full stderr pipe would
//! stall the protocol) into a bounded tail that errors carry, so "why did
//! the node go away" reaches whoever sees the error. A tor node is a
//! socket, with no child and no stderr.

pub mod auth;
pub mod local;
pub mod location;
mod node;
pub mod p2paddr;
mod peer;
pub mod socks;
pub mod ssh;
pub mod url;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::p2p::{ConnError, Connection, Message, MAX_PROTOCOL_VERSION};
use crate::repo::{RemoteConfig, Repo};

pub use location::{Location, SshLocation};
pub use node::NodeConnection;
use node::StderrTail;
pub use p2paddr::{BoxRead, BoxWrite};

/// How long a node may take to finish (commit its journal) after we close
/// its stdin, before it is killed.
const CLOSE_GRACE: Duration = Duration::from_secs(30);

/// ssh's exit status when it could not reach the host.
const SSH_UNREACHABLE: i32 = 255;

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("{name}: remote has no url")]
    NoUrl { name: String },
    #[error("{name}: cannot reach {url}: {why}")]
    Unsupported {
        name: String,
        url: String,
        why: url::UrlError,
    },
    #[error("{name}: refusing ssh host or user {value:?}: it would be read as an ssh option")]
    UnsafeHost { name: String, value: String },
    #[error("{name}: refusing to pass {value:?} to git-annex-shell: not a UUID")]
    BadUuid { name: String, value: String },
    #[error("{name}: no repository at {}", path.display())]
    NoRepository { name: String, path: PathBuf },
    #[error("{name}: cannot start {program}: {source}")]
    Spawn {
        name: String,
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{name}: unable to connect{}", tail(stderr))]
    Unreachable { name: String, stderr: String },
    #[error(
        "{name}: connection closed before the P2P session started{}",
        tail(stderr)
    )]
    Closed { name: String, stderr: String },
    #[error("{name}: expected repository UUID {expected} but the remote is {found}")]
    WrongUuid {
        name: String,
        expected: String,
        found: String,
    },
    #[error("{name}: unexpected {got} while starting the P2P session")]
    Handshake { name: String, got: String },
    #[error("{name}: P2P connection failed{}", tail(stderr))]
    Connection {
        name: String,
        stderr: String,
        #[source]
        source: ConnError,
    },
    #[error("{name}: {program} failed{}", tail(stderr))]
    CommandFailed {
        name: String,
        program: String,
        stderr: String,
    },
    /// Reaching or authenticating with a node at a P2P address.
    #[error("{name}: {source}")]
    Peer {
        name: String,
        #[source]
        source: p2paddr::PeerError,
    },
    #[error("{name}: reading the auth token: {source}")]
    Creds {
        name: String,
        #[source]
        source: auth::CredsError,
    },
}

fn tail(stderr: &str) -> String {
    let t = stderr.trim();
    if t.is_empty() {
        String::new()
    } else {
        format!(": {t}")
    }
}

/// A git remote that we can reach: its name and UUID, where it is, and how
/// git-annex would be told to reach it (`annex-shell`, `annex-ssh-options`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeRemote {
    pub name: String,
    pub uuid: String,
    pub location: Location,
    /// `remote.NAME.annex-shell`: the program to run instead of
    /// git-annex-shell.
    pub annex_shell: Option<String>,
    /// `remote.NAME.annex-ssh-options`, split on whitespace as git-annex
    /// splits it.
    pub ssh_options: Vec<String>,
}

impl NodeRemote {
    /// From a remote's git config; relative local paths are taken relative
    /// to `base` (the repository holding the config).
    pub fn from_config(
        remote: &RemoteConfig,
        base: &std::path::Path,
    ) -> Result<NodeRemote, TransportError> {
        let url = remote.url().ok_or_else(|| TransportError::NoUrl {
            name: remote.name.clone(),
        })?;
        let location = Location::parse(url, base).map_err(|why| match why {
            url::UrlError::UnsafeHost { host: value }
            | url::UrlError::UnsafeUser { user: value } => TransportError::UnsafeHost {
                name: remote.name.clone(),
                value,
            },
            why => TransportError::Unsupported {
                name: remote.name.clone(),
                url: url.to_owned(),
                why,
            },
        })?;
        Ok(NodeRemote {
            name: remote.name.clone(),
            uuid: remote.annex_uuid().unwrap_or_default().to_owned(),
            location,
            annex_shell: remote
                .get("annex-shell")
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
            ssh_options: remote
                .get("annex-ssh-options")
                .map(|o| o.split_whitespace().map(str::to_owned).collect())
                .unwrap_or_default(),
        })
    }
}

/// What the caller decides about how children are run.
#[derive(Clone, Debug)]
pub struct ConnectOptions {
    /// git-annex-shell for local paths when the remote names no
    /// `annex-shell`: normally our own binary.
    pub local_shell: PathBuf,
    /// Copy the child's stderr to ours as it comes (as git-annex lets its
    /// children's stderr through), besides keeping its tail for errors.
    pub forward_stderr: bool,
    /// The ssh program (`ssh` from PATH unless told otherwise).
    pub ssh: PathBuf,
    /// The git directory of the repository connecting (the proxy): its
    /// `annex/creds/` holds the tokens for nodes at P2P addresses. Without
    /// it only `GIT_ANNEX_P2P_AUTHTOKEN` is tried.
    pub git_dir: Option<PathBuf>,
    /// That repository's `annexproxy.torsocks`, where tor's SOCKS proxy is.
    pub tor_socks: Option<String>,
    /// That repository's UUID, which [`discover_uuid`] sends in `AUTH`.
    pub local_uuid: Option<String>,
}

impl ConnectOptions {
    pub fn new(local_shell: PathBuf) -> ConnectOptions {
        ConnectOptions {
            local_shell,
            forward_stderr: false,
            ssh: PathBuf::from(ssh::SSH),
            git_dir: None,
            tor_socks: None,
            local_uuid: None,
        }
    }

    /// Connecting on behalf of `repo`: its creds, tor proxy and UUID.
    pub fn with_repo(mut self, repo: &Repo) -> ConnectOptions {
        self.git_dir = Some(repo.git_dir().to_owned());
        self.tor_socks = repo.config_get(socks::SOCKS_CONFIG);
        self.local_uuid = repo.uuid();
        self
    }
}

/// Open a P2P session with `node`: spawn the transport's command (or, for
/// a P2P address, connect and send `AUTH` with our token), check that the
/// node is the repository we expect (AUTH-SUCCESS with its UUID) and agree
/// on a version no higher than `max_version`.
pub async fn connect(
    node: &NodeRemote,
    my_uuid: &str,
    max_version: u32,
    opts: &ConnectOptions,
) -> Result<NodeConnection, TransportError> {
    check_uuid_word(&node.name, my_uuid)?;
    if !node.uuid.is_empty() {
        check_uuid_word(&node.name, &node.uuid)?;
    }
    let cmd = match &node.location {
        Location::Local(path) => local::p2pstdio_command(node, path, my_uuid, opts)?,
        Location::Ssh(at) => ssh::p2pstdio_command(node, at, my_uuid, &opts.ssh)?,
        Location::P2p(addr) => {
            let (mut nc, token) = peer::open(node, addr, opts).await?;
            let greeted = match peer::authenticate(&mut nc, addr, my_uuid, &token).await {
                Ok(found) => check_greeting(&nc, &node.uuid, found),
                Err(e) => Err(e),
            };
            return finish_handshake(nc, greeted, max_version, false).await;
        }
    };
    let mut child = spawn(&node.name, cmd)?;
    let stderr = StderrTail::start(&mut child, opts.forward_stderr);
    let stdout = child.stdout.take().expect("stdout was piped");
    let pipe_out = std::os::fd::AsFd::as_fd(&stdout).try_clone_to_owned().ok();
    let stdin = child.stdin.take().expect("stdin was piped");
    let pipe_in = std::os::fd::AsFd::as_fd(&stdin).try_clone_to_owned().ok();
    if let Some(fd) = &pipe_in {
        // Bodies spliced in move a pipe's worth per call: 1 MiB rather than
        // 64 KiB is a sixteenth of the calls and wake-ups (refused without
        // permission: no harm).
        let _ = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETPIPE_SZ(1 << 20));
    }
    let stdout: BoxRead = Box::new(stdout);
    let stdin: BoxWrite = Box::new(stdin);
    let mut nc = NodeConnection {
        conn: Connection::new(stdout, stdin),
        version: 0,
        name: node.name.clone(),
        child: Some(child),
        stderr,
        pipe_out,
        pipe_in,
    };
    let greeted = greeting(&mut nc, &node.uuid).await;
    let is_ssh = matches!(node.location, Location::Ssh(_));
    finish_handshake(nc, greeted, max_version, is_ssh).await
}

/// After the node's greeting: agree on the version, or take the node
/// down and say why it failed.
async fn finish_handshake(
    mut nc: NodeConnection,
    greeted: Result<(), Handshake>,
    max_version: u32,
    is_ssh: bool,
) -> Result<NodeConnection, TransportError> {
    let agreed = match greeted {
        Ok(()) => agree_version(&mut nc, max_version).await,
        Err(e) => Err(e),
    };
    match agreed {
        Ok(v) => {
            nc.version = v;
            Ok(nc)
        }
        Err(e) => {
            let name = nc.name.clone();
            let (code, stderr) = nc.close_with_stderr().await;
            Err(match e {
                Handshake::Eof if is_ssh && code == Some(SSH_UNREACHABLE) => {
                    TransportError::Unreachable { name, stderr }
                }
                Handshake::Eof => TransportError::Closed { name, stderr },
                Handshake::Failed(err) => err,
            })
        }
    }
}

enum Handshake {
    Eof,
    Failed(TransportError),
}

/// A git-annex-shell speaks first: `AUTH-SUCCESS` with its UUID.
async fn greeting(nc: &mut NodeConnection, expected: &str) -> Result<(), Handshake> {
    match nc.conn.read_message().await {
        Ok(Some(Message::AuthSuccess(u))) => check_greeting(nc, expected, u),
        Ok(None) | Err(ConnError::UnexpectedEof) => Err(Handshake::Eof),
        Ok(Some(other)) => Err(unexpected(nc, other.verb())),
        Err(e) => Err(Handshake::Failed(nc.error(e))),
    }
}

/// The node must be the repository the remote's `annex-uuid` names (any,
/// when it names none yet).
fn check_greeting(nc: &NodeConnection, expected: &str, found: String) -> Result<(), Handshake> {
    if expected.is_empty() || found == expected {
        Ok(())
    } else {
        Err(Handshake::Failed(TransportError::WrongUuid {
            name: nc.name.clone(),
            expected: expected.to_owned(),
            found,
        }))
    }
}

async fn agree_version(nc: &mut NodeConnection, max_version: u32) -> Result<u32, Handshake> {
    let want = max_version.min(MAX_PROTOCOL_VERSION);
    if let Err(e) = nc.conn.write_message(&Message::Version(want)).await {
        return Err(Handshake::Failed(nc.error(e)));
    }
    match nc.conn.read_message().await {
        Ok(Some(Message::Version(v))) => Ok(v.min(want)),
        // A server too old for VERSION answers ERROR and speaks version 0.
        Ok(Some(Message::Error(_))) => Ok(0),
        Ok(None) | Err(ConnError::UnexpectedEof) => Err(Handshake::Eof),
        Ok(Some(other)) => Err(unexpected(nc, other.verb())),
        Err(e) => Err(Handshake::Failed(nc.error(e))),
    }
}

fn unexpected(nc: &NodeConnection, verb: &str) -> Handshake {
    Handshake::Failed(TransportError::Handshake {
        name: nc.name.clone(),
        got: verb.to_owned(),
    })
}

/// UUIDs go onto command lines (ssh runs them through a shell), so only
/// what a UUID can contain is let through.
fn check_uuid_word(name: &str, uuid: &str) -> Result<(), TransportError> {
    if !uuid.is_empty() && crate::uuids::is_uuid_word(uuid) {
        Ok(())
    } else {
        Err(TransportError::BadUuid {
            name: name.to_owned(),
            value: uuid.to_owned(),
        })
    }
}

fn spawn(name: &str, mut cmd: Command) -> Result<Child, TransportError> {
    let program = cmd.as_std().get_program().to_string_lossy().into_owned();
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    retry_busy(|| cmd.spawn()).map_err(|source| TransportError::Spawn {
        name: name.to_owned(),
        program,
        source,
    })
}

/// Start a program, retrying on ETXTBSY: a program just written (a shell
/// being upgraded, a test's script) can still be open for writing in a
/// process forked meanwhile, until that one execs; it passes in moments.
pub(crate) fn retry_busy<T>(mut start: impl FnMut() -> std::io::Result<T>) -> std::io::Result<T> {
    let mut attempts = 0;
    loop {
        match start() {
            Err(e) if e.raw_os_error() == Some(nix::libc::ETXTBSY) && attempts < 50 => {
                attempts += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            other => return other,
        }
    }
}

/// The UUID of the repository a remote points at, found the way git-annex
/// finds it for a remote it has not cached one for: a local repository's
/// config, `git-annex-shell configlist` over ssh, or the `AUTH-SUCCESS` a
/// P2P peer answers our `AUTH` with. `None` when the repository is not
/// (yet) a git-annex repository.
pub fn discover_uuid(
    node: &NodeRemote,
    opts: &ConnectOptions,
) -> Result<Option<String>, TransportError> {
    match &node.location {
        Location::Local(path) => local::read_uuid(node, path),
        Location::Ssh(at) => ssh::configlist_uuid(node, at, &opts.ssh),
        Location::P2p(addr) => peer::discover_uuid(node, addr, opts).map(Some),
    }
}

#[cfg(test)]
#[path = "peer_tests.rs"]
mod peer_tests;
#[cfg(test)]
mod tests;
