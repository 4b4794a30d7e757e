//! A staged write: bytes streamed into a multipart upload that becomes
//! the object only at [`StagedWrite::commit`], and that a later attempt
//! finds again (ListMultipartUploads, ListParts) and continues after the
//! parts the bucket already holds.
//!
//! Memory is bounded by two parts: one filling while the one before it is
//! sent. An object no larger than one part is held in memory and sent by
//! one PutObject at commit (nothing to resume for it); so is one of
//! unknown size that ends within its first part.

use std::sync::Arc;

use bytes::Bytes;
use tokio::task::JoinHandle;

use crate::error::{ErrorKind, Op, S3Error};
use crate::storage::Inner;
use crate::xml::Part;

/// A write begun by [`crate::S3Storage::begin_write`].
///
/// Dropping it without [`commit`](Self::commit) or [`abort`](Self::abort)
/// leaves the parts already sent in the bucket (the part being sent still
/// finishes) for a later `begin_write` of the same name to resume; the
/// bytes of an unfinished part are lost.
#[derive(Debug)]
pub struct StagedWrite {
    inner: Arc<Inner>,
    object: String,
    /// `None` when the key does not say its size.
    size: Option<u64>,
    part_size: u64,
    /// Bytes the bucket held for this name when the write began.
    staged: u64,
    /// Bytes taken so far, counting the staged ones.
    accepted: u64,
    /// Bytes sent to the bucket by this attempt.
    uploaded: u64,
    buf: Vec<u8>,
    multipart: Option<Multipart>,
}

#[derive(Debug)]
struct Multipart {
    /// Created with the first part, or found for a resume; never created
    /// when the object ends within its first part (one PutObject then).
    upload_id: Option<String>,
    /// The ETags of parts 1..=n, in order.
    etags: Vec<String>,
    in_flight: Option<JoinHandle<Result<String, ErrorKind>>>,
}

impl StagedWrite {
    pub(crate) async fn begin(
        inner: Arc<Inner>,
        object: String,
        size: Option<u64>,
    ) -> Result<Self, S3Error> {
        // Unknown, the size could be anything up to the part limit.
        let part_size = inner.config.part_size_for(size.unwrap_or(0));
        let mut w = StagedWrite {
            inner,
            object,
            size,
            part_size,
            staged: 0,
            accepted: 0,
            uploaded: 0,
            buf: Vec::new(),
            multipart: None,
        };
        if size.is_none_or(|size| size > part_size) {
            let (upload_id, parts) = w
                .find_staged()
                .await
                .map_err(|k| w.err(Op::BeginWrite, k))?;
            w.staged = parts.iter().map(|p| p.size).sum();
            w.accepted = w.staged;
            tracing::debug!(object = %w.object, ?upload_id, staged = w.staged, parts = parts.len(), "staged write begun");
            w.multipart = Some(Multipart {
                upload_id,
                etags: parts.into_iter().map(|p| p.etag).collect(),
                in_flight: None,
            });
        }
        Ok(w)
    }

    /// The bytes the bucket already holds for this write from an earlier
    /// attempt: the caller sends the object from this offset on. They
    /// cannot be read back ([`crate::S3Storage::STAGED_READABLE`]).
    pub fn staged(&self) -> u64 {
        self.staged
    }

    /// The size the write was begun for, when known.
    pub fn size(&self) -> Option<u64> {
        self.size
    }

    /// The size of the parts a multipart write sends (a resume starts at a
    /// multiple of it); `None` for an object sent in one PutObject.
    pub fn part_size(&self) -> Option<u64> {
        self.multipart.as_ref().map(|_| self.part_size)
    }

    /// The multipart upload's id, once it has one (created with the first
    /// part, or found for a resume).
    pub fn multipart_id(&self) -> Option<&str> {
        self.multipart.as_ref()?.upload_id.as_deref()
    }

    /// Bytes this attempt has sent to the bucket so far.
    pub fn bytes_uploaded(&self) -> u64 {
        self.uploaded
    }

