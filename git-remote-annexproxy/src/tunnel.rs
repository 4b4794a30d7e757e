//! `connect`: open a P2P session with git-annex-shell and tunnel one git
//! service through it with `CONNECT`.
//!
//! The session is the one git-annex's own helpers (git-remote-tor-annex,
//! git-remote-p2p-annex) speak: wait for `AUTH-SUCCESS`, send no `VERSION`
//! (protocol 0 is all `CONNECT` needs), send `CONNECT <service>`, then git's
//! bytes go up as `DATA n` + bytes and the service's come down the same way,
//! until the server reports the service's exit status with `CONNECTDONE n`,
//! which we echo back, as they do.
//!
//! Both directions run at once: the server may be writing while git is
//! still writing to us (pack data one way, progress the other), and a
//! half-duplex relay could deadlock with both sides blocked on full pipes.
//! The one connection is therefore split into a reading half and a writing
//! half over the two pipes of the transport.
//!
//! A P2P address (tor, p2p-annex) is reached as git-annex's helpers reach
//! it: through the SOCKS proxy or the network's program, and the session
//! starts with our `AUTH` rather than the server's unprompted
//! `AUTH-SUCCESS`.
//!
//! When git closes our stdin nothing is sent: git-annex's relay takes a
//! client `CONNECTDONE` as "stop now", and git closes its end in the middle
//! of a push (after the pack, before the status report).

use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use annex::p2p::{ConnError, Connection, Message, Service};
use annex::transport::auth::{self, AuthToken, Creds, CredsError};
use annex::transport::p2paddr::{self, BoxRead, BoxWrite, P2pAddress, PeerError, PeerStream};
use annex::transport::socks::{self, SocksError};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, Empty, Sink};
use tokio::process::Child;

use crate::helper::Family;
use crate::url::Target;

/// The program run on the other side (or here, for local paths).
pub const ANNEX_SHELL: &str = "git-annex-shell";

/// Variables that tie git to one repository (`git rev-parse
/// --local-env-vars`). git sets GIT_DIR for us; a git-annex-shell run on a
/// local path must not inherit it, or its git commands would act on the
/// client's repository instead of the server's.
const LOCAL_REPO_ENV: &[&str] = &[
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_CONFIG",
    "GIT_CONFIG_PARAMETERS",
    "GIT_CONFIG_COUNT",
    "GIT_OBJECT_DIRECTORY",
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_IMPLICIT_WORK_TREE",
    "GIT_GRAFT_FILE",
    "GIT_INDEX_FILE",
    "GIT_NO_REPLACE_OBJECTS",
    "GIT_REPLACE_REF_BASE",
    "GIT_PREFIX",
    "GIT_SHALLOW_FILE",
    "GIT_COMMON_DIR",
];

/// How long the transport may take to exit once the service is done.
const EXIT_GRACE: Duration = Duration::from_secs(10);

/// Largest piece of git's input sent in one `DATA`.
const CHUNK: usize = 64 * 1024;

