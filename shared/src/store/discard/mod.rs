//! Large objects leave the store by a rename and are unlinked afterwards,
//! off the path of the reply.
//!
//! Unlinking a file of hundreds of megabytes is slow: the kernel frees its
//! page cache (CPU) and its blocks, which on a file system mounted with
//! `discard` (this machine's) waits for the device; 0.1 to 0.2 s for
//! 300 MB here. What `REMOVE` promises is that the key's content is no
//! longer in the repository, which the rename achieves at once: the object
//! path is free, nothing can lock or send the content any more, and the
//! location log can be written. The bytes then go on worker threads (one per
//! CPU, up to four, so that a gateway's local nodes unlink side by side) while
//! the client does its own bookkeeping.
//!
//! The file waits in `annex/othertmp/` under a shared lock on
//! `annex/othertmp.lck`, as git-annex's own temporary files do: if this
//! process dies before the unlink, the next git-annex process that cleans
//! up `othertmp` (`cleanupOtherTmp`) deletes it, and so does our next
//! large drop in that repository (files of processes that are gone).
//! [`finish`] waits for every unlink queued; a process ends only after it.
//! A server session hands its unlinks to a helper process instead and
//! ends without waiting for them (`helper.rs`, which says why).
//!
//! A removal also sets every object aside, large or small, for the moment
//! it checks for lockers ([`begin_removal`], see `removal.rs`): under a
//! name that says where it came from, `removing.PID.N.H1.H2.KEYFILE` for
//! `objects/H1/H2/KEYFILE/KEYFILE`, so that it can be put back, by the
//! removal itself when a locker holds the content, and by the first removal
//! of a later process ([`sweep_removals_once`]) when the process died
//! before answering.

mod helper;

pub use helper::{serve as serve_helper, use_helper, HELPER_SUBCOMMAND};

use std::collections::VecDeque;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};

use crate::key::safe_path_component;
use crate::lockfile::{self, LockHandle, LockKind};
use crate::spares;

use super::fsutil::{self, FILE_MODE};

/// Objects from this size on are set aside rather than unlinked in place;
/// below it an unlink costs less than the rename, the lock and the hop to
/// the worker.
pub const SET_ASIDE_FROM: u64 = 16 * 1024 * 1024;

/// Prefix of the names in `othertmp`; the pid follows, then a counter
/// (swept by `scratch::sweep_dead` once the process is gone).
const PREFIX: &str = "dropped.";
/// Prefix of an object being removed, that goes back if the removal
/// does not happen: pid, counter, the two hash directories, the key file.
const REMOVING: &str = "removing.";
/// The longest file name ext4 (and most file systems) take.
const NAME_MAX: usize = 255;

/// A file in `othertmp` to unlink, and the lock that keeps git-annex's
/// cleanup from racing the worker for it until then.
struct Pending {
    path: PathBuf,
    /// Where the object was: its key directory and hash directories are
    /// removed after the unlink when empty (`cleanObjectDirs`). Not before
    /// the answer: on a file system mounted with `discard`, each rmdir
    /// frees a block and waits for the device, behind the unlink's
    /// discards, which held a 300 MB drop's answer up by 60 ms. (A small
    /// key's directories go before its answer, 0.1 ms: done later, they
    /// raced the next PUT or lock of the key in them.)
    object: PathBuf,
    _lock: LockHandle,
}

/// Files waiting for a worker, and how many workers run. A worker ends
/// when it finds the queue empty; a file queued while fewer than
/// [`workers_max`] run starts another, so the objects of one drop from
/// several repositories (a gateway's local nodes) are unlinked side by
/// side rather than one after the other, while the session waits.
struct Pool {
    queue: VecDeque<Pending>,
    workers: usize,
}

static POOL: Mutex<Pool> = Mutex::new(Pool {
    queue: VecDeque::new(),
    workers: 0,
});

