//! File-system steps shared by the store: permissions as git-annex freezes
//! and thaws them (`Annex/Perms.hs`, unshared repositories), atomic writes,
//! lock sanity, cleanup of empty object directories.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::key::safe_path_component;
use crate::lockfile::{self, LockHandle, LockKind};

use super::StoreError;

/// Mode for new files; the process umask still applies, as for git-annex.
pub(crate) const FILE_MODE: u32 = 0o666;

fn set_mode(path: &Path, f: impl FnOnce(u32) -> u32) -> io::Result<()> {
    let mode = fs::metadata(path)?.permissions().mode() & 0o7777;
    let new = f(mode);
    if new != mode {
        fs::set_permissions(path, fs::Permissions::from_mode(new))?;
    }
    Ok(())
}

/// Object file: no write bits, owner may read. By descriptor, so no
/// symlink at the path can redirect it.
pub(crate) fn freeze_file(file: &fs::File) -> io::Result<()> {
    let mode = file.metadata()?.permissions().mode() & 0o7777;
    let new = (mode & !0o222) | 0o400;
    if new != mode {
        file.set_permissions(fs::Permissions::from_mode(new))?;
    }
    Ok(())
}

/// Renames `from` to `to` unless something is at `to`: `Ok(false)` then,
/// and `from` is left where it is. Two receivers of one key may finish at
/// once (small PUTs take no transfer lock, and git-annex may receive
/// beside us): the first object in place stays, as git-annex's `moveAnnex`
/// keeps it, and no receiver replaces another's object (which the replaced
/// one would take for its own file swapped under it, and remove). A
/// removal putting an object back never replaces new content either.
/// Where the file system has no `RENAME_NOREPLACE`, a hard link (which
/// never replaces either) and an unlink of `from` do the same.
pub(crate) fn rename_noreplace(from: &Path, to: &Path) -> io::Result<bool> {
    use nix::fcntl::{renameat2, RenameFlags, AT_FDCWD};
    match renameat2(AT_FDCWD, from, AT_FDCWD, to, RenameFlags::RENAME_NOREPLACE) {
        Ok(()) => Ok(true),
        Err(nix::errno::Errno::EEXIST) => Ok(false),
        Err(nix::errno::Errno::EINVAL | nix::errno::Errno::ENOSYS) => match fs::hard_link(from, to)
        {
            Ok(()) => remove_if_exists(from).map(|()| true),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e),
        },
        Err(e) => Err(e.into()),
    }
}

/// Whether `path` itself (not a symlink's target) is the open `file`.
pub(crate) fn same_file(path: &Path, file: &fs::File) -> io::Result<bool> {
    let (p, f) = (fs::symlink_metadata(path)?, file.metadata()?);
    Ok(p.dev() == f.dev() && p.ino() == f.ino())
}

/// Key directory: no write bits, so the object cannot be deleted by accident.
pub(crate) fn freeze_dir(dir: &Path) -> io::Result<()> {
    set_mode(dir, |m| m & !0o222)
}

pub(crate) fn thaw_dir(dir: &Path) -> io::Result<()> {
    set_mode(dir, |m| m | 0o200)
}

/// Runs `action` with the existing directory of `file` thawed, freezing it
/// again afterwards whatever the outcome (`modifyContentDirWhenExists`).
/// Another process may freeze the directory under us; a permission error
/// is then retried a few times after thawing again.
pub(crate) fn in_thawed_dir<T>(
    file: &Path,
    mut action: impl FnMut() -> io::Result<T>,
) -> io::Result<T> {
    let dir = file.parent().unwrap_or(Path::new("."));
    let mut attempts = 0;
    loop {
        thaw_dir(dir)?;
        let result = action();
        // The directory may be gone (the last object removed); that's fine.
        match freeze_dir(dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        match result {
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied && attempts < 5 => attempts += 1,
            other => return other,
        }
    }
}

/// Whether the locked descriptor is still the file at `path`: lock files get
/// deleted by whoever unlocks last, so a lock on a deleted inode protects
/// nothing (`checkSaneLock`).
pub(crate) fn lock_is_sane(path: &Path, lock: &LockHandle) -> bool {
    match (fs::metadata(path), lock.file().metadata()) {
        (Ok(p), Ok(f)) => p.dev() == f.dev() && p.ino() == f.ino(),
        _ => false,
    }
}

/// Takes a lock without waiting and checks it is sane; `None` when someone
/// else holds it.
pub(crate) fn try_sane_lock(path: &Path, kind: LockKind) -> io::Result<Option<LockHandle>> {
    match lockfile::try_lock(path, kind, FILE_MODE)? {
        Some(h) if lock_is_sane(path, &h) => Ok(Some(h)),
        _ => Ok(None),
    }
}

pub(crate) fn remove_if_exists(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Removes the directory holding `file` and up to `levels - 1` of its
/// parents while they are empty (`cleanObjectDirs`).
pub(crate) fn remove_empty_dirs(file: &Path, levels: usize) {
    let mut dir = file.parent();
    for _ in 0..levels {
        match dir {
            Some(d) if fs::remove_dir(d).is_ok() => dir = d.parent(),
            _ => return,
        }
    }
}

/// `<uuid>` as a directory name: git-annex drops `/` (`uuidFile`); what is
/// left must still be a single, non-special component.
pub(crate) fn uuid_dir(uuid: &str) -> Result<String, StoreError> {
    let name: String = uuid.chars().filter(|&c| c != '/').collect();
    safe_path_component(&name)?;
    Ok(name)
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Replaces `dest` atomically: the new content is written under
/// `annex/othertmp/` (held with a shared lock on `annex/othertmp.lck`, which
/// keeps git-annex from cleaning it away) and renamed into place, so readers
/// see the old or the new content, never a mix.
pub(crate) fn replace_file(annex_dir: &Path, dest: &Path, contents: &[u8]) -> io::Result<()> {
    let othertmp = annex_dir.join("othertmp");
    fs::create_dir_all(&othertmp)?;
    let _guard = lockfile::lock(&annex_dir.join("othertmp.lck"), LockKind::Shared, FILE_MODE)?;
    let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp: PathBuf = othertmp.join(format!("replace.{}.{n}", std::process::id()));
    let write = || -> io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(FILE_MODE)
            .open(&tmp)?;
        f.write_all(contents)?;
        fs::rename(&tmp, dest)
    };
    let result = write();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Writes a small bookkeeping file, creating its directory. Never
/// through a symlink: one planted at the name is replaced.
pub(crate) fn write_with_dirs(path: &Path, contents: &[u8]) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    let open = || {
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(FILE_MODE)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(path)
    };
    let mut f = match open() {
        Err(e) if e.raw_os_error() == Some(nix::libc::ELOOP) => {
            fs::remove_file(path)?;
            open()?
        }
        other => other?,
    };
    f.write_all(contents)
}

/// Bytes available to this user on the file system holding `dir`.
pub(crate) fn free_space(dir: &Path) -> io::Result<u64> {
    let st = nix::sys::statvfs::statvfs(dir).map_err(io::Error::from)?;
    #[allow(clippy::useless_conversion)]
    let avail = u64::from(st.blocks_available()).saturating_mul(u64::from(st.fragment_size()));
    Ok(avail)
}
