//! `updateproxy`: record in `proxy.log`, under this repository's UUID,
//! every remote configured with `annex-proxy=true` (or as a cluster node)
//! whose UUID is known, and say what changed as git-annex does:
//! `Started proxying for NAME`, `Stopped proxying for NAME`, or
//! `No proxy changes to record.`
//!
//! A remote whose UUID is not cached yet is asked, as git-annex asks it:
//! a local repository's config, or `git-annex-shell configlist` over ssh;
//! the UUID found is cached in `remote.NAME.annex-uuid`.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;

use annex::branch::maplog::{format_proxy_log, parse_proxy_log, valid_proxies};
use annex::branch::{Proxy, VectorClock};
use annex::repo::{RemoteConfig, Repo};
use annex::transport::{discover_uuid, ConnectOptions, NodeRemote};

use super::{open, sibling_shell, OperatorError};

pub const PROXY_LOG: &str = "proxy.log";

pub fn updateproxy(
    dir: &Path,
    out: &mut dyn Write,
    warn: &mut dyn Write,
) -> Result<(), OperatorError> {
    let mut repo = open(dir)?;
    let my_uuid = repo
        .uuid()
        .filter(|_| repo.is_annex_initialized())
        .ok_or(OperatorError::NotInitialized)?;
    let wanted = configured_proxies(&mut repo, warn)?;
    let branch = repo.branch();
    let old = recorded_proxies(&repo, &my_uuid)?;
    if old == wanted {
        writeln!(out, "No proxy changes to record.")?;
        return Ok(());
    }
    for p in old.union(&wanted) {
        match (old.contains(p), wanted.contains(p)) {
            (false, true) => writeln!(out, "Started proxying for {}", p.name)?,
            (true, false) => writeln!(out, "Stopped proxying for {}", p.name)?,
            _ => {}
        }
    }
    let private = private_uuids(&repo, &my_uuid);
    let recorded: BTreeSet<Proxy> = wanted
        .into_iter()
        .filter(|p| !private.contains(&p.uuid))
        .collect();
    let now = VectorClock::candidate_now();
    branch.change_file(PROXY_LOG, |current| {
        let mut log = parse_proxy_log(current.unwrap_or_default());
        log.set(&my_uuid, recorded, now);
        format_proxy_log(&log)
    })?;
    branch.commit()?;
    Ok(())
}

/// What `proxy.log` says this repository proxies (names git would not
/// accept as remote names dropped, as git-annex drops them on reading).
pub fn recorded_proxies(repo: &Repo, my_uuid: &str) -> Result<BTreeSet<Proxy>, OperatorError> {
    let content = repo.branch().read_file(PROXY_LOG)?.unwrap_or_default();
    Ok(parse_proxy_log(&content)
        .get(my_uuid)
        .map(valid_proxies)
        .unwrap_or_default())
}

/// Every remote the git config asks us to proxy for and whose UUID we can
/// learn; the others are warned about, as git-annex warns.
fn configured_proxies(
    repo: &mut Repo,
    warn: &mut dyn Write,
) -> Result<BTreeSet<Proxy>, OperatorError> {
    let base = repo.work_dir().unwrap_or(repo.git_dir()).to_owned();
    let opts = ConnectOptions::new(sibling_shell());
    let mut out = BTreeSet::new();
    for remote in repo.remotes() {
        if !wants_proxy(repo, &remote) {
            continue;
        }
        let node = match NodeRemote::from_config(&remote, &base) {
            Ok(n) => n,
            Err(e) => {
                writeln!(warn, "  {e}. Cannot proxy to this remote.")?;
                continue;
            }
        };
        let uuid = match node.uuid.as_str() {
            "" => learn_uuid(repo, &remote, &node, &opts, warn)?,
            u => Some(u.to_owned()),
        };
        match uuid {
            Some(uuid) => {
                out.insert(Proxy {
                    uuid,
                    name: remote.name.clone(),
                });
            }
            None => writeln!(
                warn,
                "  {} is a git remote without a known annex-uuid. Cannot proxy to this remote.",
                remote.name
            )?,
        }
    }
    Ok(out)
}

fn wants_proxy(repo: &Repo, remote: &RemoteConfig) -> bool {
    let proxy = repo
        .config_bool(&format!("remote.{}.annex-proxy", remote.name))
        .unwrap_or(false);
    let cluster_node = remote
        .get("annex-cluster-node")
        .is_some_and(|v| !v.trim().is_empty());
    proxy || cluster_node
}

/// Ask the remote for its UUID and cache it, unless git-annex would not
/// ask (`annex-ignore`).
fn learn_uuid(
    repo: &mut Repo,
    remote: &RemoteConfig,
    node: &NodeRemote,
    opts: &ConnectOptions,
    warn: &mut dyn Write,
) -> Result<Option<String>, OperatorError> {
    if repo
        .config_bool(&format!("remote.{}.annex-ignore", remote.name))
        .unwrap_or(false)
    {
        return Ok(None);
    }
    match discover_uuid(node, opts) {
        Ok(Some(uuid)) => {
            repo.set_config(&format!("remote.{}.annex-uuid", remote.name), &uuid)?;
            Ok(Some(uuid))
        }
        Ok(None) => Ok(None),
        Err(e) => {
            writeln!(
                warn,
                "  Remote {} cannot currently be accessed. ({e})",
                remote.name
            )?;
            Ok(None)
        }
    }
}

/// UUIDs git-annex keeps out of the branch: this repository's when
/// `annex.private` is set, and those of remotes with `annex-private`.
fn private_uuids(repo: &Repo, my_uuid: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    if repo.config_bool("annex.private").unwrap_or(false) {
        out.insert(my_uuid.to_owned());
    }
    for r in repo.remotes() {
        if repo
            .config_bool(&format!("remote.{}.annex-private", r.name))
            .unwrap_or(false)
        {
            if let Some(u) = r.annex_uuid() {
                out.insert(u.to_owned());
            }
        }
    }
    out
}
