//! A repository URL resolved into where the repository is and how to reach
//! it: the part of an `annexproxy::` URL after the `::`, as git hands it to
//! git-remote-annexproxy, and (through [`super::Location`]) the URL of a
//! remote the server reaches, so client and server read URLs alike.
//!
//! Accepted forms:
//! - `ssh://[user@]host[:port]/path` (also `git+ssh://`, `ssh+git://`);
//! - `[user@]host:path` (scp-like: a `:` before any `/`);
//! - `/abs/path` and `file:///abs/path` (this machine, no ssh);
//! - `tor-annex::ONION.onion:PORT` and `p2p-annex::NET:ADDRESS` (a P2P peer,
//!   as git-remote-tor-annex and git-remote-p2p-annex reach it), optionally
//!   followed by `:TOKEN`; see [`super::p2paddr`].
//!
//! Any form but the P2P ones may end in `#REMOTE`: a proxied remote or a
//! cluster of the server, by the name the server's `proxy.log` gives it
//! (`node1`, `mycluster`, `B-C` for a proxy of a proxy) or by UUID. The
//! last `#` starts it; a path with a `#` of its own is written as a URL
//! with `%23`. P2P addresses take none: a peer's listener serves only its
//! own repository.
//!
//! The directory handed to git-annex-shell is written the way git-annex
//! writes it (`Git/Remote.hs`), so the server resolves it the same way for
//! both clients: `ssh://h/~/p` → `/~/p`, `h:p` → `/~/p`, `h:~u/p` → `/~u/p`,
//! `h:/abs` → `/abs`. URL paths are percent-decoded, scp-like paths are not.
//!
//! Everything that ends up as an ssh argument is checked: a host or user that
//! starts with `-` would be read by ssh as an option (`-oProxyCommand=…`)
//! and is refused, as gitoxide's `ArgumentSafety` does.

use std::path::PathBuf;

use super::auth::AuthToken;
use super::p2paddr::{parse_port, AddressError, P2pAddress, P2P_SCHEME, TOR_SCHEME};
use crate::branch::maplog::is_legal_remote_name;
use crate::uuids::is_uuid_form;

/// Where the repository is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// Reached through `ssh`, running git-annex-shell on the other side.
    Ssh {
        user: Option<String>,
        host: String,
        port: Option<u16>,
        /// The directory argument for git-annex-shell.
        dir: String,
    },
    /// On this machine; git-annex-shell is run directly.
    Local { path: PathBuf },
    /// A peer at a P2P address, which wants an auth token: the one in the
    /// URL, else the usual creds (`GIT_ANNEX_P2P_AUTHTOKEN`, `annex/creds`).
    P2p {
        address: P2pAddress,
        token: Option<AuthToken>,
    },
}

/// A repository behind the server, as the URL's `#` part names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RemoteRef {
    Uuid(String),
    /// Turned into a UUID with the server's configlist (`resolve`).
    Name(String),
}

/// A whole `annexproxy::` URL: the server, and what behind it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Url {
    pub target: Target,
    pub remote: Option<RemoteRef>,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("remote name {name:?} after '#' is not a git remote name or a UUID")]
    BadRemoteName { name: String },
    #[error(
        "'#{name}': a P2P address serves only its own repository, not proxied remotes or clusters"
    )]
    RemoteOverP2p { name: String },
    #[error("empty URL")]
    Empty,
    #[error("URL {url:?} contains a control character")]
    ControlCharacter { url: String },
    #[error("unsupported URL scheme {scheme:?} (use ssh://, file://, [user@]host:path, an absolute path, tor-annex:: or p2p-annex::)")]
    UnsupportedScheme { scheme: String },
    #[error("no host in {url:?}")]
    MissingHost { url: String },
    #[error("no repository path in {url:?}")]
    MissingPath { url: String },
    #[error("invalid port {port:?} in {url:?}")]
    BadPort { url: String, port: String },
    #[error("host {host:?} starts with '-' and would be taken as an ssh option")]
    UnsafeHost { host: String },
    #[error("user {user:?} starts with '-' and would be taken as an ssh option")]
    UnsafeUser { user: String },
    #[error("unterminated '[' in host of {url:?}")]
    UnclosedBracket { url: String },
    #[error("bad percent-escape in {url:?}")]
    BadEscape { url: String },
    #[error("file:// URL {url:?} names host {host:?}; only local files can be reached that way")]
    RemoteFileHost { url: String, host: String },
    #[error("local path {path:?} is not absolute")]
    RelativePath { path: String },
    #[error(transparent)]
    P2p(#[from] AddressError),
}