    /// Takes the next bytes of the object, in order. A full part is sent
    /// while the next one fills; this waits for the part before it.
    pub async fn write(&mut self, mut data: &[u8]) -> Result<(), S3Error> {
        let got = self.accepted + data.len() as u64;
        if let Some(expected) = self.size.filter(|s| got > *s) {
            let k = ErrorKind::SizeMismatch { expected, got };
            return Err(self.err(Op::WritePart, k));
        }
        while !data.is_empty() {
            let room = if self.multipart.is_some() {
                self.part_size as usize - self.buf.len()
            } else {
                data.len()
            };
            let n = room.min(data.len());
            if self.buf.capacity() == 0 {
                let whole = self.size.unwrap_or(self.part_size);
                self.buf.reserve_exact(self.part_size.min(whole) as usize);
            }
            self.buf.extend_from_slice(&data[..n]);
            self.accepted += n as u64;
            data = &data[n..];
            if self.multipart.is_some() && self.buf.len() as u64 == self.part_size {
                self.send_buffered().await?;
            }
        }
        Ok(())
    }

    /// Makes the object visible under its name: all its bytes must have
    /// been given (staged ones included), `size` of them when it was
    /// known. Returns the bytes this attempt sent to the bucket.
    pub async fn commit(mut self) -> Result<u64, S3Error> {
        if let Some(expected) = self.size.filter(|s| *s != self.accepted) {
            let k = ErrorKind::SizeMismatch {
                expected,
                got: self.accepted,
            };
            return Err(self.err(Op::Commit, k));
        }
        let upload_id = self.multipart.as_ref().and_then(|m| m.upload_id.clone());
        match upload_id {
            None => {
                let body = Bytes::from(std::mem::take(&mut self.buf));
                self.uploaded += body.len() as u64;
                let r = self.inner.client.put_object(&self.object, body).await;
                r.map_err(|k| self.err(Op::Commit, k))?;
            }
            Some(id) => {
                if !self.buf.is_empty() {
                    self.send_buffered().await?;
                }
                self.settle().await?;
                let mp = self
                    .multipart
                    .as_mut()
                    .expect("an upload id is a multipart write");
                let etags = std::mem::take(&mut mp.etags);
                let r = self.inner.client.complete(&self.object, &id, &etags).await;
                r.map_err(|k| self.err(Op::Commit, k))?;
            }
        }
        tracing::debug!(object = %self.object, size = self.accepted, uploaded = self.uploaded, "committed");
        Ok(self.uploaded)
    }

    /// Drops the write: nothing becomes visible, and the staged parts are
    /// deleted (AbortMultipartUpload).
    pub async fn abort(mut self) -> Result<(), S3Error> {
        self.discard().await.map_err(|k| self.err(Op::Abort, k))?;
        tracing::debug!(object = %self.object, "staged write aborted");
        Ok(())
    }

    /// Starts over at byte 0, for a caller that cannot resume after the
    /// staged bytes (it has no hash state for them): the staged parts are
    /// deleted.
    pub async fn restart(&mut self) -> Result<(), S3Error> {
        self.discard()
            .await
            .map_err(|k| self.err(Op::BeginWrite, k))?;
        self.staged = 0;
        self.accepted = 0;
        if let Some(mp) = &mut self.multipart {
            mp.upload_id = None;
            mp.etags.clear();
        }
        Ok(())
    }

    /// Stops without committing, as a client that went away: waits for the
    /// part being sent and returns how many bytes the bucket now holds for
    /// a later resume (the unfinished part is dropped).
    pub async fn pause(mut self) -> Result<u64, S3Error> {
        if self.multipart.is_none() {
            return Ok(0);
        }
        self.settle().await?;
        let parts = self.multipart.as_ref().map_or(0, |m| m.etags.len() as u64);
        Ok(parts * self.part_size)
    }

