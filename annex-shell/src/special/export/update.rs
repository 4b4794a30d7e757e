//! Changing an export remote to a new tree, as `git annex export` does it
//! (`Command/Export.hs: seekExport`: `changeExport`, then `fillExport`),
//! run on the proxy when a client pushes the remote's tracking branch
//! (`Command/PostReceive.hs: proxyExportTree`).
//!
//! In git-annex's order: `export.log` records that the new tree's export
//! began; files of an interrupted earlier export left under temporary
//! names are removed; files whose content changed or went are moved away
//! (a key that stays in the tree to `.git-annex-tmp-content-<key>`, one
//! that leaves to its `annexobjects` place, or removed), and the moved
//! ones are renamed to their new paths; `export.log` records the new
//! tree; then every file the remote lacks is put there: moved from the
//! key's `annexobjects` place when the location log says the remote has
//! it, else copied from another path of the tree that holds it, else
//! uploaded from the proxy's own copy or (a file git holds) from its
//! blob. When every file is there, `refs/remotes/<remote>/<branch>` is
//! set to the pushed commit, as git-annex sets it.
//!
//! Every object moves inside the remote where it can (a rename; S3's
//! CopyObject); an upload streams from a file or from git, one object at
//! a time, so memory stays bounded by the tree's list of files.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use annex::branch::{Branch, LogStatus};
use annex::key::Key;
use annex::store::ObjectStore;
use tokio::io::AsyncReadExt;

use super::tree::{self, key_git_sha, TreeError, TreeFile};
use super::{annexobjects_path, log, temp_path, valid_path, ExportConfig};
use crate::special::storage::{PathStorage, StagedWrite, StorageError};

#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    #[error(transparent)]
    Tree(#[from] TreeError),
    #[error(transparent)]
    Branch(#[from] annex::branch::BranchError),
}

/// What an update is asked to do.
pub struct Request<'a> {
    pub remote_name: &'a str,
    pub remote_uuid: &'a str,
    pub config: ExportConfig,
    /// This repository's UUID (the `from` of its `export.log` line).
    pub here: &'a str,
    pub tree: String,
    /// The tracking ref to set once all is there, and the commit.
    pub tracking: Option<(String, String)>,
    /// The tree of the tracking ref as it was: set only once an export
    /// was complete, so the files of that tree are known to be there.
    pub complete: Option<String>,
}

/// What an update did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Files put in place by the fill (moved from by-key, copied, or
    /// uploaded).
    pub uploaded: usize,
    pub moved: usize,
    pub removed: usize,
    /// Files the remote still lacks (no content here or in the remote).
    pub missing: Vec<String>,
    pub failed: Vec<String>,
}

/// The proxy's side of an update: its branch and its own objects.
pub struct Here<'a> {
    pub branch: &'a Branch,
    pub store: &'a ObjectStore,
}

/// Change the export of `req.remote` in `storage` to `req.tree`.
pub async fn update<S: PathStorage>(
    storage: &S,
    here: &Here<'_>,
    req: &Request<'_>,
) -> Result<Summary, UpdateError> {
    let git_dir = here.branch.git_dir();
    let (old, incomplete) = log::exported_to(here.branch, req.remote_uuid)?;
    // Committed first, so the graft goes on top of what is recorded.
    here.branch.commit()?;
    tree::remember_tree(git_dir, &req.tree)?;
    log::record_beginning(here.branch, req.here, req.remote_uuid, &req.tree)?;
    let mut sum = Summary::default();
    for t in incomplete.iter().filter(|t| **t != req.tree) {
        recover_incomplete(storage, git_dir, t, &req.tree, &mut sum).await?;
    }
    match old.as_slice() {
        [] => {}
        [one] if *one == req.tree => {}
        [one] => change(storage, here, req, one, &mut sum).await?,
        many => {
            tracing::warn!(remote = req.remote_name, "resolving export conflict");
            for t in many {
                for (path, src, dst) in tree::changed_paths(git_dir, t, &req.tree)? {
                    if valid_path(&path) && (src.is_some() || dst.is_some()) {
                        note(
                            &mut sum,
                            &path,
                            storage.remove_at(&path).await,
                            Counter::Removed,
                        );
                    }
                }
            }
        }
    }
    if sum.failed.is_empty() {
        log::record_underway(here.branch, req.here, req.remote_uuid, &old, &req.tree)?;
    }
    // What git-annex's database knows, we know from the tracking ref:
    // after a complete export only the files that changed need looking
    // at, not one request per file of the tree.
    let changed = match old.as_slice() {
        [one] if incomplete.is_empty() && req.complete.as_deref() == Some(one.as_str()) => Some(
            tree::changed_paths(git_dir, one, &req.tree)?
                .into_iter()
                .map(|(path, _, _)| path)
                .collect(),
        ),
        _ => None,
    };
    fill(storage, here, req, changed.as_ref(), &mut sum).await?;
    if let (Some((tracking, commit)), true) = (
        &req.tracking,
        sum.missing.is_empty() && sum.failed.is_empty(),
    ) {
        set_ref(git_dir, tracking, commit)?;
    }
    Ok(sum)
}

