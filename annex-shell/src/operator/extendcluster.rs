//! `extendcluster GATEWAYREMOTE NAME`: make this repository one more
//! gateway of the cluster that the remote GATEWAYREMOTE is a gateway for,
//! as `git annex extendcluster` does. That gateway's cluster is seen here
//! as the remote `GATEWAYREMOTE-NAME` (synthesised from its `proxy.log`
//! once its git-annex branch has been fetched); its UUID becomes
//! `annex.cluster.NAME` (unless NAME is configured already) and
//! `remote.GATEWAYREMOTE.annex-cluster-gateway`, then `updatecluster`
//! runs.

use std::io::Write;
use std::path::Path;

use annex::branch::is_cluster_uuid;
use annex::cluster::{configured_clusters, remotes_with_proxied};

use super::updatecluster::update_clusters;
use super::updateproxy::{known_uuid, update_proxies, Asked};
use super::{open_initialized, OperatorError};

pub fn extendcluster(
    dir: &Path,
    gateway: &str,
    name: &str,
    out: &mut dyn Write,
    warn: &mut dyn Write,
) -> Result<(), OperatorError> {
    let (mut repo, my_uuid) = open_initialized(dir)?;
    let mut asked = Asked::default();
    // The gateway's cluster remote exists only once the gateway's UUID is
    // known: ask it, as git-annex does, when the remote is new.
    if let Some(g) = repo
        .remotes()
        .into_iter()
        .find(|r| r.name == gateway && r.annex_uuid().is_none())
    {
        known_uuid(
            &mut repo,
            &g,
            "Cannot extend the cluster through it.",
            &mut asked,
            warn,
        )?;
    }
    let remotes = remotes_with_proxied(&repo)?;
    let cluster_remote = format!("{gateway}-{name}");
    let found = |n: &str| remotes.iter().find(|r| r.name == n);
    let cluster = found(&cluster_remote)
        .ok_or_else(|| OperatorError::NoSuchRemote(cluster_remote.clone()))?;
    found(gateway).ok_or_else(|| OperatorError::NoSuchRemote(gateway.to_owned()))?;
    let uuid = cluster
        .annex_uuid()
        .filter(|u| is_cluster_uuid(u))
        .ok_or_else(|| OperatorError::NotAClusterRemote(cluster_remote.clone()))?
        .to_owned();
    // As in initcluster: the name is looked up as git lists it.
    if !configured_clusters(&repo)?.contains_key(&name.to_ascii_lowercase()) {
        repo.set_config(&format!("annex.cluster.{name}"), &uuid)?;
    }
    repo.set_config(&format!("remote.{gateway}.annex-cluster-gateway"), &uuid)?;
    writeln!(out, "extendcluster {name} ok")?;
    update_clusters(&mut repo, &my_uuid, &mut asked, out, warn)?;
    update_proxies(&mut repo, &my_uuid, &mut asked, out, warn)?;
    repo.branch().commit()?;
    Ok(())
}
