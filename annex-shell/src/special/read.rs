//! A key's content read from a special remote as one byte stream from an
//! offset: its objects (the key, or its chunks) one after the other, each
//! opened only when the one before it ends, so a chunked key costs one
//! open object at a time (one ranged request on S3), never the whole
//! content in memory.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use annex::key::Key;
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf, Take};

use super::remote::Located;
use super::storage::{Storage, StorageError};

type Opening<'a, R> = Pin<Box<dyn Future<Output = Result<R, StorageError>> + Send + 'a>>;

/// The located content from an offset. An object that ends early makes
/// the stream shorter than [`Objects::len`]: the reader of a `DATA`
/// counts, and fails the transfer.
pub struct Objects<'a, S: Storage> {
    storage: &'a S,
    /// Objects still to open: name, offset in it, bytes wanted from it.
    rest: VecDeque<(Key, u64, u64)>,
    opening: Option<(Opening<'a, S::Reader>, u64)>,
    current: Option<Take<S::Reader>>,
    len: u64,
}

impl<'a, S: Storage> Objects<'a, S> {
    pub(crate) fn new(storage: &'a S, found: &Located, offset: u64) -> Objects<'a, S> {
        let mut rest = VecDeque::new();
        let mut skip = offset;
        for (name, size) in &found.objects {
            if skip >= *size {
                skip -= size;
                continue;
            }
            rest.push_back((name.clone(), skip, size - skip));
            skip = 0;
        }
        Objects {
            storage,
            rest,
            opening: None,
            current: None,
            len: found.size().saturating_sub(offset),
        }
    }

    /// Bytes the stream has when every object is whole.
    pub fn len(&self) -> u64 {
        self.len
    }
}

impl<S: Storage> AsyncRead for Objects<'_, S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        loop {
            if let Some(r) = this.current.as_mut() {
                let before = buf.filled().len();
                ready!(Pin::new(r).poll_read(cx, buf))?;
                if buf.filled().len() > before {
                    return Poll::Ready(Ok(()));
                }
                this.current = None;
                continue;
            }
            if let Some((f, len)) = this.opening.as_mut() {
                let reader = ready!(f.as_mut().poll(cx)).map_err(io::Error::other)?;
                this.current = Some(reader.take(*len));
                this.opening = None;
                continue;
            }
            let Some((name, from, len)) = this.rest.pop_front() else {
                return Poll::Ready(Ok(()));
            };
            let storage = this.storage;
            let open = async move { storage.read(&name, from).await };
            this.opening = Some((Box::pin(open), len));
        }
    }
}
