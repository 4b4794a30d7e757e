//! `updateproxy`: record in `proxy.log`, under this repository's UUID,
//! every remote configured with `annex-proxy=true` (or as a cluster node)
//! whose UUID is known, the clusters this repository is a gateway for and
//! their nodes behind other gateways, and say what changed as git-annex does:
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
use annex::cluster::{configured_clusters, dead_uuids, recorded_clusters, remotes_with_proxied};
use annex::repo::{RemoteConfig, Repo};
use annex::transport::{discover_uuid, ConnectOptions, NodeRemote};

use super::{open_initialized, sibling_shell, OperatorError};
use crate::special::{SpecialError, SpecialRemote};

pub const PROXY_LOG: &str = "proxy.log";
const CANNOT_PROXY: &str = "Cannot proxy to this remote.";

pub fn updateproxy(
    dir: &Path,
    out: &mut dyn Write,
    warn: &mut dyn Write,
) -> Result<(), OperatorError> {
    let (mut repo, my_uuid) = open_initialized(dir)?;
    update_proxies(&mut repo, &my_uuid, &mut Asked::default(), out, warn)?;
    repo.branch().commit()?;
    Ok(())
}

/// Journal the new `proxy.log` entry for `my_uuid` (no commit), saying
/// what changed.
pub(crate) fn update_proxies(
    repo: &mut Repo,
    my_uuid: &str,
    asked: &mut Asked,
    out: &mut dyn Write,
    warn: &mut dyn Write,
) -> Result<(), OperatorError> {
    // A push of an export remote's tracking branch changes its export.
    super::postreceive::install_hook(repo, warn)?;
    let remote_proxies = break_cycles(configured_proxies(repo, asked, warn)?, repo, my_uuid)?;
    let mut wanted = cluster_proxies(repo, &remote_proxies)?;
    wanted.extend(remote_proxies);
    let old = recorded_proxies(repo, my_uuid)?;
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
    let private = private_uuids(repo, my_uuid);
    let recorded: BTreeSet<Proxy> = wanted
        .into_iter()
        .filter(|p| !private.contains(&p.uuid))
        .collect();
    let now = VectorClock::candidate_now();
    repo.branch().change_file(PROXY_LOG, |current| {
        let mut log = parse_proxy_log(current.unwrap_or_default());
        log.set(my_uuid, recorded, now);
        format_proxy_log(&log)
    })?;
    Ok(())
}

