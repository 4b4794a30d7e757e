//! Spare inodes: files a session is done with (a committed journal file,
//! a small object just removed) are kept, empty, in
//! `annex/othertmp/spare/` and renamed into use for the next small PUT's
//! temporary file, instead of being deleted and created anew. Databases
//! recycle their log segments the same way. Only a file that is synced
//! before it gets a name others read takes a spare: after a crash, an
//! unsynced new file comes back empty or short, an unsynced reused inode
//! could come back with what it held before (so journal files, which are
//! not synced, are always created anew).
//!
//! Why: on ext4 without a journal, allocating an inode walks past every
//! inode freed in the same block group in the last minutes
//! (`recently_deleted` in the kernel), so on a server that keeps creating
//! and deleting small files the creation is the largest part of a
//! small-key session's CPU (README, "Spare inodes"). A rename allocates
//! nothing and frees nothing.
//!
//! What it rests on: a spare has no meaning. An inode is only ever
//! emptied or written again when nobody else has it open, which a write
//! lease tells ([`alone`]); whoever still reads it under its old name
//! keeps it whole, as with an unlink, and it is deleted instead. It is
//! checked when taken (a regular file of ours with no other name, else it
//! is deleted and a file created as before) and given the mode a new file
//! would get; a file with another name (a hard link: an unlocked file's
//! content under `annex.thin`) is never made a spare. An object is
//! emptied when given (a drop frees its space at once), a journal file
//! when taken. The pool is bounded ([`SLOTS`] names); a file finding
//! no free name is deleted as before. Everything happens in `othertmp`
//! under the shared `othertmp.lck` the caller holds, so git-annex's own
//! cleanup (which removes the directory under that lock taken
//! exclusively) may remove the pool at any time in between and loses
//! nothing.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use nix::errno::Errno;
use nix::fcntl::{renameat2, RenameFlags, AT_FDCWD};

/// Names in the pool, so it holds at most this many files per repository.
pub const SLOTS: u64 = 1024;
/// Free names tried for a file given; all taken means the pool is full
/// enough, and the file is deleted.
const TRIES: u64 = 8;
/// Files larger than this are deleted, not kept: truncating frees their
/// blocks at the same cost as deleting, and they are rare.
pub const MAX_GIVEN: u64 = 1 << 20;

const DIR: &str = "spare";

static COUNTER: AtomicU64 = AtomicU64::new(0);
/// Per pool directory, names listed and not yet tried. Read in batches so
/// a session taking one file reads a few names, not the whole pool, and no
/// directory stays open between calls (a long-running server may serve
/// many repositories).
static LISTINGS: Mutex<Option<HashMap<PathBuf, Listing>>> = Mutex::new(None);
/// Names read from a pool at a time.
const BATCH: usize = 64;
/// Pools remembered by one process; beyond that the memory is dropped.
const POOLS: usize = 256;

#[derive(Default)]
struct Listing {
    names: Vec<std::ffi::OsString>,
    /// Found empty; listed again only after this process gave a file.
    exhausted: bool,
}

/// The pool of the repository whose `annex/othertmp` is `othertmp`.
fn pool(othertmp: &Path) -> PathBuf {
    othertmp.join(DIR)
}

/// Takes a spare for a new file at `dest`, a name of ours in the same file
/// system where nothing is: renamed there, emptied, given `mode` less the
/// umask, open for reading and writing. `None` when the pool has nothing
/// usable; the caller then creates the file as before.
pub fn take(othertmp: &Path, dest: &Path, mode: u32) -> Option<File> {
    let dir = pool(othertmp);
    loop {
        let name = next_name(&dir)?;
        let spare = dir.join(&name);
        match renameat2(
            AT_FDCWD,
            &spare,
            AT_FDCWD,
            dest,
            RenameFlags::RENAME_NOREPLACE,
        ) {
            Ok(()) => {}
            // Taken by another process since we listed it (not the
            // destination's directory missing: that would never pass).
            Err(Errno::ENOENT) if fs::symlink_metadata(&spare).is_err() => continue,
            Err(e) => {
                tracing::debug!("taking a spare for {}: {e}", dest.display());
                return None;
            }
        }
        match adopt(dest, mode) {
            Ok(Some(file)) => return Some(file),
            Ok(None) => {
                // Not a plain file of ours alone: never written through.
                discard(dest);
            }
            Err(e) => {
                tracing::debug!("using spare {}: {e}", dest.display());
                discard(dest);
                return None;
            }
        }
    }
}

