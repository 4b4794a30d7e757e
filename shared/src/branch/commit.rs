//! Committing to the git-annex branch.
//!
//! Under the journal lock: start from the branch tip's tree, put every
//! journal file at its branch path, make the changes the caller passes
//! (`Direct`: lines a session owes, which need no journal file), then
//! union-merge every other git-annex branch (`refs/heads/synced/git-annex`,
//! `refs/remotes/*/git-annex`, …) that is not an ancestor yet, commit
//! with the tip (and the merged branches) as parents, and move the ref
//! only if it still points at the tip; if it moved, start again from the
//! new tip. The journal files are deleted only once their content is in
//! the branch.
//!
//! Journal files hold a whole new file as its writer saw the branch. When
//! the branch moved after that (a client pushed `git-annex` to us), the
//! tip's newer lines would be lost by putting the journal file in place,
//! so such files are union-merged with the tip's version instead, as
//! git-annex's own index merge does. The tip the journal was written
//! against is kept in `annex/journal.base`; for journals written by
//! git-annex, `annex/index.lck` tells the same.
//!
//! git-annex stages into its own index (`annex/index`) and records in
//! `annex/index.lck` which branch commit that index reflects. When that
//! record matches the tip we started from, we apply the same changes to
//! the index and record our commit, leaving git-annex exactly as after one
//! of its own commits. Otherwise the index is left alone: git-annex sees
//! the record is stale and union-merges the branch into its index itself.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use gix::bstr::{BStr, ByteSlice};
use gix::refs::transaction::{Change, LogChange, PreviousValue, RefEdit, RefLog};
use gix::refs::Target;
use gix::ObjectId;

use super::mergedrefs;
use super::pack;
use super::signature::signature;
use super::tree::{self, Union};
use super::{io_err, Branch, BranchError, CommitOutcome, BRANCH_REF};

/// Attempts before giving up when the ref keeps moving under us.
const MAX_ATTEMPTS: usize = 20;

pub(crate) fn read_ref(
    repo: &gix::Repository,
    name: &str,
) -> Result<Option<ObjectId>, BranchError> {
    let Some(r) = repo.try_find_reference(name)? else {
        return Ok(None);
    };
    Ok(r.target().try_id().map(ToOwned::to_owned))
}

fn commit_tree(repo: &gix::Repository, commit: ObjectId) -> Result<ObjectId, BranchError> {
    Ok(repo.find_commit(commit)?.tree_id()?.detach())
}

fn is_ancestor(
    repo: &gix::Repository,
    ancestor: ObjectId,
    of: ObjectId,
) -> Result<bool, BranchError> {
    if ancestor == of {
        return Ok(true);
    }
    Ok(repo.merge_base(ancestor, of)?.map(|b| b.detach()) == Some(ancestor))
}

/// Create the branch when missing: from `origin/git-annex` when that
/// exists (as git-annex does), else as a commit of the empty tree.
pub(crate) fn create(branch: &Branch) -> Result<ObjectId, BranchError> {
    let repo = branch.thread_repo();
    if let Some(tip) = read_ref(&repo, BRANCH_REF)? {
        return Ok(tip);
    }
    let target = match read_ref(&repo, "refs/remotes/origin/git-annex")? {
        Some(origin) => origin,
        None => {
            let message = commit_message(branch, &repo, "branch created");
            let sig = signature(&repo);
            // gix knows the empty tree without having it; git fsck and
            // clients fetching the branch need the object itself.
            gix::objs::Write::write_buf(&repo.objects, gix::objs::Kind::Tree, &[]).map_err(
                |e| BranchError::Io {
                    context: "writing the empty tree".into(),
                    source: std::io::Error::other(e.to_string()),
                },
            )?;
            let commit = gix::objs::Commit {
                message: message.into(),
                tree: ObjectId::empty_tree(repo.object_hash()),
                author: sig.clone(),
                committer: sig,
                encoding: None,
                parents: Default::default(),
                extra_headers: Default::default(),
            };
            repo.write_object(&commit)?.detach()
        }
    };
    match set_ref(&repo, None, target, "branch created") {
        Ok(()) => {}
        // Someone else created it meanwhile; theirs is as good.
        Err(e) => match read_ref(&repo, BRANCH_REF)? {
            Some(tip) => return Ok(tip),
            None => return Err(e),
        },
    }
    run_post_update_hook(branch, &repo);
    Ok(target)
}

