//! The end of a transfer: verified and renamed into the store, abandoned,
//! or interrupted (kept for a resume).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::{prepare_tmp_dir, Incoming, Stored, VerifyMode};
use crate::store::verify::{Checked, Mismatch, Verifier};
use crate::store::{fsutil, StoreError};

impl Incoming {
    /// Ends a transfer the caller verified: `verdict` is the check of the
    /// caller's hash over the whole content, which it can only have when
    /// this transfer started at offset 0 (otherwise this verifies as
    /// [`Incoming::finish`] would, and fails: the partial bytes before the
    /// offset were never part of the caller's hash).
    pub fn finish_verified(
        mut self,
        verdict: Result<Checked, Mismatch>,
    ) -> Result<Stored, StoreError> {
        if self.offset != 0 {
            return self.finish(VerifyMode::Unknown);
        }
        let tmp = self.tmp.clone();
        self.file.flush().map_err(StoreError::io("write", &tmp))?;
        let size = self
            .file
            .file()
            .metadata()
            .map_err(StoreError::io("stat", &tmp))?
            .len();
        let verdict = match verdict {
            Ok(_) if size != self.received => Err(Mismatch::Size {
                expected: self.received,
                actual: size,
            }),
            v => v,
        };
        let checked = match verdict {
            Ok(c) => c,
            Err(m) => {
                let _ = fs::remove_file(&tmp);
                self.record.end(false);
                return Err(StoreError::Verification(m));
            }
        };
        self.put_in_place(checked)
    }

    /// Ends the transfer: verifies as `mode` asks and moves the content into
    /// the object store. Content that fails verification is deleted (a
    /// resume would only repeat the failure); a sender without content
    /// leaves the partial file for a later resume.
    pub fn finish(mut self, mode: VerifyMode) -> Result<Stored, StoreError> {
        if mode == VerifyMode::Invalid && self.received == 0 {
            // As git-annex, which made the partial file when DATA came.
            if let Some(scratch) = &self.scratch {
                self.keep_as_partial(scratch.path());
            }
            self.record.end(false);
            return Err(StoreError::NoContentSent);
        }
        let tmp = self.tmp.clone();
        self.file.flush().map_err(StoreError::io("write", &tmp))?;
        let checked = match self.verify(mode) {
            Ok(c) => c,
            Err(e) => {
                if matches!(e, StoreError::Verification(_)) {
                    let _ = fs::remove_file(&tmp);
                }
                self.record.end(false);
                return Err(e);
            }
        };
        self.put_in_place(checked)
    }

    fn verify(&mut self, mode: VerifyMode) -> Result<Checked, StoreError> {
        let tmp = self.tmp.clone();
        let io = |op| StoreError::io(op, &tmp);
        let size = self.file.file().metadata().map_err(io("stat"))?.len();
        if mode == VerifyMode::SizeOnly && self.offset == 0 {
            return Ok(Verifier::check_size_only(&self.key, size)?);
        }
        self.verifier().map_err(io("read"))?;
        let v = self.verifier.take().expect("created by verifier()");
        if v.bytes() != size {
            // Something else wrote to our file: do not trust it.
            return Err(StoreError::Verification(super::Mismatch::Size {
                expected: v.bytes(),
                actual: size,
            }));
        }
        Ok(v.check()?)
    }

    /// Verified content into the object store, ending the record.
    fn put_in_place(mut self, checked: Checked) -> Result<Stored, StoreError> {
        match self.move_into_place() {
            Ok(stored) => {
                // Kept unless the object went in elsewhere (a copy already
                // there in the other layout): then removed when empty.
                if self.early_dirs.as_ref() == Some(&stored.0) {
                    self.early_dirs = None;
                }
                self.record.end(true);
                Ok(Stored {
                    path: stored.0,
                    checked: stored.1.then_some(checked),
                })
            }
            Err(e) => {
                self.record.end(false);
                Err(e)
            }
        }
    }

