//! P2P addresses, as git-annex writes them (`P2P/Address.hs`), and opening
//! an authenticated P2P session with the peer behind one.
//!
//! - `tor-annex::ONION:PORT`: a tor hidden service, reached through a SOCKS5
//!   proxy (see [`super::socks`]);
//! - `p2p-annex::NET:ADDRESS`: a generic P2P network, reached by running
//!   `git-annex-p2p-NET ADDRESS`, whose stdin/stdout are the connection.
//!
//! Shared out of band, an address carries its auth token after a last `:`
//! (what `git annex p2p --gen-addresses` prints).
//!
//! Unlike a session through git-annex-shell, which starts with the server's
//! `AUTH-SUCCESS`, here the client speaks first: `AUTH <uuid> <token>`.

use std::net::SocketAddr;
use std::process::Stdio;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::process::Child;

use super::auth::AuthToken;
use super::socks::{self, SocksError};
use crate::p2p::{ConnError, Connection, Message};

pub const TOR_SCHEME: &str = "tor-annex::";
pub const P2P_SCHEME: &str = "p2p-annex::";

/// The program run for `p2p-annex::NET:…` is this prefix followed by NET.
pub const NET_PROGRAM_PREFIX: &str = "git-annex-p2p-";

/// A trailing `:FIELD` of a p2p-annex address is only taken for a token
/// when it is at least this long: the underlying address may itself end in
/// a short alphanumeric field, and generated tokens are 128 characters.
const MIN_TRAILING_TOKEN: usize = 64;

/// Longest host name SOCKS5 can carry (its length is one byte).
const MAX_ONION: usize = 255;

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum P2pAddress {
    Tor { onion: String, port: u16 },
    Net { net: String, address: String },
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error(
        "{0:?} is not a P2P address (expected tor-annex::ONION:PORT or p2p-annex::NET:ADDRESS)"
    )]
    Scheme(String),
    #[error("{0:?}: onion address must include a port number (tor-annex::ONION:PORT)")]
    Port(String),
    #[error("{0:?}: bad onion address")]
    Onion(String),
    #[error("{0:?}: network name must be letters, digits, '-' or '_' (p2p-annex::NET:ADDRESS)")]
    NetName(String),
    #[error("{0:?}: empty address, or one that starts with '-' or has control characters")]
    Underlying(String),
    #[error("{0:?}: no auth token at the end (ADDRESS:TOKEN)")]
    NoToken(String),
}

impl P2pAddress {
    /// An address without a token.
    pub fn parse(s: &str) -> Result<P2pAddress, AddressError> {
        if let Some(rest) = s.strip_prefix(TOR_SCHEME) {
            let (onion, port) = rest
                .split_once(':')
                .ok_or_else(|| AddressError::Port(s.to_owned()))?;
            let port = parse_port(port).ok_or_else(|| AddressError::Port(s.to_owned()))?;
            let onion_ok = !onion.is_empty()
                && onion.len() <= MAX_ONION
                && !onion.starts_with('-')
                && onion
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
            if !onion_ok {
                return Err(AddressError::Onion(s.to_owned()));
            }
            return Ok(P2pAddress::Tor {
                onion: onion.to_owned(),
                port,
            });
        }
        if let Some(rest) = s.strip_prefix(P2P_SCHEME) {
            let (net, address) = rest.split_once(':').unwrap_or((rest, ""));
            let net_ok = !net.is_empty()
                && !net.starts_with('-')
                && net
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !net_ok {
                return Err(AddressError::NetName(s.to_owned()));
            }
            // The address is one argv word for the network's program; one
            // that looks like an option could change what that program does.
            if address.is_empty()
                || address.starts_with('-')
                || address.chars().any(char::is_control)
            {
                return Err(AddressError::Underlying(s.to_owned()));
            }
            return Ok(P2pAddress::Net {
                net: net.to_owned(),
                address: address.to_owned(),
            });
        }
        Err(AddressError::Scheme(s.to_owned()))
    }

    /// `ADDRESS:TOKEN`, as `git annex p2p --gen-addresses` prints and
    /// `git annex p2p --link` reads: the token is after the last `:`.
    pub fn parse_with_token(s: &str) -> Result<(P2pAddress, AuthToken), AddressError> {
        let (addr, token) = s
            .rsplit_once(':')
            .ok_or_else(|| AddressError::NoToken(s.to_owned()))?;
        let token = AuthToken::parse(token).ok_or_else(|| AddressError::NoToken(s.to_owned()))?;
        Ok((P2pAddress::parse(addr)?, token))
    }

    /// An address with or without a trailing `:TOKEN`. A tor address has a
    /// token when it has a third field; a p2p-annex one when its last field
    /// is a token of at least [`MIN_TRAILING_TOKEN`] characters (shorter
    /// ones are taken as part of the underlying address).
    pub fn parse_maybe_token(s: &str) -> Result<(P2pAddress, Option<AuthToken>), AddressError> {
        let tor_with_token = s
            .strip_prefix(TOR_SCHEME)
            .is_some_and(|rest| rest.matches(':').count() >= 2);
        let net_with_token = s.starts_with(P2P_SCHEME)
            && s.rsplit_once(':').is_some_and(|(head, last)| {
                head.len() > P2P_SCHEME.len()
                    && head[P2P_SCHEME.len()..].contains(':')
                    && last.len() >= MIN_TRAILING_TOKEN
                    && AuthToken::parse(last).is_some()
            });
        if tor_with_token || net_with_token {
            let (addr, token) = P2pAddress::parse_with_token(s)?;
            Ok((addr, Some(token)))
        } else {
            Ok((P2pAddress::parse(s)?, None))
        }
    }

