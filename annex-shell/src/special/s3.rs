//! The `S3` special remote as a [`Storage`]: git-annex's object names in
//! a bucket, moved by the annex-s3 crate (ranged streaming GETs, multipart
//! uploads committed only once the framework verified the content).
//!
//! git-annex names a key's object `fileprefix` + the serialized key
//! (`Remote/S3.hs: getBucketObject`; `mungekeys=ia` aside, which we refuse
//! in [`super::config`]); chunks are chunk keys named the same way, so
//! either program finds what the other stored.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use annex::key::Key;
use annex_s3::{ObjectReader, Op, S3Config, S3Credentials, S3Error, S3Storage, SetupError};

use super::storage::{PathStorage, StagedWrite, Storage, StorageError};

/// An S3 remote's bucket.
#[derive(Clone, Debug)]
pub struct S3 {
    bucket: S3Storage,
    /// Set once this session swept the bucket's stale uploads.
    swept: Arc<AtomicBool>,
    /// The last object found by [`Storage::stat`], when it was small
    /// enough to come whole with the answer: the read that follows (a
    /// GET after its CHECKPRESENT-like locate) costs no second request.
    small: Arc<Mutex<Option<(Key, Bytes)>>>,
}

/// Objects up to this size come whole with the request that finds them
/// (a ranged GET instead of a HEAD); a larger one costs that many bytes
/// more than a HEAD would.
const SMALL_OBJECT: u64 = 64 * 1024;

impl S3 {
    /// The bucket of remote `name`; fails only on a configuration that
    /// cannot make requests (no credentials for a signed remote, a bad
    /// endpoint).
    pub fn new(
        name: &str,
        config: S3Config,
        creds: Option<S3Credentials>,
    ) -> Result<S3, SetupError> {
        Ok(S3 {
            bucket: S3Storage::new(name, config, creds)?,
            swept: Arc::default(),
            small: Arc::default(),
        })
    }

    pub fn bucket(&self) -> &S3Storage {
        &self.bucket
    }

    /// Whether the bucket answers: a GET of the object git-annex keeps
    /// the remote's UUID in, present or not; a bucket that is not there
    /// (NoSuchBucket) is no bucket to store in.
    pub async fn reachable(&self) -> Result<(), StorageError> {
        self.bucket
            .check_bucket()
            .await
            .map(drop)
            .map_err(|e| storage_error(e, self.bucket.remote()))
    }
}

impl S3 {
    /// The content [`Storage::stat`] brought of `name`, if that was the
    /// last object it found; taken, so it serves one read.
    fn take_small(&self, name: &Key) -> Option<Bytes> {
        let mut small = self.small.lock().unwrap_or_else(|e| e.into_inner());
        match small.take() {
            Some((k, bytes)) if &k == name => Some(bytes),
            other => {
                *small = other;
                None
            }
        }
    }

    /// Once a session, before its first write: aborts the uploads of keys
    /// (git-annex's object names, chunk keys included) abandoned longer
    /// ago than the remote's stale-upload age. A write costs one more
    /// request a session, not one a key; a failed sweep only leaves the
    /// uploads for the next session.
    async fn sweep_once(&self) {
        if self.swept.swap(true, Ordering::Relaxed) {
            return;
        }
        let swept = self
            .bucket
            .abort_stale_uploads(|name| Key::parse(name).is_ok())
            .await;
        match swept {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(remote = %self.bucket.remote(), aborted = n, "stale uploads aborted")
            }
            Err(e) => tracing::warn!("sweeping stale uploads: {e}"),
        }
    }
}

/// The bucket's name for `key` before the file prefix (which annex-s3
/// adds): git-annex's serialized key.
fn object_name(key: &Key) -> String {
    key.to_string()
}

/// annex-s3's error as the framework's: a bucket that does not answer is
/// [`StorageError::Unavailable`], anything else fails that one operation.
fn storage_error(e: S3Error, remote: &str) -> StorageError {
    if e.is_unreachable() {
        return StorageError::Unavailable {
            remote: remote.to_owned(),
            what: format!("bucket {}", e.object),
            why: e.kind.to_string(),
        };
    }
    let op = match e.op {
        Op::Stat => "stat",
        Op::Read => "read",
        Op::BeginWrite => "begin write of",
        Op::WritePart => "write",
        Op::Commit => "commit",
        Op::Abort => "abort",
        Op::Remove => "remove",
        Op::Copy => "copy",
    };
    StorageError::Io {
        remote: remote.to_owned(),
        op,
        object: e.object.clone(),
        source: std::io::Error::other(e.kind),
    }
}

impl Storage for S3 {
    type Reader = ObjectReader;
    type Staged = S3Write;

    fn remote(&self) -> &str {
        self.bucket.remote()
    }

    async fn stat(&self, name: &Key) -> Result<Option<u64>, StorageError> {
        let r = self
            .bucket
            .stat_with_head(&object_name(name), SMALL_OBJECT)
            .await;
        let found = r.map_err(|e| storage_error(e, self.remote()))?;
        let mut small = self.small.lock().unwrap_or_else(|e| e.into_inner());
        *small = match &found {
            Some((_, Some(bytes))) => Some((name.clone(), bytes.clone())),
            _ => None,
        };
        Ok(found.map(|(size, _)| size))
    }

