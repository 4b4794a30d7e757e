//! What a kind of special remote (a directory, an S3 bucket, later an
//! external program) must do: move the bytes of named objects, nothing
//! more: the interface between the special-remote framework and each kind
//! of storage (issue 13), so a kind plugs in as one module.
//!
//! The name of an object is a key: the content's key for an unchunked
//! remote, or a chunk key (`KEY-S<size>-C<n>`) for a chunked one; the
//! storage lays the name out as git-annex does for its kind (a directory:
//! hash directories; S3: `fileprefix` + the key's file name). Chunking, the
//! chunk log, hashing, verification and the location log are the
//! framework's ([`super::remote::Special`]); a storage never sees a
//! protocol message.

use std::future::Future;

use annex::key::Key;
use tokio::io::AsyncRead;

/// What went wrong in a storage, with the remote's name.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The remote cannot be reached at all (a directory that is not
    /// there, a bucket that does not answer): nothing can be said about
    /// its objects.
    #[error("{remote}: {what}: not accessible: {why}")]
    Unavailable {
        remote: String,
        what: String,
        why: String,
    },
    /// One operation on one object failed.
    #[error("{remote}: {op} {object}: {source}")]
    Io {
        remote: String,
        op: &'static str,
        object: String,
        #[source]
        source: std::io::Error,
    },
    /// Storing would leave the remote with less room than it keeps free.
    #[error("{remote}: not enough free space, need {need} more")]
    NoSpace { remote: String, need: String },
    /// Another session (ours or git-annex's) is writing the same object.
    #[error("{remote}: {object}: another transfer of it is in progress")]
    Busy { remote: String, object: String },
    /// Objects cannot be read here at all (content encrypted to gpg keys
    /// whose secret half this server lacks).
    #[error("{remote}: {why}")]
    Unreadable { remote: String, why: String },
    /// The object changed or ended while it was read.
    #[error("{remote}: {object}: {why}")]
    Changed {
        remote: String,
        object: String,
        why: String,
    },
    /// The remote's rules forbid the operation (a key of an exported
    /// tree removed by its key, as git-annex forbids it).
    #[error("{remote}: {why}")]
    Refused { remote: String, why: String },
}

impl StorageError {
    /// What an io error of `op` on `object` in `remote` becomes: for
    /// `map_err`, so each place names the operation once.
    pub fn io(
        remote: &str,
        op: &'static str,
        object: &str,
    ) -> impl FnOnce(std::io::Error) -> StorageError {
        let (remote, object) = (remote.to_owned(), object.to_owned());
        move |source| StorageError::Io {
            remote,
            op,
            object,
            source,
        }
    }
}

/// A storage kind. One is made per session, for one remote.
pub trait Storage: Send + Sync {
    /// A byte stream from an object (bounded memory).
    type Reader: AsyncRead + Unpin + Send;
    /// A write that becomes visible only when committed.
    type Staged: StagedWrite<Reader = Self::Reader>;

    /// The remote's name, for errors and logs.
    fn remote(&self) -> &str;

    /// The object's size; `None` when it is absent (not an error).
    fn stat(&self, name: &Key) -> impl Future<Output = Result<Option<u64>, StorageError>> + Send;

    /// The object's bytes from `offset` to its end (a ranged read).
    fn read(
        &self,
        name: &Key,
        offset: u64,
    ) -> impl Future<Output = Result<Self::Reader, StorageError>> + Send;

    /// The object as a file of this host opened for reading, where the
    /// storage keeps objects in files here, so a GET can hand the body to
    /// the kernel (sendfile); `None` (the default) elsewhere.
    fn local_file(&self, name: &Key) -> Result<Option<std::fs::File>, StorageError> {
        let _ = name;
        Ok(None)
    }

    /// Whether objects can be read here at all; checked before a GET
    /// sends any byte, so the client hears why rather than a broken
    /// transfer. Yes (the default) but for [`StorageError::Unreadable`].
    fn readable(&self) -> Result<(), StorageError> {
        Ok(())
    }

    /// Whether reading an object back costs no more than reading a local
    /// file, so a direct upload (DATA-PRESENT) is hashed before it is
    /// believed; where it would be a download of the whole object (S3,
    /// an external program's RETRIEVE), [`Self::stat`] alone is believed.
    fn read_back_is_cheap(&self) -> bool {
        false
    }

