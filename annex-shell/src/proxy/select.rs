//! Whether this repository may proxy for a UUID, and to which remote.
//!
//! git-annex's rules (`Annex/Proxy.hs: checkCanProxy`, spec §6.1): the
//! UUID must be listed in `proxy.log` under our own UUID, and a remote
//! with exactly that name and UUID must be configured `annex-proxy=true`;
//! of several, the cheapest wins. Only the git config can make us proxy,
//! so a change to the git-annex branch alone never opens a new relay.

use std::path::Path;

use annex::branch::maplog::{is_cluster_uuid, parse_proxy_log, valid_proxies};
use annex::branch::{BranchError, UuidLog};
use annex::repo::{RemoteConfig, Repo};
use annex::transport::{Location, NodeRemote, TransportError};

/// git-annex's default costs: a local repository is cheap, ssh dear.
const CHEAP_REMOTE_COST: f64 = 100.0;
const EXPENSIVE_REMOTE_COST: f64 = 200.0;

#[derive(Debug)]
pub enum Selection {
    /// Relay to this remote.
    Node(NodeRemote),
    /// We do not proxy for it at all: the plain UUID mismatch.
    NotListed,
    /// Listed, but no remote allows it; the UUID's description.
    NotConfigured(String),
    /// A cluster UUID: clusters are served by a later step.
    Cluster,
    /// The remote is configured but cannot be reached by any transport.
    Unreachable(TransportError),
}

pub fn select(repo: &Repo, my_uuid: &str, wanted: &str) -> Result<Selection, BranchError> {
    let branch = repo.branch();
    let log = parse_proxy_log(&branch.read_file("proxy.log")?.unwrap_or_default());
    let Some(mine) = log.get(my_uuid).map(valid_proxies) else {
        return Ok(Selection::NotListed);
    };
    let listed: Vec<&str> = mine
        .iter()
        .filter(|p| p.uuid == wanted)
        .map(|p| p.name.as_str())
        .collect();
    if !listed.is_empty() && is_cluster_uuid(wanted) {
        return Ok(Selection::Cluster);
    }
    let base = repo.work_dir().unwrap_or(repo.git_dir()).to_owned();
    let mut candidates: Vec<(f64, RemoteConfig)> = repo
        .remotes()
        .into_iter()
        .filter(|r| r.annex_uuid() == Some(wanted) && listed.contains(&r.name.as_str()))
        .filter(|r| {
            repo.config_bool(&format!("remote.{}.annex-proxy", r.name))
                .unwrap_or(false)
        })
        .map(|r| (cost(&r, &base), r))
        .collect();
    // Stable: equal costs keep the order git lists the remotes in.
    candidates.sort_by(|a, b| a.0.total_cmp(&b.0));
    match candidates.into_iter().next() {
        Some((_, remote)) => Ok(match NodeRemote::from_config(&remote, &base) {
            Ok(node) => Selection::Node(node),
            Err(e) => Selection::Unreachable(e),
        }),
        None => Ok(not_configured(repo, wanted)?),
    }
}

fn not_configured(repo: &Repo, wanted: &str) -> Result<Selection, BranchError> {
    let uuids = UuidLog::parse(&repo.branch().read_file("uuid.log")?.unwrap_or_default());
    Ok(match uuids.get(wanted) {
        Some(desc) => Selection::NotConfigured(desc.clone()),
        None => Selection::NotListed,
    })
}

fn cost(remote: &RemoteConfig, base: &Path) -> f64 {
    if let Some(c) = remote
        .get("annex-cost")
        .and_then(|c| c.trim().parse::<f64>().ok())
    {
        return c;
    }
    match remote.url().and_then(|u| Location::parse(u, base)) {
        Some(Location::Local(_)) => CHEAP_REMOTE_COST,
        _ => EXPENSIVE_REMOTE_COST,
    }
}