/// Parses the URL git passed as our second argument, `#REMOTE` included.
pub fn parse_url(url: &str) -> Result<Url, UrlError> {
    if url.starts_with(TOR_SCHEME) || url.starts_with(P2P_SCHEME) {
        if let Some((_, name)) = url.rsplit_once('#') {
            return Err(UrlError::RemoteOverP2p {
                name: name.to_owned(),
            });
        }
        return Ok(Url {
            target: parse(url)?,
            remote: None,
        });
    }
    let Some((base, name)) = url.rsplit_once('#') else {
        return Ok(Url {
            target: parse(url)?,
            remote: None,
        });
    };
    let target = parse(base)?;
    let remote = if is_uuid_form(name) {
        RemoteRef::Uuid(name.to_ascii_lowercase())
    } else if is_legal_remote_name(name) {
        RemoteRef::Name(name.to_owned())
    } else {
        return Err(UrlError::BadRemoteName {
            name: name.to_owned(),
        });
    };
    Ok(Url {
        target,
        remote: Some(remote),
    })
}

/// Parses the URL git passed as our second argument, without `#REMOTE`.
pub fn parse(url: &str) -> Result<Target, UrlError> {
    if url.is_empty() {
        return Err(UrlError::Empty);
    }
    // Newlines would end a protocol or shell line early; NUL cannot be an
    // argument at all.
    if url.chars().any(char::is_control) {
        return Err(UrlError::ControlCharacter {
            url: url.to_owned(),
        });
    }
    if url.starts_with(TOR_SCHEME) || url.starts_with(P2P_SCHEME) {
        let (address, token) = P2pAddress::parse_maybe_token(url)?;
        return Ok(Target::P2p { address, token });
    }
    if let Some(helper) = remote_helper(url) {
        return Err(UrlError::UnsupportedScheme {
            scheme: helper.to_owned(),
        });
    }
    if let Some((scheme, rest)) = url.split_once("://") {
        return match scheme {
            "ssh" | "git+ssh" | "ssh+git" => parse_ssh_url(url, rest),
            "file" => parse_file_url(url, rest),
            _ => Err(UrlError::UnsupportedScheme {
                scheme: scheme.to_owned(),
            }),
        };
    }
    if url.starts_with('/') {
        return Ok(Target::Local {
            path: PathBuf::from(url),
        });
    }
    // git's rule for scp-like syntax: a ':' before the first '/'.
    match (url.find(':'), url.find('/')) {
        (Some(colon), slash) if slash.is_none_or(|s| colon < s) => parse_scp(url),
        _ => Err(UrlError::RelativePath {
            path: url.to_owned(),
        }),
    }
}

/// `NAME` of `NAME::ADDRESS`, which git hands to its remote helper
/// `git-remote-NAME` (`annex::`, `annexproxy::`): git's rule is a letter,
/// then letters, digits, `+`, `-` or `.`, up to the `::`.
fn remote_helper(url: &str) -> Option<&str> {
    let (name, _) = url.split_once("::")?;
    let mut bytes = name.bytes();
    let first = bytes.next()?;
    let ok = first.is_ascii_alphabetic()
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    ok.then_some(name)
}

fn parse_ssh_url(url: &str, rest: &str) -> Result<Target, UrlError> {
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let (user, hostport) = split_user(authority);
    let (host, port) = split_port(url, hostport)?;
    let path = percent_decode(url, path)?;
    if path.is_empty() || path == "/" {
        return Err(UrlError::MissingPath {
            url: url.to_owned(),
        });
    }
    // `ssh://h/~/p` and `ssh://h/~u/p` keep their leading `/`, which
    // git-annex-shell expands like git-annex does.
    ssh_target(url, user, host, port, path)
}

