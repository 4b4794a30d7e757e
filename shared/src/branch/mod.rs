//! The git-annex branch (`refs/heads/git-annex`): its log formats (pure,
//! in submodules), the journal of uncommitted changes, and commits to the
//! branch through gix.
//!
//! Everything here coexists with a real git-annex working on the same
//! repository: journal writes and commits happen under the exclusive lock
//! on `annex/journal.lck`, the branch ref only ever moves to a descendant
//! of its current value (compare-and-swap), and git-annex's own staging
//! index (`annex/index`) is kept in step when it was in step before.

pub mod clock;
mod commit;
pub mod journal;
pub mod location;
pub mod maplog;
mod mergedrefs;
mod pack;
mod signature;
#[cfg(test)]
pub(crate) mod tests;
mod tree;
pub mod uuidlog;

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use gix::ObjectId;

pub use clock::VectorClock;
pub use commit::Direct;
pub use journal::Journal;
pub use location::{
    change_location_log, location_log_path, location_log_path_for, LocationLine, LocationLog,
    LogStatus,
};
pub use maplog::{is_cluster_uuid, MapLog, Proxy};
pub use tree::{union_merge, Union};
pub use uuidlog::{LogEntry, UuidLog};

/// The branch's full ref name.
pub const BRANCH_REF: &str = "refs/heads/git-annex";

/// Lines of a log file as git-annex splits them: on `\n` or `\r`,
/// empty lines skipped.
pub(crate) fn log_lines(content: &[u8]) -> impl Iterator<Item = &[u8]> {
    content
        .split(|&b| b == b'\n' || b == b'\r')
        .filter(|l| !l.is_empty())
}

#[derive(Debug, thiserror::Error)]
pub enum BranchError {
    #[error("git-annex branch: {0}")]
    Git(#[from] gix::Error),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    #[error("refs/heads/git-annex kept changing while committing ({0} attempts)")]
    Contended(usize),
}

pub(crate) fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> BranchError {
    let context = context.into();
    move |source| BranchError::Io { context, source }
}

/// What [`Branch::commit`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommitOutcome {
    /// Nothing was waiting in the journal and no other branch needed merging.
    Unchanged,
    /// A new commit is now the branch tip.
    Committed(ObjectId),
    /// The branch was moved forward to another git-annex branch.
    FastForwarded(ObjectId),
}

/// `old` with `status` recorded for each of `uuids`, if that changes it.
fn locations_changed(
    old: Option<&[u8]>,
    uuids: &[impl AsRef<str>],
    status: LogStatus,
) -> Option<Vec<u8>> {
    let candidate = VectorClock::candidate_now();
    let mut changed: Option<Vec<u8>> = None;
    for u in uuids {
        let base = changed.as_deref().or(old).unwrap_or_default();
        if let Some(new) = change_location_log(base, u.as_ref(), status, candidate) {
            changed = Some(new);
        }
    }
    changed
}

/// [`locations_changed`] as of `at`: a UUID whose line is newer than `at`
/// is left as it is.
fn locations_changed_as_of(
    old: Option<&[u8]>,
    uuids: &[String],
    status: LogStatus,
    at: VectorClock,
) -> Option<Vec<u8>> {
    let mut changed: Option<Vec<u8>> = None;
    for u in uuids {
        let base = changed.as_deref().or(old).unwrap_or_default();
        let newer = LocationLog::parse(base)
            .get(u)
            .is_some_and(|l| l.clock > at);
        if newer {
            continue;
        }
        if let Some(new) = change_location_log(base, u, status, at) {
            changed = Some(new);
        }
    }
    changed
}

/// The git-annex branch of one repository.
#[derive(Clone)]
pub struct Branch {
    repo: gix::ThreadSafeRepository,
    git_dir: PathBuf,
    journal: Journal,
}

impl std::fmt::Debug for Branch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Branch")
            .field("git_dir", &self.git_dir)
            .finish()
    }
}

impl Branch {
    pub fn new(repo: gix::ThreadSafeRepository) -> Branch {
        let git_dir = repo.git_dir().to_owned();
        let journal = Journal::new(&git_dir);
        Branch {
            repo,
            git_dir,
            journal,
        }
    }

    /// Open the repository at `dir` (a git dir or a worktree) for its branch.
    pub fn open(dir: &Path) -> Result<Branch, BranchError> {
        Ok(Branch::new(gix::open(dir)?.into_sync()))
    }