/// Opens what was renamed to `dest` if it is a regular file of this user
/// with no other name, then empties it and sets its mode.
fn adopt(dest: &Path, mode: u32) -> io::Result<Option<File>> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        // Opening a FIFO planted there for reading and writing does not
        // block; no O_NONBLOCK stays on the file handed out.
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(dest);
    let file = match file {
        Ok(f) => f,
        // A symlink (ELOOP) or a file we may not write: not ours to use.
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(nix::libc::ELOOP | nix::libc::EACCES | nix::libc::EISDIR)
            ) =>
        {
            return Ok(None)
        }
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    if !plain_and_ours(&meta) || !alone(&file) {
        return Ok(None);
    }
    if meta.len() != 0 {
        file.set_len(0)?;
    }
    file.set_permissions(fs::Permissions::from_mode(mode & !umask()))?;
    Ok(Some(file))
}

/// The next name of the listing of `dir`, opening it when none is open.
fn next_name(dir: &Path) -> Option<std::ffi::OsString> {
    let mut guard = LISTINGS.lock().unwrap_or_else(|p| p.into_inner());
    let pools = guard.get_or_insert_with(HashMap::new);
    if pools.len() >= POOLS && !pools.contains_key(dir) {
        pools.clear();
    }
    let listing = pools.entry(dir.to_owned()).or_default();
    if listing.names.is_empty() && !listing.exhausted {
        // Names taken since the last batch are gone from the directory,
        // so reading from its start again finds the ones left.
        listing.names = fs::read_dir(dir)
            .map(|rd| rd.flatten().take(BATCH).map(|e| e.file_name()).collect())
            .unwrap_or_default();
        listing.exhausted = listing.names.is_empty();
    }
    listing.names.pop()
}

/// Keeps the file at `path`, known only under this name of its caller's
/// own in `othertmp` (an object set aside), emptied, as a spare; deletes
/// it when it cannot be kept: another name, another owner, more than
/// [`MAX_GIVEN`] bytes, or someone still reading it.
pub fn give(othertmp: &Path, path: &Path) -> io::Result<()> {
    let (file, writable) = match emptiable(path) {
        Ok(Some(found)) => found,
        Ok(None) => return remove(path),
        Err(e) => {
            tracing::debug!("keeping {} as a spare: {e}", path.display());
            return remove(path);
        }
    };
    // Into the pool first, then made writable and emptied there: a
    // `removing.` name is put back in the store by the next process if
    // this one dies, and must come back as it was. One taken from the
    // pool meanwhile is seen open by us, and deleted by its taker.
    into_pool(othertmp, path)?;
    if let Err(e) = empty(file, writable) {
        tracing::debug!("emptying a spare: {e}");
    }
    Ok(())
}

