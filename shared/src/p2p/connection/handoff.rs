//! Bodies handed over as files: for a peer in the same process (the HTTP
//! front-end), which writes an object file to its own client better than
//! it could read the file's bytes back out of a pipe.
//!
//! The session loop still decides what is sent and when: [`Connection::
//! send_file`] hands the file over, writes `DATA len` to the pipe as
//! always, and waits until the peer says it took the whole body. The
//! hand-over is queued before the header is written, so a peer that has
//! read the header finds the file already waiting ([`FileTaker::take`]).

use std::fs::File;
use std::io::Seek;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot};

use super::{ConnError, Connection};

/// A body of `len` bytes of `file` from `offset`, for the peer to send
/// itself in place of the pipe's bytes.
pub struct HandedFile {
    pub file: File,
    pub offset: u64,
    pub len: u64,
    done: oneshot::Sender<()>,
}

impl HandedFile {
    /// The whole body went out: the session goes on (checks the file was
    /// not changed meanwhile, and says VALID or INVALID). Dropping a
    /// `HandedFile` instead tells the session the body was cut off, and
    /// the session ends.
    pub fn sent(self) {
        let _ = self.done.send(());
    }
}

/// The session's side: where [`Connection::send_file`] hands files.
#[derive(Clone)]
pub struct FileGiver(mpsc::UnboundedSender<HandedFile>);

/// The peer's side. Dropping it cuts off a body handed but not taken.
pub struct FileTaker(mpsc::UnboundedReceiver<HandedFile>);

pub fn file_handoff() -> (FileGiver, FileTaker) {
    let (tx, rx) = mpsc::unbounded_channel();
    (FileGiver(tx), FileTaker(rx))
}

impl FileTaker {
    /// The file whose body the `DATA` header just read announced, if the
    /// session handed one (else the body follows in the pipe).
    pub fn take(&mut self) -> Option<HandedFile> {
        self.0.try_recv().ok()
    }
}

impl<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> Connection<R, W> {
    /// Lets [`Self::send_file`] hand file bodies to the peer through
    /// `giver`, when there is no descriptor to sendfile to.
    pub fn with_file_handoff(mut self, giver: FileGiver) -> Self {
        self.handoff = Some(giver);
        self
    }

    /// Hand `len` bytes of `file` from its position to the peer, after a
    /// `DATA len` header, and wait until it sent them. A peer that stops
    /// short leaves this connection broken, as a short body would.
    pub(super) async fn hand_file(&mut self, len: u64, mut file: File) -> Result<bool, ConnError> {
        let Some(giver) = self.handoff.clone() else {
            return Ok(false);
        };
        self.check()?;
        let offset = match file.stream_position() {
            Ok(o) => o,
            Err(e) => return Err(ConnError::Body(e)),
        };
        let (done, sent) = oneshot::channel();
        let handed = HandedFile {
            file,
            offset,
            len,
            done,
        };
        if giver.0.send(handed).is_err() {
            return self.fail(ConnError::Io(gone()));
        }
        self.write_header(len, &[]).await?;
        match sent.await {
            Ok(()) => Ok(true),
            Err(_) => self.fail(ConnError::Io(gone())),
        }
    }
}

fn gone() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::BrokenPipe,
        "the peer did not send the whole body",
    )
}

#[cfg(test)]
#[path = "handoff_tests.rs"]
mod tests;
