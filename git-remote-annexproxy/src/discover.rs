//! `git-remote-annexproxy --list URL [--add PREFIX]`: what an annexproxy
//! server offers behind it, for people with plain git.
//!
//! Prints one line per proxied remote or cluster, `KIND NAME UUID` with
//! KIND `proxied` or `cluster`, in the server's order (read from its
//! configlist, see `resolve`). With `--add PREFIX`, each also becomes a
//! git remote `PREFIX-NAME` of the repository we are run in, with URL
//! `annexproxy::URL#NAME` — the names git-annex users see as
//! `origin-NAME` when PREFIX is `origin`.

use std::process::{Command, Stdio};

use anyhow::{bail, Context};

use crate::helper::Family;
use crate::resolve::{self, Offered};
use crate::url;

const SCHEME: &str = "annexproxy::";

/// The arguments after `--list`; returns the exit status.
pub fn run(args: &[String]) -> anyhow::Result<u8> {
    let (url, prefix) = match args {
        [url] => (url, None),
        [url, flag, prefix] if flag == "--add" => (url, Some(prefix.as_str())),
        _ => bail!("usage: git-remote-annexproxy --list <url> [--add PREFIX]"),
    };
    let base = url.strip_prefix(SCHEME).unwrap_or(url);
    let parsed = url::parse_url(base).with_context(|| format!("bad URL {url:?}"))?;
    if parsed.remote.is_some() {
        bail!("bad URL {url:?}: --list takes the server's URL, without '#REMOTE'");
    }
    if let Some(p) = prefix {
        if !annex::branch::maplog::is_legal_remote_name(p) {
            bail!("prefix {p:?} would not make legal git remote names");
        }
    }
    let offered =
        resolve::offered(&parsed.target, Family::Any).with_context(|| format!("listing {url}"))?;
    for o in &offered {
        println!("{}\t{}\t{}", o.kind.as_str(), o.name, o.uuid);
    }
    match prefix {
        None => Ok(0),
        Some(p) => add_remotes(base, p, &offered),
    }
}

/// The git remote `--add` makes for `o`: its name and URL.
pub fn remote_for(base: &str, prefix: &str, o: &Offered) -> (String, String) {
    (
        format!("{prefix}-{}", o.name),
        format!("{SCHEME}{base}#{}", o.name),
    )
}

/// Adds the remotes; one already there with the same URL is left alone,
/// one with another URL is reported and kept (exit status 1).
fn add_remotes(base: &str, prefix: &str, offered: &[Offered]) -> anyhow::Result<u8> {
    let mut status = 0;
    for o in offered {
        let (name, url) = remote_for(base, prefix, o);
        match existing_url(&name) {
            Some(u) if u == url => {
                eprintln!("git-remote-annexproxy: remote {name} is already {url}")
            }
            Some(u) => {
                eprintln!("git-remote-annexproxy: remote {name} exists with URL {u}; not changed");
                status = 1;
            }
            None => {
                let st = Command::new("git")
                    .args(["remote", "add", &name, &url])
                    .status()
                    .context("running git remote add")?;
                if !st.success() {
                    bail!("git remote add {name} {url} failed ({st})");
                }
                eprintln!("git-remote-annexproxy: added remote {name} ({url})");
            }
        }
    }
    Ok(status)
}

fn existing_url(name: &str) -> Option<String> {
    let out = Command::new("git")
        .args(["config", "--get", &format!("remote.{name}.url")])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim_end().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resolve::Kind;

    #[test]
    fn remotes_are_named_as_git_annex_names_proxied_ones() {
        let o = Offered {
            kind: Kind::Cluster,
            name: "mycl".into(),
            uuid: "u".into(),
        };
        assert_eq!(
            remote_for("ssh://h/srv/gw.git", "origin", &o),
            (
                "origin-mycl".to_owned(),
                "annexproxy::ssh://h/srv/gw.git#mycl".to_owned()
            )
        );
        // what --add writes, the helper reads back as the same server and name
        let (_, url) = remote_for("h:gw.git", "gw", &o);
        let parsed =
            url::parse_url(url.strip_prefix(SCHEME).expect("has the scheme")).expect("parses");
        assert_eq!(parsed.remote, Some(url::RemoteRef::Name("mycl".into())));
    }
}