/// Keeps the file at `path`, a name others may have opened it under (a
/// committed journal file), as a spare with its content, which is emptied
/// only when the spare is taken, once nobody reads it; deletes it when it
/// cannot be kept.
pub fn keep(othertmp: &Path, path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if plain_and_ours(&meta) => into_pool(othertmp, path),
        Ok(_) => remove(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// A regular file of this user with one name and at most [`MAX_GIVEN`]
/// bytes.
fn plain_and_ours(meta: &fs::Metadata) -> bool {
    meta.file_type().is_file()
        && meta.nlink() == 1
        && meta.uid() == nix::unistd::geteuid().as_raw()
        && meta.len() <= MAX_GIVEN
}

/// Renames `path` to a free name of the pool, or deletes it when the
/// names tried are taken (the pool is full enough).
fn into_pool(othertmp: &Path, path: &Path) -> io::Result<()> {
    let dir = pool(othertmp);
    let start = u64::from(std::process::id())
        .wrapping_mul(7919)
        .wrapping_add(COUNTER.fetch_add(1, Ordering::Relaxed));
    let mut made_dir = false;
    let mut slot = 0;
    while slot < TRIES {
        let name = dir.join(format!("{}", (start + slot) % SLOTS));
        match renameat2(
            AT_FDCWD,
            path,
            AT_FDCWD,
            &name,
            RenameFlags::RENAME_NOREPLACE,
        ) {
            Ok(()) => {
                relisted(&dir);
                return Ok(());
            }
            Err(Errno::EEXIST) => slot += 1,
            Err(Errno::ENOENT) if !made_dir && path.exists() => {
                made_dir = true;
                if let Err(e) = fs::create_dir(&dir) {
                    if e.kind() != io::ErrorKind::AlreadyExists {
                        return remove(path);
                    }
                }
            }
            Err(_) => return remove(path),
        }
    }
    remove(path)
}

/// The file at `path`, open, and whether for writing, if it is one to
/// keep: a regular file of ours with one name, at most [`MAX_GIVEN`]
/// bytes, that nobody else has open.
fn emptiable(path: &Path) -> io::Result<Option<(File, bool)>> {
    let open = |write: bool| {
        OpenOptions::new()
            .read(true)
            .write(write)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
            .open(path)
    };
    let (file, writable) = match open(true) {
        Ok(f) => (f, true),
        Err(e) if e.raw_os_error() == Some(nix::libc::EACCES) => (open(false)?, false),
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    // A reader still sending the object keeps it whole: deleted, not
    // emptied.
    if !plain_and_ours(&meta) || (meta.len() > 0 && !alone(&file)) {
        return Ok(None);
    }
    Ok(Some((file, writable)))
}

/// Empties a file given to the pool. A read-only object is made writable
/// through its open descriptor and opened again through /proc, never by
/// path.
fn empty(file: File, writable: bool) -> io::Result<()> {
    if writable {
        return file.set_len(0);
    }
    file.set_permissions(fs::Permissions::from_mode(0o600))?;
    OpenOptions::new()
        .write(true)
        .open(format!("/proc/self/fd/{}", file.as_raw_fd()))?
        .set_len(0)
}

/// Whether nobody else has the file open or mapped: the kernel grants a
/// write lease only then (`fcntl(2)`, "Leases"). Held no longer than the
/// check. Whoever opened the file under a name it had before, a reader of
/// a journal file or a GET sending an object, is still reading it, and
/// the file is then left to them, deleted rather than reused, as an
/// unlink would leave it. Nobody can open it anew: it has only our own
/// name in `othertmp` by then. Where leases are not to be had (another
/// file system, `fs.leases-enable` off), nothing is reused.
///
/// A process forked by another thread of ours (a git child, a test's
/// command) holds every descriptor of ours until it execs, a moment in
/// which the lease is refused: asked again twice, a millisecond apart,
/// before the file is given up.
fn alone(file: &File) -> bool {
    for attempt in 0..3 {
        if attempt > 0 {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        if lease_granted(file) {
            return true;
        }
    }
    false
}

#[allow(unsafe_code)]
fn lease_granted(file: &File) -> bool {
    use nix::libc::{fcntl, F_SETLEASE, F_UNLCK, F_WRLCK, SIGURG};
    // Linux's F_SETSIG, which the libc crate leaves out.
    const F_SETSIG: nix::libc::c_int = 10;
    let fd = file.as_raw_fd();
    // SAFETY: fcntl(2) on a descriptor `file` owns and keeps open for the
    // call, with integer arguments only. SIGURG, ignored by default,
    // stands in for the lease-break signal (SIGIO, which would end the
    // process) should anyone open the file in the instant we hold it.
    unsafe {
        if fcntl(fd, F_SETSIG, SIGURG) != 0 || fcntl(fd, F_SETLEASE, F_WRLCK) != 0 {
            return false;
        }
        fcntl(fd, F_SETLEASE, F_UNLCK);
    }
    true
}

/// This process gave a file to `dir`: a listing that ran out reads again.
fn relisted(dir: &Path) {
    let mut guard = LISTINGS.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(listing) = guard.as_mut().and_then(|m| m.get_mut(dir)) {
        if listing.exhausted {
            listing.exhausted = false;
        }
    }
}

/// Deletes what was taken from the pool and is not to be used: a file (a
/// reader keeps its view), a symlink (not its target), or a directory
/// someone planted there.
fn discard(path: &Path) {
    if let Err(e) = fs::remove_file(path) {
        if e.raw_os_error() == Some(nix::libc::EISDIR) {
            let _ = fs::remove_dir_all(path);
        }
    }
}

fn remove(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        r => r,
    }
}

/// The process umask, read without changing it (`umask(2)` can only be
/// read by setting it, which would race with other threads creating
/// files).
fn umask() -> u32 {
    static UMASK: OnceLock<u32> = OnceLock::new();
    *UMASK.get_or_init(|| {
        fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("Umask:"))
                    .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
            })
            .unwrap_or(0o022)
    })
}

#[cfg(test)]
#[path = "spares_tests.rs"]
mod tests;
