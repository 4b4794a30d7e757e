//! Content locking of v10 repositories (`Annex/Content.hs:
//! lockContentShared`, `lockContentForRemoval`).
//!
//! Holders of a copy (`LOCKCONTENT`) take a shared fcntl lock on
//! `<object>.lck`; a remover takes it exclusively if it exists, after
//! moving the object out of the store (`removal.rs` says why that is as
//! safe as git-annex's removal, which creates it). Because a P2P client may
//! vanish while relying on a lock, `LOCKCONTENT` also writes `<object>.rtm`,
//! a POSIX time ten minutes ahead before which nobody removes the content,
//! even after the lock is gone. `<object>.rtl` serialises writers of `.rtm`.
//! The key directory is frozen, so it is thawed around every file change.

use std::fs;
use std::path::{Path, PathBuf};

use crate::clock::PosixTime;
use crate::key::Key;
use crate::lockfile::{self, LockHandle, LockKind};

use super::fsutil::{self, in_thawed_dir, FILE_MODE};
use super::{ObjectStore, StoreError};

/// How long a `LOCKCONTENT` keeps protecting content after its holder is
/// gone (`p2pDefaultLockContentRetentionDuration`).
pub const RETENTION_SECS: i64 = 600;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RemoveOutcome {
    NotPresent,
    Removed,
    /// Someone holds a lock on the content, or a retention time is ahead.
    /// (git-annex-shell dies with "content is locked" here; a FAILURE reply
    /// is the better answer.)
    Locked,
    /// The caller's last check, made while holding the removal lock, said no
    /// (e.g. `REMOVE-BEFORE` past its deadline).
    TooLate,
}

pub(super) struct LockFiles {
    pub(super) lck: PathBuf,
    pub(super) rtm: PathBuf,
    rtl: PathBuf,
}

impl LockFiles {
    pub(super) fn beside(object: &Path) -> LockFiles {
        let with = |suffix: &str| {
            let mut s = object.as_os_str().to_owned();
            s.push(suffix);
            PathBuf::from(s)
        };
        LockFiles {
            lck: with(".lck"),
            rtm: with(".rtm"),
            rtl: with(".rtl"),
        }
    }
}

fn read_retention(rtm: &Path) -> Option<PosixTime> {
    let text = fs::read_to_string(rtm).ok()?;
    PosixTime::parse(text.trim_end())
}

/// Writes `until` into `.rtm` unless it already holds a later time.
fn write_retention(annex_dir: &Path, files: &LockFiles, until: PosixTime) -> std::io::Result<()> {
    in_thawed_dir(&files.rtl, || {
        let _serialised = lockfile::lock(&files.rtl, LockKind::Exclusive, FILE_MODE)?;
        if read_retention(&files.rtm).is_some_and(|t| t >= until) {
            return Ok(());
        }
        fsutil::replace_file(annex_dir, &files.rtm, until.to_string().as_bytes())
    })
}

/// Whether a retention time is ahead (`None`: no readable `.rtm`).
pub(super) fn retained(files: &LockFiles) -> Option<bool> {
    read_retention(&files.rtm).map(|t| PosixTime::now() <= t)
}

/// `.rtm` and `.rtl`, in a directory the caller thawed.
pub(super) fn remove_retention_files(files: &LockFiles) -> std::io::Result<()> {
    fsutil::remove_if_exists(&files.rtm)?;
    fsutil::remove_if_exists(&files.rtl)
}

/// Proof that the content is present and will stay until dropped. Dropping
/// it unlocks as git-annex does: if ours was the last shared lock, the
/// retention time we wrote (if still ours) and the lock files are removed.
pub struct ContentLock {
    files: LockFiles,
    retention: PosixTime,
    handle: Option<LockHandle>,
}

impl ContentLock {
    /// The retention time written for this lock.
    pub fn retention(&self) -> PosixTime {
        self.retention
    }
}

impl Drop for ContentLock {
    fn drop(&mut self) {
        let Some(mut h) = self.handle.take() else {
            return;
        };
        // Converting in place (rather than unlocking and relocking) leaves
        // no gap for a remover; failure means other holders remain, and
        // the last of them cleans up.
        if let Ok(true) = h.try_convert(LockKind::Exclusive) {
            let files = &self.files;
            let _ = in_thawed_dir(&files.lck, || {
                if read_retention(&files.rtm) == Some(self.retention) {
                    fsutil::remove_if_exists(&files.rtm)?;
                    fsutil::remove_if_exists(&files.rtl)?;
                }
                if fsutil::lock_is_sane(&files.lck, &h) {
                    fsutil::remove_if_exists(&files.lck)?;
                }
                Ok(())
            });
        }
        drop(h);
    }
}

impl ObjectStore {
    /// `LOCKCONTENT`: `Ok(None)` when the content is absent,
    /// `Err(ContentLocked)` while a removal holds it.
    pub fn lock_content(&self, key: &Key) -> Result<Option<ContentLock>, StoreError> {
        let Some(object) = self.content_path(key) else {
            return Ok(None);
        };
        let files = LockFiles::beside(&object);
        let handle = match in_thawed_dir(&files.lck, || {
            lockfile::try_lock(&files.lck, LockKind::Shared, FILE_MODE)
        }) {
            Ok(Some(h)) if fsutil::lock_is_sane(&files.lck, &h) => h,
            Ok(_) => return Err(StoreError::ContentLocked),
            Err(_) if !object.exists() => return Ok(None),
            Err(e) => return Err(StoreError::io("lock", &files.lck)(e)),
        };
        let retention = PosixTime::now().add_secs(RETENTION_SECS);
        // Without the retention time the lock would promise less than the
        // client expects, so a failure to write it fails the lock (the lock
        // file stays: another holder may be using it).
        if let Err(e) = write_retention(&self.annex_dir(), &files, retention) {
            drop(handle);
            return Err(StoreError::io("write", &files.rtm)(e));
        }
        let lock = ContentLock {
            files,
            retention,
            handle: Some(handle),
        };
        // Last, after the lock is taken and the retention time written: a
        // removal that found no `.lck`, or took it, has moved the object
        // out of the store before this looks (see `removal.rs`).
        if !object.exists() {
            return Ok(None);
        }
        Ok(Some(lock))
    }
}
