//! The `directory` special remote, laid out as git-annex lays it out
//! (`Remote/Directory.hs`), so either program reads what the other wrote:
//!
//! - an object (a key, or a chunk key) is `DIR/<hashdirlower>/<keyfile>/<keyfile>`,
//!   the hash directory being the one of the key without its chunk fields,
//!   so a key's chunks sit side by side; reads also look in the older
//!   mixed-case hash directory (`<hashdirmixed>`), as git-annex does;
//! - a write goes to `DIR/tmp/<keyfile>/<keyfile>` and its directory is
//!   renamed into place once the framework has verified the content;
//!   stored files and their directory are made read-only, as git-annex
//!   makes them (`preventWrite`);
//! - an interrupted write leaves its temporary file, which a later write of
//!   the same object continues (git-annex would start it again).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use annex::key::Key;
use annex::lockfile::{self, LockHandle, LockKind};

use super::storage::{StagedWrite, Storage, StorageError};

/// A directory remote: its name and where it stores.
#[derive(Clone, Debug)]
pub struct Directory {
    name: String,
    root: PathBuf,
    /// Bytes kept free on the directory's disk (`annex.diskreserve`).
    reserve: u64,
}

impl Directory {
    pub fn new(name: &str, root: PathBuf) -> Directory {
        Directory {
            name: name.to_owned(),
            root,
            reserve: 0,
        }
    }

    /// Keep `bytes` free on the directory's disk, as git-annex keeps its
    /// `annex.diskreserve` free there.
    pub fn with_reserve(mut self, bytes: u64) -> Directory {
        self.reserve = bytes;
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where git-annex stores `key` now (`storeDir`), and the file in it.
    fn store_dir(&self, key: &Key) -> PathBuf {
        self.root.join(key.hash_dir_lower()).join(key.key_file())
    }

    /// Where the object may be, in the order git-annex looks.
    fn locations(&self, key: &Key) -> [PathBuf; 2] {
        let file = key.key_file();
        [
            self.root.join(key.hash_dir_lower()).join(&file).join(&file),
            self.root.join(key.hash_dir_mixed()).join(&file).join(&file),
        ]
    }

    fn tmp_dir(&self, key: &Key) -> PathBuf {
        self.root.join("tmp").join(key.key_file())
    }

    fn io(&self, op: &'static str, key: &Key) -> impl FnOnce(io::Error) -> StorageError {
        let (remote, object) = (self.name.clone(), key.to_string());
        move |source| StorageError::Io {
            remote,
            op,
            object,
            source,
        }
    }

    /// A missing root means the remote is not there (an unmounted disk),
    /// not that it lacks the object: git-annex fails such a check.
    fn check_root(&self) -> Result<(), StorageError> {
        if self.root.is_dir() {
            Ok(())
        } else {
            Err(StorageError::Unavailable {
                remote: self.name.clone(),
                what: format!("directory {}", self.root.display()),
                why: "no such directory".into(),
            })
        }
    }

    fn find(&self, key: &Key) -> Result<Option<(PathBuf, u64)>, StorageError> {
        for path in self.locations(key) {
            match fs::metadata(&path) {
                Ok(m) if m.is_file() => return Ok(Some((path, m.len()))),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(self.io("stat", key)(e)),
            }
        }
        self.check_root()?;
        Ok(None)
    }
}

impl Storage for Directory {
    type Reader = tokio::fs::File;
    type Staged = DirWrite;

    fn remote(&self) -> &str {
        &self.name
    }

    async fn stat(&self, name: &Key) -> Result<Option<u64>, StorageError> {
        Ok(self.find(name)?.map(|(_, size)| size))
    }

    fn read_back_is_cheap(&self) -> bool {
        true
    }

    async fn read(&self, name: &Key, offset: u64) -> Result<tokio::fs::File, StorageError> {
        let Some((path, _)) = self.find(name)? else {
            return Err(self.io("open", name)(io::ErrorKind::NotFound.into()));
        };
        let mut file = File::open(&path).map_err(self.io("open", name))?;
        file.seek(SeekFrom::Start(offset))
            .map_err(self.io("seek", name))?;
        Ok(tokio::fs::File::from_std(file))
    }

    fn local_file(&self, name: &Key) -> Result<Option<File>, StorageError> {
        let Some((path, _)) = self.find(name)? else {
            return Ok(None);
        };
        File::open(&path).map(Some).map_err(self.io("open", name))
    }