/// Where in the session a connection ended too early.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    BeforeAuth,
    BeforeConnectDone,
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Stage::BeforeAuth => "before the P2P session started (no AUTH-SUCCESS)",
            Stage::BeforeConnectDone => "before the git service finished (no CONNECTDONE)",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TunnelError {
    #[error("could not run {program}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("connection closed {stage}")]
    Closed { stage: Stage },
    #[error("{program} ended ({status}) {stage}")]
    TransportExited {
        program: String,
        status: ExitStatus,
        stage: Stage,
    },
    #[error("expected to be served repository {expected}, but the server is {found}")]
    WrongRepository { expected: String, found: String },
    #[error("server said: {message}")]
    Remote { message: String },
    #[error("unexpected {verb} from the server {stage}")]
    Unexpected { verb: &'static str, stage: Stage },
    #[error("P2P connection failed")]
    Conn(#[from] ConnError),
    #[error("reading from git failed")]
    GitInput(#[source] std::io::Error),
    #[error("writing to git failed")]
    GitOutput(#[source] ConnError),
    #[error(transparent)]
    Peer(#[from] PeerError),
    #[error(transparent)]
    Socks(#[from] SocksError),
    #[error(transparent)]
    Creds(#[from] CredsError),
}

/// This repository's `annex.uuid`, or empty.
///
/// git-annex's helpers send an empty UUID when the repository has none (a
/// fresh clone), and git-annex-shell accepts it. An empty one is honest:
/// a made-up UUID would name a repository that does not exist, and could
/// end up in the server's logs as a phantom.
pub fn client_uuid(git_dir: Option<&Path>) -> String {
    git_dir
        .and_then(|d| annex::repo::Repo::open(d).ok())
        .and_then(|r| r.uuid())
        .unwrap_or_default()
}

/// Single-quotes `s` for the remote shell.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r#"'"'"'"#))
}

/// The command line the remote shell runs, each argument quoted as
/// git-annex quotes them.
pub fn remote_command(args: &[&str]) -> String {
    let quoted: Vec<String> = args.iter().map(|a| sh_quote(a)).collect();
    format!("{ANNEX_SHELL} {}", quoted.join(" "))
}

/// The process that runs git-annex-shell with `args` for `target` (whose
/// directory is the argument after the command): `ssh … git-annex-shell …`,
/// or git-annex-shell itself for a local path. Both are looked up on PATH.
/// `None` for a P2P address, which is no shell's.
pub fn shell_command(
    target: &Target,
    family: Family,
    command: &str,
    rest: &[&str],
) -> Option<std::process::Command> {
    let mut cmd = match target {
        Target::Ssh {
            user,
            host,
            port,
            dir,
        } => {
            let mut cmd = std::process::Command::new("ssh");
            if let Some(p) = port {
                cmd.arg("-p").arg(p.to_string());
            }
            match family {
                Family::Any => {}
                Family::Ipv4 => {
                    cmd.arg("-4");
                }
                Family::Ipv6 => {
                    cmd.arg("-6");
                }
            }
            // no tty: the session is binary
            cmd.arg("-T");
            match user {
                Some(u) => cmd.arg(format!("{u}@{host}")),
                None => cmd.arg(host),
            };
            let mut args = vec![command, dir.as_str()];
            args.extend_from_slice(rest);
            cmd.arg(remote_command(&args));
            cmd
        }
        Target::Local { path } => {
            let mut cmd = std::process::Command::new(ANNEX_SHELL);
            cmd.arg(command).arg(path).args(rest);
            cmd
        }
        Target::P2p { .. } => return None,
    };
    for var in LOCAL_REPO_ENV {
        cmd.env_remove(var);
    }
    Some(cmd)
}

/// The process that carries the session: `p2pstdio DIR CLIENTUUID`, and
/// `--uuid NODE` to be served a repository the server proxies for (or a
/// cluster it is a gateway of) rather than its own, as git-annex asks.
pub fn transport_command(
    target: &Target,
    family: Family,
    client_uuid: &str,
    node: Option<&str>,
) -> Option<std::process::Command> {
    let mut rest = vec![client_uuid];
    if let Some(u) = node {
        rest.extend(["--uuid", u]);
    }
    shell_command(target, family, "p2pstdio", &rest)
}

/// A P2P session that has started (the server said `AUTH-SUCCESS`), ready
/// to tunnel a service.
pub struct Tunnel<R, W> {
    down: Connection<R, Sink>,
    up: Connection<Empty, W>,
    server_uuid: String,
    transport: Option<(String, Child)>,
}

/// A tunnel over whichever transport the URL asked for.
pub type AnyTunnel = Tunnel<BoxRead, BoxWrite>;

/// Runs the transport for `target` and waits for the session to start.
/// `node` is the UUID of the repository behind the server to be served
/// (see [`transport_command`]); the server must then greet us with it.
/// `git_dir` is the client repository, where P2P credentials and settings
/// are looked up.
pub async fn open(
    target: &Target,
    node: Option<&str>,
    family: Family,
    client_uuid: &str,
    git_dir: Option<&Path>,
) -> Result<AnyTunnel, TunnelError> {
    if let Target::P2p { address, token } = target {
        return open_p2p(address, token.as_ref(), client_uuid, git_dir).await;
    }
    let std_cmd = transport_command(target, family, client_uuid, node)
        .expect("only P2P targets have no command");
    let program = std_cmd.get_program().to_string_lossy().into_owned();
    let mut cmd = tokio::process::Command::from(std_cmd);
    // stderr is git's: the server's messages reach the user unchanged.
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut child = cmd.spawn().map_err(|source| TunnelError::Spawn {
        program: program.clone(),
        source,
    })?;
    let stdout: BoxRead = Box::new(child.stdout.take().expect("stdout was piped"));
    let stdin: BoxWrite = Box::new(child.stdin.take().expect("stdin was piped"));
    match Tunnel::start(stdout, stdin).await {
        Ok(mut t) => {
            t.transport = Some((program, child));
            match node {
                Some(u) if t.server_uuid != u => Err(TunnelError::WrongRepository {
                    expected: u.to_owned(),
                    found: std::mem::take(&mut t.server_uuid),
                }),
                _ => Ok(t),
            }
        }
        Err(e) => Err(explain_exit(e, &program, &mut child).await),
    }
}

/// Connects to a P2P peer and authenticates with the URL's token, else the
/// one `GIT_ANNEX_P2P_AUTHTOKEN` or the client's creds hold.
async fn open_p2p(
    address: &P2pAddress,
    token: Option<&AuthToken>,
    client_uuid: &str,
    git_dir: Option<&Path>,
) -> Result<AnyTunnel, TunnelError> {
    let token = match token {
        Some(t) => t.clone(),
        None => peer_token(address, git_dir)?,
    };
    let proxy = socks::tor_socks_proxy(git_config(socks::SOCKS_CONFIG).as_deref())?;
    let PeerStream {
        reader,
        writer,
        child,
    } = address.connect(proxy).await?;
    let mut transport = child.map(|c| (program_name(address), c));
    let mut conn = Connection::new(reader, writer);
    let authed = p2paddr::authenticate(&mut conn, address, client_uuid, &token).await;
    let server_uuid = match authed {
        Ok(uuid) => uuid,
        Err(e) => {
            if let Some((_, child)) = transport.as_mut() {
                finish(child).await;
            }
            return Err(e.into());
        }
    };
    // The server says nothing more until it hears CONNECT.
    if !conn.buffered().is_empty() {
        return Err(TunnelError::Unexpected {
            verb: "data",
            stage: Stage::BeforeConnectDone,
        });
    }
    let (reader, writer) = conn.into_inner();
    Ok(Tunnel {
        down: Connection::new(reader, tokio::io::sink()),
        up: Connection::new(tokio::io::empty(), writer),
        server_uuid,
        transport,
    })
}

fn program_name(address: &P2pAddress) -> String {
    match address {
        P2pAddress::Net { net, .. } => format!("{}{net}", p2paddr::NET_PROGRAM_PREFIX),
        P2pAddress::Tor { .. } => "tor".to_owned(),
    }
}

fn peer_token(address: &P2pAddress, git_dir: Option<&Path>) -> Result<AuthToken, TunnelError> {
    let token = match git_dir {
        Some(d) => Creds::new(&d.join("annex")).peer_token(address)?,
        None => auth::env_token()?,
    };
    token.ok_or_else(|| {
        TunnelError::Peer(PeerError::NoToken {
            address: address.to_string(),
            file: address.creds_file_name(),
        })
    })
}

/// A git config value as git sees it here (`-c` included).
fn git_config(key: &str) -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["config", "--get", key])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let v = String::from_utf8(out.stdout).ok()?;
    out.status
        .success()
        .then(|| v.trim_end_matches('\n').to_owned())
}

impl<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> Tunnel<R, W> {
    /// Reads the server's `AUTH-SUCCESS` from `reader`.
    pub async fn start(reader: R, writer: W) -> Result<Self, TunnelError> {
        let mut down = Connection::new(reader, tokio::io::sink());
        let up = Connection::new(tokio::io::empty(), writer);
        let stage = Stage::BeforeAuth;
        let server_uuid = match down.read_message().await? {
            Some(Message::AuthSuccess(uuid)) => uuid,
            Some(Message::Error(message)) => return Err(TunnelError::Remote { message }),
            Some(other) => {
                return Err(TunnelError::Unexpected {
                    verb: other.verb(),
                    stage,
                })
            }
            None => return Err(TunnelError::Closed { stage }),
        };
        Ok(Tunnel {
            down,
            up,
            server_uuid,
            transport: None,
        })
    }

    pub fn server_uuid(&self) -> &str {
        &self.server_uuid
    }

    /// Runs `service` on the server with `git_in`/`git_out` as its
    /// stdin/stdout; returns its exit status.
    pub async fn relay<I, O>(
        self,
        service: Service,
        mut git_in: I,
        mut git_out: O,
    ) -> Result<i32, TunnelError>
    where
        I: AsyncRead + Unpin,
        O: AsyncWrite + Unpin,
    {
        let Tunnel {
            mut down,
            mut up,
            transport,
            ..
        } = self;
        let mut mid_body = false;
        // A server that stops listening has usually said why (ERROR, or its
        // exit status through the transport), so a failed write only ends
        // the uplink and the downlink reports.
        let connect_sent = up.write_message(&Message::Connect(service)).await.is_ok();
        let result = {
            let uplink = uplink(&mut up, &mut git_in, &mut mid_body);
            let downlink = downlink(&mut down, &mut git_out);
            tokio::pin!(uplink, downlink);
            let mut uplink_done = !connect_sent;
            loop {
                tokio::select! {
                    r = &mut uplink, if !uplink_done => match r {
                        Ok(()) | Err(TunnelError::Conn(_)) => uplink_done = true,
                        Err(e) => break Err(e),
                    },
                    r = &mut downlink => break r,
                }
            }
        };
        // A body cut off mid-way cannot be followed by a message.
        if let (Ok(code), true, false) = (&result, connect_sent, mid_body) {
            // The server may already have hung up; the echo is a courtesy.
            let _ = up.write_message(&Message::ConnectDone(*code)).await;
        }
        drop(up);
        drop(down);
        match transport {
            None => result,
            Some((program, mut child)) => match result {
                Ok(code) => {
                    finish(&mut child).await;
                    Ok(code)
                }
                Err(e) => Err(explain_exit(e, &program, &mut child).await),
            },
        }
    }
}

/// git's input → `DATA` messages, until git closes its end.
async fn uplink<I, W>(
    up: &mut Connection<Empty, W>,
    git_in: &mut I,
    mid_body: &mut bool,
) -> Result<(), TunnelError>
where
    I: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = git_in.read(&mut buf).await.map_err(TunnelError::GitInput)?;
        if n == 0 {
            return Ok(());
        }
        *mid_body = true;
        up.send_data(n as u64, &mut &buf[..n]).await?;
        *mid_body = false;
    }
}

/// The server's `DATA` → git's output, until `CONNECTDONE`.
async fn downlink<R, O>(down: &mut Connection<R, Sink>, git_out: &mut O) -> Result<i32, TunnelError>
where
    R: AsyncRead + Unpin,
    O: AsyncWrite + Unpin,
{
    let stage = Stage::BeforeConnectDone;
    loop {
        match down.read_message().await? {
            Some(Message::Data(len)) => match down.relay_data(len, git_out).await {
                Ok(()) => {}
                Err(ConnError::Relay(inner)) => return Err(TunnelError::GitOutput(*inner)),
                Err(e) => return Err(e.into()),
            },
            Some(Message::ConnectDone(code)) => return Ok(code),
            Some(Message::Error(message)) => return Err(TunnelError::Remote { message }),
            Some(other) => {
                return Err(TunnelError::Unexpected {
                    verb: other.verb(),
                    stage,
                })
            }
            None => return Err(TunnelError::Closed { stage }),
        }
    }
}

/// Lets the transport exit on its own (its stdin is closed by now), and
/// kills it if it does not.
async fn finish(child: &mut Child) -> Option<ExitStatus> {
    match tokio::time::timeout(EXIT_GRACE, child.wait()).await {
        Ok(status) => status.ok(),
        Err(_) => {
            let _ = child.kill().await;
            None
        }
    }
}

/// A connection that closed early usually means the transport failed (ssh
/// could not connect, git-annex-shell refused the repository); its exit
/// status says more than "closed", and its stderr is already on ours.
async fn explain_exit(err: TunnelError, program: &str, child: &mut Child) -> TunnelError {
    let status = finish(child).await;
    match (err, status) {
        (TunnelError::Closed { stage }, Some(status)) => TunnelError::TransportExited {
            program: program.to_owned(),
            status,
            stage,
        },
        (err, _) => err,
    }
}

#[cfg(test)]
#[path = "tunnel_tests.rs"]
mod tests;
