//! Whether this repository may proxy for a UUID, and to which remote.
//!
//! git-annex's rules (`Annex/Proxy.hs: checkCanProxy`, spec §6.1): the
//! UUID must be listed in `proxy.log` under our own UUID, and a remote
//! with exactly that name and UUID must be configured for proxying
//! (`annex-proxy=true`, a node of one of our clusters, or proxied by
//! another gateway of a cluster); of several, the cheapest wins. A
//! cluster UUID must also be one `cluster.log` knows. Only the git config can make us proxy,
//! so a change to the git-annex branch alone never opens a new relay.

use annex::branch::maplog::{is_cluster_uuid, parse_proxy_log, valid_proxies};
use annex::branch::UuidLog;
use annex::cluster::ClusterError;
use annex::repo::{RemoteConfig, Repo};
use annex::transport::{NodeRemote, TransportError};

use crate::special::{SpecialError, SpecialRemote};

#[derive(Debug)]
pub enum Selection {
    /// Relay to this remote.
    Node(NodeRemote),
    /// We do not proxy for it at all: the plain UUID mismatch.
    NotListed,
    /// Listed, but no remote allows it; the UUID's description.
    NotConfigured(String),
    /// A cluster we are a gateway for.
    Cluster(String),
    /// The remote is configured but cannot be reached by any transport.
    Unreachable(TransportError),
    /// A special remote (no url, recorded in remote.log) we serve
    /// ourselves.
    Special(SpecialRemote),
    /// A special remote of a kind we cannot serve (its type named).
    Unserved(SpecialError),
}

pub fn select(repo: &Repo, my_uuid: &str, wanted: &str) -> Result<Selection, ClusterError> {
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
        let known = annex::cluster::recorded_clusters(repo)?.contains_key(wanted);
        return if known {
            Ok(Selection::Cluster(wanted.to_owned()))
        } else {
            not_configured(repo, wanted)
        };
    }
    let base = repo.work_dir().unwrap_or(repo.git_dir()).to_owned();
    let my_clusters = annex::cluster::configured_clusters(repo)?;
    let all = annex::cluster::remotes_with_proxied(repo)?;
    let configured = |r: &RemoteConfig| proxy_is_configured(repo, r, &my_clusters, &all);
    let mut candidates: Vec<(f64, RemoteConfig)> = all
        .iter()
        .filter(|r| r.annex_uuid() == Some(wanted) && listed.contains(&r.name.as_str()))
        .filter(|r| configured(r))
        .map(|r| (annex::cluster::remote_cost(r, &base), r.clone()))
        .collect();
    // Stable: equal costs keep the order git lists the remotes in.
    candidates.sort_by(|a, b| a.0.total_cmp(&b.0));
    let Some((_, remote)) = candidates.into_iter().next() else {
        return not_configured(repo, wanted);
    };
    if remote.url().is_none() {
        let specials = crate::special::config::remote_log(repo)?;
        if crate::special::config::is_special(&remote, &specials) {
            return Ok(match SpecialRemote::load(repo, &remote, &specials) {
                Ok(special) => Selection::Special(special),
                Err(e) => Selection::Unserved(e),
            });
        }
    }
    Ok(match NodeRemote::from_config(&remote, &base) {
        Ok(node) => Selection::Node(node),
        Err(e) => Selection::Unreachable(e),
    })
}

fn not_configured(repo: &Repo, wanted: &str) -> Result<Selection, ClusterError> {
    let uuids = UuidLog::parse(&repo.branch().read_file("uuid.log")?.unwrap_or_default());
    Ok(match uuids.get(wanted) {
        Some(desc) => Selection::NotConfigured(desc.clone()),
        None => Selection::NotListed,
    })
}

/// git-annex proxies for a remote marked `annex-proxy`, for a node of one
/// of our clusters, and for a remote proxied by another gateway of a
/// cluster (how multi-gateway clusters reach each other's nodes).
fn proxy_is_configured(
    repo: &Repo,
    r: &RemoteConfig,
    my_clusters: &std::collections::BTreeMap<String, String>,
    all: &[RemoteConfig],
) -> bool {
    if repo
        .config_bool(&format!("remote.{}.annex-proxy", r.name))
        .unwrap_or(false)
        || r.get("annex-proxy").is_some_and(|v| v == "true")
    {
        return true;
    }
    let node_of = annex::cluster::cluster_node_names(r).unwrap_or_default();
    if node_of.iter().any(|n| my_clusters.contains_key(n)) {
        return true;
    }
    match r.get("annex-proxied-by") {
        Some(by) => all.iter().any(|g| {
            g.annex_uuid() == Some(by) && !annex::cluster::cluster_gateway_uuids(g).is_empty()
        }),
        None => false,
    }
}