/// Move `BRANCH_REF` from `expected` (None: must not exist) to `new`.
fn set_ref(
    repo: &gix::Repository,
    expected: Option<ObjectId>,
    new: ObjectId,
    why: &str,
) -> Result<(), BranchError> {
    let edit = RefEdit {
        change: Change::Update {
            log: LogChange {
                mode: RefLog::AndReference,
                force_create_reflog: false,
                message: why.into(),
            },
            expected: match expected {
                Some(old) => PreviousValue::MustExistAndMatch(Target::Object(old)),
                None => PreviousValue::MustNotExist,
            },
            new: Target::Object(new),
        },
        name: BRANCH_REF
            .try_into()
            .expect("the branch name is a valid ref name"),
        deref: false,
    };
    let sig = signature(repo);
    let mut buf = gix::date::parse::TimeBuf::default();
    repo.edit_references_as(Some(edit), Some(sig.to_ref(&mut buf)))?;
    Ok(())
}

/// Other git-annex branches with changes the branch lacks, as `git
/// show-ref git-annex` would list them, minus those git-annex merged or
/// ignores.
/// The other git-annex branches to merge, each once: not the tip, not
/// recorded as merged or ignored, not an ancestor of the tip. Those found
/// to be ancestors are recorded as merged (`mergedrefs.rs`).
fn unmerged_siblings(
    branch: &Branch,
    repo: &gix::Repository,
    tip: ObjectId,
) -> Result<Vec<(ObjectId, String)>, BranchError> {
    if repo.config_snapshot().boolean("annex.merge-annex-branches") == Some(false) {
        return Ok(Vec::new());
    }
    let skip = mergedrefs::skipped(&branch.git_dir);
    let mut out: Vec<(ObjectId, String)> = Vec::new();
    let mut contained: Vec<(ObjectId, String)> = Vec::new();
    for r in repo.references()?.all()? {
        let r = r?;
        let name = r.name().as_bstr().to_str_lossy().into_owned();
        if name == BRANCH_REF || !name.ends_with("/git-annex") {
            continue;
        }
        let Some(id) = r.target().try_id().map(ToOwned::to_owned) else {
            continue;
        };
        if skip.contains(&id.to_string()) || out.iter().any(|(o, _)| *o == id) {
            continue;
        }
        if repo.find_commit(id).is_err() {
            continue;
        }
        if id == tip || is_ancestor(repo, id, tip)? {
            contained.push((id, name));
            continue;
        }
        out.push((id, name));
    }
    mergedrefs::record(&branch.git_dir, &contained);
    Ok(out)
}

fn describe(refname: &str) -> &str {
    refname
        .strip_prefix("refs/heads/")
        .or_else(|| refname.strip_prefix("refs/remotes/"))
        .unwrap_or(refname)
}

/// A change the commit makes itself, under the journal lock, to the
/// branch file at `path`, from its content as the commit finds it (the
/// journal's when staged, else the tip's); `None` leaves the file alone.
/// For lines a session owes after its answers (`annex-shell`'s
/// `owed.rs`): they go into the branch without a journal file each.
pub struct Direct<'a> {
    pub path: String,
    pub change: Box<FileChange<'a>>,
}

/// A file's new content from its current one, if it changes.
pub type FileChange<'a> = dyn FnMut(Option<&[u8]>) -> Option<Vec<u8>> + 'a;

