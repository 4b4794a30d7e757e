//! Receiving content (P2P `PUT`), as `Annex/Content.hs: getViaTmp` and
//! `P2P/Annex.hs: storefile` do it.
//!
//! Bytes go to `annex/tmp/<keyfile>` after whatever an earlier attempt left
//! there (the resume offset), and are hashed as they stream; the partial
//! bytes are hashed first, so a resumed file is verified whole. Only verified
//! content is renamed into the object directory, so the object path never
//! holds a partial or wrong file.
//!
//! A small key (its size in its name at most [`UNLOCKED_PUT_UP_TO`])
//! received from offset 0 takes no transfer lock and writes no transfer
//! info file: its bytes go to a temporary file of its own in
//! `annex/othertmp/` ([`Scratch`]). The lock is there so that two
//! receivers of one key do not write one `annex/tmp/<keyfile>`; with a
//! file per writer there is nothing to exclude, each verifies what it
//! wrote, and the first rename into the store wins (a later one finds the
//! content present, never renames over it, and discards its copy). The
//! info file only shows a running transfer to `git annex info`, which a
//! small PUT outlasts by milliseconds. Together they were two files
//! created and deleted per key, on a file system where creating one is the
//! largest cost of a small PUT. Everything else is as for any key: the
//! space check, the fsync before the rename, the failed-transfer record.
//! An interrupted small PUT leaves what it received at
//! `annex/tmp/<keyfile>` (unless something is there already), where
//! git-annex and our next PUT of the key resume from it, as after
//! any interrupted PUT; such a resume takes the locked path.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::key::Key;

use super::aligned::Aligned;
use super::fsutil::{self, FILE_MODE};
use super::scratch::Scratch;
use super::transfer::{Direction, TransferRecord};
use super::verify::{Checked, Mismatch, Verifier};
use super::{ObjectStore, StoreError};

/// The largest key received without transfer lock and info file (when
/// received from offset 0): 1 MiB, what the server's stdin pipe holds
/// (it is grown to 1 MiB), so such a body is usually one or a few reads.
/// Not resuming from inside a file this small costs at most re-sending
/// 1 MiB after an interruption, while the transfer files cost two inode
/// allocations on every PUT.
pub const UNLOCKED_PUT_UP_TO: u64 = 1024 * 1024;

/// What the sender said about the data, and so how much checking is needed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VerifyMode {
    /// `VALID`: the sender vouches for it; still verified by hash.
    Valid,
    /// `INVALID`: the sender's file changed while sending. With no bytes
    /// sent it means the sender had no content: the transfer fails.
    Invalid,
    /// Protocol version 0 sends neither: must verify.
    Unknown,
    /// `annex.verify=false`: only the size is checked, except that content
    /// resumed from an earlier attempt is always verified.
    SizeOnly,
}

/// Content that is now in the object store.
#[derive(Debug, PartialEq, Eq)]
pub struct Stored {
    pub path: PathBuf,
    /// `None` when the content was already present and the received copy
    /// was discarded.
    pub checked: Option<Checked>,
}

/// An incoming transfer of one key; see [`ObjectStore::begin_receive`].
/// Dropped without [`Incoming::finish`], it keeps the partial file for a
/// later resume and records a failed download.
pub struct Incoming {
    store: ObjectStore,
    key: Key,
    tmp: PathBuf,
    /// Written in aligned runs (`aligned.rs`): flushed before anything
    /// looks at the file.
    file: Aligned,
    offset: u64,
    received: u64,
    /// Set once the bytes before `offset` have been fed to it.
    verifier: Option<Verifier>,
    record: TransferRecord,
    /// Set while `tmp` is a small PUT's file of its own (see the module's
    /// comment); taken once the file is renamed into the store.
    scratch: Option<Scratch>,
    /// The object path whose directories a small PUT made before its body
    /// came (see [`ObjectStore::receive_unlocked`]), until the object is
    /// in them: removed again, when still empty, if it never is.
    early_dirs: Option<PathBuf>,
}

