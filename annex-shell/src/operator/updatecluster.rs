//! `updatecluster`: record in `cluster.log` the nodes of each cluster this
//! repository is a gateway for, then do what `updateproxy` does, as
//! `git annex updatecluster` does, with its output lines:
//! `Added node R to cluster: NAME`, `Removed node DESC from cluster: NAME`
//! or `No cluster node changes for cluster: NAME`, then updateproxy's.
//!
//! A cluster's nodes are the remotes whose `annex-cluster-node` names it,
//! plus the nodes already recorded that this repository reaches through
//! another gateway (`annex-proxied-by` remotes): those are the other
//! gateways' business, and dropping them would shrink their cluster.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;

use annex::branch::maplog::{format_cluster_log, parse_node_list, MapLog};
use annex::branch::{UuidLog, VectorClock};
use annex::cluster::{
    cluster_node_names, configured_clusters, dead_uuids, recorded_clusters, remote_cost,
    remotes_with_proxied, CLUSTER_LOG,
};
use annex::repo::{RemoteConfig, Repo};

use super::initcluster::UUID_LOG;
use super::updateproxy::{known_uuid, private_uuids, special_remote, update_proxies, Asked};
use super::{open_initialized, OperatorError};

pub fn updatecluster(
    dir: &Path,
    out: &mut dyn Write,
    warn: &mut dyn Write,
) -> Result<(), OperatorError> {
    let (mut repo, my_uuid) = open_initialized(dir)?;
    let mut asked = Asked::default();
    update_clusters(&mut repo, &my_uuid, &mut asked, out, warn)?;
    update_proxies(&mut repo, &my_uuid, &mut asked, out, warn)?;
    repo.branch().commit()?;
    Ok(())
}

/// A remote configured as a node here.
struct Node {
    cost: f64,
    uuid: String,
    name: String,
}

/// Journal each configured cluster's node set (no commit), saying what
/// changed.
pub(crate) fn update_clusters(
    repo: &mut Repo,
    my_uuid: &str,
    asked: &mut Asked,
    out: &mut dyn Write,
    warn: &mut dyn Write,
) -> Result<(), OperatorError> {
    let remotes = remotes_with_proxied(repo)?;
    let mut configured = configured_nodes(repo, &remotes, asked, warn)?;
    let dead = dead_uuids(repo)?;
    let recorded = recorded_clusters(repo)?;
    let descriptions = descriptions(repo, &remotes)?;
    let private = private_uuids(repo, my_uuid);
    for (name, cluster) in configured_clusters(repo)? {
        let mine = configured.remove(&name).unwrap_or_default();
        let old: BTreeSet<String> = recorded
            .get(&cluster)
            .map(|nodes| nodes.difference(&dead).cloned().collect())
            .unwrap_or_default();
        let mut all: BTreeSet<String> = mine.iter().map(|n| n.uuid.clone()).collect();
        all.extend(
            remotes
                .iter()
                .filter(|r| r.get("annex-proxied-by").is_some())
                .filter_map(RemoteConfig::annex_uuid)
                .filter(|u| old.contains(*u))
                .map(str::to_owned),
        );
        if old == all {
            writeln!(out, "No cluster node changes for cluster: {name}")?;
            continue;
        }
        for n in mine.iter().filter(|n| !old.contains(&n.uuid)) {
            writeln!(out, "Added node {} to cluster: {name}", n.name)?;
        }
        for u in old.difference(&all) {
            let desc = descriptions.get(u).map_or(u.as_str(), String::as_str);
            writeln!(out, "Removed node {desc} from cluster: {name}")?;
        }
        let nodes: BTreeSet<String> = all.difference(&private).cloned().collect();
        let now = VectorClock::candidate_now();
        repo.branch().change_file(CLUSTER_LOG, |current| {
            // Lines git-annex would not load are kept, as it keeps them.
            let mut log = MapLog::parse_with(current.unwrap_or_default(), parse_node_list);
            log.set(&cluster, nodes, now);
            format_cluster_log(&log)
        })?;
    }
    Ok(())
}

/// Cluster name → the remotes configured as its nodes whose UUID is
/// known, in git-annex's order for remotes (cost, then UUID).
fn configured_nodes(
    repo: &mut Repo,
    remotes: &[RemoteConfig],
    asked: &mut Asked,
    warn: &mut dyn Write,
) -> Result<BTreeMap<String, Vec<Node>>, OperatorError> {
    let base = repo.work_dir().unwrap_or(repo.git_dir()).to_owned();
    let mut out: BTreeMap<String, Vec<Node>> = BTreeMap::new();
    for r in remotes {
        let Some(names) = cluster_node_names(r).filter(|n| !n.is_empty()) else {
            continue;
        };
        let cannot = "Cannot use this remote as a cluster node.";
        // A special remote is a node as in git-annex, if we can serve it
        // (its kind, its verified configuration): one we could not write
        // would be recorded and never get a key.
        if let Some(Err(e)) = special_remote(repo, r)? {
            writeln!(warn, "  {e}. {cannot}")?;
            continue;
        }
        let Some(uuid) = known_uuid(repo, r, cannot, asked, warn)? else {
            continue;
        };
        for cluster in names {
            out.entry(cluster).or_default().push(Node {
                cost: remote_cost(r, &base),
                uuid: uuid.clone(),
                name: r.name.clone(),
            });
        }
    }
    for nodes in out.values_mut() {
        nodes.sort_by(|a, b| a.cost.total_cmp(&b.cost).then_with(|| a.uuid.cmp(&b.uuid)));
        // git-annex holds them in a set where that order is identity.
        nodes.dedup_by(|a, b| a.cost == b.cost && a.uuid == b.uuid);
    }
    Ok(out)
}

/// What git-annex calls a UUID when telling of it: its `uuid.log`
/// description with the name of a remote that has it, `[name]` alone when
/// the two agree or the description is empty.
fn descriptions(
    repo: &Repo,
    remotes: &[RemoteConfig],
) -> Result<BTreeMap<String, String>, OperatorError> {
    let log = UuidLog::parse(&repo.branch().read_file(UUID_LOG)?.unwrap_or_default());
    let mut out: BTreeMap<String, String> =
        log.entries.into_iter().map(|(u, e)| (u, e.value)).collect();
    // A later remote with the same UUID names it, as git-annex's map does.
    let mut names = BTreeMap::new();
    for r in remotes {
        if let Some(u) = r.annex_uuid() {
            names.insert(u.to_owned(), r.name.clone());
        }
    }
    for (u, name) in names {
        let d = match out.remove(&u) {
            Some(d) if d == name || d.is_empty() => format!("[{name}]"),
            Some(d) => format!("{d} [{name}]"),
            None => name,
        };
        out.insert(u, d);
    }
    Ok(out)
}
