//! Whole-file fcntl locks that interoperate with git-annex.
//!
//! git-annex takes POSIX record locks (`F_SETLK`). We take open-file-description
//! locks (`F_OFD_SETLK`) instead: on Linux the two kinds conflict with each
//! other, so a real git-annex on the same repository sees our locks and we see
//! its, while OFD locks stay per file descriptor rather than per process, so
//! two sessions' threads in one of our processes exclude each other too.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg};
use nix::libc;

/// Shared (read) or exclusive (write) lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockKind {
    Shared,
    Exclusive,
}

/// A held lock; released when dropped (closing the descriptor releases it).
#[derive(Debug)]
pub struct LockHandle {
    file: File,
    path: PathBuf,
}

impl LockHandle {
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn file(&self) -> &File {
        &self.file
    }

    /// Turn a held lock into another kind without closing the file, failing
    /// (and keeping the old lock) if someone else's lock conflicts.
    pub fn try_convert(&mut self, kind: LockKind) -> io::Result<bool> {
        set_lock(&self.file, kind, false)
    }
}

fn flock_for(kind: LockKind) -> libc::flock {
    // SAFETY-free zero init: every field of flock is a plain integer.
    let mut fl: libc::flock = libc::flock {
        l_type: 0,
        l_whence: 0,
        l_start: 0,
        l_len: 0,
        l_pid: 0,
    };
    fl.l_type = match kind {
        LockKind::Shared => libc::F_RDLCK,
        LockKind::Exclusive => libc::F_WRLCK,
    } as _;
    fl.l_whence = libc::SEEK_SET as _;
    fl
}

fn set_lock(file: &File, kind: LockKind, wait: bool) -> io::Result<bool> {
    let fl = flock_for(kind);
    let arg = if wait {
        FcntlArg::F_OFD_SETLKW(&fl)
    } else {
        FcntlArg::F_OFD_SETLK(&fl)
    };
    match fcntl(file, arg) {
        Ok(_) => Ok(true),
        Err(Errno::EAGAIN) | Err(Errno::EACCES) => Ok(false),
        Err(e) => Err(io::Error::from(e)),
    }
}

fn open_lock_file(path: &Path, kind: LockKind, mode: u32) -> io::Result<File> {
    let mut opts = OpenOptions::new();
    // A read lock needs a descriptor open for reading, a write lock one open
    // for writing; open both ways so the handle can be converted later.
    opts.read(true).write(true).create(true).mode(mode);
    match opts.open(path) {
        Ok(f) => Ok(f),
        // A read-only lock file (or directory) still allows a shared lock.
        Err(e) if kind == LockKind::Shared && e.kind() == io::ErrorKind::PermissionDenied => {
            OpenOptions::new().read(true).open(path)
        }
        Err(e) => Err(e),
    }
}

/// Take a lock without waiting. `Ok(None)` when another holder conflicts.
pub fn try_lock(path: &Path, kind: LockKind, mode: u32) -> io::Result<Option<LockHandle>> {
    let file = open_lock_file(path, kind, mode)?;
    try_lock_file(file, path, kind)
}

/// Take a lock without waiting on a lock file that must already exist:
/// `Err` of kind `NotFound` when it does not (nothing is created),
/// `Ok(None)` when another holder conflicts.
pub fn try_lock_existing(path: &Path, kind: LockKind) -> io::Result<Option<LockHandle>> {
    let file = OpenOptions::new().read(true).write(true).open(path)?;
    try_lock_file(file, path, kind)
}

/// The lock on `file` (opened at `path`) if nobody conflicts, without waiting.
fn try_lock_file(file: File, path: &Path, kind: LockKind) -> io::Result<Option<LockHandle>> {
    if set_lock(&file, kind, false)? {
        Ok(Some(LockHandle {
            file,
            path: path.to_owned(),
        }))
    } else {
        Ok(None)
    }
}

/// Take a lock, waiting for conflicting holders to release it.
pub fn lock(path: &Path, kind: LockKind, mode: u32) -> io::Result<LockHandle> {
    let file = open_lock_file(path, kind, mode)?;
    set_lock(&file, kind, true)?;
    Ok(LockHandle {
        file,
        path: path.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exclusive_excludes_within_one_process() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("x.lck");
        let a = try_lock(&p, LockKind::Exclusive, 0o644)
            .expect("lock")
            .expect("free");
        assert!(try_lock(&p, LockKind::Shared, 0o644)
            .expect("lock")
            .is_none());
        drop(a);
        let s1 = try_lock(&p, LockKind::Shared, 0o644)
            .expect("lock")
            .expect("free");
        let _s2 = try_lock(&p, LockKind::Shared, 0o644)
            .expect("lock")
            .expect("shared twice");
        assert!(try_lock(&p, LockKind::Exclusive, 0o644)
            .expect("lock")
            .is_none());
        drop(s1);
    }
}
