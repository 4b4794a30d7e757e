//! A connection taken apart into its two directions, for exchanges where
//! both run at once: `CONNECT`, where git's output goes to the peer while
//! the peer's input goes to git.
//!
//! Each direction moves one chunk at a time and waits for its own far end:
//! bytes are read from a source only once the previous chunk was taken by
//! the sink. Nothing is queued in between, so a peer that stops reading
//! holds the data back in the pipes rather than in our memory, and neither
//! direction waits for the other (the input keeps flowing while the output
//! is stuck), so they cannot deadlock each other.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, Empty, Sink};

use super::{ConnError, Connection, CHUNK};
use crate::p2p::Message;

/// The directions of a [`Connection`], borrowed apart by
/// [`Connection::split`]. When dropped they give back to it what was read
/// ahead, and break it if either one broke.
pub struct Halves<'a, R, W> {
    /// Messages and bodies from the peer.
    pub reading: Connection<&'a mut R, Sink>,
    /// Messages and bodies to the peer.
    pub writing: Connection<Empty, &'a mut W>,
    buf: &'a mut Vec<u8>,
    start: &'a mut usize,
    end: &'a mut usize,
    broken: &'a mut bool,
}

impl<R, W> Drop for Halves<'_, R, W> {
    fn drop(&mut self) {
        *self.buf = std::mem::take(&mut self.reading.buf);
        *self.start = self.reading.start;
        *self.end = self.reading.end;
        *self.broken |= self.reading.broken || self.writing.broken;
    }
}

impl<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> Connection<R, W> {
    /// Borrows the reading and the writing direction apart, so each can be
    /// driven on its own. The kernel data paths (sendfile, splice) are not
    /// taken along: the halves copy through their buffers.
    pub fn split(&mut self) -> Halves<'_, R, W> {
        let Connection {
            reader,
            writer,
            buf,
            start,
            end,
            broken,
            ..
        } = self;
        let mut reading = Connection::new(reader, tokio::io::sink());
        reading.buf = std::mem::take(buf);
        reading.start = *start;
        reading.end = *end;
        reading.broken = *broken;
        let mut writing = Connection::new(tokio::io::empty(), writer);
        writing.buf = Vec::new();
        writing.broken = *broken;
        Halves {
            reading,
            writing,
            buf,
            start,
            end,
            broken,
        }
    }

    /// Sends what `src` yields as `DATA` messages, one per read of at most
    /// [`CHUNK`] bytes, until `src` ends; returns how many bytes went.
    /// `src` is read again only once the peer has taken the last chunk.
    /// A failing `src` is [`ConnError::Body`], with this connection in step.
    pub async fn send_stream<S: AsyncRead + Unpin + ?Sized>(
        &mut self,
        src: &mut S,
    ) -> Result<u64, ConnError> {
        let mut buf = vec![0u8; CHUNK];
        let mut sent = 0;
        loop {
            let n = src.read(&mut buf).await.map_err(ConnError::Body)?;
            if n == 0 {
                return Ok(sent);
            }
            self.send_data(n as u64, &mut &buf[..n]).await?;
            sent += n as u64;
        }
    }

    /// Writes the bodies of the peer's `DATA` messages to `dst` until it
    /// says something else, which is returned (`None`: it closed between
    /// messages). A failing `dst` ends it with [`ConnError::Relay`], once
    /// that body was read to its end (this connection stays in step).
    pub async fn recv_stream<O: AsyncWrite + Unpin + ?Sized>(
        &mut self,
        dst: &mut O,
    ) -> Result<Option<Message>, ConnError> {
        loop {
            match self.read_message().await? {
                Some(Message::Data(len)) => self.relay_data(len, dst).await?,
                other => return Ok(other),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{duplex, AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// Both directions run at once: the peer's whole input goes through
    /// while our output (bigger than any pipe here) is still waiting for the
    /// peer to read; what was read ahead is back in the connection after.
    #[tokio::test]
    async fn directions_run_at_once_and_give_back_what_was_read_ahead() {
        let (ours_r, mut peer_w) = duplex(1024);
        let (mut peer_r, ours_w) = duplex(1024);
        let mut conn = Connection::new(ours_r, ours_w);
        peer_w
            .write_all(b"DATA 3\nabcCONNECTDONE 0\nVERSION 1\n")
            .await
            .expect("write");
        let output = vec![7u8; 3 * CHUNK];
        let mut src = output.as_slice();
        let mut got_in = Vec::new();
        {
            let mut halves = conn.split();
            let (reading, writing) = (&mut halves.reading, &mut halves.writing);
            let input = async {
                // Done while the output still waits for the peer to read.
                let end = reading.recv_stream(&mut got_in).await.expect("input");
                assert_eq!(end, Some(Message::ConnectDone(0)));
                let mut seen = vec![0; 3 * (CHUNK + "DATA 65536\n".len())];
                peer_r.read_exact(&mut seen).await.expect("output");
                seen
            };
            let (sent, seen) = tokio::join!(writing.send_stream(&mut src), input);
            assert_eq!(sent.expect("output"), output.len() as u64);
            assert!(seen.starts_with(b"DATA 65536\n\x07"));
        }
        assert_eq!(got_in, b"abc");
        assert_eq!(
            conn.read_message().await.expect("msg"),
            Some(Message::Version(1))
        );
    }
}
