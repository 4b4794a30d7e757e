//! A PUT into a special remote, streamed: the client's bytes go to the
//! storage as they arrive and are hashed on the way; nothing is visible
//! under the key until the hash matches.
//!
//! Unchunked, the key's one object stays staged (a directory's temporary
//! file) until verified. Chunked, each full chunk is committed as the next
//! one starts (so an interrupted upload resumes after the chunks already
//! stored, as git-annex's `seekResume` does), but the *last* chunk stays
//! staged until the whole content is verified: without it the key is
//! never complete on the remote, so neither we nor git-annex (which also
//! guesses chunks from the remote's `chunk=`) can find it present. A
//! mismatch removes the chunks this upload committed.
//!
//! Resuming: complete chunks already on the remote and the bytes staged
//! for the next one count towards the `PUT-FROM` offset; the framework
//! reads them back once to hash them, so the whole content is verified.
//! Staged bytes that cannot be read back (S3 parts) are resumed from the
//! hash state saved when they were written ([`super::resume`]), where
//! the key's hash allows it (SHA-256 and SHA-512 varieties); otherwise
//! the write starts again at byte 0.

use std::path::{Path, PathBuf};

use annex::key::{safe_path_component, Key};
use annex::lockfile::{self, LockHandle, LockKind};
use annex::store::{Checked, Mismatch, Verifier, VerifyMode};
use tokio::io::{AsyncRead, AsyncReadExt};

use super::resume::ResumeFile;
use super::storage::{StagedWrite, Storage, StorageError};

/// How much of a read-back is hashed at a time.
const HASH_BUF: usize = 256 * 1024;

/// Why a PUT did not store the key.
#[derive(Debug, thiserror::Error)]
pub enum PutError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("{0}")]
    Verify(#[from] annex::store::Mismatch),
    #[error("the sender said its content changed while it was sent (INVALID)")]
    Invalid,
    #[error("{offered} more bytes than the key's size of {size}")]
    TooLong { offered: u64, size: u64 },
    #[error("transfer already in progress, or unable to take transfer lock ({0})")]
    Locked(String),
}

/// The lock git-annex takes while it uploads a key to a remote
/// (`annex/transfer/upload/<uuid>/lck.<keyfile>`): one upload of a key to
/// the remote at a time, ours or git-annex's in the same repository, so
/// two never write the same chunks. The lock file goes when the upload
/// ends, as git-annex removes it.
pub struct KeyLock {
    path: PathBuf,
    _held: LockHandle,
}

impl KeyLock {
    pub fn take(annex_dir: &Path, remote_uuid: &str, key: &Key) -> Result<KeyLock, PutError> {
        let locked = |why: String| PutError::Locked(why);
        let uuid = safe_path_component(remote_uuid).map_err(|e| locked(e.to_string()))?;
        let dir = annex_dir.join("transfer/upload").join(uuid);
        std::fs::create_dir_all(&dir).map_err(|e| locked(e.to_string()))?;
        let path = dir.join(format!("lck.{}", key.key_file()));
        match lockfile::try_lock(&path, LockKind::Exclusive, 0o644) {
            Ok(Some(held)) => Ok(KeyLock { path, _held: held }),
            Ok(None) => Err(locked("held by another process".into())),
            Err(e) => Err(locked(e.to_string())),
        }
    }
}

impl Drop for KeyLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// One key's upload into a storage.
pub struct Upload<S: Storage> {
    key: Key,
    /// Chunk size, `None` for the key as one object.
    chunk: Option<u64>,
    /// The object being written: the key, or chunk `number`.
    staged: S::Staged,
    number: u64,
    /// Bytes in the staged object.
    in_staged: u64,
    /// Chunks committed (by this upload or an earlier one), in order.
    committed: Vec<Key>,
    verifier: Verifier,
    /// Where the client starts sending.
    offset: u64,
    /// Bytes of the body written (hashed here or not).
    received: u64,
    /// The first storage failure while the body streamed.
    failed: Option<PutError>,
    /// Hash states saved at the staged write's checkpoints.
    resume: ResumeFile,
    _lock: KeyLock,
}