/// Unlinking is the kernel freeing page cache: as many at once as there
/// are CPUs, up to four.
fn workers_max() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
}
static COUNTER: AtomicU64 = AtomicU64::new(0);
/// Files set aside and not yet unlinked, process-wide, for [`finish`].
static QUEUED: Mutex<usize> = Mutex::new(0);
static DRAINED: Condvar = Condvar::new();

/// A shared lock on `annex/othertmp.lck`, which keeps git-annex's
/// `cleanupOtherTmp` from deleting `othertmp` while we have files there;
/// `None` while a cleanup holds it.
fn othertmp_lock(annex_dir: &Path) -> Option<LockHandle> {
    let lock_path = annex_dir.join("othertmp.lck");
    lockfile::try_lock(&lock_path, LockKind::Shared, FILE_MODE)
        .ok()
        .flatten()
}

fn dropped_name(othertmp: &Path) -> PathBuf {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    othertmp.join(format!("{PREFIX}{}.{n}", std::process::id()))
}

/// Moves `object` (in a thawed directory) out of the store into
/// `annex/othertmp/` and queues its unlink, and then the removal of its
/// empty directories. `false` when it was not set aside (no `othertmp`,
/// its lock held by a cleanup, another file system, the object already
/// gone): the caller then unlinks it in place.
pub(crate) fn set_aside(annex_dir: &Path, object: &Path) -> bool {
    let othertmp = annex_dir.join("othertmp");
    if fs::create_dir_all(&othertmp).is_err() {
        return false;
    }
    let Some(lock) = othertmp_lock(annex_dir) else {
        return false;
    };
    let path = dropped_name(&othertmp);
    if fs::rename(object, &path).is_err() {
        return false;
    }
    queue_unlink(path, object.to_owned(), lock);
    true
}

fn queue_unlink(path: PathBuf, object: PathBuf, lock: LockHandle) {
    // The helper needs no lock on `othertmp`: a git-annex cleanup that
    // deletes the file before it does what the helper would.
    if helper::send(&path, &object) {
        return;
    }
    *QUEUED.lock().unwrap_or_else(|p| p.into_inner()) += 1;
    queue(Pending {
        path,
        object,
        _lock: lock,
    });
}

/// An object moved out of the store by a removal that has not decided
/// yet. Dropped without [`Removing::finish`], it goes back.
pub(crate) struct Removing {
    aside: PathBuf,
    object: PathBuf,
    othertmp: PathBuf,
    lock: Option<LockHandle>,
}

/// What [`begin_removal`] did.
pub(crate) enum SetAside {
    Moved(Removing),
    /// There was no object to move.
    Gone,
    /// Not moved (no usable `othertmp`, a cleanup holding its lock, a name
    /// too long, another file system): the caller removes in place.
    Unavailable,
}

/// The name in `othertmp` that records where `object` came from, if the
/// object is where the store puts objects and the name fits.
fn removing_name(annex_dir: &Path, object: &Path) -> Option<String> {
    let rel = object.strip_prefix(annex_dir.join("objects")).ok()?;
    let parts: Vec<&str> = rel.iter().map(|c| c.to_str()).collect::<Option<_>>()?;
    let &[h1, h2, dir, file] = parts.as_slice() else {
        return None;
    };
    if dir != file || h1.contains('.') || h2.contains('.') {
        return None;
    }
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = format!("{REMOVING}{}.{n}.{h1}.{h2}.{file}", std::process::id());
    (name.len() <= NAME_MAX).then_some(name)
}

/// Where a `removing.` name says its object came from (`None` for any
/// other name, or one that would leave `annex/objects`), and the pid.
fn removing_origin(annex_dir: &Path, name: &str) -> Option<(i32, PathBuf)> {
    let mut fields = name.strip_prefix(REMOVING)?.splitn(5, '.');
    let pid = fields.next()?.parse::<i32>().ok()?;
    let _counter = fields.next()?;
    let (h1, h2, file) = (fields.next()?, fields.next()?, fields.next()?);
    for part in [h1, h2, file] {
        safe_path_component(part).ok()?;
    }
    let object = annex_dir
        .join("objects")
        .join(h1)
        .join(h2)
        .join(file)
        .join(file);
    Some((pid, object))
}

