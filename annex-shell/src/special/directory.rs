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
use sha2::Digest;

use super::storage::{PathStorage, StagedWrite, Storage, StorageError};

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
        StorageError::io(&self.name, op, &key.to_string())
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
        self.stage(
            name.to_string(),
            tmp_dir,
            &name.key_file(),
            Dest::KeyDir(name.clone()),
        )
    }

    async fn room_for(&self, bytes: u64) -> Result<(), StorageError> {
        self.room(bytes)
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
        self.remove_empty_parents(&dir);
        Ok(())
    }
}

impl Directory {
    /// Open (or continue) the staged file `tmp_dir/file`, locked, for the
    /// object `object`, which becomes `dest` at commit.
    fn stage(
        &self,
        object: String,
        tmp_dir: PathBuf,
        file: &str,
        dest: Dest,
    ) -> Result<DirWrite, StorageError> {
        let io = |op| StorageError::io(&self.name, op, &object);
        fs::create_dir_all(&tmp_dir).map_err(io("create"))?;
        let tmp = tmp_dir.join(file);
        // Only a regular file is a partial write; a symlink planted there
        // is removed, never followed.
        if fs::symlink_metadata(&tmp).is_ok_and(|m| m.file_type().is_symlink()) {
            fs::remove_file(&tmp).map_err(io("remove"))?;
        }
        // One writer per object: a second session appending to the same
        // temporary file would interleave two bodies.
        let lock = lockfile::try_lock(&tmp, LockKind::Exclusive, 0o644)
            .map_err(io("lock"))?
            .ok_or_else(|| StorageError::Busy {
                remote: self.name.clone(),
                object: object.clone(),
            })?;
        // Nor one planted since.
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(&tmp)
            .map_err(io("open"))?;
        let staged = file.metadata().map_err(io("stat"))?.len();
        Ok(DirWrite {
            dir: self.clone(),
            object,
            dest,
            tmp_dir,
            file,
            staged,
            _lock: lock,
        })
    }

    fn room(&self, bytes: u64) -> Result<(), StorageError> {
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

    /// The directories above `path` that it leaves empty go too (not the
    /// root), as git-annex removes them (`removeExportLocation`); failing
    /// to remove one that is not empty is expected.
    fn remove_empty_parents(&self, path: &Path) {
        let mut parent = path.parent();
        while let Some(p) = parent.filter(|p| *p != self.root && p.starts_with(&self.root)) {
            if fs::remove_dir(p).is_err() {
                break;
            }
            parent = p.parent();
        }
    }
}

/// An export's files, under their paths in the directory
/// (`Remote/Directory.hs: storeExportM`, …). A write is staged in the
/// directory's `.git/annex/tmp/` (where no tree's file can be: git allows
/// no `.git` in a tree), so a cut-off write is continued as a key's is.
impl PathStorage for Directory {
    async fn stat_at(&self, path: &str) -> Result<Option<u64>, StorageError> {
        let file = self.at(path)?;
        match fs::symlink_metadata(&file) {
            Ok(m) if m.is_file() => Ok(Some(m.len())),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => self.check_root().map(|()| None),
            Err(e) => Err(self.path_io("stat", path)(e)),
        }
    }

    async fn read_at(&self, path: &str, offset: u64) -> Result<tokio::fs::File, StorageError> {
        let mut file = self.open_at(path)?;
        file.seek(SeekFrom::Start(offset))
            .map_err(self.path_io("seek", path))?;
        Ok(tokio::fs::File::from_std(file))
    }

    fn local_file_at(&self, path: &str) -> Result<Option<File>, StorageError> {
        match self.open_at(path) {
            Ok(f) => Ok(Some(f)),
            Err(StorageError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    async fn begin_write_at(
        &self,
        path: &str,
        _size: Option<u64>,
    ) -> Result<DirWrite, StorageError> {
        self.check_root()?;
        let dest = self.at(path)?;
        let name = hex::encode(sha2::Sha256::digest(path.as_bytes()));
        let tmp_dir = self.root.join(".git/annex/tmp").join(&name);
        self.stage(path.to_owned(), tmp_dir, &name, Dest::File(dest))
    }

    async fn remove_at(&self, path: &str) -> Result<(), StorageError> {
        let file = self.at(path)?;
        match fs::remove_file(&file) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => self.check_root()?,
            Err(e) => return Err(self.path_io("remove", path)(e)),
        }
        self.remove_empty_parents(&file);
        Ok(())
    }

    async fn rename_at(&self, from: &str, to: &str) -> Result<(), StorageError> {
        let (src, dest) = (self.at(from)?, self.at(to)?);
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent).map_err(self.path_io("create", to))?;
        }
        fs::rename(&src, &dest).map_err(self.path_io("rename", from))?;
        self.remove_empty_parents(&src);
        Ok(())
    }

