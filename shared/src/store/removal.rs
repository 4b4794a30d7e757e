//! `REMOVE` without making a lock file when nobody holds the content.
//!
//! git-annex removes content under an exclusive lock on `<object>.lck`,
//! which it creates for the purpose and deletes a moment later
//! (`lockContentForRemoval`). Creating a file is the largest cost of a
//! small drop on a file system that allocates inodes slowly (see the
//! README, "Where the server's CPU goes per key"), so we remove first and
//! look for lockers afterwards:
//!
//! 1. a retention time ahead in `.rtm` refuses the removal;
//! 2. the caller's last check (`REMOVE-BEFORE`'s deadline) runs;
//! 3. the object is renamed out of the store, to a `removing.` name in
//!    `annex/othertmp/` that records where it came from ([`discard`]);
//! 4. `.lck` is opened without being created. Absent: nobody holds a lock.
//!    Present: we take it exclusively (and check it is still the file at
//!    that path); if that fails, the object is renamed back (unless new
//!    content of the key took its place) and the removal refused;
//! 5. the retention time is read again; then what was set aside is deleted
//!    (large objects after the reply, [`discard`]), `.lck` too if we hold
//!    it, and the empty directories.
//!
//! Why this is as safe as git-annex's way against every locker that follows
//! git-annex's protocol (its `lockContentShared`, our `LOCKCONTENT`,
//! p2phttp's keeplocked): such a locker opens (creating) `.lck`, takes a
//! shared lock, checks that the path still names the inode it locked
//! (`checkSaneLock`), writes `.rtm`, and only then checks that the object
//! exists; and `.lck` is only ever deleted by someone holding it
//! exclusively. So a locker whose lock is good holds a shared lock on the
//! file at `.lck` from its sane check until it lets go, and the file stays
//! there all that time. If step 4 finds no `.lck`, every locker either
//! has not made its sane check yet or has let go already. One that has not
//! will check the object after step 4, hence after step 3, and find it gone
//! (or find its lock insane); one that let go no longer relies on the
//! content. If step 4 finds `.lck` and takes it exclusively, nobody holds
//! it, and every later locker checks the object after step 3. If step 4
//! cannot take it, a locker may have seen the object before step 3, and
//! the object goes back before we answer. A locker that looked while the
//! object was set aside was told it is absent, which only understates the
//! copies; so is a CHECKPRESENT or GET in that moment.
//!
//! Step 3 falls back to git-annex's way (create `.lck`, lock it, remove in
//! place) when `othertmp` cannot take the file: its lock held by
//! git-annex's cleanup, a `removing.` name longer than a file name may be,
//! another file system.

use std::fs;
use std::path::Path;

use crate::key::Key;
use crate::lockfile::{self, LockHandle, LockKind};

use super::content_lock::{remove_retention_files, retained, LockFiles, RemoveOutcome};
use super::discard::{self, Removing, SetAside};
use super::fsutil::{self, in_thawed_dir};
use super::{ObjectStore, StoreError};

/// What step 4 found at `.lck`.
enum Lockers {
    /// No lock file: no locker holds the content.
    None,
    /// The lock file, held exclusively by us.
    Excluded(LockHandle),
    /// Someone holds it.
    Holding,
}

/// Opens `.lck` without creating it and takes it exclusively. A lock on a
/// file that is no longer at the path (its last holder deleted it between
/// our open and our lock) is retried.
fn exclude_lockers(lck: &Path) -> std::io::Result<Lockers> {
    for _ in 0..3 {
        match lockfile::try_lock_existing(lck, LockKind::Exclusive) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Lockers::None),
            Err(e) => return Err(e),
            Ok(None) => return Ok(Lockers::Holding),
            Ok(Some(h)) if fsutil::lock_is_sane(lck, &h) => return Ok(Lockers::Excluded(h)),
            Ok(Some(_)) => {}
        }
    }
    Ok(Lockers::Holding)
}

/// Deletes `.lck` while we hold it exclusively, then lets go.
fn release(files: &LockFiles, handle: LockHandle) {
    let _ = fsutil::remove_if_exists(&files.lck);
    drop(handle);
}