/// Renames `object` (in a thawed key directory) to its `removing.` name.
/// A permission error (someone froze the key directory meanwhile) is
/// retried once after thawing it again.
pub(crate) fn begin_removal(annex_dir: &Path, object: &Path) -> SetAside {
    let Some(name) = removing_name(annex_dir, object) else {
        return SetAside::Unavailable;
    };
    let Some(lock) = othertmp_lock(annex_dir) else {
        return SetAside::Unavailable;
    };
    let othertmp = annex_dir.join("othertmp");
    let aside = othertmp.join(name);
    let mut result = fs::rename(object, &aside);
    if let Err(e) = &result {
        let retry = match e.kind() {
            io::ErrorKind::NotFound if fs::symlink_metadata(object).is_err() => {
                return SetAside::Gone;
            }
            io::ErrorKind::NotFound => fs::create_dir_all(&othertmp).is_ok(),
            io::ErrorKind::PermissionDenied => {
                object.parent().is_some_and(|d| fsutil::thaw_dir(d).is_ok())
            }
            _ => false,
        };
        if retry {
            result = fs::rename(object, &aside);
        }
    }
    match result {
        Ok(()) => SetAside::Moved(Removing {
            aside,
            object: object.to_owned(),
            othertmp,
            lock: Some(lock),
        }),
        Err(_) if fs::symlink_metadata(object).is_err() => SetAside::Gone,
        Err(_) => SetAside::Unavailable,
    }
}

impl Removing {
    /// The object's size, read from the file set aside.
    pub(crate) fn len(&self) -> io::Result<u64> {
        Ok(fs::symlink_metadata(&self.aside)?.len())
    }

    /// The removal happens: the object is deleted now, or, from
    /// [`SET_ASIDE_FROM`] bytes on, renamed to a `dropped.` name and
    /// unlinked by the worker. Either way no `removing.` name is left, so
    /// nothing can bring the content back once the removal is answered.
    /// `Ok(true)`: the worker also removes the object's directories when
    /// empty; otherwise that is the caller's.
    pub(crate) fn finish(mut self, len: u64) -> io::Result<bool> {
        let Some(lock) = self.lock.take() else {
            return Ok(false);
        };
        if len >= SET_ASIDE_FROM {
            let dropped = dropped_name(&self.othertmp);
            if fs::rename(&self.aside, &dropped).is_ok() {
                let object = std::mem::take(&mut self.object);
                queue_unlink(dropped, object, lock);
                return Ok(true);
            }
        }
        // Emptied and kept for a later file, or deleted (`spares.rs`).
        let kept = spares::give(&self.othertmp, &self.aside);
        drop(lock);
        kept.map(|()| false)
    }
}

/// The removal did not happen: the object goes back.
impl Drop for Removing {
    fn drop(&mut self) {
        // The lock on `othertmp` is held until the object is back.
        if let Some(_othertmp) = self.lock.take() {
            if let Err(e) = restore(&self.aside, &self.object) {
                tracing::warn!(
                    "putting {} back at {}: {e}",
                    self.aside.display(),
                    self.object.display()
                );
            }
        }
    }
}

/// Renames `aside` back to `object` unless something is there now (new
/// content of the key, stored meanwhile: the copy set aside is then
/// redundant and deleted). The key directory may have been frozen (a
/// locker thaws and freezes it) or removed (git-annex removes empty
/// object directories after unlocking) in between; the caller freezes it
/// again.
fn restore(aside: &Path, object: &Path) -> io::Result<()> {
    let dir = object.parent().unwrap_or(Path::new("."));
    let mut attempts = 0;
    loop {
        let err = match fsutil::rename_noreplace(aside, object) {
            Ok(true) => return Ok(()),
            Ok(false) => return fsutil::remove_if_exists(aside),
            Err(e) => e,
        };
        attempts += 1;
        match err.kind() {
            // Put back (or deleted) by someone else.
            io::ErrorKind::NotFound if fs::symlink_metadata(aside).is_err() => return Ok(()),
            _ if attempts > 5 => return Err(err),
            io::ErrorKind::NotFound => fs::create_dir_all(dir)?,
            io::ErrorKind::PermissionDenied => fsutil::thaw_dir(dir)?,
            _ => return Err(err),
        }
    }
}