    /// Returns the object path and whether our copy is the one there.
    fn move_into_place(&mut self) -> Result<(PathBuf, bool), StoreError> {
        let tmp = self.tmp.clone();
        // The one fsync we keep per stored key: without it a crash shortly
        // after the rename can leave a truncated or empty file at the object
        // path, which later reads would serve as the content. (git-annex
        // itself does not sync here; this costs one fsync per key.)
        self.file
            .file()
            .sync_all()
            .map_err(StoreError::io("fsync", &tmp))?;
        if let Some(existing) = self.store.content_path(&self.key) {
            // Keep the copy already there, as git-annex's moveAnnex does.
            fs::remove_file(&tmp).map_err(StoreError::io("remove", &tmp))?;
            self.scratch = None;
            return Ok((existing, false));
        }
        let dest = self.store.new_object_path(&self.key)?;
        let keydir = dest.parent().unwrap_or(Path::new(".")).to_owned();
        // No fsync of the key directory: a crash can at worst lose the
        // rename, leaving the complete file at its temp path (a resumable
        // partial) and no object, which the client's location log and
        // `git annex fsck` already cope with. git-annex does not sync it
        // either, and it doubled the cost of storing a small key.
        let file = self.file.file();
        let place = || {
            fsutil::in_thawed_dir(&dest, || {
                if !fsutil::rename_noreplace(&tmp, &dest)? {
                    return Ok(false);
                }
                // What was renamed is whatever sat at the temp path: make
                // sure it is the file we wrote and verified, not something
                // put there since we opened it.
                if !fsutil::same_file(&dest, file)? {
                    fs::remove_file(&dest)?;
                    return Err(io::Error::other(
                        "the partial file was replaced while receiving",
                    ));
                }
                fsutil::freeze_file(file).map(|()| true)
            })
        };
        // The key's directories can vanish between their making and the
        // rename: a receiver of the key that failed removes the ones it
        // made early, a removal of a key beside it the empty hash
        // directories. Made again, a few times.
        let mut tries = 0;
        let placed = loop {
            fs::create_dir_all(&keydir).map_err(StoreError::io("create", &keydir))?;
            match place() {
                Err(e) if e.kind() == io::ErrorKind::NotFound && !keydir.exists() && tries < 3 => {
                    tries += 1;
                }
                placed => break placed.map_err(StoreError::io("store", &dest))?,
            }
        };
        if !placed {
            // Another receiver's verified copy got there first: keep it.
            fs::remove_file(&tmp).map_err(StoreError::io("remove", &tmp))?;
        }
        // Renamed or removed: nothing left to clean, the othertmp lock can go.
        self.scratch = None;
        Ok((dest, placed))
    }
}

impl Incoming {
    /// Give up before any DATA arrived (the sender sent ERROR, something
    /// else, or the content turned up by other means): leave no trace, as
    /// git-annex, which only creates the partial file once DATA comes. A
    /// partial file from an earlier attempt stays for its resume.
    pub fn abandon(mut self) {
        if self.offset == 0 && self.received == 0 {
            let _ = fs::remove_file(&self.tmp);
        }
        self.record.cancel();
    }
}

impl Incoming {
    /// An interrupted small PUT: what it received goes where git-annex and
    /// our next PUT of the key resume from, unless a partial is there
    /// already (a link never replaces anything).
    fn keep_as_partial(&self, scratch: &Path) {
        let Ok(partial) = self.store.tmp_path(&self.key) else {
            return;
        };
        let dir = partial.parent().unwrap_or(Path::new("."));
        if prepare_tmp_dir(dir).is_ok() {
            let _ = fs::hard_link(scratch, &partial);
        }
    }
}

impl Drop for Incoming {
    fn drop(&mut self) {
        // An interrupted transfer: make what we have durable for the resume
        // (finish() and abandon() end the record and have no use for it).
        let interrupted = !self.record.is_ended();
        if interrupted && (self.scratch.is_none() || self.received > 0) {
            let _ = self.file.flush();
            let _ = self.file.file().sync_data();
        }
        // A small PUT's own file never stays: kept as a partial when
        // interrupted, else it failed (or was abandoned) and is of no use.
        if let Some(scratch) = self.scratch.take() {
            if interrupted && self.received > 0 {
                self.keep_as_partial(scratch.path());
            }
            let _ = fs::remove_file(scratch.path());
        }
        if let Some(dest) = self.early_dirs.take() {
            fsutil::remove_empty_dirs(&dest, 3);
        }
        self.record.end(false);
    }
}