enum Counter {
    Moved,
    Removed,
}

fn note(sum: &mut Summary, path: &str, r: Result<(), StorageError>, counter: Counter) {
    match r {
        Ok(()) => match counter {
            Counter::Moved => sum.moved += 1,
            Counter::Removed => sum.removed += 1,
        },
        Err(e) => {
            tracing::warn!("{path}: {e}");
            sum.failed.push(format!("{path}: {e}"));
        }
    }
}

/// `startRecoverIncomplete`: a temporary name an interrupted export may
/// have left, for a file that differs between its tree and the new one.
async fn recover_incomplete<S: PathStorage>(
    storage: &S,
    git_dir: &Path,
    incomplete: &str,
    new: &str,
    sum: &mut Summary,
) -> Result<(), UpdateError> {
    for (_, src, _) in tree::changed_paths(git_dir, incomplete, new)? {
        let Some(src) = src else { continue };
        let key = tree::blob_key(git_dir, &src)?;
        if storage
            .stat_at(&temp_path(&key))
            .await
            .ok()
            .flatten()
            .is_some()
        {
            note(
                sum,
                &temp_path(&key),
                storage.remove_at(&temp_path(&key)).await,
                Counter::Removed,
            );
        }
    }
    Ok(())
}

/// Old and new paths of each key whose files changed.
type DiffMap = BTreeMap<Key, (Vec<String>, Vec<String>)>;

async fn change<S: PathStorage>(
    storage: &S,
    here: &Here<'_>,
    req: &Request<'_>,
    old: &str,
    sum: &mut Summary,
) -> Result<(), UpdateError> {
    let git_dir = here.branch.git_dir();
    let mut diff = DiffMap::new();
    for (path, src, dst) in tree::changed_paths(git_dir, old, &req.tree)? {
        if !valid_path(&path) {
            continue;
        }
        if let Some(src) = src {
            let k = tree::blob_key(git_dir, &src)?;
            diff.entry(k).or_default().0.push(path.clone());
        }
        if let Some(dst) = dst {
            let k = tree::blob_key(git_dir, &dst)?;
            diff.entry(k).or_default().1.push(path);
        }
    }
    for (key, (olds, news)) in &diff {
        let Some((first, rest)) = olds.split_first() else {
            continue;
        };
        let disposed = if news.is_empty() {
            olds.as_slice()
        } else {
            rest
        };
        if !news.is_empty() && storage.stat_at(first).await.ok().flatten().is_some() {
            note(
                sum,
                first,
                storage.rename_at(first, &temp_path(key)).await,
                Counter::Moved,
            );
        }
        for path in disposed {
            dispose(storage, here, req, key, path, sum).await?;
        }
    }
    for (key, (olds, news)) in &diff {
        if let (Some(_), Some(new)) = (olds.first(), news.first()) {
            if storage
                .stat_at(&temp_path(key))
                .await
                .ok()
                .flatten()
                .is_some()
            {
                note(
                    sum,
                    new,
                    storage.rename_at(&temp_path(key), new).await,
                    Counter::Moved,
                );
            }
        }
    }
    Ok(())
}

/// `startDispose`: a file that leaves the tree goes to its key's
/// `annexobjects` place (so the remote keeps the content, as the
/// location log says), or is removed.
async fn dispose<S: PathStorage>(
    storage: &S,
    here: &Here<'_>,
    req: &Request<'_>,
    key: &Key,
    path: &str,
    sum: &mut Summary,
) -> Result<(), UpdateError> {
    if storage.stat_at(path).await.ok().flatten().is_none() {
        return Ok(());
    }
    if req.config.annexobjects && key_git_sha(key).is_none() {
        let to = annexobjects_path(key);
        if storage.rename_at(path, &to).await.is_ok() {
            sum.moved += 1;
            return Ok(());
        }
    }
    let removed = storage.remove_at(path).await;
    let ok = removed.is_ok();
    note(sum, path, removed, Counter::Removed);
    if ok && key_git_sha(key).is_none() {
        // Gone from the remote unless it is also kept by key.
        let kept = req.config.annexobjects
            && storage
                .stat_at(&annexobjects_path(key))
                .await
                .ok()
                .flatten()
                .is_some();
        if !kept {
            here.branch
                .log_key_location(key, req.remote_uuid, LogStatus::Missing)?;
        }
    }
    Ok(())
}

