//! Where a git remote's URL points, read the way git and git-annex read
//! it: a local path, an ssh host with the directory git-annex-shell is
//! to be told (`/~/p` for home-relative paths, which git-annex-shell
//! expands on its side), or a P2P address (`tor-annex::`, `p2p-annex::`).

use std::path::{Path, PathBuf};

use super::p2paddr::{P2pAddress, P2P_SCHEME, TOR_SCHEME};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    Local(PathBuf),
    Ssh(SshLocation),
    /// A peer that speaks the P2P protocol itself, after `AUTH`: it serves
    /// only its own repository.
    P2p(P2pAddress),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SshLocation {
    /// `user@host` or `host`, as handed to ssh.
    pub host: String,
    pub port: Option<u16>,
    /// The directory as git-annex-shell receives it: `/abs`, `/~/rel`,
    /// `/~user/rel`.
    pub dir: String,
}

impl Location {
    /// Parse a remote URL. Relative local paths are resolved against
    /// `base`. `None` for URLs no transport here serves (http, special
    /// remote helpers like `annex::`), and for malformed P2P addresses.
    /// A remote's URL never carries the auth token; `annex/creds/` does.
    pub fn parse(url: &str, base: &Path) -> Option<Location> {
        if url.starts_with(TOR_SCHEME) || url.starts_with(P2P_SCHEME) {
            return P2pAddress::parse(url).ok().map(Location::P2p);
        }
        if let Some(rest) = strip_ssh_scheme(url) {
            return parse_ssh_url(rest).map(Location::Ssh);
        }
        if let Some(path) = url.strip_prefix("file://") {
            return Some(Location::Local(PathBuf::from(unescape(path))));
        }
        if url.contains("://") || url.contains("::") {
            return None;
        }
        if let Some(scp) = parse_scp(url) {
            return Some(Location::Ssh(scp));
        }
        let p = Path::new(url);
        Some(Location::Local(if p.is_absolute() {
            p.to_owned()
        } else {
            base.join(p)
        }))
    }
}

fn strip_ssh_scheme(url: &str) -> Option<&str> {
    ["ssh://", "git+ssh://", "ssh+git://"]
        .iter()
        .find_map(|s| url.strip_prefix(s))
}

/// `[user@]host[:port]/path` after `ssh://`.
fn parse_ssh_url(rest: &str) -> Option<SshLocation> {
    let slash = rest.find('/')?;
    let (authority, path) = rest.split_at(slash);
    let (host, port) = match authority.rsplit_once(':') {
        // `[::1]` style hosts keep their colons.
        Some((h, p)) if !h.is_empty() && !authority.ends_with(']') => (h, Some(p.parse().ok()?)),
        _ => (authority, None),
    };
    if host.is_empty() {
        return None;
    }
    let path = unescape(path);
    // `ssh://h/~/p` and `ssh://h/~user/p` stay home-relative.
    Some(SshLocation {
        host: host.to_owned(),
        port,
        dir: path,
    })
}

/// git's scp-like syntax `[user@]host:path`: a colon before any slash.
fn parse_scp(url: &str) -> Option<SshLocation> {
    let colon = url.find(':')?;
    let (host, path) = (&url[..colon], &url[colon + 1..]);
    if host.is_empty() || host.contains('/') {
        return None;
    }
    let dir = if path.starts_with('/') {
        path.to_owned()
    } else if path.starts_with('~') {
        format!("/{path}")
    } else {
        format!("/~/{path}")
    };
    Some(SshLocation {
        host: host.to_owned(),
        port: None,
        dir,
    })
}

/// URL-unescape `%XX`; anything malformed is kept as written.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
            if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ssh(host: &str, port: Option<u16>, dir: &str) -> Option<Location> {
        Some(Location::Ssh(SshLocation {
            host: host.into(),
            port,
            dir: dir.into(),
        }))
    }

    #[test]
    fn path_forms_follow_git_annex() {
        // Spec §1.1: ssh://h/~/p → /~/p; ssh://h/abs → /abs; h:p → /~/p;
        // h:~user/p → /~user/p; h:/abs → /abs.
        let base = Path::new("/base");
        assert_eq!(Location::parse("ssh://h/~/p", base), ssh("h", None, "/~/p"));
        assert_eq!(
            Location::parse("ssh://u@h:2222/abs", base),
            ssh("u@h", Some(2222), "/abs")
        );
        assert_eq!(
            Location::parse("git+ssh://h/a%20b", base),
            ssh("h", None, "/a b")
        );
        assert_eq!(Location::parse("h:p", base), ssh("h", None, "/~/p"));
        assert_eq!(
            Location::parse("h:~user/p", base),
            ssh("h", None, "/~user/p")
        );
        assert_eq!(
            Location::parse("localhost:/srv/n1", base),
            ssh("localhost", None, "/srv/n1")
        );
        assert_eq!(Location::parse("ssh://h:x/p", base), None);
    }

    #[test]
    fn local_paths() {
        let base = Path::new("/srv/proxy");
        assert_eq!(
            Location::parse("/srv/n1", base),
            Some(Location::Local("/srv/n1".into()))
        );
        assert_eq!(
            Location::parse("../n1", base),
            Some(Location::Local("/srv/proxy/../n1".into()))
        );
        assert_eq!(
            Location::parse("./a:b", base),
            Some(Location::Local("/srv/proxy/./a:b".into()))
        );
        assert_eq!(
            Location::parse("file:///srv/n%31", base),
            Some(Location::Local("/srv/n1".into()))
        );
    }

    #[test]
    fn p2p_addresses() {
        let base = Path::new("/srv/proxy");
        assert_eq!(
            Location::parse("tor-annex::abc.onion:5", base),
            Some(Location::P2p(P2pAddress::Tor {
                onion: "abc.onion".into(),
                port: 5
            }))
        );
        assert_eq!(
            Location::parse("p2p-annex::unixsock:/run/n1.sock", base),
            Some(Location::P2p(P2pAddress::Net {
                net: "unixsock".into(),
                address: "/run/n1.sock".into()
            }))
        );
    }

    #[test]
    fn unsupported_urls() {
        let base = Path::new("/");
        for url in [
            "https://example.org/r",
            "annex::abc?type=directory",
            // No port; an address that would be read as an option.
            "tor-annex::x.onion",
            "p2p-annex::net:-oProxyCommand=x",
            "p2p-annex::",
        ] {
            assert_eq!(Location::parse(url, base), None, "{url}");
        }
    }

    #[test]
    fn unescape_keeps_malformed() {
        assert_eq!(unescape("a%2"), "a%2");
        assert_eq!(unescape("a%zz"), "a%zz");
        assert_eq!(unescape("%41%42"), "AB");
    }
}
