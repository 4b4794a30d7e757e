//! The journal (`annex/journal/`): uncommitted new contents of branch files.
//!
//! Each journal file holds the complete new content of one branch file,
//! named by the branch path with `_` doubled and `/` turned into `_`.
//! Writers hold an exclusive lock on `annex/journal.lck` (shared with a
//! concurrent real git-annex) and write through `annex/othertmp/` plus a
//! rename so a reader never sees a half-written file.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::lockfile::{self, LockHandle, LockKind};
use crate::spares;

/// Journal file name for a branch path.
pub fn journal_file_name(branch_path: &str) -> String {
    let mut out = String::with_capacity(branch_path.len() + 8);
    for c in branch_path.chars() {
        match c {
            '_' => out.push_str("__"),
            '/' => out.push('_'),
            c => out.push(c),
        }
    }
    out
}

/// Branch path for a journal file name (inverse of [`journal_file_name`]).
/// A lone trailing `_` is dropped, as git-annex does.
pub fn branch_path_of(journal_name: &str) -> String {
    let mut out = String::with_capacity(journal_name.len());
    let mut chars = journal_name.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '_' {
            out.push(c);
            continue;
        }
        match chars.peek() {
            Some('_') => {
                chars.next();
                out.push('_');
            }
            Some(_) => out.push('/'),
            None => {}
        }
    }
    out
}

/// Drop an incomplete last line (an append interrupted mid-write).
pub fn discard_incomplete_line(mut content: Vec<u8>) -> Vec<u8> {
    match content.iter().rposition(|&b| b == b'\n') {
        Some(i) => content.truncate(i + 1),
        None => content.clear(),
    }
    content
}

/// Proof that the journal lock is held.
#[derive(Debug)]
pub struct JournalLock {
    _handle: LockHandle,
}

#[derive(Clone, Debug)]
pub struct Journal {
    dir: PathBuf,
    lock_path: PathBuf,
    tmp_dir: PathBuf,
    tmp_lock: PathBuf,
}