    async fn read(&self, name: &Key, offset: u64) -> Result<ObjectReader, StorageError> {
        if let Some(bytes) = self.take_small(name) {
            let from = usize::try_from(offset)
                .unwrap_or(usize::MAX)
                .min(bytes.len());
            let object = object_name(name);
            return Ok(ObjectReader::from_bytes(
                &self.bucket,
                &object,
                bytes.slice(from..),
            ));
        }
        let r = self.bucket.read(&object_name(name), offset).await;
        r.map_err(|e| storage_error(e, self.remote()))
    }

    async fn begin_write(&self, name: &Key, size: Option<u64>) -> Result<S3Write, StorageError> {
        self.take_small(name);
        self.sweep_once().await;
        let r = self.bucket.begin_write(&object_name(name), size).await;
        let staged = r.map_err(|e| storage_error(e, self.remote()))?;
        Ok(S3Write {
            remote: self.remote().to_owned(),
            staged,
        })
    }

    async fn remove(&self, name: &Key) -> Result<(), StorageError> {
        self.take_small(name);
        let r = self.bucket.remove(&object_name(name)).await;
        r.map_err(|e| storage_error(e, self.remote()))
    }
}

/// An export's files, named by their paths under `fileprefix`
/// (`Remote/S3.hs: getBucketExportLocation`); a rename is a copy made by
/// the bucket and a delete, as git-annex renames (S3 has no move).
impl PathStorage for S3 {
    async fn stat_at(&self, path: &str) -> Result<Option<u64>, StorageError> {
        let r = self.bucket.stat(self.checked(path)?).await;
        r.map_err(|e| storage_error(e, self.remote()))
    }

    async fn read_at(&self, path: &str, offset: u64) -> Result<ObjectReader, StorageError> {
        let r = self.bucket.read(self.checked(path)?, offset).await;
        r.map_err(|e| storage_error(e, self.remote()))
    }

    async fn begin_write_at(&self, path: &str, size: Option<u64>) -> Result<S3Write, StorageError> {
        let r = self.bucket.begin_write(self.checked(path)?, size).await;
        let staged = r.map_err(|e| storage_error(e, self.remote()))?;
        Ok(S3Write {
            remote: self.remote().to_owned(),
            staged,
        })
    }

    async fn remove_at(&self, path: &str) -> Result<(), StorageError> {
        let r = self.bucket.remove(self.checked(path)?).await;
        r.map_err(|e| storage_error(e, self.remote()))
    }

    async fn rename_at(&self, from: &str, to: &str) -> Result<(), StorageError> {
        self.copy_at(from, to).await?;
        self.remove_at(from).await
    }

    async fn copy_at(&self, from: &str, to: &str) -> Result<(), StorageError> {
        let r = self
            .bucket
            .copy(self.checked(from)?, self.checked(to)?)
            .await;
        r.map_err(|e| storage_error(e, self.remote()))
    }
}

impl S3 {
    /// `path`, refused unless it is a [`super::export::safe_path`]: the
    /// object URL's dot segments would be resolved (out of `fileprefix`),
    /// a leading `/` would leave the bucket.
    fn checked<'p>(&self, path: &'p str) -> Result<&'p str, StorageError> {
        if super::export::safe_path(path) {
            return Ok(path);
        }
        Err(StorageError::Refused {
            remote: self.remote().to_owned(),
            why: format!("{path:?}: not a path under the remote"),
        })
    }
}

/// A multipart upload (or, for an object within one part, a buffered
/// PutObject) that becomes the object at commit.
pub struct S3Write {
    remote: String,
    staged: annex_s3::StagedWrite,
}

impl S3Write {
    fn error(&self, e: S3Error) -> StorageError {
        storage_error(e, &self.remote)
    }
}

impl StagedWrite for S3Write {
    type Reader = ObjectReader;

    fn staged(&self) -> u64 {
        self.staged.staged()
    }

    /// Parts of an incomplete multipart upload cannot be read back.
    async fn read_staged(&mut self) -> Result<Option<ObjectReader>, StorageError> {
        Ok(None)
    }

    fn checkpoint(&self) -> Option<u64> {
        self.staged.part_size()
    }

    fn token(&self) -> Option<String> {
        self.staged.multipart_id().map(str::to_owned)
    }

    async fn restart(&mut self) -> Result<(), StorageError> {
        let r = self.staged.restart().await;
        r.map_err(|e| self.error(e))
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), StorageError> {
        let r = self.staged.write(bytes).await;
        r.map_err(|e| self.error(e))
    }

    async fn commit(self) -> Result<(), StorageError> {
        let remote = self.remote;
        let sent = self.staged.commit().await;
        let sent = sent.map_err(|e| storage_error(e, &remote))?;
        tracing::debug!(remote, sent, "S3 object committed");
        Ok(())
    }

    async fn abort(self) -> Result<(), StorageError> {
        let remote = self.remote;
        self.staged
            .abort()
            .await
            .map_err(|e| storage_error(e, &remote))
    }
}