    async fn begin_write(&self, name: &Key, _size: Option<u64>) -> Result<DirWrite, StorageError> {
        self.check_root()?;
        let tmp_dir = self.tmp_dir(name);
        fs::create_dir_all(&tmp_dir).map_err(self.io("create", name))?;
        let tmp = tmp_dir.join(name.key_file());
        // Only a regular file is a partial write; a symlink planted there
        // is removed, never followed.
        if fs::symlink_metadata(&tmp).is_ok_and(|m| m.file_type().is_symlink()) {
            fs::remove_file(&tmp).map_err(self.io("remove", name))?;
        }
        // One writer per object: a second session appending to the same
        // temporary file would interleave two bodies.
        let lock = lockfile::try_lock(&tmp, LockKind::Exclusive, 0o644)
            .map_err(self.io("lock", name))?
            .ok_or_else(|| StorageError::Busy {
                remote: self.name.clone(),
                object: name.to_string(),
            })?;
        // Nor one planted since.
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(&tmp)
            .map_err(self.io("open", name))?;
        let staged = file.metadata().map_err(self.io("stat", name))?.len();
        Ok(DirWrite {
            dir: self.clone(),
            key: name.clone(),
            tmp_dir,
            file,
            staged,
            _lock: lock,
        })
    }

    async fn room_for(&self, bytes: u64) -> Result<(), StorageError> {
        let Ok(st) = nix::sys::statvfs::statvfs(&self.root) else {
            // Unknown free space does not stop a store, as in git-annex.
            return Ok(());
        };
        #[allow(clippy::useless_conversion)] // the field types differ between platforms
        let free = u64::from(st.blocks_available()).saturating_mul(u64::from(st.fragment_size()));
        let want = bytes.saturating_add(self.reserve);
        if want <= free {
            return Ok(());
        }
        Err(StorageError::NoSpace {
            remote: self.name.clone(),
            need: crate::units::human(want - free),
        })
    }

    async fn remove(&self, name: &Key) -> Result<(), StorageError> {
        let dir = self.store_dir(name);
        // Stored directories are read-only, as git-annex leaves them.
        let _ = fs::set_permissions(&dir, fs::Permissions::from_mode(0o755));
        match fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(_) if !dir.exists() => self.check_root()?,
            Err(e) => return Err(self.io("remove", name)(e)),
        }
        // Empty hash directories go too (not the root); failing to remove
        // one that is not empty is expected.
        let mut parent = dir.parent();
        while let Some(p) = parent.filter(|p| *p != self.root && p.starts_with(&self.root)) {
            if fs::remove_dir(p).is_err() {
                break;
            }
            parent = p.parent();
        }
        Ok(())
    }
}

/// An object being written to `DIR/tmp/<keyfile>/<keyfile>`.
pub struct DirWrite {
    dir: Directory,
    key: Key,
    tmp_dir: PathBuf,
    file: File,
    staged: u64,
    /// Held until the write is committed, aborted or dropped.
    _lock: LockHandle,
}

impl DirWrite {
    fn io(&self, op: &'static str) -> impl FnOnce(io::Error) -> StorageError {
        self.dir.io(op, &self.key)
    }

    /// git-annex's `finalizeStoreGeneric`: whatever is at the destination
    /// goes, the temporary directory is renamed there, and the file and
    /// directory lose their write permission.
    fn finalize(&self) -> io::Result<()> {
        let dest = self.dir.store_dir(&self.key);
        if dest.exists() {
            let _ = fs::set_permissions(&dest, fs::Permissions::from_mode(0o755));
            fs::remove_dir_all(&dest)?;
        }
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::rename(&self.tmp_dir, &dest)?;
        let file = dest.join(self.key.key_file());
        let _ = fs::set_permissions(&file, fs::Permissions::from_mode(0o444));
        let _ = fs::set_permissions(&dest, fs::Permissions::from_mode(0o555));
        Ok(())
    }
}

impl StagedWrite for DirWrite {
    type Reader = tokio::fs::File;

    fn staged(&self) -> u64 {
        self.staged
    }

    async fn read_staged(&mut self) -> Result<Option<tokio::fs::File>, StorageError> {
        let mut file = self.file.try_clone().map_err(self.io("open"))?;
        file.seek(SeekFrom::Start(0)).map_err(self.io("seek"))?;
        Ok(Some(tokio::fs::File::from_std(file)))
    }

    async fn restart(&mut self) -> Result<(), StorageError> {
        self.file.set_len(0).map_err(self.io("truncate"))?;
        self.staged = 0;
        Ok(())
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), StorageError> {
        self.file.write_all(bytes).map_err(self.io("write"))
    }

    async fn commit(self) -> Result<(), StorageError> {
        // On disk before it is renamed into place, so a crash never leaves
        // a truncated object under the key's name.
        self.file.sync_all().map_err(self.io("sync"))?;
        self.finalize().map_err(self.io("store"))?;
        tracing::debug!(remote = %self.dir.name, object = %self.key, "stored");
        Ok(())
    }

    async fn abort(self) -> Result<(), StorageError> {
        match fs::remove_dir_all(&self.tmp_dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.dir.io("remove", &self.key)(e)),
        }
    }
}

#[cfg(test)]
#[path = "directory_tests.rs"]
mod tests;
