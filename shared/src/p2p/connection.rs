//! A P2P connection over any pair of async pipes: messages in and out, and
//! the raw bytes that follow `DATA n`, streamed in bounded chunks.
//!
//! One read buffer serves both lines and bodies, so bytes that arrived
//! together with a line (the start of a body, or the next message right after
//! a body) are never lost. A body is never held whole: it passes through in
//! chunks of at most [`CHUNK`] bytes.
//!
//! Once the two ends can no longer agree on where the next message starts
//! (EOF inside a line or body, a body cut short, a fatal line), the connection
//! is *broken* and every later call fails with [`ConnError::Broken`].

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::codec::{self, DecodeError, Decoded};
use super::message::Message;

mod handoff;
mod kernel;
mod split;

pub use handoff::{file_handoff, FileGiver, FileTaker, HandedFile};
pub use kernel::{KernelInput, TeeRest};
pub use split::Halves;

/// Largest piece of a body handed out or written at once.
pub const CHUNK: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    #[error("i/o error on the P2P connection")]
    Io(#[from] std::io::Error),
    /// Fatal, as in git-annex.
    #[error("protocol line longer than {} characters", codec::MAX_LINE_CHARS)]
    LineTooLong,
    /// The line was consumed; reply `ERROR unknown command` and go on.
    #[error("unparseable protocol line {line:?}")]
    Unparseable { line: String },
    #[error("connection closed in the middle of a protocol line")]
    UnexpectedEof,
    /// The peer's body ended early; every byte that did arrive was handed on.
    #[error("DATA ended after {received} of {expected} bytes")]
    ShortData { expected: u64, received: u64 },
    /// Our own body source ended early; the peer still waits for bytes.
    #[error("DATA source ended after {sent} of {expected} bytes")]
    ShortBody { expected: u64, sent: u64 },
    #[error("reading the DATA source failed")]
    Body(#[source] std::io::Error),
    #[error("{offered} bytes offered with only {remaining} left to send in this DATA")]
    TooMuchData { remaining: u64, offered: usize },
    /// The sink failed; the rest of the body was read and dropped, so this
    /// connection is still in step.
    #[error("storing received DATA failed")]
    Sink(#[source] std::io::Error),
    /// Passing a body on failed; the body was still read to its end, so this
    /// connection is still in step (the other side may not be).
    #[error("relaying DATA failed")]
    Relay(#[source] Box<ConnError>),
    #[error("connection unusable after an earlier error")]
    Broken,
}

impl ConnError {
    /// The peer went away (between messages, or in the middle of a DATA):
    /// nobody is left to tell, so a server ends quietly.
    pub fn is_hangup(&self) -> bool {
        match self {
            ConnError::ShortData { .. } | ConnError::UnexpectedEof => true,
            ConnError::Io(e) => matches!(
                e.kind(),
                std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::UnexpectedEof
            ),
            _ => false,
        }
    }

    /// Whether the session can go on after this error.
    pub fn is_recoverable(&self) -> bool {
        matches!(
            self,
            ConnError::Unparseable { .. } | ConnError::Sink(_) | ConnError::Relay(_)
        )
    }
}

/// Where a received body goes. Synchronous because the object store is; it
/// is called from async code with chunks of at most [`CHUNK`] bytes.
pub trait DataSink {
    fn write_chunk(&mut self, chunk: &[u8]) -> std::io::Result<()>;
}

/// A body nobody keeps (its PUT was refused, or the node it was for is
/// gone): read to its end so the connection stays in step, in constant
/// memory however long the client says it is.
pub struct Discard;

impl DataSink for Discard {
    fn write_chunk(&mut self, _chunk: &[u8]) -> std::io::Result<()> {
        Ok(())
    }
}

/// For small bodies and tests; a store should write through instead.
impl DataSink for Vec<u8> {
    fn write_chunk(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        self.extend_from_slice(chunk);
        Ok(())
    }
}

impl<S: DataSink + ?Sized> DataSink for &mut S {
    fn write_chunk(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        (**self).write_chunk(chunk)
    }
}

pub struct Connection<R, W> {
    reader: R,
    writer: W,
    /// Read buffer; `buf[start..end]` is received but not yet used.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Scratch for outgoing lines and body chunks.
    out: Vec<u8>,
    broken: bool,
    /// The fd `writer` ends in, when bodies from files may be sent by the
    /// kernel ([`Self::send_file`]).
    sendfile_to: Option<std::os::fd::OwnedFd>,
    /// The fd `reader` reads, when bodies may be spliced on from it
    /// ([`Self::relay_data_spliced`]).
    splice_from: Option<kernel::SpliceInput>,
    /// An in-process peer that sends file bodies itself.
    handoff: Option<handoff::FileGiver>,
}

impl<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> Connection<R, W> {
    pub fn new(reader: R, writer: W) -> Self {
        Connection {
            reader,
            writer,
            buf: vec![0; CHUNK],
            start: 0,
            end: 0,
            out: Vec::new(),
            broken: false,
            sendfile_to: None,
            splice_from: None,
            handoff: None,
        }
    }

    /// The pipes back; bytes read but not yet used are dropped.
    pub fn into_inner(self) -> (R, W) {
        (self.reader, self.writer)
    }

    /// The byte stream under the messages, for handing the rest of the
    /// session to something that is not the protocol (a tunnel after
    /// CONNECT): the bytes read but not yet used (taken, so they are not
    /// used twice), and the pipes.
    pub fn raw_parts(&mut self) -> (Vec<u8>, &mut R, &mut W) {
        let early = self.buf[self.start..self.end].to_vec();
        self.start = self.end;
        (early, &mut self.reader, &mut self.writer)
    }

    /// Bytes already read from the peer and not yet used.
    pub fn buffered(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    pub fn is_broken(&self) -> bool {
        self.broken
    }

    fn check(&self) -> Result<(), ConnError> {
        if self.broken {
            Err(ConnError::Broken)
        } else {
            Ok(())
        }
    }

    fn fail<T>(&mut self, err: ConnError) -> Result<T, ConnError> {
        self.broken = true;
        Err(err)
    }

    /// Read the next message. `Ok(None)` is a clean EOF between messages.
    /// After `Message::Data(n)` the caller must take the body (with
    /// [`Self::recv_data`], [`Self::relay_data`] or [`Self::data_body`])
    /// before reading the next message.
    pub async fn read_message(&mut self) -> Result<Option<Message>, ConnError> {
        self.check()?;
        loop {
            match codec::decode(&self.buf[self.start..self.end]) {
                Ok(Decoded::Complete { message, consumed }) => {
                    self.consume(consumed);
                    return Ok(Some(message));
                }
                Err(DecodeError::Unparseable { line, consumed }) => {
                    self.consume(consumed);
                    return Err(ConnError::Unparseable { line });
                }
                Err(DecodeError::LineTooLong) => return self.fail(ConnError::LineTooLong),
                Ok(Decoded::Incomplete) => {}
            }
            if self.fill().await? == 0 {
                if self.start == self.end {
                    return Ok(None);
                }
                return self.fail(ConnError::UnexpectedEof);
            }
        }
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Read more bytes after the unused ones; returns how many (0 at EOF).
    async fn fill(&mut self) -> Result<usize, ConnError> {
        if self.end == self.buf.len() {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else {
                // Only a long line gets here, and the codec bounds lines.
                self.buf.resize(self.buf.len() * 2, 0);
            }
        }
        match self.reader.read(&mut self.buf[self.end..]).await {
            Ok(n) => {
                self.end += n;
                Ok(n)
            }
            Err(e) => self.fail(ConnError::Io(e)),
        }
    }

    /// Send one message and flush.
    pub async fn write_message(&mut self, msg: &Message) -> Result<(), ConnError> {
        self.check()?;
        self.out.clear();
        codec::encode(msg, &mut self.out);
        self.write_out().await
    }

    /// Write what `out` holds and flush.
    async fn write_out(&mut self) -> Result<(), ConnError> {
        let res = async {
            self.writer.write_all(&self.out).await?;
            self.writer.flush().await
        }
        .await;
        match res {
            Ok(()) => Ok(()),
            Err(e) => self.fail(ConnError::Io(e)),
        }
    }

    /// Send `DATA len` and then exactly `len` bytes from `body`, then flush.
    /// If `body` ends or fails early the peer can never be satisfied, so the
    /// connection is broken.
    pub async fn send_data<B: AsyncRead + Unpin>(
        &mut self,
        len: u64,
        body: &mut B,
    ) -> Result<(), ConnError> {
        self.check()?;
        self.out.clear();
        codec::encode(&Message::Data(len), &mut self.out);
        // The header rides along with the first chunk: one write, not two.
        let mut filled = self.out.len();
        self.out.resize(filled + CHUNK, 0);
        let mut remaining = len;
        loop {
            while remaining > 0 && filled < self.out.len() {
                let room =
                    (self.out.len() - filled).min(usize::try_from(remaining).unwrap_or(usize::MAX));
                match body.read(&mut self.out[filled..filled + room]).await {
                    Ok(0) => {
                        let sent = len - remaining;
                        return self.fail(ConnError::ShortBody {
                            expected: len,
                            sent,
                        });
                    }
                    Ok(n) => {
                        filled += n;
                        remaining -= n as u64;
                    }
                    Err(e) => return self.fail(ConnError::Body(e)),
                }
            }
            if let Err(e) = self.writer.write_all(&self.out[..filled]).await {
                return self.fail(ConnError::Io(e));
            }
            filled = 0;
            if remaining == 0 {
                break;
            }
        }
        if let Err(e) = self.writer.flush().await {
            return self.fail(ConnError::Io(e));
        }
        Ok(())
    }

    /// Start sending a body chunk by chunk (for fan-out, where one received
    /// chunk goes to several peers). Writes the `DATA len` header now.
    pub async fn start_data(&mut self, len: u64) -> Result<DataWriter<'_, R, W>, ConnError> {
        self.check()?;
        self.out.clear();
        codec::encode(&Message::Data(len), &mut self.out);
        if let Err(e) = self.writer.write_all(&self.out).await {
            return self.fail(ConnError::Io(e));
        }
        Ok(DataWriter {
            conn: self,
            expected: len,
            remaining: len,
        })
    }

    /// Take up a body parked by [`DataWriter::park`] on this connection.
    pub fn resume_data(&mut self, parked: ParkedData) -> DataWriter<'_, R, W> {
        DataWriter {
            conn: self,
            expected: parked.expected,
            remaining: parked.remaining,
        }
    }

    /// The body of a `DATA len` just read, to be taken chunk by chunk.
    pub fn data_body(&mut self, len: u64) -> DataBody<'_, R, W> {
        DataBody {
            conn: self,
            expected: len,
            remaining: len,
        }
    }

    /// Receive a body of `len` bytes into `sink`, in the chunks they
    /// arrive in (at most [`CHUNK`] bytes); returns `len`. Not gathered
    /// into 1 MiB runs: a 3-node fan-out over ssh spent twice the CPU
    /// with them (README, "Drops and configlist start-up").
    ///
    /// If the peer stops early, the bytes that did arrive are already in the
    /// sink (a partial upload can be resumed) and the result is
    /// [`ConnError::ShortData`]. If the sink fails, the rest of the body is
    /// still read (and dropped) so that the connection stays in step.
    pub async fn recv_data<S: DataSink + ?Sized>(
        &mut self,
        len: u64,
        sink: &mut S,
    ) -> Result<u64, ConnError> {
        let mut body = self.data_body(len);
        let mut sink_err = None;
        while let Some(chunk) = body.next_chunk().await? {
            if sink_err.is_none() {
                sink_err = sink.write_chunk(chunk).err();
            }
        }
        match sink_err {
            Some(e) => Err(ConnError::Sink(e)),
            None => Ok(len),
        }
    }

    /// Copy a body of `len` bytes to a raw pipe (no header), e.g. git's
    /// stdin during `CONNECT`. A failing `out` does not stop the body from
    /// being read to its end.
    pub async fn relay_data<O: AsyncWrite + Unpin + ?Sized>(
        &mut self,
        len: u64,
        out: &mut O,
    ) -> Result<(), ConnError> {
        let mut body = self.data_body(len);
        let mut out_err = None;
        while let Some(chunk) = body.next_chunk().await? {
            if out_err.is_none() {
                out_err = out.write_all(chunk).await.err();
            }
        }
        if out_err.is_none() {
            out_err = out.flush().await.err();
        }
        match out_err {
            Some(e) => Err(ConnError::Relay(Box::new(ConnError::Io(e)))),
            None => Ok(()),
        }
    }

    /// Pass a body of `len` bytes on to another connection as `DATA len` +
    /// bytes (the proxy case). If `to` fails it ends up broken, while this
    /// connection reads the body to its end and stays in step.
    pub async fn relay_data_to<R2, W2>(
        &mut self,
        len: u64,
        to: &mut Connection<R2, W2>,
    ) -> Result<(), ConnError>
    where
        R2: AsyncRead + Unpin,
        W2: AsyncWrite + Unpin,
    {
        match to.start_data(len).await {
            Ok(writer) => self.copy_body(len, len, writer).await,
            Err(e) => self.drain_after(len, len, e).await,
        }
    }

    /// The last `remaining` bytes of a `len`-byte body on to `writer`. If
    /// it fails, the body is still read to its end:
    /// [`ConnError::Relay`], with this connection in step.
    async fn copy_body<R2, W2>(
        &mut self,
        len: u64,
        remaining: u64,
        mut writer: DataWriter<'_, R2, W2>,
    ) -> Result<(), ConnError>
    where
        R2: AsyncRead + Unpin,
        W2: AsyncWrite + Unpin,
    {
        let mut body = DataBody {
            conn: self,
            expected: len,
            remaining,
        };
        let mut failed = None;
        while let Some(chunk) = body.next_chunk().await? {
            if failed.is_none() {
                failed = writer.write_chunk(chunk).await.err();
            }
        }
        match failed {
            None => writer.finish().await,
            Some(e) => Err(e),
        }
        .map_err(|e| ConnError::Relay(Box::new(e)))
    }

    /// After the receiving end failed with `error`: read the `remaining`
    /// bytes of a `len`-byte body to their end, so this connection stays
    /// in step.
    async fn drain_after(
        &mut self,
        len: u64,
        remaining: u64,
        error: ConnError,
    ) -> Result<(), ConnError> {
        let mut body = DataBody {
            conn: self,
            expected: len,
            remaining,
        };
        while body.next_chunk().await?.is_some() {}
        Err(ConnError::Relay(Box::new(error)))
    }
}

/// A body being received. Dropping it before the end breaks the connection,
/// since the rest of the body would otherwise be read as messages.
pub struct DataBody<'c, R, W> {
    conn: &'c mut Connection<R, W>,
    expected: u64,
    remaining: u64,
}

impl<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> DataBody<'_, R, W> {
    pub fn expected(&self) -> u64 {
        self.expected
    }

    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    /// The next piece of the body (at most [`CHUNK`] bytes), or `None` once
    /// all `len` bytes were handed out. EOF before that is
    /// [`ConnError::ShortData`].
    pub async fn next_chunk(&mut self) -> Result<Option<&[u8]>, ConnError> {
        if self.remaining == 0 {
            return Ok(None);
        }
        self.conn.check()?;
        if self.conn.start == self.conn.end {
            // Filling the whole buffer may pull in the next message too;
            // it stays buffered for read_message.
            if self.conn.fill().await? == 0 {
                let received = self.expected - self.remaining;
                let expected = self.expected;
                return self.conn.fail(ConnError::ShortData { expected, received });
            }
        }
        let available = self.conn.end - self.conn.start;
        let take = available
            .min(CHUNK)
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let at = self.conn.start;
        self.conn.consume(take);
        self.remaining -= take as u64;
        Ok(Some(&self.conn.buf[at..at + take]))
    }
}

