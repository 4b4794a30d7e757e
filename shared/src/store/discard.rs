//! Large objects leave the store by a rename and are unlinked afterwards,
//! off the path of the reply.
//!
//! Unlinking a file of hundreds of megabytes is slow: the kernel frees its
//! page cache (CPU) and its blocks, which on a file system mounted with
//! `discard` (this machine's) waits for the device; 0.1 to 0.2 s for
//! 300 MB here. What `REMOVE` promises is that the key's content is no
//! longer in the repository, which the rename achieves at once: the object
//! path is free, nothing can lock or send the content any more, and the
//! location log can be written. The bytes then go on a worker thread while
//! the client does its own bookkeeping.
//!
//! The file waits in `annex/othertmp/` under a shared lock on
//! `annex/othertmp.lck`, as git-annex's own temporary files do: if this
//! process dies before the unlink, the next git-annex process that cleans
//! up `othertmp` (`cleanupOtherTmp`) deletes it, and so does our next
//! large drop in that repository (files of processes that are gone).
//! [`finish`] waits for every unlink queued; a process ends only after it.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Condvar, Mutex};
use std::thread::JoinHandle;

use crate::lockfile::{self, LockHandle, LockKind};

use super::fsutil::FILE_MODE;

/// Objects from this size on are set aside rather than unlinked in place;
/// below it an unlink costs less than the rename, the lock and the hop to
/// the worker.
pub const SET_ASIDE_FROM: u64 = 16 * 1024 * 1024;

/// Prefix of the names in `othertmp`; the pid follows, then a counter
/// (swept by `scratch::sweep_dead` once the process is gone).
const PREFIX: &str = "dropped.";

/// A file in `othertmp` to unlink, and the lock that keeps git-annex's
/// cleanup from racing the worker for it until then.
struct Pending {
    path: PathBuf,
    othertmp: PathBuf,
    _lock: LockHandle,
}

struct Worker {
    queue: Sender<Pending>,
    thread: JoinHandle<()>,
}

static WORKER: Mutex<Option<Worker>> = Mutex::new(None);
static COUNTER: AtomicU64 = AtomicU64::new(0);
/// Files set aside and not yet unlinked, process-wide, for [`finish`].
static QUEUED: Mutex<usize> = Mutex::new(0);
static DRAINED: Condvar = Condvar::new();

/// Moves `object` (in a thawed directory) out of the store into
/// `annex/othertmp/` and queues its unlink. `false` when it was not set
/// aside (no `othertmp`, its lock held by a cleanup, another file system,
/// the object already gone): the caller then unlinks it in place.
pub(crate) fn set_aside(annex_dir: &Path, object: &Path) -> bool {
    let othertmp = annex_dir.join("othertmp");
    if fs::create_dir_all(&othertmp).is_err() {
        return false;
    }
    let lock_path = annex_dir.join("othertmp.lck");
    let Ok(Some(lock)) = lockfile::try_lock(&lock_path, LockKind::Shared, FILE_MODE) else {
        return false;
    };
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let path = othertmp.join(format!("{PREFIX}{}.{n}", std::process::id()));
    if fs::rename(object, &path).is_err() {
        return false;
    }
    *QUEUED.lock().unwrap_or_else(|p| p.into_inner()) += 1;
    queue(Pending {
        path,
        othertmp,
        _lock: lock,
    });
    true
}

fn queue(pending: Pending) {
    let mut worker = WORKER.lock().unwrap_or_else(|p| p.into_inner());
    let pending = match worker.as_ref() {
        Some(w) => match w.queue.send(pending) {
            Ok(()) => return,
            Err(mpsc::SendError(p)) => p,
        },
        None => pending,
    };
    let (tx, rx) = mpsc::channel::<Pending>();
    let spawned = std::thread::Builder::new()
        .name("store-discard".into())
        .spawn(move || {
            // Each repository's othertmp is swept once per process, after
            // the first file of ours there (the reply waits for neither).
            for p in rx {
                unlink(&p.path);
                super::scratch::sweep_once(&p.othertmp);
            }
        });
    match spawned {
        Ok(thread) => {
            let _ = tx.send(pending);
            *worker = Some(Worker { queue: tx, thread });
        }
        // No thread: unlink here, as if it had never been set aside.
        Err(_) => unlink(&pending.path),
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

/// Waits until every object set aside so far is unlinked (by this
/// worker or one started meanwhile). Called before a process ends, so
/// none is left behind by an orderly exit.
pub fn finish() {
    let worker = WORKER.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some(Worker { queue, thread }) = worker {
        drop(queue);
        let _ = thread.join();
    }
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
        let Ok(entries) = fs::read_dir(annex.join("othertmp")) else {
            return Vec::new();
        };
        let mut names: Vec<String> = entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(PREFIX))
            .collect();
        names.sort();
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
        assert!(!object.parent().expect("key dir").exists());
        finish();
        assert_eq!(dropped_files(&store.annex_dir()), Vec::<String>::new());
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
