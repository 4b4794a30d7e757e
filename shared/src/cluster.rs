//! Clusters (spec §7): their UUIDs, which ones this repository serves
//! (`annex.cluster.NAME` configs), what `cluster.log` records, and which
//! remotes a gateway relays a cluster's requests to.
//!
//! The remotes considered are the configured git remotes plus the ones
//! git-annex synthesises from `proxy.log` (`R-NAME` for each remote `NAME`
//! an ssh remote `R` proxies, spec §6.2): another gateway's view of the
//! same cluster only exists in that synthesised form unless configured by
//! hand, and git-annex treats both alike.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use gix::bstr::ByteSlice;

use crate::branch::maplog::{
    is_legal_remote_name, parse_cluster_log, parse_proxy_log, valid_proxies,
};
use crate::branch::{is_cluster_uuid, BranchError, UuidLog};
use crate::repo::{RemoteConfig, Repo};
use crate::transport::Location;

pub const CLUSTER_LOG: &str = "cluster.log";
pub const PROXY_LOG: &str = "proxy.log";
pub const TRUST_LOG: &str = "trust.log";

/// git-annex's default costs: a local repository is cheap, ssh dear.
pub const CHEAP_REMOTE_COST: f64 = 100.0;
pub const EXPENSIVE_REMOTE_COST: f64 = 200.0;

/// Remote settings a synthesised proxied remote takes over from its proxy
/// when it has none of its own (git-annex's inherited remote fields).
const INHERITED: &[&str] = &[
    "annex-cost",
    "annex-cost-command",
    "annex-ignore",
    "annex-ignore-auto",
    "annex-ignore-command",
    "annex-sync",
    "annex-sync-command",
    "annex-pull",
    "annex-push",
    "annex-readonly",
    "annex-verify",
    "annex-fastcopy",
    "annex-speculate-present",
    "annex-bare",
    "annex-retry",
    "annex-forward-retry",
    "annex-retrydelay",
    "annex-stalldetection",
    "annex-stalldetection-upload",
    "annex-stalldetection-download",
    "annex-bwlimit",
    "annex-bwlimit-upload",
    "annex-bwlimit-download",
    "annex-security-allow-unverified-downloads",
    "annex-web-options",
    "annex-max-git-bundles",
    "annex-allow-encrypted-gitrepo",
    "annex-proxy",
    "annex-annexurl",
    "annex-shell",
    "annex-ssh-options",
    "annex-rsync-options",
    "annex-rsync-download-options",
    "annex-rsync-upload-options",
    "annex-rsync-transport",
    "annex-gnupg-options",
    "annex-gnupg-decrypt-options",
    "annex-shared-sop-command",
    "annex-shared-sop-profile",
];

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(transparent)]
    Branch(#[from] BranchError),
    #[error("git config of {}: {source}", path.display())]
    Config {
        path: std::path::PathBuf,
        #[source]
        source: gix::Error,
    },
}

/// A new random cluster UUID: a v4 UUID made recognisable the way
/// git-annex does it, `ac` first and `8` as its 15th character.
pub fn gen_cluster_uuid() -> String {
    cluster_uuid_from(&uuid::Uuid::new_v4().to_string())
        .expect("a v4 UUID string is 36 characters long")
}

/// git-annex's conversion of any UUID string into a cluster UUID; `None`
/// when it is too short to carry the marker.
pub fn cluster_uuid_from(uuid: &str) -> Option<String> {
    if uuid.len() <= 14 || !uuid.is_char_boundary(2) || !uuid.is_char_boundary(15) {
        return None;
    }
    Some(format!("ac{}8{}", &uuid[2..14], &uuid[15..]))
}