impl ObjectStore {
    /// What `PUT-FROM` offers for `key`: the bytes an earlier attempt left
    /// in `annex/tmp` (only a regular file counts), as git-annex's
    /// `TmpContentSize`. Nothing is created or locked: like git-annex, the
    /// transfer lock, the info file, the space check and the partial file
    /// wait for DATA ([`ObjectStore::begin_receive_at`]), so the answer
    /// to PUT costs a stat, and a PUT the client then abandons leaves
    /// nothing to clean up.
    pub fn resume_offset(&self, key: &Key) -> Result<u64, StoreError> {
        self.check_accepts(key)?;
        let tmp = self.tmp_path(key)?;
        Ok(regular_len(&tmp))
    }

    /// Starts receiving `key` from `remote_uuid`. Fails with
    /// `TransferInProgress` while another process (ours or git-annex)
    /// receives the same key, and with `NotEnoughSpace` when the rest of the
    /// content would eat into `annex.diskreserve`.
    pub fn begin_receive(
        &self,
        key: &Key,
        remote_uuid: &str,
        assoc_file: Option<&str>,
    ) -> Result<Incoming, StoreError> {
        self.receive(key, remote_uuid, assoc_file, None)
    }

    /// [`ObjectStore::begin_receive`] for a sender told to start at
    /// `offered` (a [`ObjectStore::resume_offset`] taken without the
    /// lock). The partial file may have changed since, by a transfer that
    /// held the lock in between: bytes past `offered` are cut (the
    /// sender's replace them), and a file now shorter than `offered`
    /// fails this transfer as `TransferInProgress` (a resume can only
    /// continue the bytes it was offered); the sender's next try gets the
    /// new offset.
    pub fn begin_receive_at(
        &self,
        key: &Key,
        remote_uuid: &str,
        assoc_file: Option<&str>,
        offered: u64,
    ) -> Result<Incoming, StoreError> {
        self.receive(key, remote_uuid, assoc_file, Some(offered))
    }

    fn receive(
        &self,
        key: &Key,
        remote_uuid: &str,
        assoc_file: Option<&str>,
        offered: Option<u64>,
    ) -> Result<Incoming, StoreError> {
        self.check_accepts(key)?;
        let tmp = self.tmp_path(key)?;
        let small = key.size().is_some_and(|s| s <= UNLOCKED_PUT_UP_TO);
        if small && offered.unwrap_or_else(|| regular_len(&tmp)) == 0 {
            return self.receive_unlocked(key, remote_uuid, assoc_file);
        }
        let mut record =
            TransferRecord::start(self, Direction::Download, key, remote_uuid, assoc_file)?;
        let tmpdir = tmp.parent().unwrap_or(Path::new("."));
        if let Err(e) = prepare_tmp_dir(tmpdir) {
            record.end(false);
            return Err(StoreError::io("create", tmpdir)(e));
        }
        let already = regular_len(&tmp).min(offered.unwrap_or(u64::MAX));
        if let Err(e) = self.check_space(key, already) {
            record.end(false);
            return Err(e);
        }
        let opened = open_tmp(&tmp).map_err(StoreError::io("open", &tmp));
        let (file, offset) = match opened.and_then(|f| align_to_offer(f, offered, &tmp)) {
            Ok(aligned) => aligned,
            Err(e) => {
                record.end(false);
                return Err(e);
            }
        };
        Ok(Incoming {
            store: self.clone(),
            key: key.clone(),
            tmp,
            file: Aligned::new(file, offset),
            offset,
            received: 0,
            verifier: None,
            record,
            scratch: None,
            early_dirs: None,
        })
    }

