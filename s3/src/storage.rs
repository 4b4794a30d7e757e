//! Named objects in a bucket, as the special-remote framework uses a
//! storage (`/work/notes/s5/storage-contract.md`): stat, a ranged
//! streaming read, a staged write that resumes and commits or aborts, and
//! remove. Names are git-annex's object names (keys, or chunk keys); the
//! bucket's object is `fileprefix` + name, as git-annex names it.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use futures_util::Stream;
use tokio::io::{AsyncRead, ReadBuf};

use crate::client::Client;
use crate::config::S3Config;
use crate::creds::S3Credentials;
use crate::error::{ErrorKind, Op, S3Error, SetupError};
use crate::write::StagedWrite;

/// An S3 remote's bucket.
#[derive(Debug, Clone)]
pub struct S3Storage {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub remote: String,
    pub config: S3Config,
    pub client: Client,
}

impl Inner {
    pub fn error(&self, op: Op, object: &str, kind: ErrorKind) -> S3Error {
        S3Error {
            remote: self.remote.clone(),
            op,
            object: object.to_string(),
            kind,
        }
    }
}

impl S3Storage {
    /// The object (under the file prefix, like every name) that holds the
    /// remote's UUID, which git-annex writes when it sets up the bucket and
    /// checks so that one bucket does not serve two remotes.
    pub const UUID_OBJECT: &'static str = "annex-uuid";

    /// Parts of a staged write cannot be read back from S3 (an incomplete
    /// multipart upload has no readable object): after a resume the
    /// framework must restore the hash state it saved for the staged bytes,
    /// or start over with [`StagedWrite::restart`].
    pub const STAGED_READABLE: bool = false;

    /// The storage of remote `remote` (its name, for errors and logs).
    /// `creds` are needed unless the remote is `signature=anonymous`.
    pub fn new(
        remote: impl Into<String>,
        config: S3Config,
        creds: Option<S3Credentials>,
    ) -> Result<Self, SetupError> {
        let remote = remote.into();
        let client = Client::new(&remote, &config, creds)?;
        Ok(S3Storage {
            inner: Arc::new(Inner {
                remote,
                config,
                client,
            }),
        })
    }

    pub fn config(&self) -> &S3Config {
        &self.inner.config
    }

    pub fn remote(&self) -> &str {
        &self.inner.remote
    }

    /// The object's size; `None` when it is absent (HEAD).
    #[tracing::instrument(level = "debug", skip(self), fields(remote = %self.inner.remote))]
    pub async fn stat(&self, name: &str) -> Result<Option<u64>, S3Error> {
        let object = self.inner.config.object_name(name);
        self.inner
            .client
            .head(&object)
            .await
            .map_err(|k| self.inner.error(Op::Stat, &object, k))
    }

    /// [`Self::stat`] by a GET of the first `window` bytes: the size, and
    /// the whole content when it is that small (for a read that follows:
    /// [`ObjectReader::from_bytes`]).
    #[tracing::instrument(level = "debug", skip(self), fields(remote = %self.inner.remote))]
    pub async fn stat_with_head(
        &self,
        name: &str,
        window: u64,
    ) -> Result<Option<(u64, Option<Bytes>)>, S3Error> {
        let object = self.inner.config.object_name(name);
        self.inner
            .client
            .get_head(&object, window)
            .await
            .map_err(|k| self.inner.error(Op::Stat, &object, k))
    }

    /// Whether the bucket answers, with [`Self::UUID_OBJECT`] in it or
    /// not; a missing bucket (NoSuchBucket), refused credentials or no
    /// answer are errors.
    #[tracing::instrument(level = "debug", skip(self), fields(remote = %self.inner.remote))]
    pub async fn check_bucket(&self) -> Result<(), S3Error> {
        let object = self.inner.config.object_name(Self::UUID_OBJECT);
        self.inner
            .client
            .probe(&object)
            .await
            .map_err(|k| self.inner.error(Op::Stat, &object, k))
    }

    /// The object's bytes from `offset` to its end, streamed: only that
    /// range is asked of the bucket. An absent object is an error for
    /// which [`S3Error::is_not_found`] holds.
    #[tracing::instrument(level = "debug", skip(self), fields(remote = %self.inner.remote))]
    pub async fn read(&self, name: &str, offset: u64) -> Result<ObjectReader, S3Error> {
        let object = self.inner.config.object_name(name);
        let err = |k| self.inner.error(Op::Read, &object, k);
        match self.inner.client.get_from(&object, offset).await {
            Ok(Some(resp)) => {
                let remaining = resp.content_length().ok_or_else(|| {
                    err(ErrorKind::Response("GET without a Content-Length".into()))
                })?;
                let body: Body = Box::pin(resp.bytes_stream());
                Ok(ObjectReader::new(
                    self.inner.clone(),
                    object,
                    remaining,
                    Some(body),
                ))
            }
            // The range starts at or past the end: empty at the end
            // itself, an error past it.
            Ok(None) => match self.stat(name).await? {
                Some(size) if size == offset => {
                    Ok(ObjectReader::new(self.inner.clone(), object, 0, None))
                }
                Some(size) => Err(err(ErrorKind::Response(format!(
                    "offset {offset} is past the end of the object ({size} bytes)"
                )))),
                None => Err(err(ErrorKind::NotFound)),
            },
            Err(k) => Err(err(k)),
        }
    }