impl<S: Storage> Upload<S> {
    /// Start (or resume) storing `key`, in chunks of `chunk` bytes when
    /// given.
    pub async fn begin(
        storage: &S,
        key: &Key,
        chunk: Option<u64>,
        lock: KeyLock,
        resume: ResumeFile,
    ) -> Result<Self, StorageError> {
        let mut verifier = Verifier::resumable(key);
        let mut committed = Vec::new();
        let mut number = 1;
        if let Some(size) = chunk {
            // Complete chunks an earlier attempt stored, up to the one
            // that would end the content (that one is only ever staged).
            loop {
                let ck = key.chunk(size, number);
                let ends = key.size().is_some_and(|s| number * size >= s);
                // Chunks that cannot be read back here (encrypted to keys
                // this server cannot decrypt with) are stored again.
                let unreadable = storage.readable().is_err();
                if ends || unreadable || storage.stat(&ck).await? != Some(size) {
                    break;
                }
                hash_from(storage.read(&ck, 0).await?, &mut verifier, storage, &ck).await?;
                committed.push(ck);
                number += 1;
            }
        }
        let name = match chunk {
            Some(size) => key.chunk(size, number),
            None => key.non_chunk(),
        };
        let mut staged = storage
            .begin_write(&name, object_size(key, chunk, number))
            .await?;
        let mut in_staged = staged.staged();
        if in_staged > 0 {
            match staged.read_staged().await? {
                Some(r) => hash_from(r, &mut verifier, storage, &name).await?,
                None => {
                    let at = verifier.bytes() + in_staged;
                    let saved = staged.token().and_then(|t| resume.find(&t, at));
                    match saved.and_then(|state| Verifier::resume(key, &state)) {
                        Some(restored) => verifier = restored,
                        None => {
                            tracing::debug!(key = %key, in_staged, "no hash state saved: restart");
                            staged.restart().await?;
                            in_staged = 0;
                        }
                    }
                }
            }
        }
        let offset = committed.len() as u64 * chunk.unwrap_or(0) + in_staged;
        // A key of unknown size counts as 1 byte, as in git-annex.
        let rest = key.size().unwrap_or(1).saturating_sub(offset);
        storage.room_for(rest).await?;
        tracing::debug!(key = %key, offset, chunks = committed.len(), "put begins");
        Ok(Upload {
            key: key.clone(),
            chunk,
            staged,
            number,
            in_staged,
            committed,
            verifier,
            offset,
            received: 0,
            failed: None,
            resume,
            _lock: lock,
        })
    }

    pub fn key(&self) -> &Key {
        &self.key
    }

    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// A body of `len` bytes follows: more than the key can hold is
    /// refused before a byte is stored (the body is still read).
    pub fn expect_len(&mut self, len: u64) {
        if let Some(size) = self.key.size() {
            if self.offset.saturating_add(len) > size && self.failed.is_none() {
                self.failed = Some(PutError::TooLong {
                    offered: len,
                    size: size.saturating_sub(self.offset),
                });
            }
        }
    }

    /// The next bytes of the body. A storage failure is kept for the end
    /// (the body must still be read to stay in step).
    pub async fn write(&mut self, storage: &S, bytes: &[u8]) {
        self.stream(storage, bytes, true).await;
    }

    /// [`Self::write`] for a body that someone else hashes: a cluster's
    /// gateway hashes the client's stream once for the nodes whose
    /// upload starts at byte 0, and [`Self::finish`] then takes its
    /// digest. No hash state is saved for a resume then (this upload's
    /// verifier has none), so a resume of it starts again at 0.
    pub async fn write_unhashed(&mut self, storage: &S, bytes: &[u8]) {
        self.stream(storage, bytes, false).await;
    }

    async fn stream(&mut self, storage: &S, mut bytes: &[u8], hash: bool) {
        if self.failed.is_some() {
            return;
        }
        self.received += bytes.len() as u64;
        while !bytes.is_empty() {
            if let Err(e) = self.next_chunk_if_full(storage).await {
                self.failed = Some(e.into());
                return;
            }
            let room = match self.chunk {
                Some(size) => size - self.in_staged,
                None => u64::MAX,
            };
            // Up to the staged write's next checkpoint at most, so the
            // hash state saved there covers exactly what is staged.
            let checkpoint = self.staged.checkpoint();
            let room = checkpoint.map_or(room, |p| room.min(p - self.in_staged % p));
            let take = usize::try_from(room).unwrap_or(usize::MAX).min(bytes.len());
            if hash {
                self.verifier.update(&bytes[..take]);
            }
            if let Err(e) = self.staged.write(&bytes[..take]).await {
                self.failed = Some(e.into());
                return;
            }
            self.in_staged += take as u64;
            bytes = &bytes[take..];
            if hash && checkpoint.is_some_and(|p| self.in_staged.is_multiple_of(p)) {
                self.save_checkpoint();
            }
        }
    }