    pub fn git_dir(&self) -> &Path {
        &self.git_dir
    }

    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    /// The commit the branch points at, if the branch exists.
    pub fn tip(&self) -> Result<Option<ObjectId>, BranchError> {
        commit::read_ref(&self.repo.to_thread_local(), BRANCH_REF)
    }

    pub fn exists(&self) -> Result<bool, BranchError> {
        Ok(self.tip()?.is_some())
    }

    /// Current content of a branch file: the journal's if it has one, else
    /// the committed blob. `None` when the file exists in neither.
    pub fn read_file(&self, path: &str) -> Result<Option<Vec<u8>>, BranchError> {
        if let Some(c) = self
            .journal
            .read(path)
            .map_err(io_err("reading the journal"))?
        {
            return Ok(Some(c));
        }
        self.read_committed(path)
    }

    /// Every file of the branch with its current content (journal first),
    /// for whole-branch summaries such as repository sizes.
    pub fn all_files(&self) -> Result<BTreeMap<String, Vec<u8>>, BranchError> {
        let repo = self.repo.to_thread_local();
        let mut blobs = BTreeMap::new();
        if let Some(tip) = self.tip()? {
            let tree = repo.find_commit(tip)?.tree_id()?.detach();
            tree::changed_blobs(&repo, None, tree, "", &mut blobs)?;
        }
        let mut out = BTreeMap::new();
        for (path, oid) in blobs {
            let blob = repo.find_object(oid)?;
            out.insert(path, blob.data.clone());
        }
        for (_, path) in self.journal.list().map_err(io_err("listing the journal"))? {
            if let Some(c) = self
                .journal
                .read(&path)
                .map_err(io_err("reading the journal"))?
            {
                out.insert(path, c);
            }
        }
        Ok(out)
    }

    /// A branch file as committed at the branch tip, ignoring the journal.
    pub fn read_committed(&self, path: &str) -> Result<Option<Vec<u8>>, BranchError> {
        let repo = self.repo.to_thread_local();
        let Some(tip) = commit::read_ref(&repo, BRANCH_REF)? else {
            return Ok(None);
        };
        let tree = repo.find_commit(tip)?.tree_id()?.detach();
        match tree::blob_at(&repo, tree, path)? {
            Some(blob) => Ok(Some(repo.find_blob(blob)?.detach().data)),
            None => Ok(None),
        }
    }

    /// Replace a branch file's content with `f(current)`, in the journal,
    /// under the journal lock.
    pub fn change_file(
        &self,
        path: &str,
        f: impl FnOnce(Option<&[u8]>) -> Vec<u8>,
    ) -> Result<(), BranchError> {
        self.maybe_change_file(path, |old| Some(f(old))).map(|_| ())
    }

    /// Like [`Branch::change_file`], but `f` may return `None` to leave the
    /// file alone. Returns whether it was changed.
    pub fn maybe_change_file(
        &self,
        path: &str,
        f: impl FnOnce(Option<&[u8]>) -> Option<Vec<u8>>,
    ) -> Result<bool, BranchError> {
        let lock = self.journal.lock().map_err(io_err("locking the journal"))?;
        let current = self.read_file(path)?;
        match f(current.as_deref()) {
            Some(new) => {
                commit::note_journal_base(self, &lock)?;
                self.journal
                    .write(&lock, path, &new)
                    .map_err(io_err("writing the journal"))?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Whether uncommitted changes wait in the journal.
    pub fn journal_dirty(&self) -> bool {
        self.journal.is_dirty()
    }

    /// Create the branch if it is missing; returns its tip either way.
    pub fn create(&self) -> Result<ObjectId, BranchError> {
        commit::create(self)
    }

    /// Commit the journal and merge other git-annex branches (synced/,
    /// remotes') that are not yet ancestors of the branch: one commit, or a
    /// fast-forward when only another branch is ahead and the journal is
    /// empty. Then deletes the committed journal files, keeps git-annex's
    /// `annex/index` in step and runs the `post-update-annex` hook.
    pub fn commit(&self) -> Result<CommitOutcome, BranchError> {
        commit::commit(self, &mut [])
    }

    /// [`Branch::commit`], making the `direct` changes in the same commit,
    /// under the journal lock, without a journal file each.
    pub fn commit_with(&self, direct: &mut [Direct<'_>]) -> Result<CommitOutcome, BranchError> {
        commit::commit(self, direct)
    }

    /// The [`Direct`] change that records `status` for `uuids` in `key`'s
    /// location log if `holds()`, asked at commit time under the journal
    /// lock, as [`Branch::log_key_locations_if`] asks it. Cluster UUIDs
    /// are skipped.
    pub fn key_locations_change<'a>(
        key: &crate::key::Key,
        uuids: Vec<String>,
        status: LogStatus,
        mut holds: impl FnMut() -> bool + 'a,
    ) -> Direct<'a> {
        let uuids: Vec<String> = uuids.into_iter().filter(|u| !is_cluster_uuid(u)).collect();
        Direct {
            path: location_log_path_for(key),
            change: Box::new(move |old| {
                if uuids.is_empty() || !holds() {
                    return None;
                }
                locations_changed(old, &uuids, status)
            }),
        }
    }

    /// [`Branch::key_locations_change`] for a change that happened at
    /// `at` and is written later (a gateway's line for its node, owed until
    /// the session commits): a repository whose line in the log is newer
    /// than `at` keeps it, since another session logged a change since,
    /// and the others get `at` (advanced past their last line). The node's
    /// content cannot be asked at commit time as a local store's can; the
    /// clocks order the two sessions' lines as the journal would have.
    pub fn key_locations_change_as_of<'a>(
        key: &crate::key::Key,
        uuids: Vec<String>,
        status: LogStatus,
        at: VectorClock,
    ) -> Direct<'a> {
        let uuids: Vec<String> = uuids.into_iter().filter(|u| !is_cluster_uuid(u)).collect();
        Direct {
            path: location_log_path_for(key),
            change: Box::new(move |old| locations_changed_as_of(old, &uuids, status, at)),
        }
    }