pub(crate) fn commit(
    branch: &Branch,
    direct: &mut [Direct<'_>],
) -> Result<CommitOutcome, BranchError> {
    let lock = branch
        .journal
        .lock()
        .map_err(io_err("locking the journal"))?;
    for _ in 0..MAX_ATTEMPTS {
        // New objects stay in memory until the commit is complete, then go
        // to disk together (see `pack`).
        let mut repo = branch.thread_repo().with_object_memory();
        let Some(tip) = read_ref(&repo, BRANCH_REF)? else {
            create(branch)?;
            continue;
        };
        let tip_tree = commit_tree(&repo, tip)?;
        let siblings = unmerged_siblings(branch, &repo, tip)?;
        let staged = branch
            .journal
            .list()
            .map_err(io_err("listing the journal"))?;
        if staged.is_empty() {
            // Someone else committed the journal; its base is history.
            let _ = fs::remove_file(branch.git_dir.join(JOURNAL_BASE));
        }
        let mut changes = journal_changes(branch, &lock, &repo, tip, tip_tree, &staged)?;
        apply_direct(&repo, tip_tree, direct, &mut changes)?;
        if changes.is_empty() && siblings.is_empty() {
            return Ok(CommitOutcome::Unchanged);
        }
        if changes.is_empty() && siblings.len() == 1 && is_ancestor(&repo, tip, siblings[0].0)? {
            let new = siblings[0].0;
            if set_ref(&repo, Some(tip), new, "fast-forward").is_err() {
                continue;
            }
            mergedrefs::record(&branch.git_dir, &siblings);
            run_post_update_hook(branch, &repo);
            return Ok(CommitOutcome::FastForwarded(new));
        }
        for (sib, _) in &siblings {
            merge_sibling(&repo, tip_tree, commit_tree(&repo, *sib)?, &mut changes)?;
        }
        let mut editor = repo.edit_tree(tip_tree)?;
        for (path, oid) in &changes {
            editor.upsert(path.as_str(), gix::object::tree::EntryKind::Blob, *oid)?;
        }
        let new_tree = editor.write()?.detach();
        if new_tree == tip_tree && siblings.is_empty() {
            // The journal only repeated what is committed.
            remove_staged(branch, &lock, &staged)?;
            return Ok(CommitOutcome::Unchanged);
        }

        let message = if siblings.is_empty() {
            commit_message(branch, &repo, "update")
        } else {
            let names: Vec<&str> = siblings.iter().map(|(_, n)| describe(n)).collect();
            format!("merging {} into git-annex\n", names.join(" "))
        };
        let sig = signature(&repo);
        let mut parents: Vec<ObjectId> = vec![tip];
        parents.extend(siblings.iter().map(|(o, _)| *o));
        let commit = gix::objs::Commit {
            message: message.as_str().into(),
            tree: new_tree,
            author: sig.clone(),
            committer: sig,
            encoding: None,
            parents: parents.into(),
            extra_headers: Default::default(),
        };
        let new = repo.write_object(&commit)?.detach();
        pack::persist(&mut repo)?;
        let summary = message.lines().next().unwrap_or("update").to_owned();
        if let Err(e) = set_ref(&repo, Some(tip), new, &format!("commit: {summary}")) {
            if read_ref(&repo, BRANCH_REF)? == Some(tip) {
                return Err(e);
            }
            continue;
        }
        mergedrefs::record(&branch.git_dir, &siblings);
        remove_staged(branch, &lock, &staged)?;
        let _ = fs::remove_file(branch.git_dir.join(JOURNAL_BASE));
        if let Err(e) = update_annex_index(branch, tip, new, &changes) {
            tracing::warn!(error = %e, "could not update annex/index; git-annex will rebuild it");
        }
        run_post_update_hook(branch, &repo);
        return Ok(CommitOutcome::Committed(new));
    }
    Err(BranchError::Contended(MAX_ATTEMPTS))
}

/// Each staged journal file's blob, union-merged with the tip's version
/// when the branch moved since the journal was written (module docs).
fn journal_changes(
    branch: &Branch,
    lock: &super::journal::JournalLock,
    repo: &gix::Repository,
    tip: ObjectId,
    tip_tree: ObjectId,
    staged: &[(String, String)],
) -> Result<BTreeMap<String, ObjectId>, BranchError> {
    let base_tree = match journal_base(branch) {
        Some(base) if base != tip => Some(
            repo.find_commit(base)
                .ok()
                .and_then(|c| c.tree_id().ok())
                .map(|t| t.detach()),
        ),
        _ => None,
    };
    let mut changes = BTreeMap::new();
    for (name, path) in staged {
        let content = branch
            .journal
            .read_named(lock, name)
            .map_err(io_err("reading the journal"))?;
        let mut blob = repo.write_blob(&content)?.detach();
        if let Some(base_tree) = base_tree {
            let at_tip = tree::blob_at(repo, tip_tree, path)?;
            let at_base = match base_tree {
                Some(t) => tree::blob_at(repo, t, path)?,
                None => None,
            };
            if let Some(theirs) = at_tip.filter(|t| Some(*t) != at_base && *t != blob) {
                let tip_content = repo.find_blob(theirs)?.detach().data;
                blob = match tree::union_merge(&[&content, &tip_content]) {
                    Union::Reuse(0) => blob,
                    Union::Reuse(_) => theirs,
                    Union::New(merged) => repo.write_blob(&merged)?.detach(),
                };
            }
        }
        changes.insert(path.clone(), blob);
    }
    Ok(changes)
}

/// Makes each [`Direct`] change on top of `changes` (a file the journal
/// staged) or else the tip; in order, so two changes to one file add up.
fn apply_direct(
    repo: &gix::Repository,
    tip_tree: ObjectId,
    direct: &mut [Direct<'_>],
    changes: &mut BTreeMap<String, ObjectId>,
) -> Result<(), BranchError> {
    for d in direct.iter_mut() {
        let current = match changes.get(&d.path) {
            Some(id) => Some(*id),
            None => tree::blob_at(repo, tip_tree, &d.path)?,
        };
        let content = match current {
            Some(id) => Some(repo.find_blob(id)?.detach().data),
            None => None,
        };
        if let Some(new) = (d.change)(content.as_deref()) {
            changes.insert(d.path.clone(), repo.write_blob(&new)?.detach());
        }
    }
    Ok(())
}

const JOURNAL_BASE: &str = "annex/journal.base";

/// Remember which tip the journal is written against, unless an earlier
/// write since the last commit already did (the oldest base is the one
/// that matters). Called under the journal lock.
pub(crate) fn note_journal_base(
    branch: &Branch,
    _lock: &super::journal::JournalLock,
) -> Result<(), BranchError> {
    let path = branch.git_dir.join(JOURNAL_BASE);
    if path.exists() {
        return Ok(());
    }
    let tip = read_ref(&branch.thread_repo(), BRANCH_REF)?;
    let text = tip.map(|t| t.to_string()).unwrap_or_default();
    fs::write(&path, text).map_err(io_err("recording the journal's base"))?;
    Ok(())
}

/// The tip the journal was written against: ours, else the one git-annex
/// recorded for its index. `None` when unknown (then the journal wins).
fn journal_base(branch: &Branch) -> Option<ObjectId> {
    let ours = fs::read_to_string(branch.git_dir.join(JOURNAL_BASE)).ok();
    let theirs = || fs::read_to_string(branch.git_dir.join("annex/index.lck")).ok();
    let text = ours.or_else(theirs)?;
    ObjectId::from_hex(text.lines().next()?.trim().as_bytes()).ok()
}

/// Union-merge into `changes` each file in which `sib_tree` differs from
/// `tip_tree`; the other side is the pending new content, else the tip's.
fn merge_sibling(
    repo: &gix::Repository,
    tip_tree: ObjectId,
    sib_tree: ObjectId,
    changes: &mut BTreeMap<String, ObjectId>,
) -> Result<(), BranchError> {
    let mut diff = BTreeMap::new();
    tree::changed_blobs(repo, Some(tip_tree), sib_tree, "", &mut diff)?;
    for (path, theirs) in diff {
        let ours = match changes.get(&path) {
            Some(o) => Some(*o),
            None => tree::blob_at(repo, tip_tree, &path)?,
        };
        let merged = match ours {
            None => theirs,
            Some(o) if o == theirs => continue,
            Some(o) => {
                let a = repo.find_blob(o)?.detach().data;
                let b = repo.find_blob(theirs)?.detach().data;
                match tree::union_merge(&[&a, &b]) {
                    Union::Reuse(0) => o,
                    Union::Reuse(_) => theirs,
                    Union::New(content) => repo.write_blob(&content)?.detach(),
                }
            }
        };
        changes.insert(path, merged);
    }
    Ok(())
}

fn remove_staged(
    branch: &Branch,
    lock: &super::journal::JournalLock,
    staged: &[(String, String)],
) -> Result<(), BranchError> {
    branch
        .journal
        .retire_named(lock, staged.iter().map(|(name, _)| name.as_str()))
        .map_err(io_err("removing a committed journal file"))
}

/// Bring git-annex's index from `old` to `new` when it reflected `old`.
fn update_annex_index(
    branch: &Branch,
    old: ObjectId,
    new: ObjectId,
    changes: &BTreeMap<String, ObjectId>,
) -> Result<(), BranchError> {
    let index_path = branch.git_dir.join("annex/index");
    let status_path = branch.git_dir.join("annex/index.lck");
    let recorded = fs::read_to_string(&status_path).unwrap_or_default();
    if recorded.lines().next().map(str::trim) != Some(old.to_string().as_str())
        || !index_path.exists()
    {
        return Ok(());
    }
    let mut index = gix::index::File::at(&index_path, old.kind(), false, Default::default())?;
    let mut pushed = false;
    for (path, oid) in changes {
        let p: &BStr = path.as_str().into();
        match index.entry_mut_by_path_and_stage(p, gix::index::entry::Stage::Unconflicted) {
            Some(e) => {
                e.id = *oid;
                e.mode = gix::index::entry::Mode::FILE;
            }
            None => {
                index.dangerously_push_entry(
                    Default::default(),
                    *oid,
                    gix::index::entry::Flags::empty(),
                    gix::index::entry::Mode::FILE,
                    p,
                );
                pushed = true;
            }
        }
    }
    if pushed {
        index.sort_entries();
    }
    // The cached trees would be stale; git would commit them as they are.
    index.remove_tree();
    index.remove_resolve_undo();
    index.write(Default::default())?;
    write_atomically(&status_path, format!("{new}\n").as_bytes())
        .map_err(io_err("writing annex/index.lck"))
}

fn write_atomically(path: &Path, content: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("lck.tmp");
    {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(content)?;
    }
    fs::rename(&tmp, path)
}

fn hook_path(branch: &Branch, name: &str) -> Option<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let p = branch.git_dir.join("hooks").join(name);
    let meta = fs::metadata(&p).ok()?;
    (meta.is_file() && meta.permissions().mode() & 0o111 != 0).then_some(p)
}

fn hook_dir(branch: &Branch, repo: &gix::Repository) -> std::path::PathBuf {
    repo.workdir()
        .map(Path::to_owned)
        .unwrap_or_else(|| branch.git_dir.clone())
}

/// The commit message: output of the `commitmessage-annex` hook or of
/// `annex.commitmessage-command`, else `annex.commitmessage`, else `default`.
fn commit_message(branch: &Branch, repo: &gix::Repository, default: &str) -> String {
    let config = repo.config_snapshot();
    let cmd = match hook_path(branch, "commitmessage-annex") {
        Some(p) => Some(Command::new(p)),
        None => config.string("annex.commitmessage-command").map(|c| {
            let mut cmd = Command::new("sh");
            cmd.arg("-c").arg(c.to_str_lossy().into_owned());
            cmd
        }),
    };
    let from_cmd = cmd.and_then(|mut c| {
        let out = c
            .current_dir(hook_dir(branch, repo))
            .stdin(Stdio::null())
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    });
    let msg = from_cmd
        .or_else(|| {
            config
                .string("annex.commitmessage")
                .map(|s| s.to_str_lossy().into_owned())
        })
        .unwrap_or_else(|| default.to_owned());
    format!("{}\n", msg.trim_end_matches('\n'))
}

/// Run `post-update-annex` or `annex.post-update-command`; failures are
/// reported, not fatal, as in git-annex.
fn run_post_update_hook(branch: &Branch, repo: &gix::Repository) {
    let mut cmd = match hook_path(branch, "post-update-annex") {
        Some(p) => Command::new(p),
        None => match repo.config_snapshot().string("annex.post-update-command") {
            Some(c) => {
                let mut cmd = Command::new("sh");
                cmd.arg("-c").arg(c.to_str_lossy().into_owned());
                cmd
            }
            None => return,
        },
    };
    // The hook must not write into a protocol stream on our stdout.
    let status = cmd
        .current_dir(hook_dir(branch, repo))
        .stdin(Stdio::null())
        .stdout(std::io::stderr())
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => tracing::warn!(status = %s, "post-update-annex hook failed"),
        Err(e) => tracing::warn!(error = %e, "could not run post-update-annex hook"),
    }
}
