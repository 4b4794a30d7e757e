//! Annexed content on disk, laid out and locked as git-annex does (spec 4.1,
//! 4.2, 4.4) so a real git-annex can work in the same repository at the
//! same time.
//!
//! * Objects: `<gitdir>/annex/objects/<hashdir>/<keyfile>/<keyfile>`, looked
//!   up in both hash layouts, written to the mixed one in non-bare
//!   repositories and the lower-case one in bare ones; frozen (file 0444,
//!   key directory without write bits) once in place.
//! * Receiving ([`Incoming`]): `annex/tmp/<keyfile>`, resumable, verified
//!   while it streams, under the download transfer locks; a small key
//!   starting at offset 0 goes to a file of its own in `annex/othertmp/`
//!   instead, without transfer lock or info file (`incoming.rs`).
//! * Sending ([`UploadTransfer`]): an upload transfer record while it runs.
//! * Locking ([`ContentLock`]): fcntl locks on `<object>.lck` plus the
//!   `.rtm` retention timestamp of v10 repositories; [`ObjectStore::remove`]
//!   honours them without making a `.lck` when nobody holds one
//!   (`removal.rs`).
//!
//! Not supported: v9 and older content locking (locking the object file
//! itself under `annex/sentinal`), `core.sharedRepository` modes and freeze
//! hooks, `annex.tune.objecthash1`/`objecthashlower`, `annex.pidlock`, and
//! counting other downloads in progress against free space. Only the
//! repository owner's permissions are handled, as in an unshared repository.

mod aligned;
mod content_lock;
pub mod discard;
mod fsutil;
mod incoming;
pub mod midstate;
mod removal;
mod scratch;
mod transfer;
pub mod verify;

#[cfg(test)]
mod interop_tests;
#[cfg(test)]
mod removal_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
pub(crate) mod testutil;
#[cfg(test)]
mod unlocked_tests;

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use crate::key::{safe_path_component, Key, KeyError};

pub use content_lock::{ContentLock, RemoveOutcome, RETENTION_SECS};
pub use incoming::{Incoming, Stored, VerifyMode};
pub use transfer::UploadTransfer;
pub use verify::{Checked, Mismatch, Verifier};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    UnsafeName(#[from] KeyError),
    #[error("transfer already in progress, or unable to take transfer lock")]
    TransferInProgress,
    #[error("not enough free space, need {need} more bytes")]
    NotEnoughSpace { need: u64 },
    #[error("Verification of content failed: {0}")]
    Verification(#[from] Mismatch),
    #[error("the sender had no content to send")]
    NoContentSent,
    #[error("content is locked")]
    ContentLocked,
    #[error("annex.securehashesonly is set: {variety} keys, whose hash is not cryptographically secure, are not accepted")]
    InsecureHash { variety: String },
    #[error("the key is too long to be logged: its location log would be a {len}-byte file name, more than the file system's {max}")]
    KeyTooLongToLog { len: usize, max: usize },
    #[error("the key's content is {size} bytes, but the data sent would end at byte {end}")]
    TooMuchData { size: u64, end: u64 },
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

impl StoreError {
    pub(crate) fn io(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> StoreError {
        let path = path.to_owned();
        move |source| StoreError::Io { op, path, source }
    }
}

/// One repository's object store.
#[derive(Clone, Debug)]
pub struct ObjectStore {
    gitdir: PathBuf,
    bare: bool,
    diskreserve: u64,
    /// `annex.securehashesonly`: receive only keys with a secure hash.
    secure_hashes_only: bool,
}

impl ObjectStore {
    /// `gitdir` is `.git` of a non-bare repository or the bare repository
    /// itself; `diskreserve` is `annex.diskreserve` in bytes.
    pub fn new(gitdir: PathBuf, bare: bool, diskreserve: u64) -> ObjectStore {
        ObjectStore {
            gitdir,
            bare,
            diskreserve,
            secure_hashes_only: false,
        }
    }

    /// Sets `annex.securehashesonly`.
    pub fn with_secure_hashes_only(mut self, on: bool) -> ObjectStore {
        self.secure_hashes_only = on;
        self
    }

    /// Whether this repository takes in content for `key` at all, whoever
    /// sends it: every way content is received checks this first. Refused
    /// are keys of an insecure hash under `annex.securehashesonly` (as
    /// git-annex's `checkSecureHashes`), and keys too long for their
    /// location log's file name, which could be stored but never logged.
    pub fn check_accepts(&self, key: &Key) -> Result<(), StoreError> {
        if self.secure_hashes_only && !key.backend().is_secure() {
            return Err(StoreError::InsecureHash {
                variety: key.variety().to_owned(),
            });
        }
        if let Some(len) = crate::branch::location::location_log_too_long(key) {
            return Err(StoreError::KeyTooLongToLog {
                len,
                max: crate::branch::location::NAME_MAX,
            });
        }
        Ok(())
    }

    pub fn annex_dir(&self) -> PathBuf {
        self.gitdir.join("annex")
    }

    /// The key file name, checked to be one harmless path component.
    fn key_file(key: &Key) -> Result<String, StoreError> {
        let kf = key.key_file();
        safe_path_component(&kf)?;
        Ok(kf)
    }

    fn object_path_in(&self, hashdir: &str, kf: &str) -> PathBuf {
        self.gitdir
            .join("annex/objects")
            .join(hashdir)
            .join(kf)
            .join(kf)
    }

    /// Where content may be, in the order git-annex looks
    /// (`Annex/Locations.hs: gitAnnexLocation`); the first is where new
    /// content goes.
    pub fn candidate_paths(&self, key: &Key) -> Result<[PathBuf; 2], StoreError> {
        let kf = Self::key_file(key)?;
        let mixed = self.object_path_in(&key.hash_dir_mixed(), &kf);
        let lower = self.object_path_in(&key.hash_dir_lower(), &kf);
        Ok(if self.bare {
            [lower, mixed]
        } else {
            [mixed, lower]
        })
    }

    /// The object file holding the key's content, if there is one.
    pub fn content_path(&self, key: &Key) -> Option<PathBuf> {
        let paths = self.candidate_paths(key).ok()?;
        paths.into_iter().find(|p| p.exists())
    }

    pub fn has(&self, key: &Key) -> bool {
        self.content_path(key).is_some()
    }

    /// Where new content for the key is put.
    pub fn new_object_path(&self, key: &Key) -> Result<PathBuf, StoreError> {
        let [first, _] = self.candidate_paths(key)?;
        Ok(first)
    }

    /// Opens the content for sending, with its size.
    pub fn open_content(&self, key: &Key) -> io::Result<Option<(File, u64)>> {
        let Some(path) = self.content_path(key) else {
            return Ok(None);
        };
        match File::open(&path) {
            Ok(f) => {
                let size = f.metadata()?.len();
                Ok(Some((f, size)))
            }
            // Removed between the lookup and the open.
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Partial content of an incoming key.
    pub fn tmp_path(&self, key: &Key) -> Result<PathBuf, StoreError> {
        Ok(self.annex_dir().join("tmp").join(Self::key_file(key)?))
    }
}