    /// Start writing the object `name` of `size` bytes (when known). What
    /// an earlier interrupted attempt staged for the same name is kept:
    /// [`StagedWrite::staged`] says how much, and the bytes given next
    /// follow it.
    fn begin_write(
        &self,
        name: &Key,
        size: Option<u64>,
    ) -> impl Future<Output = Result<Self::Staged, StorageError>> + Send;

    /// Whether `bytes` more can be stored (git-annex checks a key's size
    /// against a directory's free space once, before storing it); a
    /// storage without such a limit says yes.
    fn room_for(&self, bytes: u64) -> impl Future<Output = Result<(), StorageError>> + Send {
        let _ = bytes;
        async { Ok(()) }
    }

    /// Remove the object; an absent one is removed already.
    fn remove(&self, name: &Key) -> impl Future<Output = Result<(), StorageError>> + Send;
}

/// An object being written. Dropped without [`Self::commit`] or
/// [`Self::abort`] (the client hung up), what was staged is kept where a
/// later [`Storage::begin_write`] of the same name finds it.
pub trait StagedWrite: Send {
    type Reader: AsyncRead + Unpin + Send;

    /// Bytes an earlier attempt left staged; the next write follows them.
    fn staged(&self) -> u64;

    /// The staged bytes from the start, where the storage can read them
    /// back (a directory's temporary file), so the framework can hash
    /// them before resuming; `None` where it cannot (S3 multipart parts),
    /// and then the framework calls [`Self::restart`].
    fn read_staged(
        &mut self,
    ) -> impl Future<Output = Result<Option<Self::Reader>, StorageError>> + Send;

    /// The size of the pieces a storage keeps of a staged write that it
    /// cannot read back (S3's parts): a later attempt finds a whole number
    /// of them, so the framework saves its hash state at each multiple.
    /// `None` (the default) where there are no such pieces.
    fn checkpoint(&self) -> Option<u64> {
        None
    }

    /// What names this staged write in the storage (an S3 upload id),
    /// once it has one: a saved hash state is used only for the write it
    /// was saved with.
    fn token(&self) -> Option<String> {
        None
    }

    /// Forget what was staged: the write starts at byte 0.
    fn restart(&mut self) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// The next bytes, in order.
    fn write(&mut self, bytes: &[u8]) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// Make the object visible under its name (a rename; a completed
    /// multipart upload). Only called once the content is verified.
    fn commit(self) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// Nothing becomes visible, and nothing staged is kept.
    fn abort(self) -> impl Future<Output = Result<(), StorageError>> + Send;
}

/// A storage that can also name objects by a path of its own, as an
/// export (`exporttree=yes`) names them: a tree's file under its path, and
/// git-annex's `annexobjects` copies under `.git/annex/objects/…`
/// (`Remote/Directory.hs`, `Remote/S3.hs`: `storeExport`, `retrieveExport`,
/// `removeExport`, `renameExport`). Paths are relative, `/`-separated, and
/// checked by [`super::export::valid_path`] before they get here, and
/// by each storage with [`super::export::safe_path`].
pub trait PathStorage: Storage {
    /// The size of the object at `path`; `None` when it is absent.
    fn stat_at(&self, path: &str)
        -> impl Future<Output = Result<Option<u64>, StorageError>> + Send;

    /// The object at `path` from `offset`.
    fn read_at(
        &self,
        path: &str,
        offset: u64,
    ) -> impl Future<Output = Result<Self::Reader, StorageError>> + Send;

    /// The object at `path` as a local file, where there is one.
    fn local_file_at(&self, path: &str) -> Result<Option<std::fs::File>, StorageError> {
        let _ = path;
        Ok(None)
    }

    /// A staged write that becomes the object at `path` once committed.
    fn begin_write_at(
        &self,
        path: &str,
        size: Option<u64>,
    ) -> impl Future<Output = Result<Self::Staged, StorageError>> + Send;

    /// Remove the object at `path` (absent is removed), and the
    /// directories it leaves empty where the storage has directories.
    fn remove_at(&self, path: &str) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// Move the object at `from` to `to`, replacing what is there.
    fn rename_at(
        &self,
        from: &str,
        to: &str,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// Copy the object at `from` to `to` (a second path of the same
    /// content), without its bytes passing through this host where the
    /// storage can (S3's CopyObject).
    fn copy_at(
        &self,
        from: &str,
        to: &str,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;
}
