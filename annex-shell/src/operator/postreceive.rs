//! `annexproxy post-receive`: git's `post-receive` hook in the proxy's
//! repository, as `git-annex post-receive` is in git-annex's
//! (`Command/PostReceive.hs: proxyExportTree`). Every push ends there —
//! `git receive-pack` run by git-shell over ssh, by CONNECT in a P2P
//! session, by git http-backend, or on a cluster's gateway — so the one
//! hook serves them all.
//!
//! When a pushed ref is the `annex-tracking-branch` of a proxied
//! `exporttree=yes` remote (or its `synced/` branch; `BRANCH:SUBDIR`
//! exports that directory), the remote's export is changed to the pushed
//! tree ([`crate::special::export::update`]).
//!
//! `updateproxy` (and `updatecluster`) install the hook when a remote is
//! an export: in place of git-annex's own hook, never over another one.

use std::collections::BTreeSet;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use annex::repo::{RemoteConfig, Repo};

use super::{open, OperatorError};
use crate::special::config::remote_log;
use crate::special::export::{filter, tree, update, ExportConfig};
use crate::special::storage::PathStorage;
use crate::special::{directory::Directory, s3::S3, Kind, SpecialRemote};

/// What git-annex's hook script says (`Annex/Hook.hs`), old and new.
const GIT_ANNEX_HOOK: &str = "git annex post-receive";
/// Ours says this in its second line.
const OUR_MARK: &str = "# automatically configured by annexproxy";

/// The remotes whose export a push may change: proxied (or cluster
/// nodes), with a tracking branch, `exporttree=yes` in remote.log.
fn export_remotes(repo: &Repo) -> Result<Vec<(RemoteConfig, String)>, OperatorError> {
    let log = remote_log(repo)?;
    let mut out = Vec::new();
    for r in repo.remotes() {
        let Some(branch) = r.get("annex-tracking-branch").map(str::to_owned) else {
            continue;
        };
        let exported = r
            .annex_uuid()
            .and_then(|u| log.get(u))
            .is_some_and(|p| ExportConfig::from_params(p).is_some());
        if exported && super::updateproxy::wants_proxy(repo, &r) {
            out.push((r, branch));
        }
    }
    Ok(out)
}

/// The refs a push updated, from the hook's input (`OLD NEW REF` lines).
fn pushed_refs(input: impl BufRead) -> BTreeSet<String> {
    input
        .lines()
        .map_while(Result::ok)
        .filter_map(|l| l.split_whitespace().nth(2).map(str::to_owned))
        .collect()
}

/// A branch name as a ref under `refs/heads/`.
fn branch_ref(b: &str) -> String {
    if b.starts_with("refs/") {
        b.to_owned()
    } else {
        format!("refs/heads/{b}")
    }
}

pub fn post_receive(
    dir: &Path,
    input: impl BufRead,
    err: &mut dyn Write,
) -> Result<(), OperatorError> {
    let repo = open(dir)?;
    let Some(here) = repo.uuid().filter(|_| repo.is_annex_initialized()) else {
        return Ok(());
    };
    let remotes = export_remotes(&repo)?;
    if remotes.is_empty() {
        return Ok(());
    }
    let pushed = pushed_refs(input);
    // The first remote whose branch came (git-annex's `headMaybe`).
    let found = remotes.iter().find_map(|(r, tracking)| {
        let (b, subdir) = match tracking.split_once(':') {
            Some((b, d)) => (b.trim_start_matches("refs/heads/"), Some(d)),
            None => (tracking.trim_start_matches("refs/heads/"), None),
        };
        let synced = format!("synced/{b}");
        [b.to_owned(), synced]
            .into_iter()
            .find(|cand| pushed.contains(&branch_ref(cand)))
            .map(|cand| (r, cand, subdir))
    });
    let Some((remote, b, subdir)) = found else {
        return Ok(());
    };
    // What the client pushed to the git-annex branch (the location log)
    // is merged first, as git-annex merges it before it reads the branch.
    let branch = repo.branch();
    branch.commit()?;
    let treeish = match subdir {
        Some(d) => format!("{}:{d}", branch_ref(&b)),
        None => branch_ref(&b),
    };
    let Some(tree) = tree::rev_parse(repo.git_dir(), &format!("{treeish}^{{tree}}")) else {
        return Ok(());
    };
    let log = remote_log(&repo)?;
    let special = SpecialRemote::load(&repo, remote, &log)
        .map_err(|e| OperatorError::Served(e.to_string()))?;
    let Some(config) = special.export else {
        return Ok(());
    };
    let tree = filter::filtered_tree(&branch, &special.uuid, &tree)
        .map_err(|e| OperatorError::Served(format!("{}: {e}", special.name)))?;
    let tracking_ref = format!("refs/remotes/{}/{b}", special.name);
    let complete = match subdir {
        Some(d) => tree::rev_parse(repo.git_dir(), &format!("{tracking_ref}:{d}^{{tree}}")),
        None => tree::rev_parse(repo.git_dir(), &format!("{tracking_ref}^{{tree}}")),
    };
    let tracking =
        tree::rev_parse(repo.git_dir(), &branch_ref(&b)).map(|commit| (tracking_ref, commit));
    let req = update::Request {
        remote_name: &special.name,
        remote_uuid: &special.uuid,
        config,
        here: &here,
        tree,
        tracking,
        complete,
    };
    let sum = run_update(&repo, &special, &req)?;
    branch.commit()?;
    report(err, &special.name, &sum)?;
    Ok(())
}

