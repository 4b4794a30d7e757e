//! Transfer records under `annex/transfer/` (`Logs/Transfer.hs`,
//! `Annex/Transfer.hs`), so `git annex info` and concurrent git-annex
//! processes see our transfers, and two receivers of one key exclude each
//! other.
//!
//! * info file `<dir>/<uuid>/<keyfile>`: `<start time>s\n<assoc file>\n`,
//!   present while the transfer runs;
//! * lock `upload/<uuid>/lck.<keyfile>`, for downloads
//!   `download/lck/lck.<keyfile>` alone. git-annex also takes
//!   `download/<uuid>/lck.<keyfile>`, only to exclude git-annex 10.20240227
//!   and older (which took just that one) from receiving the same key from
//!   the same remote at once; every later git-annex takes the per-key lock
//!   first and tells running transfers by it. We leave the old lock out: it
//!   was a file created and deleted per received key, and what an old
//!   git-annex writing the same temp file could do is caught by the hash
//!   check before anything is moved into the store;
//! * on failure `failed/<dir>/<uuid>/<keyfile>` with the info, removed again
//!   by a later success.

use std::path::{Path, PathBuf};

use crate::clock::PosixTime;
use crate::key::Key;
use crate::lockfile::{LockHandle, LockKind};

use super::fsutil::{self, uuid_dir};
use super::{ObjectStore, StoreError};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Direction {
    Upload,
    Download,
}

impl Direction {
    fn name(self) -> &'static str {
        match self {
            Direction::Upload => "upload",
            Direction::Download => "download",
        }
    }
}

/// A running transfer's files and locks; ends as success or failure.
#[derive(Debug)]
pub(crate) struct TransferRecord {
    info_path: PathBuf,
    failed_path: PathBuf,
    info: Vec<u8>,
    /// Lock files with their locks, in the order taken.
    locks: Vec<(PathBuf, LockHandle)>,
    ended: bool,
}

impl TransferRecord {
    /// Starts the record. Downloads must get their locks (else
    /// `TransferInProgress`); uploads run regardless, like git-annex's
    /// `alwaysUpload`, but then leave no info file.
    pub(crate) fn start(
        store: &ObjectStore,
        direction: Direction,
        key: &Key,
        uuid: &str,
        assoc_file: Option<&str>,
    ) -> Result<TransferRecord, StoreError> {
        let mut record = TransferRecord::unlocked(store, direction, key, uuid, assoc_file)?;
        let tdir = store.annex_dir().join("transfer");
        let lck = format!("lck.{}", ObjectStore::key_file(key)?);
        let lock_paths = match direction {
            Direction::Upload => vec![record.info_path.with_file_name(&lck)],
            Direction::Download => vec![tdir.join("download/lck").join(&lck)],
        };
        for path in lock_paths {
            match take_lock(&path) {
                Ok(Some(h)) => record.locks.push((path, h)),
                Ok(None) if direction == Direction::Download => {
                    record.release_locks();
                    return Err(StoreError::TransferInProgress);
                }
                Err(e) if direction == Direction::Download => {
                    record.release_locks();
                    return Err(StoreError::io("lock", &path)(e));
                }
                // An upload without its lock (held elsewhere, or a read-only
                // repository) still runs, unrecorded.
                _ => {
                    record.release_locks();
                    return Ok(record);
                }
            }
        }
        if let Err(e) = fsutil::write_with_dirs(&record.info_path, &record.info) {
            if direction == Direction::Download {
                let path = record.info_path.clone();
                record.release_locks();
                return Err(StoreError::io("write", &path)(e));
            }
        }
        Ok(record)
    }

    /// A record that takes no lock and writes no info file, for a
    /// transfer that needs no exclusion (a small PUT into a temporary
    /// file of its own, see `incoming.rs`): only a failure is recorded,
    /// and removed again by a later success, as for any other transfer.
    pub(crate) fn unlocked(
        store: &ObjectStore,
        direction: Direction,
        key: &Key,
        uuid: &str,
        assoc_file: Option<&str>,
    ) -> Result<TransferRecord, StoreError> {
        let kf = ObjectStore::key_file(key)?;
        let u = uuid_dir(uuid)?;
        let tdir = store.annex_dir().join("transfer");
        let info = format!("{}\n{}\n", PosixTime::now(), assoc_file.unwrap_or("")).into_bytes();
        Ok(TransferRecord {
            info_path: tdir.join(direction.name()).join(&u).join(&kf),
            failed_path: tdir
                .join("failed")
                .join(direction.name())
                .join(&u)
                .join(&kf),
            info,
            locks: Vec::new(),
            ended: false,
        })
    }

    /// Removes the info and lock files (only if we hold the locks, as
    /// otherwise they are someone else's), then releases the locks.
    fn release_locks(&mut self) {
        if !self.locks.is_empty() {
            let _ = fsutil::remove_if_exists(&self.info_path);
            for (path, _) in &self.locks {
                let _ = fsutil::remove_if_exists(path);
            }
        }
        while let Some((_, h)) = self.locks.pop() {
            drop(h);
        }
    }

    pub(crate) fn end(&mut self, ok: bool) {
        if self.ended {
            return;
        }
        self.ended = true;
        self.release_locks();
        if ok {
            let _ = fsutil::remove_if_exists(&self.failed_path);
        } else {
            let _ = fsutil::write_with_dirs(&self.failed_path, &self.info);
        }
    }

    pub(crate) fn is_ended(&self) -> bool {
        self.ended
    }

    /// End a transfer that never started moving bytes: no failure is
    /// recorded, as git-annex records none when no DATA came.
    pub(crate) fn cancel(&mut self) {
        if !self.ended {
            self.ended = true;
            self.release_locks();
        }
    }

    #[cfg(test)]
    pub(crate) fn info_path(&self) -> &Path {
        &self.info_path
    }
}

impl Drop for TransferRecord {
    fn drop(&mut self) {
        self.end(false);
    }
}

fn take_lock(path: &Path) -> std::io::Result<Option<LockHandle>> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    fsutil::try_sane_lock(path, LockKind::Exclusive)
}

/// Held while content is sent to `uuid`; records a failed upload unless
/// [`UploadTransfer::finish`] says it went well.
#[derive(Debug)]
pub struct UploadTransfer {
    record: TransferRecord,
}

impl UploadTransfer {
    pub fn finish(mut self, ok: bool) {
        self.record.end(ok);
    }
}

impl ObjectStore {
    /// Starts the upload record for sending `key` to `remote_uuid`. Fails
    /// only for names that cannot be paths; bookkeeping problems (read-only
    /// repository, lock held elsewhere) leave the upload unrecorded.
    pub fn begin_upload(
        &self,
        key: &Key,
        remote_uuid: &str,
        assoc_file: Option<&str>,
    ) -> Result<UploadTransfer, StoreError> {
        let record = TransferRecord::start(self, Direction::Upload, key, remote_uuid, assoc_file)?;
        Ok(UploadTransfer { record })
    }
}

impl ObjectStore {
    /// How many uploads this repository is serving now, counted by their
    /// info files. Only a hint for spreading reads: a transfer that
    /// crashed leaves its file behind.
    pub fn uploads_running(&self) -> usize {
        let dir = self
            .annex_dir()
            .join("transfer")
            .join(Direction::Upload.name());
        let Ok(uuids) = std::fs::read_dir(dir) else {
            return 0;
        };
        uuids
            .filter_map(|e| std::fs::read_dir(e.ok()?.path()).ok())
            .flatten()
            .filter_map(|e| e.ok())
            .filter(|e| !e.file_name().to_string_lossy().starts_with("lck."))
            .count()
    }
}