    /// Begins (or resumes) the write of `size` bytes under `name` (`None`
    /// for a key that does not say its size); see [`StagedWrite`]. Nothing
    /// is visible under `name` before [`StagedWrite::commit`].
    #[tracing::instrument(level = "debug", skip(self), fields(remote = %self.inner.remote))]
    pub async fn begin_write(&self, name: &str, size: Option<u64>) -> Result<StagedWrite, S3Error> {
        StagedWrite::begin(
            self.inner.clone(),
            self.inner.config.object_name(name),
            size,
        )
        .await
    }

    /// Makes `to` a copy of `from`, in the bucket (CopyObject).
    #[tracing::instrument(level = "debug", skip(self), fields(remote = %self.inner.remote))]
    pub async fn copy(&self, from: &str, to: &str) -> Result<(), S3Error> {
        let (src, dest) = (
            self.inner.config.object_name(from),
            self.inner.config.object_name(to),
        );
        self.inner
            .client
            .copy_object(&src, &dest)
            .await
            .map_err(|k| self.inner.error(Op::Copy, &src, k))
    }

    /// Removes the object; an absent one is no error.
    #[tracing::instrument(level = "debug", skip(self), fields(remote = %self.inner.remote))]
    pub async fn remove(&self, name: &str) -> Result<(), S3Error> {
        let object = self.inner.config.object_name(name);
        self.inner
            .client
            .delete(&object)
            .await
            .map_err(|k| self.inner.error(Op::Remove, &object, k))
    }
}

/// The body of a GET, as reqwest streams it.
type Body = Pin<Box<dyn Stream<Item = Result<Bytes, reqwest::Error>> + Send>>;

/// An object's bytes as they arrive from the bucket (bounded memory: one
/// network chunk at a time), by [`ObjectReader::chunk`] or as an
/// [`AsyncRead`].
pub struct ObjectReader {
    remaining: u64,
    body: Option<Body>,
    /// What a read left of the last chunk.
    pending: Bytes,
    inner: Arc<Inner>,
    object: String,
}

impl std::fmt::Debug for ObjectReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectReader")
            .field("object", &self.object)
            .field("remaining", &self.remaining)
            .field("pending", &self.pending.len())
            .finish()
    }
}

impl ObjectReader {
    fn new(inner: Arc<Inner>, object: String, remaining: u64, body: Option<Body>) -> Self {
        ObjectReader {
            remaining,
            body,
            pending: Bytes::new(),
            inner,
            object,
        }
    }

    /// A reader of bytes already fetched (`name`'s, from the offset the
    /// caller cut them at).
    pub fn from_bytes(storage: &S3Storage, name: &str, bytes: Bytes) -> ObjectReader {
        let object = storage.inner.config.object_name(name);
        let mut r = ObjectReader::new(storage.inner.clone(), object, bytes.len() as u64, None);
        r.pending = bytes;
        r
    }

    /// How many bytes are still to come from the bucket.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    /// The next chunk, `None` at the end; a body that ends early is an
    /// error, not a short object.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, S3Error> {
        if !self.pending.is_empty() {
            return Ok(Some(std::mem::take(&mut self.pending)));
        }
        std::future::poll_fn(|cx| self.poll_chunk(cx)).await
    }

    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, S3Error>> {
        let Some(body) = self.body.as_mut() else {
            return Poll::Ready(Ok(None));
        };
        let got = match ready!(body.as_mut().poll_next(cx)) {
            Some(Ok(b)) => {
                self.remaining = self.remaining.saturating_sub(b.len() as u64);
                Ok(Some(b))
            }
            Some(Err(e)) => Err(self.inner.error(Op::Read, &self.object, e.into())),
            None if self.remaining > 0 => Err(self.inner.error(
                Op::Read,
                &self.object,
                ErrorKind::Response(format!("body ended {} bytes early", self.remaining)),
            )),
            None => {
                self.body = None;
                Ok(None)
            }
        };
        Poll::Ready(got)
    }
}

impl AsyncRead for ObjectReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        while this.pending.is_empty() {
            match ready!(this.poll_chunk(cx)) {
                Ok(Some(b)) => this.pending = b,
                Ok(None) => return Poll::Ready(Ok(())),
                Err(e) => return Poll::Ready(Err(std::io::Error::other(e))),
            }
        }
        let n = buf.remaining().min(this.pending.len());
        buf.put_slice(&this.pending.split_to(n));
        Poll::Ready(Ok(()))
    }
}