    /// A small key from offset 0, into a file of its own: no transfer lock,
    /// no info file (see the module's comment).
    fn receive_unlocked(
        &self,
        key: &Key,
        remote_uuid: &str,
        assoc_file: Option<&str>,
    ) -> Result<Incoming, StoreError> {
        let mut record =
            TransferRecord::unlocked(self, Direction::Download, key, remote_uuid, assoc_file)?;
        let annex = self.annex_dir();
        let (scratch, file) = match Scratch::create(&annex) {
            Ok(made) => made,
            Err(e) => {
                record.end(false);
                return Err(StoreError::io("create", &annex.join("othertmp"))(e));
            }
        };
        if let Err(e) = self.check_space(key, 0) {
            let _ = fs::remove_file(scratch.path());
            record.end(false);
            return Err(e);
        }
        // The object's three directories are made now, while PUT-FROM
        // travels and the client answers with the body, rather than after
        // it, when the client waits for our answer. Failing here is no
        // failure: they are made (again) when the object goes in.
        let early_dirs = self.new_object_path(key).ok().filter(|dest| {
            let keydir = dest.parent().unwrap_or(Path::new("."));
            fs::create_dir_all(keydir).is_ok()
        });
        Ok(Incoming {
            store: self.clone(),
            key: key.clone(),
            tmp: scratch.path().to_owned(),
            file: Aligned::new(file, 0),
            offset: 0,
            received: 0,
            verifier: None,
            record,
            scratch: Some(scratch),
            early_dirs,
        })
    }

    /// `Annex/Content/LowLevel.hs: checkDiskSpace`: the key's size (1 when
    /// unknown) plus the reserve must fit in the free space plus what the
    /// partial file already holds.
    fn check_space(&self, key: &Key, already: u64) -> Result<(), StoreError> {
        let annex = self.annex_dir();
        let free = fsutil::free_space(&annex).map_err(StoreError::io("statvfs", &annex))?;
        let want = u128::from(key.size().unwrap_or(1)) + u128::from(self.diskreserve);
        let have = u128::from(free) + u128::from(already);
        if want > have {
            let need = u64::try_from(want - have).unwrap_or(u64::MAX);
            return Err(StoreError::NotEnoughSpace { need });
        }
        Ok(())
    }
}

/// The length of a regular file at `path`; 0 for none, or anything else
/// planted there (it is replaced when the partial file is opened).
fn regular_len(path: &Path) -> u64 {
    fs::symlink_metadata(path)
        .ok()
        .filter(|m| m.is_file())
        .map_or(0, |m| m.len())
}

/// The opened partial file and the offset the sender starts at: its
/// length, or `offered` when the sender was told an offset (see
/// [`ObjectStore::begin_receive_at`]).
fn align_to_offer(file: File, offered: Option<u64>, tmp: &Path) -> Result<(File, u64), StoreError> {
    let len = file.metadata().map_err(StoreError::io("stat", tmp))?.len();
    match offered {
        None => Ok((file, len)),
        Some(o) if o > len => Err(StoreError::TransferInProgress),
        Some(o) => {
            if o < len {
                file.set_len(o).map_err(StoreError::io("truncate", tmp))?;
            }
            Ok((file, o))
        }
    }
}

/// Creates `annex/tmp` and checks that it is a directory of its own: a
/// symlink there would send every partial upload somewhere else.
fn prepare_tmp_dir(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    if fs::symlink_metadata(dir)?.is_dir() {
        Ok(())
    } else {
        Err(io::Error::other("not a directory (a symlink?)"))
    }
}

/// Opens the partial file, never through a symlink: whoever can write to
/// `annex/tmp` could otherwise make a resumed upload append to (and then
/// move into the object store) any file the server can write. A symlink
/// found there is removed, so the upload starts over at offset 0; anything
/// else that is not a regular file fails this key.
fn open_tmp(tmp: &Path) -> io::Result<File> {
    let open = || {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .mode(FILE_MODE)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(tmp)
    };
    let file = match open() {
        Err(e) if e.raw_os_error() == Some(nix::libc::ELOOP) => {
            tracing::warn!(path = %tmp.display(), "removing a symlink planted as a partial upload");
            fs::remove_file(tmp)?;
            open()?
        }
        // A partial file left frozen by some other tool; git-annex thaws it.
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            let frozen = OpenOptions::new()
                .read(true)
                .custom_flags(nix::libc::O_NOFOLLOW)
                .open(tmp)
                .map_err(|_| e)?;
            use std::os::unix::fs::PermissionsExt;
            let mode = frozen.metadata()?.permissions().mode();
            frozen.set_permissions(fs::Permissions::from_mode(mode | 0o200))?;
            open()?
        }
        other => other?,
    };
    if !file.metadata()?.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    Ok(file)
}