impl<R, W> Drop for DataBody<'_, R, W> {
    fn drop(&mut self) {
        if self.remaining > 0 {
            self.conn.broken = true;
        }
    }
}

/// A body being sent piecemeal after [`Connection::start_data`]. Dropping it
/// (or finishing) before all bytes were written breaks the connection.
pub struct DataWriter<'c, R, W> {
    conn: &'c mut Connection<R, W>,
    expected: u64,
    remaining: u64,
}

impl<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> DataWriter<'_, R, W> {
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    /// Write the next piece; more than what is left is refused (nothing is
    /// written then).
    pub async fn write_chunk(&mut self, chunk: &[u8]) -> Result<(), ConnError> {
        self.conn.check()?;
        if chunk.len() as u64 > self.remaining {
            return Err(ConnError::TooMuchData {
                remaining: self.remaining,
                offered: chunk.len(),
            });
        }
        if let Err(e) = self.conn.writer.write_all(chunk).await {
            return self.conn.fail(ConnError::Io(e));
        }
        self.remaining -= chunk.len() as u64;
        Ok(())
    }

    /// Put the body aside between chunks, for an owner that keeps the
    /// connection and the body's progress in one place (a cluster node fed
    /// chunk by chunk): [`Connection::resume_data`] takes it up again. A
    /// parked body that is never resumed and finished leaves the peer
    /// waiting for bytes, as a dropped writer does; its owner closes the
    /// connection then.
    pub fn park(mut self) -> ParkedData {
        let parked = ParkedData {
            expected: self.expected,
            remaining: self.remaining,
        };
        // Not dropped short: the body goes on after resume_data.
        self.remaining = 0;
        parked
    }

    /// Flush; fails (and breaks the connection) unless every byte was written.
    pub async fn finish(mut self) -> Result<(), ConnError> {
        self.conn.check()?;
        if self.remaining > 0 {
            let sent = self.expected - self.remaining;
            let expected = self.expected;
            return self.conn.fail(ConnError::ShortBody { expected, sent });
        }
        if let Err(e) = self.conn.writer.flush().await {
            return self.conn.fail(ConnError::Io(e));
        }
        self.remaining = 0;
        Ok(())
    }
}

/// A body being sent, put aside by [`DataWriter::park`].
#[derive(Debug)]
pub struct ParkedData {
    expected: u64,
    remaining: u64,
}

impl ParkedData {
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    /// `n` bytes of the body reached the peer by another way (the kernel
    /// wrote them straight into its pipe, see [`DataBody::tee_rest`]).
    pub fn sent_around(&mut self, n: u64) {
        self.remaining = self.remaining.saturating_sub(n);
    }
}

impl<R, W> Drop for DataWriter<'_, R, W> {
    fn drop(&mut self) {
        if self.remaining > 0 {
            self.conn.broken = true;
        }
    }
}

#[cfg(test)]
#[path = "connection_tests.rs"]
mod tests;