fn queue(pending: Pending) {
    let mut pool = POOL.lock().unwrap_or_else(|p| p.into_inner());
    pool.queue.push_back(pending);
    if pool.workers >= workers_max() {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("store-discard".into())
        .spawn(work);
    match spawned {
        Ok(_) => pool.workers += 1,
        // No thread: unlink here, as if it had never been set aside
        // (unless a running worker will take it).
        Err(_) if pool.workers == 0 => {
            if let Some(p) = pool.queue.pop_back() {
                drop(pool);
                p.run();
            }
        }
        Err(_) => {}
    }
}

/// A worker: unlinks what is queued until the queue is empty.
fn work() {
    loop {
        let next = {
            let mut pool = POOL.lock().unwrap_or_else(|p| p.into_inner());
            let next = pool.queue.pop_front();
            if next.is_none() {
                // Under the lock a file is queued with: it sees this
                // worker gone and starts another.
                pool.workers -= 1;
            }
            next
        };
        let Some(p) = next else {
            return;
        };
        p.run();
    }
}

impl Pending {
    fn run(&self) {
        run_unlink(&self.path, &self.object);
    }
}

/// Unlinks `dropped` (in `othertmp`), then removes the key directory and
/// both hash directories of `object` when empty.
fn run_unlink(dropped: &Path, object: &Path) {
    unlink(dropped);
    fsutil::remove_empty_dirs(object, 3);
    // Each repository's othertmp is swept once per process, after the
    // first file of ours there (the reply waits for neither).
    if let Some(othertmp) = dropped.parent() {
        super::scratch::sweep_once(othertmp);
    }
}

/// Counted done however it goes: unlinked, or dropped with a worker
/// that is gone (then git-annex's cleanup or a later sweep removes the
/// file), so [`finish`] never waits for what no one will do.
impl Drop for Pending {
    fn drop(&mut self) {
        let mut queued = QUEUED.lock().unwrap_or_else(|p| p.into_inner());
        *queued = queued.saturating_sub(1);
        DRAINED.notify_all();
    }
}

fn unlink(path: &Path) {
    if let Err(e) = fs::remove_file(path) {
        if e.kind() != io::ErrorKind::NotFound {
            tracing::warn!("removing {}: {e}", path.display());
        }
    }
}

/// Repositories whose `othertmp` this process has swept for removals.
static SWEPT: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Once per process and repository, before its first removal: objects
/// that a process now gone set aside for a removal it never answered go
/// back to their paths (their location log still says present), or are
/// deleted where new content of the key took their place.
pub(crate) fn sweep_removals_once(annex_dir: &Path) {
    {
        let mut swept = SWEPT.lock().unwrap_or_else(|p| p.into_inner());
        if swept.iter().any(|d| d == annex_dir) {
            return;
        }
        swept.push(annex_dir.to_owned());
    }
    let Ok(entries) = fs::read_dir(annex_dir.join("othertmp")) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some((pid, object)) = name.to_str().and_then(|n| removing_origin(annex_dir, n)) else {
            continue;
        };
        if !super::scratch::process_gone(pid) {
            continue;
        }
        let restored = restore(&entry.path(), &object).and_then(|()| match object.parent() {
            Some(dir) if dir.exists() => fsutil::freeze_dir(dir),
            _ => Ok(()),
        });
        if let Err(e) = restored {
            tracing::warn!("putting {} back: {e}", object.display());
        }
    }
}