fn run_update(
    repo: &Repo,
    special: &SpecialRemote,
    req: &update::Request<'_>,
) -> Result<update::Summary, OperatorError> {
    // One update of a remote's export at a time, ours or git-annex's
    // (its lock on the export database, `writeLockDbWhile`): two pushes
    // renaming the same files at once would undo each other.
    let lock_path = repo
        .annex_dir()
        .join("export")
        .join(&special.uuid)
        .join("exportdb.lck");
    if let Some(dir) = lock_path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let _lock = annex::lockfile::lock(&lock_path, annex::lockfile::LockKind::Exclusive, 0o644)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let branch = repo.branch();
    let store = repo.store();
    let here = update::Here {
        branch: &branch,
        store: &store,
    };
    let served =
        |e: &dyn std::fmt::Display| OperatorError::Served(format!("{}: {e}", special.name));
    match &special.kind {
        Kind::Directory(root) => {
            let storage = Directory::new(&special.name, root.clone());
            runtime
                .block_on(run_on(&storage, &here, req))
                .map_err(|e| served(&e))
        }
        Kind::S3 { config, creds } => {
            let storage = S3::new(&special.name, (**config).clone(), creds.clone())
                .map_err(|e| served(&e))?;
            runtime
                .block_on(run_on(&storage, &here, req))
                .map_err(|e| served(&e))
        }
        Kind::External(_) => Err(served(&"an external remote cannot be an export here")),
    }
}

async fn run_on<S: PathStorage>(
    storage: &S,
    here: &update::Here<'_>,
    req: &update::Request<'_>,
) -> Result<update::Summary, update::UpdateError> {
    update::update(storage, here, req).await
}

/// One line for the pusher (git shows it as `remote: …`), and each file
/// that could not be put there.
fn report(err: &mut dyn Write, name: &str, sum: &update::Summary) -> std::io::Result<()> {
    for path in &sum.missing {
        writeln!(err, "export {name} {path}: not available")?;
    }
    for why in &sum.failed {
        writeln!(err, "export {name} {why}: failed")?;
    }
    writeln!(
        err,
        "export {name}: {} placed, {} moved, {} removed{}",
        sum.uploaded,
        sum.moved,
        sum.removed,
        if sum.missing.is_empty() && sum.failed.is_empty() {
            ""
        } else {
            " (incomplete)"
        }
    )
}

/// Install our hook where git runs it, unless another hook than
/// git-annex's is there (then say so). Returns whether it is ours now.
pub(crate) fn install_hook(repo: &Repo, warn: &mut dyn Write) -> Result<bool, OperatorError> {
    if export_remotes(repo)?.is_empty() {
        return Ok(false);
    }
    let hooks: PathBuf = repo
        .config_get("core.hooksPath")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo.git_dir().join("hooks"));
    let path = hooks.join("post-receive");
    if let Ok(existing) = std::fs::read_to_string(&path) {
        if !existing.contains(OUR_MARK) && !existing.contains(GIT_ANNEX_HOOK) {
            writeln!(
                warn,
                "{} is not git-annex's; add `annexproxy post-receive` to it to keep exports up to date",
                path.display()
            )?;
            return Ok(false);
        }
    }
    let exe = std::env::current_exe()?;
    let script = format!(
        "#!/bin/sh\n{OUR_MARK}\nexec '{}' post-receive\n",
        exe.display().to_string().replace('\'', "'\\''")
    );
    std::fs::create_dir_all(&hooks)?;
    std::fs::write(&path, script)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    Ok(true)
}