/// The clusters this repository is a gateway for: `annex.cluster.NAME`
/// configs whose value is a cluster UUID. NAME comes lower-cased, as git
/// lists config keys and so as git-annex sees them.
pub fn configured_clusters(repo: &Repo) -> Result<BTreeMap<String, String>, ClusterError> {
    let git = gix::open(repo.git_dir()).map_err(|source| ClusterError::Config {
        path: repo.git_dir().to_owned(),
        source,
    })?;
    let snapshot = git.config_snapshot();
    let mut out = BTreeMap::new();
    let Some(sections) = snapshot.plumbing().sections_by_name("annex") else {
        return Ok(out);
    };
    for section in sections {
        // `annex.cluster.a.b` is written `[annex "cluster.a"] b = …`.
        let prefix = match section.header().subsection_name().map(|s| s.to_str_lossy()) {
            Some(sub) if sub == "cluster" => String::new(),
            Some(sub) => match sub.strip_prefix("cluster.") {
                Some(rest) => format!("{rest}."),
                None => continue,
            },
            None => continue,
        };
        let body = section.body();
        for key in body.value_names() {
            let Some(value) = body.values(&key).pop() else {
                continue;
            };
            let uuid = value.to_str_lossy().into_owned();
            let name = format!("{prefix}{}", key.to_ascii_lowercase());
            // A later file (or line) overrides: drop what no longer holds.
            if is_cluster_uuid(&uuid) {
                out.insert(name, uuid);
            } else {
                out.remove(&name);
            }
        }
    }
    Ok(out)
}

/// `remote.R.annex-cluster-node`: the cluster names it is a node of (only
/// legal remote names count); `None` when unset.
pub fn cluster_node_names(remote: &RemoteConfig) -> Option<Vec<String>> {
    remote.get("annex-cluster-node").map(|v| {
        v.split_whitespace()
            .filter(|n| is_legal_remote_name(n))
            .map(str::to_owned)
            .collect()
    })
}

