//! Named objects in a bucket, as the special-remote framework uses a
//! storage (`/work/notes/s5/storage-contract.md`): stat, a ranged
//! streaming read, a staged write that resumes and commits or aborts, and
//! remove. Names are git-annex's object names (keys, or chunk keys); the
//! bucket's object is `fileprefix` + name, as git-annex names it.

use std::sync::Arc;

use bytes::Bytes;

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
                Ok(ObjectReader {
                    remaining,
                    body: Some(resp),
                    inner: self.inner.clone(),
                    object,
                })
            }
            // The range starts at or past the end: empty at the end
            // itself, an error past it.
            Ok(None) => match self.stat(name).await? {
                Some(size) if size == offset => Ok(ObjectReader {
                    remaining: 0,
                    body: None,
                    inner: self.inner.clone(),
                    object,
                }),
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

/// An object's bytes as they arrive from the bucket (bounded memory: one
/// network chunk at a time).
#[derive(Debug)]
pub struct ObjectReader {
    remaining: u64,
    body: Option<reqwest::Response>,
    inner: Arc<Inner>,
    object: String,
}

impl ObjectReader {
    /// How many bytes are still to come.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    /// The next chunk, `None` at the end; a body that ends early is an
    /// error, not a short object.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, S3Error> {
        let Some(body) = self.body.as_mut() else {
            return Ok(None);
        };
        let got = body
            .chunk()
            .await
            .map_err(|e| self.inner.error(Op::Read, &self.object, e.into()))?;
        match got {
            Some(b) => {
                self.remaining = self.remaining.saturating_sub(b.len() as u64);
                Ok(Some(b))
            }
            None if self.remaining > 0 => Err(self.inner.error(
                Op::Read,
                &self.object,
                ErrorKind::Response(format!("body ended {} bytes early", self.remaining)),
            )),
            None => {
                self.body = None;
                Ok(None)
            }
        }
    }
}
