//! Where a git remote's URL points, read the way git and git-annex read
//! it: a local path, an ssh host with the directory git-annex-shell is
//! to be told (`/~/p` for home-relative paths, which git-annex-shell
//! expands on its side), or a P2P address (`tor-annex::`, `p2p-annex::`).

use std::path::{Path, PathBuf};

use super::p2paddr::{P2pAddress, P2P_SCHEME, TOR_SCHEME};
use super::url::{Target, UrlError};

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
    /// A remote's URL, read by [`super::url::parse`] as the remote helper
    /// reads its own, except that a relative path is taken relative to
    /// `base` (git allows one in a remote's URL). URLs no transport here
    /// serves (http, a remote helper's `annex::`), malformed ones and ssh
    /// hosts or users that look like options are errors. A remote's URL
    /// never carries the auth token; `annex/creds/` does.
    pub fn parse(url: &str, base: &Path) -> Result<Location, UrlError> {
        // A p2p-annex address may end in a field that looks like a token.
        if url.starts_with(TOR_SCHEME) || url.starts_with(P2P_SCHEME) {
            return Ok(Location::P2p(P2pAddress::parse(url)?));
        }
        match super::url::parse(url) {
            Ok(Target::Local { path }) => Ok(Location::Local(path)),
            Ok(Target::Ssh {
                user,
                host,
                port,
                dir,
            }) => Ok(Location::Ssh(SshLocation {
                host: match user {
                    Some(u) => format!("{u}@{host}"),
                    None => host,
                },
                port,
                dir,
            })),
            Ok(Target::P2p { address, .. }) => Ok(Location::P2p(address)),
            Err(UrlError::RelativePath { .. }) => Ok(Location::Local(base.join(url))),
            Err(e) => Err(e),
        }
    }
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
        assert_eq!(
            Location::parse("ssh://h/~/p", base).ok(),
            ssh("h", None, "/~/p")
        );
        assert_eq!(
            Location::parse("ssh://u@h:2222/abs", base).ok(),
            ssh("u@h", Some(2222), "/abs")
        );
        assert_eq!(
            Location::parse("git+ssh://h/a%20b", base).ok(),
            ssh("h", None, "/a b")
        );
        assert_eq!(Location::parse("h:p", base).ok(), ssh("h", None, "/~/p"));
        assert_eq!(
            Location::parse("h:~user/p", base).ok(),
            ssh("h", None, "/~user/p")
        );
        assert_eq!(
            Location::parse("localhost:/srv/n1", base).ok(),
            ssh("localhost", None, "/srv/n1")
        );
        assert_eq!(Location::parse("ssh://h:x/p", base).ok(), None);
    }

    #[test]
    fn local_paths() {
        let base = Path::new("/srv/proxy");
        assert_eq!(
            Location::parse("/srv/n1", base).ok(),
            Some(Location::Local("/srv/n1".into()))
        );
        assert_eq!(
            Location::parse("../n1", base).ok(),
            Some(Location::Local("/srv/proxy/../n1".into()))
        );
        assert_eq!(
            Location::parse("./a:b", base).ok(),
            Some(Location::Local("/srv/proxy/./a:b".into()))
        );
        assert_eq!(
            Location::parse("file:///srv/n%31", base).ok(),
            Some(Location::Local("/srv/n1".into()))
        );
    }

    #[test]
    fn p2p_addresses() {
        let base = Path::new("/srv/proxy");
        assert_eq!(
            Location::parse("tor-annex::abc.onion:5", base).ok(),
            Some(Location::P2p(P2pAddress::Tor {
                onion: "abc.onion".into(),
                port: 5
            }))
        );
        assert_eq!(
            Location::parse("p2p-annex::unixsock:/run/n1.sock", base).ok(),
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
            assert_eq!(Location::parse(url, base).ok(), None, "{url}");
        }
    }

    #[test]
    fn read_as_the_remote_helper_reads_them() {
        let base = Path::new("/srv/proxy");
        // brackets are URL syntax, not part of the host ssh is given
        assert_eq!(
            Location::parse("ssh://u@[::1]:22/r", base).ok(),
            ssh("u@::1", Some(22), "/r")
        );
        assert_eq!(
            Location::parse("[::1]:r", base).ok(),
            ssh("::1", None, "/~/r")
        );
        assert_eq!(
            Location::parse("file://localhost/srv/n1", base).ok(),
            Some(Location::Local("/srv/n1".into()))
        );
        // what ssh would read as an option is refused before ssh is run
        assert_eq!(
            Location::parse("-oProxyCommand=x:r", base),
            Err(UrlError::UnsafeHost {
                host: "-oProxyCommand=x".into()
            })
        );
        assert_eq!(
            Location::parse("ssh://-oX@h/r", base),
            Err(UrlError::UnsafeUser { user: "-oX".into() })
        );
        assert_eq!(
            Location::parse("annex::abc?type=directory", base),
            Err(UrlError::UnsupportedScheme {
                scheme: "annex".into()
            })
        );
    }
}
