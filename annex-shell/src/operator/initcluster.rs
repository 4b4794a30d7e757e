//! `initcluster NAME [DESCRIPTION]`: make this repository the gateway of
//! a new cluster, as `git annex initcluster` does: a fresh cluster UUID in
//! `annex.cluster.NAME` and a description in `uuid.log` (`cluster NAME`
//! unless given). A cluster already configured under NAME is kept as it
//! is, description included.

use std::io::Write;
use std::path::Path;

use annex::branch::maplog::is_legal_remote_name;
use annex::branch::uuidlog::change_uuid_log;
use annex::branch::VectorClock;
use annex::cluster::{configured_clusters, gen_cluster_uuid};

use super::{open_initialized, OperatorError};

pub const UUID_LOG: &str = "uuid.log";

pub fn initcluster(
    dir: &Path,
    name: &str,
    description: Option<&str>,
    out: &mut dyn Write,
) -> Result<(), OperatorError> {
    let (mut repo, _) = open_initialized(dir)?;
    if !is_legal_remote_name(name) {
        return Err(OperatorError::BadClusterName);
    }
    // git lists config keys lower-cased, and so git-annex finds them; it
    // compares the name as typed, so a second `initcluster MyC` would
    // replace the cluster's UUID there. Comparing as git lists keeps the
    // cluster instead.
    let known = configured_clusters(&repo)?.contains_key(&name.to_ascii_lowercase());
    if !known {
        let uuid = gen_cluster_uuid();
        repo.set_config(&format!("annex.cluster.{name}"), &uuid)?;
        let desc = description.map_or_else(|| format!("cluster {name}"), str::to_owned);
        let now = VectorClock::candidate_now();
        let branch = repo.branch();
        branch.change_file(UUID_LOG, |old| {
            change_uuid_log(old.unwrap_or_default(), &uuid, &desc, now)
        })?;
        branch.commit()?;
    }
    writeln!(out, "initcluster {name} ok")?;
    if !known {
        writeln!(out, "(recording state in git...)")?;
    }
    Ok(())
}