/// The clusters this repository is a gateway for, under their names, and
/// the nodes of those clusters that other gateways proxy (their `R-NAME`
/// remotes), except UUIDs proxied directly: a node reached both ways would
/// make a cycle.
fn cluster_proxies(
    repo: &Repo,
    remote_proxies: &BTreeSet<Proxy>,
) -> Result<BTreeSet<Proxy>, OperatorError> {
    let mine = configured_clusters(repo)?;
    let dead = dead_uuids(repo)?;
    let recorded = recorded_clusters(repo)?;
    let mut direct: BTreeSet<&str> = remote_proxies.iter().map(|p| p.uuid.as_str()).collect();
    direct.extend(mine.values().map(String::as_str));
    let node_of_mine = |u: &str| {
        !dead.contains(u)
            && mine
                .values()
                .any(|c| recorded.get(c).is_some_and(|nodes| nodes.contains(u)))
    };
    let mut out: BTreeSet<Proxy> = mine
        .iter()
        .map(|(name, uuid)| Proxy {
            uuid: uuid.clone(),
            name: name.clone(),
        })
        .collect();
    for r in remotes_with_proxied(repo)? {
        let Some(u) = r.annex_uuid() else { continue };
        if r.get("annex-proxied-by").is_some() && node_of_mine(u) && !direct.contains(u) {
            out.insert(Proxy {
                uuid: u.to_owned(),
                name: r.name.clone(),
            });
        }
    }
    Ok(out)
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

/// Routes through other proxies that lead back to us, or to a repository
/// we already reach by a shorter route, are dropped: with two proxies
/// proxying each other, git-annex records `B-A` (itself), `B-A-B` and
/// longer every time updateproxy runs on either side; we keep one route
/// per repository, the direct remote or else the shortest name.
fn break_cycles(
    proxies: BTreeSet<Proxy>,
    repo: &Repo,
    my_uuid: &str,
) -> Result<BTreeSet<Proxy>, OperatorError> {
    let proxied_names: BTreeSet<String> = remotes_with_proxied(repo)?
        .into_iter()
        .filter(|r| r.get("annex-proxied-by").is_some())
        .map(|r| r.name)
        .collect();
    let is_route = |p: &Proxy| proxied_names.contains(&p.name);
    let direct: BTreeSet<&str> = proxies
        .iter()
        .filter(|p| !is_route(p))
        .map(|p| p.uuid.as_str())
        .collect();
    let shortest = |p: &Proxy| {
        proxies
            .iter()
            .filter(|q| q.uuid == p.uuid && is_route(q))
            .min_by_key(|q| (q.name.len(), q.name.clone()))
            .map(|q| q.name == p.name)
            .unwrap_or(true)
    };
    Ok(proxies
        .iter()
        .filter(|p| {
            !is_route(p) || (p.uuid != my_uuid && !direct.contains(p.uuid.as_str()) && shortest(p))
        })
        .cloned()
        .collect())
}

/// Every remote the git config asks us to proxy for and whose UUID we can
/// learn; the others are warned about, as git-annex warns.
fn configured_proxies(
    repo: &mut Repo,
    asked: &mut Asked,
    warn: &mut dyn Write,
) -> Result<BTreeSet<Proxy>, OperatorError> {
    // A proxy's own proxied remotes appear only once its UUID is known:
    // learn the UUIDs first, so a chain (`B-C` behind remote `B`) is seen
    // in one run.
    // Those asked in vain here are not warned about again below: git-annex
    // says once that a remote cannot be proxied.
    let mut unknown = BTreeSet::new();
    for remote in repo.remotes() {
        if wants_proxy(repo, &remote)
            && remote.annex_uuid().is_none()
            && known_uuid(repo, &remote, CANNOT_PROXY, asked, warn)?.is_none()
        {
            unknown.insert(remote.name.clone());
        }
    }
    let mut out = BTreeSet::new();
    for remote in remotes_with_proxied(repo)? {
        if !wants_proxy(repo, &remote) || unknown.contains(&remote.name) {
            continue;
        }
        if let Some(uuid) = known_uuid(repo, &remote, CANNOT_PROXY, asked, warn)? {
            out.insert(Proxy {
                uuid,
                name: remote.name.clone(),
            });
        }
    }
    Ok(out)
}

/// Remotes already asked for their UUID in vain during one operator
/// command: each is tried, and said to be unreachable, once.
#[derive(Default)]
pub(crate) struct Asked {
    in_vain: BTreeSet<String>,
}

/// The remote's UUID, asked for and cached when not known yet; `None`
/// (with git-annex's warning ending in `cannot`) when it cannot be had.
pub(crate) fn known_uuid(
    repo: &mut Repo,
    remote: &RemoteConfig,
    cannot: &str,
    asked: &mut Asked,
    warn: &mut dyn Write,
) -> Result<Option<String>, OperatorError> {
    if let Some(special) = special_remote(repo, remote)? {
        return Ok(match special {
            Ok(s) => Some(s.uuid),
            Err(e) => {
                writeln!(warn, "  {e}. {cannot}")?;
                None
            }
        });
    }
    let base = repo.work_dir().unwrap_or(repo.git_dir()).to_owned();
    let node = match NodeRemote::from_config(remote, &base) {
        Ok(n) => n,
        Err(e) => {
            writeln!(warn, "  {e}. {cannot}")?;
            return Ok(None);
        }
    };
    let uuid = match node.uuid.as_str() {
        "" if asked.in_vain.contains(&remote.name) => None,
        "" => {
            let learnt = learn_uuid(repo, remote, &node, warn)?;
            if learnt.is_none() {
                asked.in_vain.insert(remote.name.clone());
            }
            learnt
        }
        u => Some(u.to_owned()),
    };
    if uuid.is_none() {
        writeln!(
            warn,
            "  {} is a git remote without a known annex-uuid. {cannot}",
            remote.name
        )?;
    }
    Ok(uuid)
}

/// The special remote `remote` is (one git-annex recorded with
/// `initremote`, so it has no url), and whether we can serve it; `None`
/// for a git remote.
pub(crate) fn special_remote(
    repo: &Repo,
    remote: &RemoteConfig,
) -> Result<Option<Result<SpecialRemote, SpecialError>>, OperatorError> {
    if remote.url().is_some() {
        return Ok(None);
    }
    let log = crate::special::config::remote_log(repo)?;
    if !crate::special::config::is_special(remote, &log) {
        return Ok(None);
    }
    Ok(Some(SpecialRemote::load(repo, remote, &log)))
}

/// A boolean remote setting; synthesised proxied remotes have theirs only
/// in their settings.
fn remote_bool(repo: &Repo, remote: &RemoteConfig, key: &str) -> bool {
    repo.config_bool(&format!("remote.{}.{key}", remote.name))
        .or_else(
            || match remote.get(key)?.trim().to_ascii_lowercase().as_str() {
                "true" | "yes" | "on" | "1" => Some(true),
                _ => Some(false),
            },
        )
        .unwrap_or(false)
}

/// `annex-proxy=true`, or any `annex-cluster-node` at all: git-annex asks
/// only whether the setting exists, even empty.
pub(crate) fn wants_proxy(repo: &Repo, remote: &RemoteConfig) -> bool {
    remote_bool(repo, remote, "annex-proxy") || remote.get("annex-cluster-node").is_some()
}

/// Ask the remote for its UUID and cache it, unless git-annex would not
/// ask (`annex-ignore`).
fn learn_uuid(
    repo: &mut Repo,
    remote: &RemoteConfig,
    node: &NodeRemote,
    warn: &mut dyn Write,
) -> Result<Option<String>, OperatorError> {
    if remote_bool(repo, remote, "annex-ignore") {
        return Ok(None);
    }
    match discover_uuid(node, &ConnectOptions::new(sibling_shell()).with_repo(repo)) {
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
pub(crate) fn private_uuids(repo: &Repo, my_uuid: &str) -> BTreeSet<String> {
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