impl Journal {
    /// The journal of the repository whose git directory is `git_dir`.
    pub fn new(git_dir: &Path) -> Journal {
        let annex = git_dir.join("annex");
        Journal {
            dir: annex.join("journal"),
            lock_path: annex.join("journal.lck"),
            tmp_dir: annex.join("othertmp"),
            tmp_lock: annex.join("othertmp.lck"),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Take the exclusive journal lock, waiting for other holders.
    pub fn lock(&self) -> io::Result<JournalLock> {
        if let Some(parent) = self.lock_path.parent() {
            fs::create_dir_all(parent)?;
        }
        let handle = lockfile::lock(&self.lock_path, LockKind::Exclusive, 0o666)?;
        Ok(JournalLock { _handle: handle })
    }

    /// Journalled content of a branch file, if any. Needs no lock: files
    /// are replaced atomically.
    pub fn read(&self, branch_path: &str) -> io::Result<Option<Vec<u8>>> {
        match fs::read(self.dir.join(journal_file_name(branch_path))) {
            Ok(b) => Ok(Some(discard_incomplete_line(b))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            // A name too long to exist cannot hold anything (the location
            // log of a key near the file-name limit).
            Err(e) if e.raw_os_error() == Some(nix::libc::ENAMETOOLONG) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Replace a branch file's journalled content.
    pub fn write(&self, _lock: &JournalLock, branch_path: &str, content: &[u8]) -> io::Result<()> {
        let name = journal_file_name(branch_path);
        // A shared lock on othertmp.lck stops git-annex's cleanup from
        // deleting our temp file while we use it.
        let _tmp_guard = lockfile::lock(&self.tmp_lock, LockKind::Shared, 0o666)?;
        fs::create_dir_all(&self.tmp_dir)?;
        let tmp = self.tmp_dir.join(&name);
        {
            // No fdatasync before the rename, as in git-annex: a crash may
            // then leave this journal file empty or short, which costs only
            // location-log lines (the reader drops an incomplete last line,
            // and `git annex fsck` restores them), not content. Syncing here
            // was the largest single cost of storing many small keys.
            // Created anew, never opened through whatever sits at the
            // name (a symlink planted there would be written through).
            // Writers of this name hold the journal lock, so what is
            // there is a leftover.
            // Never a spare inode (`spares.rs`): unsynced, a reused
            // inode could come back from a crash with the lines of the
            // log it held before, where a new one comes back empty.
            match fs::remove_file(&tmp) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&tmp)?;
            f.write_all(content)?;
        }
        let dest = self.dir.join(&name);
        match fs::rename(&tmp, &dest) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir_all(&self.dir)?;
                fs::rename(&tmp, &dest)
            }
            r => r,
        }
    }

    /// Journal files present now, as (journal file name, branch path).
    pub fn list(&self) -> io::Result<Vec<(String, String)>> {
        let rd = match fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        for entry in rd {
            let entry = entry?;
            if !entry.file_type()?.is_file() {
                continue;
            }
            // Names we did not write as UTF-8 cannot be branch paths of ours
            // or git-annex's (which only journals UTF-8 paths in practice).
            if let Ok(name) = entry.file_name().into_string() {
                let path = branch_path_of(&name);
                if !path.is_empty() {
                    out.push((name, path));
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Whether anything waits to be committed.
    pub fn is_dirty(&self) -> bool {
        fs::read_dir(&self.dir)
            .map(|mut rd| rd.next().is_some())
            .unwrap_or(false)
    }

    /// Read a journal file by its journal name (for staging).
    pub fn read_named(&self, _lock: &JournalLock, name: &str) -> io::Result<Vec<u8>> {
        fs::read(self.dir.join(name))
    }

    /// Remove a journal file once its content is in the branch.
    pub fn remove_named(&self, _lock: &JournalLock, name: &str) -> io::Result<()> {
        match fs::remove_file(self.dir.join(name)) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            r => r,
        }
    }

    /// Remove journal files once their content is in the branch, keeping
    /// their inodes as spares for the next journal writes (`spares.rs`).
    pub fn retire_named<'a>(
        &self,
        lock: &JournalLock,
        names: impl IntoIterator<Item = &'a str>,
    ) -> io::Result<()> {
        let Ok(_tmp_guard) = lockfile::lock(&self.tmp_lock, LockKind::Shared, 0o666) else {
            return names
                .into_iter()
                .try_for_each(|n| self.remove_named(lock, n));
        };
        for name in names {
            let path = self.dir.join(name);
            if let Err(e) = spares::keep(&self.tmp_dir, &path) {
                if e.kind() != io::ErrorKind::NotFound {
                    return Err(e);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_git_annex() {
        // Observed: 8e3/999/SHA256E-s18--c758…a5f.bin.log in annex/journal.
        assert_eq!(
            journal_file_name("8e3/999/SHA256E-s18--c758.bin.log"),
            "8e3_999_SHA256E-s18--c758.bin.log"
        );
        assert_eq!(journal_file_name("a_b/c__d"), "a__b_c____d");
        for p in ["uuid.log", "a_b/c__d", "992/280/K_1.log"] {
            assert_eq!(branch_path_of(&journal_file_name(p)), p);
        }
        // The mangling is ambiguous for `/_`; git-annex decodes this
        // journal name the same way (its fileJournal), so we agree with it.
        assert_eq!(branch_path_of(&journal_file_name("x/_y_/z")), "x_/y_/z");
        assert_eq!(branch_path_of("ab_"), "ab");
    }

    #[test]
    fn incomplete_line_dropped() {
        assert_eq!(discard_incomplete_line(b"a\nb".to_vec()), b"a\n");
        assert_eq!(discard_incomplete_line(b"a\n".to_vec()), b"a\n");
        assert_eq!(discard_incomplete_line(b"partial".to_vec()), b"");
    }

    #[test]
    fn write_read_list_remove() {
        let dir = tempfile::tempdir().expect("tempdir");
        let j = Journal::new(dir.path());
        assert!(!j.is_dirty());
        let lock = j.lock().expect("lock");
        j.write(&lock, "abc/def/K.log", b"1s 1 u\n").expect("write");
        assert_eq!(
            j.read("abc/def/K.log").expect("read"),
            Some(b"1s 1 u\n".to_vec())
        );
        assert_eq!(
            j.list().expect("list"),
            vec![("abc_def_K.log".into(), "abc/def/K.log".into())]
        );
        assert!(j.is_dirty());
        assert!(fs::read_dir(dir.path().join("annex/othertmp"))
            .expect("tmp")
            .next()
            .is_none());
        j.remove_named(&lock, "abc_def_K.log").expect("remove");
        assert_eq!(j.read("abc/def/K.log").expect("read"), None);
    }

    #[test]
    fn a_name_too_long_to_exist_reads_as_absent() {
        let dir = tempfile::tempdir().expect("tempdir");
        let j = Journal::new(dir.path());
        // (with no journal directory at all the lookup fails before the
        // name is looked at)
        fs::create_dir_all(j.dir()).expect("journal dir");
        let long = format!("abc/def/{}.log", "k".repeat(250));
        assert_eq!(j.read(&long).expect("read"), None);
    }

    #[test]
    fn a_symlink_in_othertmp_is_not_written_through() {
        let dir = tempfile::tempdir().expect("tempdir");
        let j = Journal::new(dir.path());
        let outside = dir.path().join("outside");
        fs::write(&outside, b"keep\n").expect("target");
        let tmp = dir.path().join("annex/othertmp");
        fs::create_dir_all(&tmp).expect("othertmp");
        std::os::unix::fs::symlink(&outside, tmp.join("abc_def_K.log")).expect("symlink");
        let lock = j.lock().expect("lock");
        j.write(&lock, "abc/def/K.log", b"1s 1 u\n").expect("write");
        assert_eq!(fs::read(&outside).expect("target"), b"keep\n");
        let journalled = dir.path().join("annex/journal/abc_def_K.log");
        assert!(fs::symlink_metadata(&journalled)
            .expect("journal file")
            .is_file());
    }

    /// Journal files are not synced, so they never take a spare inode
    /// (`spares.rs`): after a crash a reused one could hold another log's
    /// lines. Retired ones are kept for small PUTs, which sync theirs.
    #[test]
    fn journal_writes_never_take_a_spare() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let j = Journal::new(dir.path());
        let lock = j.lock().expect("lock");
        j.write(&lock, "abc/def/K.log", b"1s 1 u\n").expect("write");
        let first = dir.path().join("annex/journal/abc_def_K.log");
        let ino = fs::metadata(&first).expect("journal file").ino();
        j.retire_named(&lock, ["abc_def_K.log"]).expect("retire");
        assert!(!first.exists());
        let pool = dir.path().join("annex/othertmp/spare");
        let kept: Vec<u64> = fs::read_dir(&pool)
            .expect("pool")
            .map(|e| e.expect("entry").metadata().expect("meta").ino())
            .collect();
        assert_eq!(kept, vec![ino], "kept as a spare");
        j.write(&lock, "abc/def/L.log", b"2s 1 u\n").expect("write");
        let second = dir.path().join("annex/journal/abc_def_L.log");
        assert_ne!(fs::metadata(&second).expect("journal file").ino(), ino);
        assert_eq!(fs::read(&second).expect("read"), b"2s 1 u\n");
    }
}