    async fn copy_at(&self, from: &str, to: &str) -> Result<(), StorageError> {
        let mut src = self.open_at(from)?;
        let mut staged = self.begin_write_at(to, None).await?;
        staged.restart().await?;
        std::io::copy(&mut src, &mut staged.file).map_err(self.path_io("copy", from))?;
        staged.commit().await
    }
}

impl Directory {
    /// `path` under the root, refused when it is not a
    /// [`super::export::safe_path`] or a directory on the way is a
    /// symlink (one planted there would lead out of the remote).
    fn at(&self, path: &str) -> Result<PathBuf, StorageError> {
        if !super::export::safe_path(path) {
            return Err(self.path_io("open", path)(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a path under the remote",
            )));
        }
        let mut here = self.root.clone();
        let parts: Vec<&str> = path.split('/').collect();
        for (i, part) in parts.iter().enumerate() {
            here.push(part);
            let last = i + 1 == parts.len();
            if fs::symlink_metadata(&here).is_ok_and(|m| m.file_type().is_symlink()) && !last {
                return Err(self.path_io("open", path)(io::Error::other(
                    "a directory on the way is a symlink",
                )));
            }
        }
        Ok(here)
    }

    fn open_at(&self, path: &str) -> Result<File, StorageError> {
        OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(self.at(path)?)
            .map_err(self.path_io("open", path))
    }

    fn path_io(&self, op: &'static str, path: &str) -> impl FnOnce(io::Error) -> StorageError {
        StorageError::io(&self.name, op, path)
    }
}

/// An object being written to `DIR/tmp/<keyfile>/<keyfile>`.
pub struct DirWrite {
    dir: Directory,
    /// What the write is of, for errors.
    object: String,
    dest: Dest,
    tmp_dir: PathBuf,
    file: File,
    staged: u64,
    /// Held until the write is committed, aborted or dropped.
    _lock: LockHandle,
}

/// Where a staged write goes.
enum Dest {
    /// A key's directory, as git-annex stores keys.
    KeyDir(Key),
    /// A file of an export (`storeExport`).
    File(PathBuf),
}

impl DirWrite {
    fn io(&self, op: &'static str) -> impl FnOnce(io::Error) -> StorageError {
        StorageError::io(&self.dir.name, op, &self.object)
    }

    fn finalize(&self) -> io::Result<()> {
        match &self.dest {
            Dest::KeyDir(key) => self.finalize_key(key),
            Dest::File(dest) => {
                if let Some(parent) = dest.parent() {
                    fs::create_dir_all(parent)?;
                }
                let name = self.tmp_dir.file_name().unwrap_or_default();
                fs::rename(self.tmp_dir.join(name), dest)?;
                fs::remove_dir(&self.tmp_dir)
            }
        }
    }

    /// git-annex's `finalizeStoreGeneric`: whatever is at the destination
    /// goes, the temporary directory is renamed there, and the file and
    /// directory lose their write permission.
    fn finalize_key(&self, key: &Key) -> io::Result<()> {
        let dest = self.dir.store_dir(key);
        if dest.exists() {
            let _ = fs::set_permissions(&dest, fs::Permissions::from_mode(0o755));
            fs::remove_dir_all(&dest)?;
        }
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::rename(&self.tmp_dir, &dest)?;
        let file = dest.join(key.key_file());
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
        tracing::debug!(remote = %self.dir.name, object = %self.object, "stored");
        Ok(())
    }

    async fn abort(self) -> Result<(), StorageError> {
        match fs::remove_dir_all(&self.tmp_dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.io("remove")(e)),
        }
    }
}

#[cfg(test)]
#[path = "directory_tests.rs"]
mod tests;