/// `remote.R.annex-cluster-gateway`: the clusters that remote is (another)
/// gateway for.
pub fn cluster_gateway_uuids(remote: &RemoteConfig) -> Vec<String> {
    remote
        .get("annex-cluster-gateway")
        .map(|v| {
            v.split_whitespace()
                .filter(|u| is_cluster_uuid(u))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// UUIDs `trust.log` marks dead (`X`).
pub fn dead_uuids(repo: &Repo) -> Result<BTreeSet<String>, ClusterError> {
    let log = UuidLog::parse(&repo.branch().read_file(TRUST_LOG)?.unwrap_or_default());
    Ok(log
        .entries
        .into_iter()
        .filter(|(_, e)| e.value == "X")
        .map(|(u, _)| u)
        .collect())
}

/// `cluster.log`: cluster UUID → node UUIDs, dead nodes included.
pub fn recorded_clusters(repo: &Repo) -> Result<BTreeMap<String, BTreeSet<String>>, ClusterError> {
    let log = parse_cluster_log(&repo.branch().read_file(CLUSTER_LOG)?.unwrap_or_default());
    Ok(log.entries.into_iter().map(|(k, e)| (k, e.value)).collect())
}

/// The remote's cost: `annex-cost` when set, else git-annex's default for
/// where it is.
pub fn remote_cost(remote: &RemoteConfig, base: &Path) -> f64 {
    remote
        .get("annex-cost")
        .and_then(|c| c.trim().parse::<f64>().ok())
        .unwrap_or_else(|| default_cost(remote, base))
}

fn default_cost(remote: &RemoteConfig, base: &Path) -> f64 {
    match remote.url().and_then(|u| Location::parse(u, base).ok()) {
        Some(Location::Local(_)) => CHEAP_REMOTE_COST,
        _ => EXPENSIVE_REMOTE_COST,
    }
}

fn base_dir(repo: &Repo) -> &Path {
    repo.work_dir().unwrap_or(repo.git_dir())
}

/// The proxied remotes git-annex synthesises from `proxy.log`, then the
/// configured git remotes (git-annex's order): for an ssh remote `R` with UUID `U`, a
/// remote `R-NAME` for each `<uuid>:NAME` recorded under `U`, reached at
/// R's URL with `annex-uuid=<uuid>` and `annex-proxied-by=U`, unless any
/// `remote.R-NAME.*` is configured. A node proxied alongside its cluster
/// costs R's default cost plus 0.1 and is not synced with.
pub fn remotes_with_proxied(repo: &Repo) -> Result<Vec<RemoteConfig>, ClusterError> {
    let configured = repo.remotes();
    let proxies = parse_proxy_log(&repo.branch().read_file(PROXY_LOG)?.unwrap_or_default());
    let clusters = recorded_clusters(repo)?;
    let base = base_dir(repo);
    let taken: BTreeSet<&str> = configured.iter().map(|r| r.name.as_str()).collect();
    let mut synthesised = Vec::new();
    for r in &configured {
        // git-annex-shell is not used for a local URL, so those never proxy.
        let via_ssh = matches!(
            r.url().and_then(|u| Location::parse(u, base).ok()),
            Some(Location::Ssh(_))
        );
        let Some(proxy_uuid) = r.annex_uuid().filter(|_| via_ssh) else {
            continue;
        };
        let Some(proxied) = proxies.get(proxy_uuid).map(valid_proxies) else {
            continue;
        };
        let proxied_uuids: BTreeSet<&str> = proxied.iter().map(|p| p.uuid.as_str()).collect();
        for p in &proxied {
            let name = format!("{}-{}", r.name, p.name);
            if taken.contains(name.as_str()) {
                continue;
            }
            let mut settings: BTreeMap<String, String> = INHERITED
                .iter()
                .filter_map(|k| r.get(k).map(|v| ((*k).to_owned(), v.to_owned())))
                .collect();
            if let Some(url) = r.url() {
                settings.insert("url".into(), url.to_owned());
            }
            settings.insert("annex-uuid".into(), p.uuid.clone());
            settings.insert("annex-proxied-by".into(), proxy_uuid.to_owned());
            let node_of_proxied_cluster = clusters
                .iter()
                .any(|(c, nodes)| nodes.contains(&p.uuid) && proxied_uuids.contains(c.as_str()));
            if node_of_proxied_cluster {
                settings.insert("annex-sync".into(), "false".into());
                let cost = default_cost(r, base) + 0.1;
                settings.insert("annex-cost".into(), cost.to_string());
            }
            synthesised.push(RemoteConfig { name, settings });
        }
    }
    synthesised.extend(configured);
    Ok(synthesised)
}

/// The remotes a gateway relays a cluster's requests to, cheapest first
/// (equal costs in git's order), as git-annex's cluster proxy picks them:
///
/// * a remote with `annex-cluster-node` naming a cluster that this
///   repository's `annex.cluster.*` maps to `cluster_uuid`, whose UUID
///   `cluster.log` lists as a live node of it; or, when the remote has no
///   `annex-cluster-node` at all,
/// * the same cluster behind another gateway: a remote with the cluster's
///   UUID, `annex-proxied-by` a remote whose `annex-cluster-gateway` lists
///   the cluster, and that proxying UUID neither in `bypass` nor ours.
pub fn gateway_nodes(
    repo: &Repo,
    cluster_uuid: &str,
    bypass: &BTreeSet<String>,
) -> Result<Vec<RemoteConfig>, ClusterError> {
    let dead = dead_uuids(repo)?;
    let nodes: BTreeSet<String> = recorded_clusters(repo)?
        .remove(cluster_uuid)
        .unwrap_or_default()
        .difference(&dead)
        .cloned()
        .collect();
    let mine = configured_clusters(repo)?;
    let mut bypass = bypass.clone();
    if let Some(u) = repo.uuid() {
        bypass.insert(u);
    }
    let all = remotes_with_proxied(repo)?;
    let is_gateway_for_cluster = |uuid: &str| {
        all.iter().any(|g| {
            g.annex_uuid() == Some(uuid)
                && cluster_gateway_uuids(g).iter().any(|c| c == cluster_uuid)
        })
    };
    let is_node = |r: &RemoteConfig| match cluster_node_names(r) {
        Some(names) => {
            names
                .iter()
                .any(|n| mine.get(n).map(String::as_str) == Some(cluster_uuid))
                && r.annex_uuid().is_some_and(|u| nodes.contains(u))
        }
        None => {
            r.annex_uuid() == Some(cluster_uuid)
                && r.get("annex-proxied-by")
                    .is_some_and(|p| !bypass.contains(p) && is_gateway_for_cluster(p))
        }
    };
    let base = base_dir(repo);
    let mut out: Vec<(f64, RemoteConfig)> = all
        .iter()
        .filter(|r| is_node(r))
        .map(|r| (remote_cost(r, base), r.clone()))
        .collect();
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    Ok(out.into_iter().map(|(_, r)| r).collect())
}

#[cfg(test)]
#[path = "cluster_tests.rs"]
mod tests;