impl ObjectStore {
    /// `REMOVE`: drops the content unless it is locked or retained.
    /// `still_allowed` runs right before the object leaves the store.
    ///
    /// The key directory is thawed once for the whole removal, where
    /// thawing and freezing it around each step cost a chmod pair each;
    /// it is frozen again only if it is still there.
    pub fn remove(
        &self,
        key: &Key,
        still_allowed: impl FnOnce() -> bool,
    ) -> Result<RemoveOutcome, StoreError> {
        let annex_dir = self.annex_dir();
        discard::sweep_removals_once(&annex_dir);
        let Some(object) = self.content_path(key) else {
            return Ok(RemoveOutcome::NotPresent);
        };
        let files = LockFiles::beside(&object);
        if retained(&files) == Some(true) {
            return Ok(RemoveOutcome::Locked);
        }
        let mut allowed = Some(still_allowed);
        // Only what comes before a step that cannot be undone is retried
        // when someone froze the directory under us: the deadline is
        // asked once, the fallback's lock may be taken again.
        let thawed = in_thawed_dir(&files.lck, || {
            if allowed.take().is_some_and(|f| !f()) {
                return Ok(Ok(RemoveOutcome::TooLate));
            }
            match discard::begin_removal(&annex_dir, &object) {
                SetAside::Gone => Ok(Ok(RemoveOutcome::NotPresent)),
                SetAside::Moved(removing) => Ok(remove_set_aside(&object, &files, removing)),
                SetAside::Unavailable => {
                    let Some(h) = fsutil::try_sane_lock(&files.lck, LockKind::Exclusive)? else {
                        return Ok(Ok(RemoveOutcome::Locked));
                    };
                    Ok(self.remove_locked(&object, &files, h))
                }
            }
        });
        match thawed {
            Ok(outcome) => outcome,
            Err(_) if !object.exists() => Ok(RemoveOutcome::NotPresent),
            Err(e) => Err(StoreError::io("lock", &files.lck)(e)),
        }
    }

    /// Git-annex's way, holding the lock file we created: the object is
    /// deleted in place (or set aside, when large).
    fn remove_locked(
        &self,
        object: &Path,
        files: &LockFiles,
        handle: LockHandle,
    ) -> Result<RemoveOutcome, StoreError> {
        // Checked again under the lock: a holder that died between our
        // first look and our lock leaves only its retention time behind.
        match retained(files) {
            Some(true) => {
                release(files, handle);
                return Ok(RemoveOutcome::Locked);
            }
            Some(false) => {
                remove_retention_files(files).map_err(StoreError::io("remove", &files.rtm))?;
            }
            None => {}
        }
        let Ok(meta) = fs::metadata(object) else {
            release(files, handle);
            return Ok(RemoveOutcome::NotPresent);
        };
        let aside =
            meta.len() >= discard::SET_ASIDE_FROM && discard::set_aside(&self.annex_dir(), object);
        if !aside {
            fsutil::remove_if_exists(object).map_err(StoreError::io("remove", object))?;
        }
        release(files, handle);
        // Key directory and both hash directories, when empty; for an
        // object set aside, after its unlink (`discard.rs`).
        if !aside {
            fsutil::remove_empty_dirs(object, 3);
        }
        Ok(RemoveOutcome::Removed)
    }
}

/// Steps 4 and 5, the object set aside. Every way out but success drops
/// `removing`, which puts the object back.
fn remove_set_aside(
    object: &Path,
    files: &LockFiles,
    removing: Removing,
) -> Result<RemoveOutcome, StoreError> {
    let handle = match exclude_lockers(&files.lck) {
        Ok(Lockers::None) => None,
        Ok(Lockers::Excluded(h)) => Some(h),
        Ok(Lockers::Holding) => return Ok(RemoveOutcome::Locked),
        Err(e) => return Err(StoreError::io("lock", &files.lck)(e)),
    };
    let let_go = |handle: Option<LockHandle>| {
        if let Some(h) = handle {
            release(files, h);
        }
    };
    // A retention time written since step 1 belongs to a locker that let
    // go since (or one that will find the object gone); a stale one is
    // cleaned away as git-annex does, which needs no lock here: whoever
    // writes one from now on finds the object gone.
    match retained(files) {
        Some(true) => {
            drop(removing);
            let_go(handle);
            return Ok(RemoveOutcome::Locked);
        }
        Some(false) => {
            if let Err(e) = remove_retention_files(files) {
                drop(removing);
                let_go(handle);
                return Err(StoreError::io("remove", &files.rtm)(e));
            }
        }
        None => {}
    }
    let finished = match removing.len() {
        Ok(len) => removing.finish(len),
        Err(e) => Err(e),
    };
    let_go(handle);
    let cleaned_after = finished.map_err(StoreError::io("remove", object))?;
    // Key directory and both hash directories, when empty; for an object
    // set aside, after its unlink (`discard.rs`).
    if !cleaned_after {
        fsutil::remove_empty_dirs(object, 3);
    }
    Ok(RemoveOutcome::Removed)
}