/// `fillExport`: every file of the tree the remote lacks is put there.
///
/// With `changed`, the other files are known to be there already.
async fn fill<S: PathStorage>(
    storage: &S,
    here: &Here<'_>,
    req: &Request<'_>,
    changed: Option<&BTreeSet<String>>,
    sum: &mut Summary,
) -> Result<(), UpdateError> {
    let git_dir = here.branch.git_dir();
    let files = tree::files(git_dir, &req.tree)?;
    // Where each key was put in this fill, to copy it from for its
    // other paths.
    let mut placed: BTreeMap<Key, String> = BTreeMap::new();
    for f in files.iter().filter(|f| valid_path(&f.path)) {
        let known = changed.is_some_and(|c| !c.contains(&f.path));
        if known || storage.stat_at(&f.path).await.ok().flatten().is_some() {
            placed
                .entry(f.key.clone())
                .or_insert_with(|| f.path.clone());
            continue;
        }
        match put_file(storage, here, req, f, placed.get(&f.key)).await {
            Ok(true) => {
                sum.uploaded += 1;
                if key_git_sha(&f.key).is_none() {
                    here.branch
                        .log_key_location(&f.key, req.remote_uuid, LogStatus::Present)?;
                }
                placed
                    .entry(f.key.clone())
                    .or_insert_with(|| f.path.clone());
            }
            Ok(false) => {
                tracing::info!(remote = req.remote_name, path = %f.path, "not available");
                sum.missing.push(f.path.clone());
            }
            Err(e) => note(sum, &f.path, Err(e), Counter::Moved),
        }
    }
    Ok(())
}

/// One missing file put in place; `false` when no content is at hand.
async fn put_file<S: PathStorage>(
    storage: &S,
    here: &Here<'_>,
    req: &Request<'_>,
    f: &TreeFile,
    copy_of: Option<&String>,
) -> Result<bool, StorageError> {
    // Only a file's own blob: a pointer a pusher wrote naming some
    // `GIT--` key is an annexed key's, as git-annex takes it (`catKey`),
    // not a way to export any blob of the repository by its sha.
    if let Some(sha) = key_git_sha(&f.key).filter(|sha| *sha == f.blob) {
        let git_dir = here.branch.git_dir();
        let mut child =
            tree::blob_reader(git_dir, sha).map_err(|e| io_error(storage, &f.path, e))?;
        let out = child.stdout.take().expect("piped");
        upload_from(storage, &f.path, out, None).await?;
        let status = child.wait().await;
        return Ok(status.is_ok_and(|s| s.success()));
    }
    if let Some(from) = copy_of {
        storage.copy_at(from, &f.path).await?;
        return Ok(true);
    }
    let by_key = annexobjects_path(&f.key);
    let logged = here
        .branch
        .key_locations(&f.key)
        .map_err(|e| io_error(storage, &f.path, e))?
        .iter()
        .any(|u| u == req.remote_uuid);
    if req.config.annexobjects && logged && storage.stat_at(&by_key).await?.is_some() {
        storage.rename_at(&by_key, &f.path).await?;
        return Ok(true);
    }
    let Ok(Some((file, size))) = here.store.open_content(&f.key) else {
        return Ok(false);
    };
    upload_from(
        storage,
        &f.path,
        tokio::fs::File::from_std(file),
        Some(size),
    )
    .await?;
    Ok(true)
}

fn io_error<S: PathStorage>(storage: &S, path: &str, e: impl std::fmt::Display) -> StorageError {
    StorageError::Io {
        remote: storage.remote().to_owned(),
        op: "export",
        object: path.to_owned(),
        source: std::io::Error::other(e.to_string()),
    }
}

/// `git update-ref`: the remote tracking branch, as `setRemoteTrackingBranch`.
fn set_ref(git_dir: &Path, name: &str, commit: &str) -> Result<(), TreeError> {
    let out = std::process::Command::new("git")
        .arg("--git-dir")
        .arg(git_dir)
        .args(["update-ref", "-m", "export", name, commit])
        .output()
        .map_err(|source| TreeError::Spawn {
            what: "update-ref",
            source,
        })?;
    if !out.status.success() {
        return Err(TreeError::Git {
            what: "update-ref",
            why: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(())
}

/// Stream `reader` into a new object at `path` (what an earlier attempt
/// staged is dropped: this content is not known to match it).
async fn upload_from<S: PathStorage, R: tokio::io::AsyncRead + Unpin>(
    storage: &S,
    path: &str,
    mut reader: R,
    size: Option<u64>,
) -> Result<(), StorageError> {
    let mut staged = storage.begin_write_at(path, size).await?;
    if staged.staged() > 0 {
        staged.restart().await?;
    }
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = reader
            .read(&mut buf)
            .await
            .map_err(|e| io_error(storage, path, e))?;
        if n == 0 {
            break;
        }
        staged.write(&buf[..n]).await?;
    }
    staged.commit().await
}
