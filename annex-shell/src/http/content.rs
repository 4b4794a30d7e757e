//! Where a GET's body comes from: the file the session handed over
//! ([`annex::p2p::HandedFile`]: an object file, a directory remote's file,
//! a cluster node's file on this machine), read straight into the
//! response's chunks; or else the DATA the session writes to its pipe
//! (a proxied node's stream, a remote's object streamed from storage).
//!
//! A handed file skips the session's reader thread, its pipe and two
//! copies of every byte. Over plain TCP the body goes from the file to
//! the socket by sendfile ([`super::sendfile`]), all but its last
//! [`TAIL`] bytes, which are read (the last chunk is held back until the
//! session's verdict, and cut short if the content proved bad). Elsewhere
//! (TLS) reads run on the blocking pool, one chunk ahead of the one being
//! sent, so memory stays bounded per request.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::sync::Arc;

use annex::p2p::{DataBody, HandedFile};
use bytes::Bytes;
use tokio::io::{DuplexStream, ReadHalf, WriteHalf};
use tokio::task::JoinHandle;

use super::sendfile::{self, FileSlot};

/// Bytes read from a handed file at once: one response chunk.
const FILE_CHUNK: u64 = 256 * 1024;

/// The end of a body read rather than sent by sendfile.
const TAIL: u64 = 4096;

type PipeBody<'a> = DataBody<'a, ReadHalf<DuplexStream>, WriteHalf<DuplexStream>>;

pub enum Source<'a> {
    Pipe(PipeBody<'a>),
    File(FileChunks),
}

impl Source<'_> {
    /// The next piece of the body, at most `max` bytes; `None` when the
    /// body ended early or could not be read.
    pub async fn next(&mut self, max: u64) -> Option<Bytes> {
        match self {
            Source::Pipe(body) => {
                let chunk = body.next_chunk().await.ok()??;
                let take = chunk.len().min(usize::try_from(max).unwrap_or(usize::MAX));
                Some(Bytes::copy_from_slice(&chunk[..take]))
            }
            Source::File(f) => match f.next().await {
                Ok(chunk) => chunk,
                Err(e) => {
                    tracing::warn!("p2phttp: reading the content failed: {e}");
                    None
                }
            },
        }
    }

    /// The whole body was sent: a handed file's session may go on to its
    /// verdict. (Dropped instead, the session ends.)
    pub fn sent(self) {
        if let Source::File(f) = self {
            f.handed.sent();
        }
    }
}

/// The first `count` bytes of a handed file's body, chunk by chunk.
pub struct FileChunks {
    handed: HandedFile,
    file: Arc<File>,
    /// Bytes still to go by sendfile, as markers.
    marked: u64,
    /// Bytes not yet asked of the blocking pool.
    unread: u64,
    ahead: Option<JoinHandle<io::Result<Bytes>>>,
}

impl FileChunks {
    /// With `slot`, all but the last [`TAIL`] bytes go by sendfile.
    pub fn new(handed: HandedFile, count: u64, slot: Option<&FileSlot>) -> io::Result<FileChunks> {
        let count = count.min(handed.len);
        let marked = match slot {
            Some(_) => count.saturating_sub(TAIL),
            None => 0,
        };
        let mut file = handed.file.try_clone()?;
        // Reads go in order, one at a time, after the part sent by sendfile.
        file.seek(SeekFrom::Start(handed.offset + marked))?;
        let file = Arc::new(file);
        if let (Some(slot), true) = (slot, marked > 0) {
            slot.arm(Arc::clone(&file), handed.offset, marked);
        }
        let mut chunks = FileChunks {
            handed,
            file,
            marked,
            unread: count - marked,
            ahead: None,
        };
        // The read part is fetched while the rest goes by sendfile.
        if marked > 0 {
            chunks.ahead = chunks.read_ahead();
        }
        Ok(chunks)
    }

    fn read_ahead(&mut self) -> Option<JoinHandle<io::Result<Bytes>>> {
        if self.unread == 0 {
            return None;
        }
        let n = self.unread.min(FILE_CHUNK);
        self.unread -= n;
        let file = Arc::clone(&self.file);
        Some(tokio::task::spawn_blocking(move || {
            // read_to_end fills spare capacity without zeroing it first.
            let mut buf = Vec::with_capacity(n as usize);
            (&*file).take(n).read_to_end(&mut buf)?;
            if (buf.len() as u64) < n {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the content file ended early",
                ));
            }
            Ok(Bytes::from(buf))
        }))
    }

    async fn next(&mut self) -> io::Result<Option<Bytes>> {
        if self.marked > 0 {
            let n = self.marked.min(sendfile::MARK_LEN as u64);
            self.marked -= n;
            return Ok(Some(sendfile::marker(n as usize)));
        }
        let Some(pending) = self.ahead.take().or_else(|| self.read_ahead()) else {
            return Ok(None);
        };
        let chunk = pending.await.map_err(io::Error::other)??;
        // The next read overlaps with sending this chunk.
        self.ahead = self.read_ahead();
        Ok(Some(chunk))
    }
}