fn parse_scp(url: &str) -> Result<Target, UrlError> {
    let (user, rest) = split_user_scp(url);
    let (host, path) = if let Some(inner) = rest.strip_prefix('[') {
        let end = inner.find(']').ok_or_else(|| UrlError::UnclosedBracket {
            url: url.to_owned(),
        })?;
        let after = &inner[end + 1..];
        let path = after
            .strip_prefix(':')
            .ok_or_else(|| UrlError::MissingPath {
                url: url.to_owned(),
            })?;
        (&inner[..end], path)
    } else {
        rest.split_once(':')
            .expect("parse only sends scp-like URLs here, which have a ':'")
    };
    if path.is_empty() {
        return Err(UrlError::MissingPath {
            url: url.to_owned(),
        });
    }
    let dir = if path.starts_with('/') {
        path.to_owned()
    } else if path.starts_with('~') {
        format!("/{path}")
    } else {
        format!("/~/{path}")
    };
    ssh_target(url, user, host.to_owned(), None, dir)
}

fn parse_file_url(url: &str, rest: &str) -> Result<Target, UrlError> {
    let (host, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if !host.is_empty() && host != "localhost" {
        return Err(UrlError::RemoteFileHost {
            url: url.to_owned(),
            host: host.to_owned(),
        });
    }
    let path = percent_decode(url, path)?;
    if path.is_empty() {
        return Err(UrlError::MissingPath {
            url: url.to_owned(),
        });
    }
    Ok(Target::Local {
        path: PathBuf::from(path),
    })
}

fn ssh_target(
    url: &str,
    user: Option<&str>,
    host: String,
    port: Option<u16>,
    dir: String,
) -> Result<Target, UrlError> {
    if host.is_empty() {
        return Err(UrlError::MissingHost {
            url: url.to_owned(),
        });
    }
    if host.starts_with('-') {
        return Err(UrlError::UnsafeHost { host });
    }
    if let Some(u) = user {
        if u.starts_with('-') {
            return Err(UrlError::UnsafeUser { user: u.to_owned() });
        }
    }
    let user = user.filter(|u| !u.is_empty()).map(str::to_owned);
    Ok(Target::Ssh {
        user,
        host,
        port,
        dir,
    })
}

/// `user@host:port` → (`user`, `host:port`); the last `@` separates, as a
/// user name may itself contain one.
fn split_user(authority: &str) -> (Option<&str>, &str) {
    match authority.rfind('@') {
        Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
        None => (None, authority),
    }
}

/// In scp-like syntax only an `@` before the host's `:` belongs to the user.
fn split_user_scp(url: &str) -> (Option<&str>, &str) {
    let host_end = url.find(':').unwrap_or(url.len());
    match url[..host_end].rfind('@') {
        Some(i) => (Some(&url[..i]), &url[i + 1..]),
        None => (None, url),
    }
}

fn split_port(url: &str, hostport: &str) -> Result<(String, Option<u16>), UrlError> {
    let (host, port) = if let Some(inner) = hostport.strip_prefix('[') {
        let end = inner.find(']').ok_or_else(|| UrlError::UnclosedBracket {
            url: url.to_owned(),
        })?;
        let after = &inner[end + 1..];
        match after.strip_prefix(':') {
            Some(p) => (&inner[..end], Some(p)),
            None if after.is_empty() => (&inner[..end], None),
            None => {
                return Err(UrlError::BadPort {
                    url: url.to_owned(),
                    port: after.to_owned(),
                })
            }
        }
    } else {
        match hostport.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    // `ssh://host:/path` means the default port, as in git.
    let port = match port.filter(|p| !p.is_empty()) {
        None => None,
        Some(p) => Some(parse_port(p).ok_or_else(|| UrlError::BadPort {
            url: url.to_owned(),
            port: p.to_owned(),
        })?),
    };
    Ok((host.to_owned(), port))
}

fn percent_decode(url: &str, s: &str) -> Result<String, UrlError> {
    let bad = || UrlError::BadEscape {
        url: url.to_owned(),
    };
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or_else(bad)?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return Err(bad());
            }
            let hex = std::str::from_utf8(hex).expect("ASCII hex digits are UTF-8");
            out.push(u8::from_str_radix(hex, 16).expect("checked to be two hex digits"));
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    let decoded = String::from_utf8(out).map_err(|_| bad())?;
    if decoded.chars().any(char::is_control) {
        return Err(UrlError::ControlCharacter {
            url: url.to_owned(),
        });
    }
    Ok(decoded)
}

#[cfg(test)]
#[path = "url_tests.rs"]
mod tests;
