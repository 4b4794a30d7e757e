//! Temporary files of our own in `annex/othertmp/`, named after the
//! process that made them: small PUTs write there, large drops set their
//! object aside there (`discard.rs`), journal writes stage there.
//!
//! Everything in `othertmp` is held under a shared lock on
//! `annex/othertmp.lck` while it is in use, as git-annex's own temporary
//! files are; git-annex's cleanup (`cleanupOtherTmp`) takes that lock
//! exclusively and removes the directory, so what a dead process of ours
//! left there goes with git-annex's next cleanup. A repository that only
//! we serve may never see one, so we sweep too: files named
//! `<prefix><pid>.<n>` of processes that are gone, once per directory and
//! process, when the first small PUT or large drop uses it.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::lockfile::{self, LockHandle, LockKind};
use crate::spares;

use super::fsutil::FILE_MODE;

/// Prefix of a small PUT's temporary file; the pid follows, then a counter.
pub(crate) const PUT_PREFIX: &str = "put.";
/// Names of ours in `othertmp` that the sweep may remove: small PUTs,
/// dropped objects (`discard.rs`), replaced files (`fsutil::replace_file`).
const PREFIXES: [&str; 3] = [PUT_PREFIX, "dropped.", "replace."];

static COUNTER: AtomicU64 = AtomicU64::new(0);
static SWEPT: Mutex<Option<HashSet<PathBuf>>> = Mutex::new(None);

/// A small PUT's temporary file: unique to this writer, so two writers of
/// one key never share a file, and no transfer lock is needed to keep them
/// apart. Holds the shared `othertmp.lck` until dropped, so git-annex's
/// cleanup never removes it while it is written or renamed.
#[derive(Debug)]
pub(crate) struct Scratch {
    path: PathBuf,
    _lock: LockHandle,
}

impl Scratch {
    /// Creates a new empty file in `annex/othertmp/`, open for reading and
    /// writing. The lock comes first: git-annex's cleanup may remove the
    /// directory until we hold it.
    pub(crate) fn create(annex_dir: &Path) -> io::Result<(Scratch, File)> {
        let lock_path = annex_dir.join("othertmp.lck");
        let lock = match lockfile::lock(&lock_path, LockKind::Shared, FILE_MODE) {
            // A repository whose annex/ is still to be made.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir_all(annex_dir)?;
                lockfile::lock(&lock_path, LockKind::Shared, FILE_MODE)?
            }
            other => other?,
        };
        let othertmp = annex_dir.join("othertmp");
        fs::create_dir_all(&othertmp)?;
        sweep_once(&othertmp);
        let pid = std::process::id();
        // A name already taken is an earlier process's with our pid (the
        // counter is ours alone): take the next.
        for _ in 0..64 {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let path = othertmp.join(format!("{PUT_PREFIX}{pid}.{n}"));
            // A spare inode when there is one (`spares.rs`).
            if let Some(file) = spares::take(&othertmp, &path, FILE_MODE) {
                return Ok((Scratch { path, _lock: lock }, file));
            }
            let opened = OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .mode(FILE_MODE)
                .open(&path);
            match opened {
                Ok(file) => return Ok((Scratch { path, _lock: lock }, file)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::other("no free temporary file name in othertmp"))
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

/// [`sweep_dead`] once per directory in this process.
pub(crate) fn sweep_once(othertmp: &Path) {
    let first = SWEPT
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get_or_insert_with(HashSet::new)
        .insert(othertmp.to_owned());
    if first {
        sweep_dead(othertmp);
    }
}

/// Removes the files of ours in `othertmp` whose process is gone. (A pid
/// in use again by another process keeps its files until git-annex's
/// cleanup or a later sweep: never removed too early.)
pub(crate) fn sweep_dead(othertmp: &Path) {
    let Ok(entries) = fs::read_dir(othertmp) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(pid_of) else {
            continue;
        };
        if process_gone(pid) {
            if let Err(e) = fs::remove_file(entry.path()) {
                if e.kind() != io::ErrorKind::NotFound {
                    tracing::warn!("removing {}: {e}", entry.path().display());
                }
            }
        }
    }
}

/// No process has this pid (any more).
pub(crate) fn process_gone(pid: i32) -> bool {
    matches!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
        Err(nix::errno::Errno::ESRCH)
    )
}

/// The pid in a name `<prefix><pid>.<n>` of ours.
fn pid_of(name: &str) -> Option<i32> {
    let rest = PREFIXES.iter().find_map(|p| name.strip_prefix(p))?;
    let (pid, n) = rest.split_once('.')?;
    n.parse::<u64>().ok()?;
    pid.parse::<i32>().ok().filter(|&p| p > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_ours_give_their_pid() {
        assert_eq!(pid_of("put.123.4"), Some(123));
        assert_eq!(pid_of("dropped.9.0"), Some(9));
        assert_eq!(pid_of("replace.77.12"), Some(77));
        assert_eq!(pid_of("put.123"), None);
        assert_eq!(pid_of("put.0.1"), None);
        assert_eq!(pid_of("put.-1.1"), None);
        assert_eq!(pid_of("other.123.4"), None);
        assert_eq!(pid_of("SHA256E-s1--ab"), None);
    }

    #[test]
    fn a_dead_writers_file_is_swept_a_live_ones_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let annex = dir.path().join("annex");
        let othertmp = annex.join("othertmp");
        fs::create_dir_all(&othertmp).expect("othertmp");
        let mut child = std::process::Command::new("true").spawn().expect("true");
        let dead = child.id();
        child.wait().expect("wait");
        let left = format!("{PUT_PREFIX}{dead}.3");
        let live = format!("{PUT_PREFIX}{}.999999", std::process::id());
        fs::write(othertmp.join(&left), b"x").expect("write");
        fs::write(othertmp.join(&live), b"x").expect("write");
        let (scratch, _file) = Scratch::create(&annex).expect("scratch");
        assert!(!othertmp.join(&left).exists(), "dead writer's file swept");
        assert!(othertmp.join(&live).exists(), "live writer's file kept");
        assert!(scratch.path().starts_with(&othertmp));
    }
}
