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
use crate::direct_io::DIRECT_FROM;

mod end;

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
            file: if key.size().is_some_and(|s| s >= DIRECT_FROM) {
                Aligned::direct(file, offset)
            } else {
                Aligned::new(file, offset)
            },
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
            let mut file = self.file.file();
            file.seek(SeekFrom::Start(0))?;
            let mut buf = vec![0u8; 64 * 1024];
            let mut left = self.offset;
            while left > 0 {
                let want = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
                let n = file.read(&mut buf[..want])?;
                if n == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "partial file shrank",
                    ));
                }
                v.update(&buf[..n]);
                left -= n as u64;
            }
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
}