impl Incoming {
    /// Bytes already on disk from an earlier attempt: the `PUT-FROM` offset.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Bytes received in this attempt.
    pub fn received(&self) -> u64 {
        self.received
    }

    pub fn key(&self) -> &Key {
        &self.key
    }

    #[cfg(test)]
    pub(crate) fn record_info_path(&self) -> &Path {
        self.record.info_path()
    }

    /// Where the bytes go: `annex/tmp/<keyfile>`, or a small PUT's own file.
    #[cfg(test)]
    pub(crate) fn tmp_file(&self) -> &Path {
        &self.tmp
    }

    /// Feeds the partial bytes before the offset to a new verifier, and
    /// leaves the file positioned at the offset.
    fn verifier(&mut self) -> io::Result<&mut Verifier> {
        if self.verifier.is_none() {
            let mut v = Verifier::new(&self.key);
            self.file.file_mut().seek(SeekFrom::Start(0))?;
            let mut buf = vec![0u8; 64 * 1024];
            let mut left = self.offset;
            while left > 0 {
                let want = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
                let n = self.file.file_mut().read(&mut buf[..want])?;
                if n == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "partial file shrank",
                    ));
                }
                v.update(&buf[..n]);
                left -= n as u64;
            }
            self.file.file_mut().seek(SeekFrom::Start(self.offset))?;
            self.verifier = Some(v);
        }
        Ok(self.verifier.as_mut().expect("set just above"))
    }

    /// Checks, before a body is read, that content ending at byte `end`
    /// (the offset plus the DATA length) can be the key's: never more than
    /// its size. When it cannot, the partial file goes too (with the new
    /// bytes it could not be the key either, as verification would find)
    /// and the transfer is recorded as failed; the caller discards the
    /// body and drops this.
    pub fn expect_end(&mut self, end: u64) -> Result<(), StoreError> {
        match self.key.size() {
            Some(size) if end > size => {
                let _ = fs::remove_file(&self.tmp);
                self.record.end(false);
                Err(StoreError::TooMuchData { size, end })
            }
            _ => Ok(()),
        }
    }

    /// Refuses a write that would take the file past the key's size, so no
    /// sender can fill the disk whatever it announced.
    fn check_room(&self, len: usize) -> io::Result<()> {
        let end = self.offset + self.received + len as u64;
        match self.key.size() {
            Some(size) if end > size => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                StoreError::TooMuchData { size, end },
            )),
            _ => Ok(()),
        }
    }

    /// Appends the next piece of the sender's data.
    pub fn write_chunk(&mut self, data: &[u8]) -> io::Result<()> {
        self.check_room(data.len())?;
        self.verifier()?;
        self.file.write_all(data)?;
        self.received += data.len() as u64;
        self.verifier
            .as_mut()
            .expect("created by verifier()")
            .update(data);
        Ok(())
    }

    /// Appends data the caller hashes itself: one hash of a stream that
    /// several stores receive (a cluster gateway writing to its local
    /// nodes). The caller's verdict then goes to [`Incoming::finish_verified`];
    /// if [`Incoming::finish`] is called instead, the bytes written this way
    /// were never hashed and the content fails verification.
    pub fn write_chunk_unhashed(&mut self, data: &[u8]) -> io::Result<()> {
        self.check_room(data.len())?;
        self.file.write_all(data)?;
        self.received += data.len() as u64;
        Ok(())
    }

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
