//! Which repositories behind a server a client can ask for, and the UUID
//! of one named in a URL's `#REMOTE`, learnt without git-annex on the
//! client.
//!
//! Our git-annex-shell's `configlist` prints, after git-annex's own two
//! lines, one line for each proxied remote and each cluster it serves:
//!
//! ```text
//! annexproxy.proxy.NAME=UUID
//! annexproxy.cluster.NAME=UUID
//! ```
//!
//! NAME is the name the server's `proxy.log` gives the repository (the one
//! git-annex clients see as `origin-NAME`); only repositories the server
//! would really serve with `p2pstdio --uuid UUID` are listed. The real
//! git-annex-shell prints no such lines, so it offers nothing.

use std::process::Stdio;

use crate::helper::Family;
use crate::tunnel::shell_command;
use crate::url::{RemoteRef, Target};

/// Prefix of the configlist lines that describe served repositories.
const PREFIX: &str = "annexproxy.";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Proxied,
    Cluster,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Proxied => "proxied",
            Kind::Cluster => "cluster",
        }
    }
}

/// A repository the server serves on behalf of another.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Offered {
    pub kind: Kind,
    pub name: String,
    pub uuid: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("could not run {program}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("configlist failed ({status}){}", stderr_tail(.stderr))]
    Failed {
        status: std::process::ExitStatus,
        stderr: String,
    },
    #[error("the server's configlist names no repository (not a git-annex repository?)")]
    NotAnnex,
    #[error("no proxied remote or cluster named {name:?} on this server ({})", offered_text(.offered))]
    Unknown { name: String, offered: Vec<String> },
    #[error(
        "a P2P address offers no proxied remotes or clusters; use the server's ssh or local path"
    )]
    P2p,
}

fn stderr_tail(s: &str) -> String {
    match s.trim().lines().last() {
        Some(l) if !l.is_empty() => format!(": {l}"),
        _ => String::new(),
    }
}

fn offered_text(names: &[String]) -> String {
    if names.is_empty() {
        "it offers none".to_owned()
    } else {
        // Sorted: the server lists them in UUID order, meaningless here.
        let mut names = names.to_vec();
        names.sort();
        format!("it offers: {}", names.join(", "))
    }
}

/// Reads configlist output: the served repositories, in the server's
/// order. `None` when there is no `annex.uuid` (not a git-annex
/// repository, where `#REMOTE` cannot mean anything).
pub fn parse_configlist(out: &str) -> Option<Vec<Offered>> {
    let mut uuid_seen = false;
    let mut offered = Vec::new();
    for line in out.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        if key == "annex.uuid" {
            uuid_seen = !value.is_empty();
            continue;
        }
        let Some(rest) = key.strip_prefix(PREFIX) else {
            continue;
        };
        let (kind, name) = match rest.split_once('.') {
            Some(("proxy", n)) => (Kind::Proxied, n),
            Some(("cluster", n)) => (Kind::Cluster, n),
            // kinds a newer server may add are not ours to guess at
            _ => continue,
        };
        if name.is_empty() || !annex::uuids::is_uuid_form(value) {
            continue;
        }
        offered.push(Offered {
            kind,
            name: name.to_owned(),
            uuid: value.to_owned(),
        });
    }
    uuid_seen.then_some(offered)
}

/// The UUID `remote` stands for among `offered`.
pub fn pick(remote: &RemoteRef, offered: &[Offered]) -> Result<String, ResolveError> {
    match remote {
        RemoteRef::Uuid(u) => Ok(u.clone()),
        RemoteRef::Name(name) => offered
            .iter()
            .find(|o| &o.name == name)
            .map(|o| o.uuid.clone())
            .ok_or_else(|| ResolveError::Unknown {
                name: name.clone(),
                offered: offered.iter().map(|o| o.name.clone()).collect(),
            }),
    }
}

/// Asks the server which repositories it serves (runs its configlist).
pub fn offered(target: &Target, family: Family) -> Result<Vec<Offered>, ResolveError> {
    let mut cmd = shell_command(target, family, "configlist", &[]).ok_or(ResolveError::P2p)?;
    let program = cmd.get_program().to_string_lossy().into_owned();
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|source| ResolveError::Spawn { program, source })?;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        return Err(ResolveError::Failed {
            status: out.status,
            stderr,
        });
    }
    parse_configlist(&String::from_utf8_lossy(&out.stdout)).ok_or(ResolveError::NotAnnex)
}

/// The UUID to ask the server for: a UUID as given, a name looked up.
pub fn resolve(
    target: &Target,
    family: Family,
    remote: &RemoteRef,
) -> Result<String, ResolveError> {
    match remote {
        RemoteRef::Uuid(u) => Ok(u.clone()),
        RemoteRef::Name(_) => pick(remote, &offered(target, family)?),
    }
}

#[cfg(test)]
#[path = "resolve_tests.rs"]
mod tests;