    /// The parsed location log at `path` (journal first).
    pub fn location_log(&self, path: &str) -> Result<LocationLog, BranchError> {
        Ok(LocationLog::parse(
            &self.read_file(path)?.unwrap_or_default(),
        ))
    }

    /// Record `status` for `uuid` in the location log at `path`. Cluster
    /// UUIDs are never recorded, as in git-annex. Returns whether the log
    /// changed.
    pub fn log_location(
        &self,
        path: &str,
        uuid: &str,
        status: LogStatus,
    ) -> Result<bool, BranchError> {
        if is_cluster_uuid(uuid) {
            return Ok(false);
        }
        let candidate = VectorClock::candidate_now();
        self.maybe_change_file(path, |old| {
            change_location_log(old.unwrap_or_default(), uuid, status, candidate)
        })
    }

    /// [`Branch::log_location`] for a key.
    pub fn log_key_location(
        &self,
        key: &crate::key::Key,
        uuid: &str,
        status: LogStatus,
    ) -> Result<bool, BranchError> {
        self.log_location(&location_log_path_for(key), uuid, status)
    }

    /// [`Branch::log_key_location`] for several UUIDs at once (a gateway
    /// logging every node it stored a key on or removed it from): one
    /// journal write for all of them, where one per UUID would create a
    /// journal file each, the costliest thing a server does per key (see
    /// `pack`). Cluster UUIDs are skipped. Returns whether the log changed.
    pub fn log_key_locations<'a>(
        &self,
        key: &crate::key::Key,
        uuids: impl IntoIterator<Item = &'a str>,
        status: LogStatus,
    ) -> Result<bool, BranchError> {
        self.log_key_locations_if(key, uuids, status, || true)
    }

    /// [`Branch::log_key_locations`] if `holds()`, asked under the journal
    /// lock: a line written after the change it records was answered
    /// (`annex-shell`'s `owed.rs`) is written only while what it says is
    /// still so. Every writer logs under that lock after it changed the
    /// content, so a removal or store by another process since is either
    /// seen by `holds` (nothing written) or logged after this line.
    pub fn log_key_locations_if<'a>(
        &self,
        key: &crate::key::Key,
        uuids: impl IntoIterator<Item = &'a str>,
        status: LogStatus,
        holds: impl FnOnce() -> bool,
    ) -> Result<bool, BranchError> {
        let uuids: Vec<&str> = uuids.into_iter().filter(|u| !is_cluster_uuid(u)).collect();
        if uuids.is_empty() {
            return Ok(false);
        }
        self.maybe_change_file(&location_log_path_for(key), |old| {
            holds()
                .then(|| locations_changed(old, &uuids, status))
                .flatten()
        })
    }

    /// UUIDs the location log says have the key.
    pub fn key_locations(&self, key: &crate::key::Key) -> Result<Vec<String>, BranchError> {
        let log = self.location_log(&location_log_path_for(key))?;
        Ok(log.present().into_iter().map(str::to_owned).collect())
    }

    pub(crate) fn thread_repo(&self) -> gix::Repository {
        self.repo.to_thread_local()
    }
}