    /// The upload to resume for this object and its usable parts: the
    /// in-progress upload whose parts 1..=k are whole parts of this write's
    /// size (the most of them, if several), so the write continues at
    /// byte k × part size. Parts after those are overwritten or left out
    /// of the completed object.
    ///
    /// Every other upload of the object is an abandoned attempt (ours with
    /// another part size, or another program's) that nothing will resume
    /// or complete: it is aborted here, or the bucket would keep (and bill)
    /// its parts for ever. One attempt writes a key at a time (the
    /// transfer lock), so none of them is still being written.
    async fn find_staged(&self) -> Result<(Option<String>, Vec<Part>), ErrorKind> {
        let client = &self.inner.client;
        let mut found: Vec<(String, Vec<Part>)> = Vec::new();
        for upload in client.list_uploads(&self.object).await? {
            let parts = client.list_parts(&self.object, &upload.upload_id).await?;
            let usable: Vec<Part> = parts
                .into_iter()
                .enumerate()
                .take_while(|(i, p)| usize::from(p.number) == i + 1 && p.size == self.part_size)
                .map(|(_, p)| p)
                .collect();
            found.push((upload.upload_id, usable));
        }
        let best = (0..found.len()).rev().max_by_key(|i| found[*i].1.len());
        for (i, (id, parts)) in found.iter().enumerate() {
            if Some(i) == best {
                continue;
            }
            tracing::info!(object = %self.object, upload_id = %id, parts = parts.len(), "aborting an abandoned upload");
            if let Err(e) = client.abort(&self.object, id).await {
                tracing::warn!(object = %self.object, upload_id = %id, "aborting an abandoned upload: {e}");
            }
        }
        Ok(match best {
            Some(i) => {
                let (id, parts) = found.swap_remove(i);
                (Some(id), parts)
            }
            None => (None, Vec::new()),
        })
    }

    /// Sends the buffer as the next part, after the part before it is in.
    async fn send_buffered(&mut self) -> Result<(), S3Error> {
        self.settle().await?;
        let upload_id = self.upload_id().await?;
        let body = Bytes::from(std::mem::take(&mut self.buf));
        let mp = self.multipart.as_mut().expect("multipart write");
        let number = u16::try_from(mp.etags.len() + 1).expect("part_size_for keeps parts ≤ 10000");
        self.uploaded += body.len() as u64;
        let inner = self.inner.clone();
        let object = self.object.clone();
        mp.in_flight = Some(tokio::spawn(async move {
            inner
                .client
                .upload_part(&object, &upload_id, number, body)
                .await
        }));
        Ok(())
    }

    /// Waits for the part being sent and records its ETag.
    async fn settle(&mut self) -> Result<(), S3Error> {
        let Some(mp) = self.multipart.as_mut() else {
            return Ok(());
        };
        let Some(task) = mp.in_flight.take() else {
            return Ok(());
        };
        let etag = match task.await {
            Ok(r) => r,
            Err(join) => Err(ErrorKind::Task(join)),
        };
        let etag = etag.map_err(|k| self.err(Op::WritePart, k))?;
        self.multipart
            .as_mut()
            .expect("multipart write")
            .etags
            .push(etag);
        Ok(())
    }

    async fn upload_id(&mut self) -> Result<String, S3Error> {
        let mp = self.multipart.as_mut().expect("multipart write");
        if let Some(id) = &mp.upload_id {
            return Ok(id.clone());
        }
        let r = self.inner.client.create_upload(&self.object).await;
        let id = r.map_err(|k| self.err(Op::BeginWrite, k))?;
        self.multipart.as_mut().expect("multipart write").upload_id = Some(id.clone());
        Ok(id)
    }

    /// Stops the part in flight and aborts the upload.
    async fn discard(&mut self) -> Result<(), ErrorKind> {
        self.buf = Vec::new();
        let Some(mp) = self.multipart.as_mut() else {
            return Ok(());
        };
        if let Some(task) = mp.in_flight.take() {
            task.abort();
            let _ = task.await;
        }
        if let Some(id) = mp.upload_id.take() {
            self.inner.client.abort(&self.object, &id).await?;
        }
        Ok(())
    }

    fn err(&self, op: Op, kind: ErrorKind) -> S3Error {
        self.inner.error(op, &self.object, kind)
    }
}