/// Closes the helper's pipe, if a helper was started (it unlinks what it
/// was sent and ends on its own), and waits until every object given to
/// the workers is unlinked (by those running or started meanwhile).
/// Called before a process ends, so none is left behind by an orderly
/// exit.
pub fn finish() {
    helper::close();
    let mut queued = QUEUED.lock().unwrap_or_else(|p| p.into_inner());
    while *queued > 0 {
        queued = DRAINED.wait(queued).unwrap_or_else(|p| p.into_inner());
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::key::Key;
    use crate::store::{ObjectStore, RemoveOutcome};

    /// A key of `SET_ASIDE_FROM` bytes whose object is a sparse file of
    /// that size, in place and frozen as the store leaves it.
    fn big_object(store: &ObjectStore) -> (Key, PathBuf) {
        let key = Key::parse(&format!(
            "SHA256E-s{SET_ASIDE_FROM}--{}.bin",
            "ab".repeat(32)
        ))
        .expect("key");
        let object = store.new_object_path(&key).expect("path");
        let dir = object.parent().expect("key dir");
        fs::create_dir_all(dir).expect("mkdir");
        let f = fs::File::create(&object).expect("create");
        f.set_len(SET_ASIDE_FROM).expect("size");
        fs::set_permissions(&object, fs::Permissions::from_mode(0o444)).expect("freeze");
        fs::set_permissions(dir, fs::Permissions::from_mode(0o555)).expect("freeze dir");
        (key, object)
    }

    fn dropped_files(annex: &Path) -> Vec<String> {
        let mut names = crate::store::testutil::names_in(&annex.join("othertmp"));
        names.retain(|n| n.starts_with(PREFIX));
        names
    }

    #[test]
    fn a_large_object_is_gone_at_once_and_unlinked_by_finish() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = ObjectStore::new(dir.path().to_owned(), true, 0);
        let (key, object) = big_object(&store);
        assert_eq!(
            store.remove(&key, || true).expect("remove"),
            RemoveOutcome::Removed
        );
        assert!(!object.exists());
        assert!(!store.has(&key));
        finish();
        assert_eq!(dropped_files(&store.annex_dir()), Vec::<String>::new());
        // The key directory and both hash directories go after the
        // unlink, not before the answer.
        let hash1 = object.ancestors().nth(3).expect("first hash dir");
        assert!(!hash1.exists(), "{} is left", hash1.display());
        assert!(store.annex_dir().join("objects").exists());
    }

    /// The objects of one drop from several repositories (a gateway's
    /// local nodes) are all unlinked by `finish`, whichever worker took
    /// each, and the workers end with the queue.
    #[test]
    fn objects_of_several_stores_are_all_unlinked_by_finish() {
        let dirs: Vec<_> = (0..5)
            .map(|_| tempfile::tempdir().expect("tempdir"))
            .collect();
        let stores: Vec<_> = dirs
            .iter()
            .map(|d| ObjectStore::new(d.path().to_owned(), true, 0))
            .collect();
        for store in &stores {
            let (key, _) = big_object(store);
            assert_eq!(
                store.remove(&key, || true).expect("remove"),
                RemoveOutcome::Removed
            );
        }
        finish();
        for store in &stores {
            assert_eq!(dropped_files(&store.annex_dir()), Vec::<String>::new());
        }
        assert!(POOL.lock().expect("pool").workers <= workers_max());
    }

    #[test]
    fn what_a_dead_process_set_aside_is_swept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = ObjectStore::new(dir.path().to_owned(), true, 0);
        let annex = store.annex_dir();
        fs::create_dir_all(annex.join("othertmp")).expect("othertmp");
        // A process that is gone, and one that is alive (ours).
        let mut child = std::process::Command::new("true").spawn().expect("true");
        let dead = child.id();
        child.wait().expect("wait");
        let left = format!("{PREFIX}{dead}.7");
        let live = format!("{PREFIX}{}.999999", std::process::id());
        fs::write(annex.join("othertmp").join(&left), b"x").expect("write");
        fs::write(annex.join("othertmp").join(&live), b"x").expect("write");
        let (key, _) = big_object(&store);
        assert_eq!(
            store.remove(&key, || true).expect("remove"),
            RemoveOutcome::Removed
        );
        finish();
        assert_eq!(dropped_files(&annex), vec![live]);
    }
}
