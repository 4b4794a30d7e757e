//! The SOCKS5 client that reaches tor hidden services: no authentication,
//! CONNECT by domain name (the proxy, tor, resolves `.onion` itself), as
//! git-annex's `Utility/Tor.hs` does.
//!
//! The handshake is tokio-socks' (small, maintained, tokio-native); we open
//! the TCP connection to the proxy ourselves so "the proxy is not running"
//! is told apart from "the proxy could not reach the service".
//!
//! git-annex always uses 127.0.0.1:9050. Ours can be moved, for a tor
//! listening elsewhere and for tests: [`SOCKS_ENV`] first, then the git
//! config [`SOCKS_CONFIG`], both `HOST:PORT`.

use std::borrow::Cow;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, ToSocketAddrs};

use tokio::net::TcpStream;
use tokio_socks::tcp::Socks5Stream;
use tokio_socks::TargetAddr;

/// Where tor's SOCKS port is unless told otherwise.
pub const DEFAULT_TOR_SOCKS: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9050));

pub const SOCKS_ENV: &str = "ANNEXPROXY_TOR_SOCKS";
pub const SOCKS_CONFIG: &str = "annexproxy.torsocks";

#[derive(Debug, thiserror::Error)]
pub enum SocksError {
    #[error("bad SOCKS proxy address {value:?} (from {from}; expected HOST:PORT)")]
    BadProxy { value: String, from: &'static str },
    #[error("cannot reach the tor SOCKS proxy at {proxy} (is tor running? set {SOCKS_ENV} or git config {SOCKS_CONFIG} to use another): {source}")]
    Unreachable {
        proxy: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("SOCKS proxy {proxy} could not connect to {host}:{port}: {reason}")]
    Refused {
        proxy: SocketAddr,
        host: String,
        port: u16,
        reason: String,
    },
}

/// The proxy to use: [`SOCKS_ENV`], else `config` (the value of
/// [`SOCKS_CONFIG`], read by the caller from whichever repository applies),
/// else [`DEFAULT_TOR_SOCKS`].
pub fn tor_socks_proxy(config: Option<&str>) -> Result<SocketAddr, SocksError> {
    if let Some(v) = std::env::var(SOCKS_ENV).ok().filter(|v| !v.is_empty()) {
        return parse_proxy(&v, SOCKS_ENV);
    }
    match config.filter(|v| !v.is_empty()) {
        Some(v) => parse_proxy(v, SOCKS_CONFIG),
        None => Ok(DEFAULT_TOR_SOCKS),
    }
}

fn parse_proxy(value: &str, from: &'static str) -> Result<SocketAddr, SocksError> {
    let bad = || SocksError::BadProxy {
        value: value.to_owned(),
        from,
    };
    if let Ok(addr) = value.parse::<SocketAddr>() {
        return Ok(addr);
    }
    // A host name (`localhost:9050`): resolved here, once.
    value
        .to_socket_addrs()
        .map_err(|_| bad())?
        .next()
        .ok_or_else(bad)
}

/// A TCP stream to `host:port` through the SOCKS5 proxy at `proxy`.
pub async fn connect(proxy: SocketAddr, host: &str, port: u16) -> Result<TcpStream, SocksError> {
    let socket = TcpStream::connect(proxy)
        .await
        .map_err(|source| SocksError::Unreachable { proxy, source })?;
    let target = TargetAddr::Domain(Cow::Borrowed(host), port);
    match Socks5Stream::connect_with_socket(socket, target).await {
        Ok(stream) => Ok(stream.into_inner()),
        Err(e) => Err(SocksError::Refused {
            proxy,
            host: host.to_owned(),
            port,
            reason: e.to_string(),
        }),
    }
}

#[cfg(test)]
#[path = "socks_tests.rs"]
mod tests;
