//! Permissions a forge decides: with `--forge-headers`, a reverse proxy or
//! forge in front of the server that has authenticated the user itself
//! hands over who it is and what it may do with the repository the
//! request is for, in two headers:
//!
//! - `X-Annexproxy-User: <name>` (for the logs),
//! - `X-Annexproxy-Mode: readwrite | appendonly | readonly | none`.
//!
//! They are believed only from the `--socket`'s peers (whom its file
//! permissions let in) and loopback ones (the forge on the same host);
//! from anyone else they are ignored and the request is
//! authorised as usual. A forge decides per repository by setting the
//! mode for the repository the URL names (with `--directory`, one
//! server serves them all). Without the mode header a request from the
//! forge is authorised as usual too (passwords, `--unauth-*`), so the
//! forge may pass anonymous users through.

use std::net::IpAddr;

use hyper::HeaderMap;

use super::auth::{AuthConfig, Denied};
use super::route::Class;
use crate::restrict::ServerMode;

pub const USER_HEADER: &str = "x-annexproxy-user";
pub const MODE_HEADER: &str = "x-annexproxy-mode";

/// Where a request came from, as far as authorisation cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer {
    /// Over TLS (for `--authenv`).
    pub secure: bool,
    /// The forge's headers are believed.
    pub forge: bool,
}

impl Peer {
    /// A peer at `ip`; `trust_forge` is `--forge-headers`.
    pub fn new(secure: bool, ip: Option<IpAddr>, trust_forge: bool) -> Peer {
        let loopback = ip.is_some_and(|ip| match ip {
            IpAddr::V4(v4) => v4.is_loopback(),
            // ::1, and IPv4 loopback mapped into IPv6 (a dual-stack socket).
            IpAddr::V6(v6) => {
                v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
            }
        });
        Peer {
            secure,
            forge: trust_forge && loopback,
        }
    }
}

/// The mode a request of `class` is served in: the forge's word when it
/// is believed and gave one, else the server's own auth.
pub fn authorize(
    auth: &AuthConfig,
    peer: Peer,
    headers: &HeaderMap,
    class: Class,
) -> Result<ServerMode, Denied> {
    let said = headers.get(MODE_HEADER);
    if let (true, Some(mode)) = (peer.forge, said) {
        let user = headers
            .get(USER_HEADER)
            .and_then(|u| u.to_str().ok())
            .unwrap_or("-");
        let mode = mode.to_str().ok().and_then(parse_mode);
        tracing::info!(user, ?mode, ?class, "mode from the forge");
        // The forge has authenticated the user: no password would change
        // its answer, so a refusal is 403, never 401.
        let Some(Some(mode)) = mode else {
            return Err(Denied::Forbidden);
        };
        return allowed(mode, class);
    }
    if said.is_some() {
        tracing::warn!("X-Annexproxy-Mode from a peer that is not trusted: ignored");
    }
    let authorization = headers.get(hyper::header::AUTHORIZATION);
    auth.decide(peer.secure, authorization.map(|h| h.as_bytes()), class)
}

/// `Some(None)` is `none`: no access at all.
fn parse_mode(s: &str) -> Option<Option<ServerMode>> {
    match s.trim() {
        "readwrite" => Some(Some(ServerMode::ReadWrite)),
        "appendonly" => Some(Some(ServerMode::AppendOnly)),
        "readonly" => Some(Some(ServerMode::ReadOnly)),
        "none" => Some(None),
        _ => None,
    }
}

/// What `mode` allows. Locking is a read here: it changes nothing, and
/// lets a reader drop its own copy safely (git-annex allows anonymous
/// readers to lock as well).
fn allowed(mode: ServerMode, class: Class) -> Result<ServerMode, Denied> {
    match (mode, class) {
        (ServerMode::ReadWrite, _) => Ok(ServerMode::ReadWrite),
        (ServerMode::AppendOnly, Class::Remove) => Err(Denied::Forbidden),
        (ServerMode::AppendOnly, _) => Ok(ServerMode::AppendOnly),
        (ServerMode::ReadOnly, Class::Read | Class::Lock) => Ok(ServerMode::ReadOnly),
        (ServerMode::ReadOnly, _) => Err(Denied::Forbidden),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(mode: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(MODE_HEADER, mode.parse().expect("header value"));
        h.insert(USER_HEADER, "dora".parse().expect("header value"));
        h
    }

    #[test]
    fn the_forge_is_believed_only_from_loopback_and_when_trusted() {
        let ip = |s: &str| Some(s.parse::<IpAddr>().expect("ip"));
        assert!(Peer::new(false, ip("127.0.0.1"), true).forge);
        assert!(Peer::new(false, ip("::1"), true).forge);
        assert!(Peer::new(false, ip("::ffff:127.0.0.1"), true).forge);
        assert!(!Peer::new(false, ip("192.0.2.7"), true).forge);
        assert!(!Peer::new(false, ip("::ffff:192.0.2.7"), true).forge);
        assert!(!Peer::new(false, ip("127.0.0.1"), false).forge);

        // Nobody may do anything without the forge: its word decides.
        let auth = AuthConfig::default();
        let forge = Peer::new(false, ip("127.0.0.1"), true);
        let stranger = Peer::new(false, ip("192.0.2.7"), true);
        let rw = headers("readwrite");
        assert_eq!(
            authorize(&auth, forge, &rw, Class::Remove),
            Ok(ServerMode::ReadWrite)
        );
        assert_eq!(
            authorize(&auth, stranger, &rw, Class::Read),
            Err(Denied::Unauthorized)
        );
        let ro = headers("readonly");
        assert_eq!(
            authorize(&auth, forge, &ro, Class::Lock),
            Ok(ServerMode::ReadOnly)
        );
        assert_eq!(
            authorize(&auth, forge, &ro, Class::Write),
            Err(Denied::Forbidden)
        );
        let ao = headers("appendonly");
        assert_eq!(
            authorize(&auth, forge, &ao, Class::Remove),
            Err(Denied::Forbidden)
        );
        for bad in ["none", "admin"] {
            assert_eq!(
                authorize(&auth, forge, &headers(bad), Class::Read),
                Err(Denied::Forbidden)
            );
        }
    }
}