    /// The name of the file in `annex/creds/` holding the token used to
    /// reach this peer: the onion address alone (one service, one port), or
    /// `NET:ADDRESS`, with every character but ASCII letters and digits
    /// percent-escaped (`P2P/Auth.hs: addressCredsFile`).
    pub fn creds_file_name(&self) -> String {
        let raw = match self {
            P2pAddress::Tor { onion, .. } => onion.clone(),
            P2pAddress::Net { net, address } => format!("{net}:{address}"),
        };
        let mut out = String::with_capacity(raw.len() * 3);
        for b in raw.bytes() {
            if b.is_ascii_alphanumeric() {
                out.push(char::from(b));
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out
    }

    /// Open a byte stream to the peer (not yet authenticated). `tor_socks`
    /// is the SOCKS5 proxy for tor addresses.
    pub async fn connect(&self, tor_socks: SocketAddr) -> Result<PeerStream, PeerError> {
        self.connect_with(tor_socks, Stdio::inherit()).await
    }

    /// [`Self::connect`], with the network program's stderr as `stderr`
    /// (piped by a proxy that keeps it for its errors).
    pub async fn connect_with(
        &self,
        tor_socks: SocketAddr,
        stderr: Stdio,
    ) -> Result<PeerStream, PeerError> {
        match self {
            P2pAddress::Tor { onion, port } => {
                let stream = socks::connect(tor_socks, onion, *port).await?;
                let (r, w) = stream.into_split();
                Ok(PeerStream {
                    reader: Box::new(r),
                    writer: Box::new(w),
                    child: None,
                })
            }
            P2pAddress::Net { net, address } => {
                let program = format!("{NET_PROGRAM_PREFIX}{net}");
                let mut cmd = tokio::process::Command::new(&program);
                cmd.arg(address)
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(stderr)
                    .kill_on_drop(true);
                let mut child = super::retry_busy(|| cmd.spawn())
                    .map_err(|source| PeerError::Spawn { program, source })?;
                let stdout = child.stdout.take().expect("stdout was piped");
                let stdin = child.stdin.take().expect("stdin was piped");
                Ok(PeerStream {
                    reader: Box::new(stdout),
                    writer: Box::new(stdin),
                    child: Some(child),
                })
            }
        }
    }
}

impl std::fmt::Display for P2pAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            P2pAddress::Tor { onion, port } => write!(f, "{TOR_SCHEME}{onion}:{port}"),
            P2pAddress::Net { net, address } => write!(f, "{P2P_SCHEME}{net}:{address}"),
        }
    }
}

/// A TCP port as URLs and addresses write it: decimal digits only, not 0.
pub(super) fn parse_port(s: &str) -> Option<u16> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<u16>().ok().filter(|p| *p > 0)
}

pub type BoxRead = Box<dyn AsyncRead + Send + Unpin>;
pub type BoxWrite = Box<dyn AsyncWrite + Send + Unpin>;

/// The two directions of a connection to a peer, and the network program
/// carrying it, if any (killed when this is dropped).
pub struct PeerStream {
    pub reader: BoxRead,
    pub writer: BoxWrite,
    pub child: Option<Child>,
}

#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error(transparent)]
    Socks(#[from] SocksError),
    #[error("cannot run {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("no auth token for {address} (set GIT_ANNEX_P2P_AUTHTOKEN or store one in .git/annex/creds/{file})")]
    NoToken { address: String, file: String },
    #[error("{address} refused our auth token (AUTH-FAILURE)")]
    AuthFailure { address: String },
    #[error("{address} closed the connection before AUTH-SUCCESS")]
    Closed { address: String },
    #[error("{address} answered AUTH with {verb}")]
    Unexpected { address: String, verb: &'static str },
    #[error("{address}: {source}")]
    Conn {
        address: String,
        #[source]
        source: ConnError,
    },
}

/// Send `AUTH <my_uuid> <token>` and wait for `AUTH-SUCCESS`; returns the
/// peer's UUID. An empty `my_uuid` is sent as an empty field, as git-annex
/// does from a repository that has none yet.
pub async fn authenticate<R, W>(
    conn: &mut Connection<R, W>,
    address: &P2pAddress,
    my_uuid: &str,
    token: &AuthToken,
) -> Result<String, PeerError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let address = address.to_string();
    let conn_err = |source| PeerError::Conn {
        address: address.clone(),
        source,
    };
    let auth = Message::Auth {
        uuid: my_uuid.to_owned(),
        token: token.as_str().to_owned(),
    };
    conn.write_message(&auth).await.map_err(conn_err)?;
    match conn.read_message().await {
        Ok(Some(Message::AuthSuccess(uuid))) => Ok(uuid),
        Ok(Some(Message::AuthFailure)) => Err(PeerError::AuthFailure { address }),
        Ok(Some(other)) => Err(PeerError::Unexpected {
            address,
            verb: other.verb(),
        }),
        Ok(None) | Err(ConnError::UnexpectedEof) => Err(PeerError::Closed { address }),
        Err(e) => Err(conn_err(e)),
    }
}

#[cfg(test)]
#[path = "p2paddr_tests.rs"]
mod tests;