    /// The hash state after a whole number of the staged write's pieces.
    fn save_checkpoint(&mut self) {
        if let (Some(token), Some(state)) = (self.staged.token(), self.verifier.midstate()) {
            self.resume.save(&token, &state);
        }
    }

    /// A full chunk with more bytes coming: it is stored, and the next
    /// chunk staged.
    async fn next_chunk_if_full(&mut self, storage: &S) -> Result<(), StorageError> {
        let Some(size) = self.chunk else {
            return Ok(());
        };
        if self.in_staged < size {
            return Ok(());
        }
        let next_name = self.key.chunk(size, self.number + 1);
        let next_size = object_size(&self.key, self.chunk, self.number + 1);
        let mut next = storage.begin_write(&next_name, next_size).await?;
        if next.staged() > 0 {
            next.restart().await?;
        }
        let full = std::mem::replace(&mut self.staged, next);
        full.commit().await?;
        self.committed.push(self.key.chunk(size, self.number));
        self.number += 1;
        self.in_staged = 0;
        Ok(())
    }

    /// The sender's word is in: verify (with `digest`, the check of a
    /// hash made elsewhere of the whole body, when it was written
    /// unhashed), then make the content visible, or remove what this
    /// upload stored. On success, the chunks it is in
    /// (`Some((size, count))`), or `None` when stored whole.
    pub async fn finish(
        self,
        storage: &S,
        mode: VerifyMode,
        digest: Option<&Result<Checked, Mismatch>>,
    ) -> Result<Option<(u64, u64)>, PutError> {
        // INVALID before a byte came (the sender had nothing to send after
        // all): what earlier attempts stored stays for a later resume.
        if mode == VerifyMode::Invalid && self.failed.is_none() && self.received == 0 {
            return Err(PutError::Invalid);
        }
        let checked = match (self.failed, mode, digest) {
            (Some(e), _, _) => Err(e),
            (None, VerifyMode::Invalid, _) => Err(PutError::Invalid),
            (None, _, Some(d)) if self.offset == 0 => d.clone().map(drop).map_err(PutError::from),
            (None, _, _) => self.verifier.check().map(drop).map_err(PutError::from),
        };
        self.resume.remove();
        if let Err(e) = checked {
            tracing::info!(key = %self.key, "put failed: {e}");
            let _ = self.staged.abort().await;
            for ck in &self.committed {
                let _ = storage.remove(ck).await;
            }
            return Err(e);
        }
        self.staged.commit().await?;
        Ok(self.chunk.map(|size| (size, self.number)))
    }
}

/// The size object `number` of `key` will have: the key's, unchunked; a
/// chunk's, or what is left of the key for its last chunk. `None` when
/// the key's size is unknown.
fn object_size(key: &Key, chunk: Option<u64>, number: u64) -> Option<u64> {
    let size = key.size()?;
    Some(match chunk {
        None => size,
        Some(c) => size.saturating_sub((number - 1) * c).min(c),
    })
}

/// Feed an object's bytes to the verifier.
pub(crate) async fn hash_from<S: Storage, R: AsyncRead + Unpin>(
    mut reader: R,
    verifier: &mut Verifier,
    storage: &S,
    name: &Key,
) -> Result<(), StorageError> {
    let mut buf = vec![0u8; HASH_BUF];
    loop {
        let n = reader
            .read(&mut buf)
            .await
            .map_err(|source| StorageError::Io {
                remote: storage.remote().to_owned(),
                op: "read back",
                object: name.to_string(),
                source,
            })?;
        if n == 0 {
            return Ok(());
        }
        verifier.update(&buf[..n]);
    }
}
