//! Bodies moved by the kernel rather than through our buffers: sendfile
//! from an object file to the peer, splice from a node's pipe to the peer,
//! splice from the peer to a node's pipe, and tee from the peer to
//! several nodes' pipes (a cluster's fan-out).
//!
//! Each needs the descriptor under the async pipe. Bytes that already left
//! a descriptor (in our read buffer, or read ahead by a reader thread) go
//! first, the ordinary way; only what is still in the descriptor is
//! spliced, so the byte order on the wire never changes.

use std::os::fd::OwnedFd;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::{ConnError, Connection, DataBody, DataWriter};
use crate::p2p::codec;
use crate::p2p::message::Message;
use crate::p2p::tee::{self, TeeOut};
use crate::p2p::zerocopy::{self, KernelCopy, SpliceStop};
use crate::threadio::ReadGate;

/// The descriptor a connection's reader reads, and the gate that keeps
/// the reader's thread off it while a body is spliced.
pub(super) struct SpliceInput {
    fd: OwnedFd,
    gate: ReadGate,
}

/// Opens the gate again however the splice ended.
struct Reopen(ReadGate);

impl Drop for Reopen {
    fn drop(&mut self) {
        self.0.resume();
    }
}

impl<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> Connection<R, W> {
    /// Lets [`Self::send_file`] write bodies straight from a file to `fd`,
    /// the descriptor `writer` itself ends in (for stdout, a duplicate of
    /// it). Safe only when `writer` holds nothing back once flushed.
    pub fn with_sendfile(mut self, fd: OwnedFd) -> Self {
        self.sendfile_to = Some(fd);
        self
    }

    /// Lets [`Self::relay_data_spliced`] take bodies straight from `fd`,
    /// the descriptor `reader` reads (for stdin, a duplicate of it), with
    /// `gate` parking the reader's thread meanwhile.
    pub fn with_splice_input(mut self, fd: OwnedFd, gate: ReadGate) -> Self {
        self.splice_from = Some(SpliceInput { fd, gate });
        self
    }

    /// Send `DATA len` and `len` bytes of `file` from its current position,
    /// moved by the kernel (sendfile) rather than through our buffers.
    /// Without a descriptor for it, the file is handed to an in-process
    /// peer that takes files ([`Self::with_file_handoff`]); else this
    /// returns `Ok(false)`, having sent nothing, so the caller sends the
    /// body itself. If the kernel cannot do it for this pair (`EINVAL`),
    /// the body is copied the ordinary way after all.
    pub async fn send_file(&mut self, len: u64, file: std::fs::File) -> Result<bool, ConnError> {
        let Some(out) = self.sendfile_to.as_ref().and_then(|fd| fd.try_clone().ok()) else {
            return self.hand_file(len, file).await;
        };
        self.check()?;
        self.write_header(len, &[]).await?;
        let moved = tokio::task::spawn_blocking(move || {
            zerocopy::send_file(&out, &file, len).map(|()| file)
        })
        .await;
        match moved {
            Ok(Ok(_)) => Ok(true),
            Ok(Err(KernelCopy::Unsupported(file))) => {
                let mut body = tokio::fs::File::from_std(file).take(len);
                let copied = tokio::io::copy(&mut body, &mut self.writer).await;
                match copied {
                    Ok(n) if n == len => match self.writer.flush().await {
                        Ok(()) => Ok(true),
                        Err(e) => self.fail(ConnError::Io(e)),
                    },
                    Ok(n) => self.fail(ConnError::ShortBody {
                        expected: len,
                        sent: n,
                    }),
                    Err(e) => self.fail(ConnError::Body(e)),
                }
            }
            Ok(Err(KernelCopy::Failed { sent, error })) => self.fail(match error {
                Some(e) => ConnError::Io(e),
                None => ConnError::ShortBody {
                    expected: len,
                    sent,
                },
            }),
            Err(join) => self.fail(ConnError::Io(std::io::Error::other(join.to_string()))),
        }
    }

    /// `DATA len` and the start of its body, flushed: everything before
    /// the kernel's part must have left the writer first.
    pub(super) async fn write_header(&mut self, len: u64, head: &[u8]) -> Result<(), ConnError> {
        self.out.clear();
        codec::encode(&Message::Data(len), &mut self.out);
        self.out.extend_from_slice(head);
        self.write_out().await
    }

    /// Whether [`Self::send_file`] and [`Self::send_spliced`] can use the
    /// kernel here.
    pub fn zero_copy(&self) -> bool {
        self.sendfile_to.is_some() && !self.broken
    }

    /// Whether [`Self::relay_data_spliced`] can use the kernel here.
    pub fn splices_input(&self) -> bool {
        self.splice_from.is_some() && !self.broken
    }

    /// Up to `max` bytes already read from the peer and not yet used,
    /// taken out (the start of a body about to be spliced from the peer's
    /// pipe: those bytes left it already).
    pub fn take_buffered(&mut self, max: u64) -> Vec<u8> {
        let n = usize::try_from(max)
            .unwrap_or(usize::MAX)
            .min(self.end - self.start);
        let taken = self.buf[self.start..self.start + n].to_vec();
        self.consume(n);
        taken
    }

    /// Send `DATA len`: `head`, then the rest of the body straight from the
    /// pipe `from` (a proxied node's output) by splice(2), never through
    /// our buffers. `Ok(false)`, having sent nothing, unless
    /// [`Self::zero_copy`]. The pipe ending early breaks this connection
    /// (the peer can no longer be given a whole body).
    pub async fn send_spliced(
        &mut self,
        len: u64,
        head: Vec<u8>,
        from: OwnedFd,
    ) -> Result<bool, ConnError> {
        let Some(out) = self.sendfile_to.as_ref().and_then(|fd| fd.try_clone().ok()) else {
            return Ok(false);
        };
        self.check()?;
        self.write_header(len, &head).await?;
        let rest = len.saturating_sub(head.len() as u64);
        let moved =
            tokio::task::spawn_blocking(move || zerocopy::splice_all(&from, &out, rest)).await;
        let (sent, stop) = match moved {
            Ok(Ok(())) => return Ok(true),
            Ok(Err(failed)) => failed,
            Err(join) => return self.fail(ConnError::Io(std::io::Error::other(join.to_string()))),
        };
        self.fail(match stop {
            SpliceStop::InputEnded => ConnError::ShortBody {
                expected: len,
                sent: head.len() as u64 + sent,
            },
            SpliceStop::Input(e) | SpliceStop::Output(e) => ConnError::Io(e),
            SpliceStop::Unsupported => ConnError::Io(std::io::Error::other(
                "splice is not supported between these descriptors",
            )),
        })
    }

    /// [`Self::relay_data_to`], for a `to` whose writer ends in the pipe
    /// `pipe` (a proxied node's input): what has not yet left our
    /// descriptor is spliced from it into the pipe by the kernel. Without
    /// a descriptor ([`Self::splices_input`]) the body is copied. Same
    /// outcomes: a failing `to` is [`ConnError::Relay`] with this
    /// connection read to the body's end and still in step.
    pub async fn relay_data_spliced<R2, W2>(
        &mut self,
        len: u64,
        to: &mut Connection<R2, W2>,
        pipe: OwnedFd,
    ) -> Result<(), ConnError>
    where
        R2: AsyncRead + Unpin,
        W2: AsyncWrite + Unpin,
    {
        let input = match &self.splice_from {
            Some(s) if !to.is_broken() => s.fd.try_clone().ok().map(|fd| (fd, s.gate.clone())),
            _ => None,
        };
        let Some((fd, gate)) = input else {
            return self.relay_data_to(len, to).await;
        };
        self.check()?;
        let mut writer = match to.start_data(len).await {
            Ok(w) => w,
            Err(e) => return self.drain_after(len, len, e).await,
        };
        // Pause only while the descriptor still owes bytes of this body:
        // a pause waits for the read in flight, and a peer that has sent
        // the whole body may say nothing more until we answer (protocol
        // version 0 sends nothing after a body).
        let have = (self.end - self.start) as u64 + gate.held();
        if have >= len {
            return self.copy_body(len, len, writer).await;
        }
        gate.pause().await;
        let reopen = Reopen(gate);
        let mut failed = None;
        let mut remaining = self
            .pass_buffered(len, &reopen.0, &mut writer, &mut failed)
            .await?;
        if remaining == 0 && failed.is_none() {
            return writer
                .finish()
                .await
                .map_err(|e| ConnError::Relay(Box::new(e)));
        }
        if failed.is_none() {
            failed = writer.flush_now().await.err();
        }
        if let Some(e) = failed {
            drop(reopen);
            drop(writer);
            return self.drain_after(len, remaining, e).await;
        }
        let moved =
            tokio::task::spawn_blocking(move || zerocopy::splice_all(&fd, &pipe, remaining))
                .await
                .unwrap_or_else(|join| {
                    Err((
                        0,
                        SpliceStop::Input(std::io::Error::other(join.to_string())),
                    ))
                });
        // The reader's thread may read again: nothing is left for the
        // kernel, or the rest comes the ordinary way.
        drop(reopen);
        let (sent, stop) = match moved {
            Ok(()) => {
                writer.remaining = 0;
                return writer
                    .finish()
                    .await
                    .map_err(|e| ConnError::Relay(Box::new(e)));
            }
            Err(failed) => failed,
        };
        writer.remaining -= sent;
        remaining -= sent;
        match stop {
            SpliceStop::Unsupported => self.copy_body(len, remaining, writer).await,
            SpliceStop::InputEnded => self.fail(ConnError::ShortData {
                expected: len,
                received: len - remaining,
            }),
            SpliceStop::Input(e) => self.fail(ConnError::Io(e)),
            SpliceStop::Output(e) => {
                writer.conn.broken = true;
                drop(writer);
                self.drain_after(len, remaining, ConnError::Io(e)).await
            }
        }
    }

    /// With the reader parked: hand what was already read of a `len`-byte
    /// body to `writer`, stopping where the reader would have to wait.
    /// Returns how much of the body is still in the descriptor. The first
    /// error of `writer` goes to `failed`; the bytes are still used up.
    async fn pass_buffered<R2, W2>(
        &mut self,
        len: u64,
        gate: &ReadGate,
        writer: &mut DataWriter<'_, R2, W2>,
        failed: &mut Option<ConnError>,
    ) -> Result<u64, ConnError>
    where
        R2: AsyncRead + Unpin,
        W2: AsyncWrite + Unpin,
    {
        let mut remaining = len;
        while remaining > 0 {
            if self.start == self.end {
                if gate.held() == 0 {
                    break;
                }
                if self.fill().await? == 0 {
                    return self.fail(ConnError::ShortData {
                        expected: len,
                        received: len - remaining,
                    });
                }
            }
            let take =
                (self.end - self.start).min(usize::try_from(remaining).unwrap_or(usize::MAX));
            let at = self.start;
            self.consume(take);
            remaining -= take as u64;
            if failed.is_none() {
                *failed = writer.write_chunk(&self.buf[at..at + take]).await.err();
            }
        }
        Ok(remaining)
    }
}

/// The input descriptor of a body being received, its reader parked
/// until this is dropped (see [`DataBody::kernel_input`]).
pub struct KernelInput {
    fd: OwnedFd,
    reopen: Reopen,
}

/// How [`DataBody::tee_rest`] ended.
pub enum TeeRest {
    /// The rest of the body went to the pipes: what each got.
    Done(Vec<TeeOut>),
    /// The kernel cannot tee these descriptors; nothing was taken, so the
    /// rest comes by [`DataBody::next_chunk`].
    Unsupported,
}

impl<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> DataBody<'_, R, W> {
    /// For a body the kernel is to take where it is still in the
    /// connection's input descriptor: parks the reader's thread and gives
    /// the descriptor. `None` when this connection has none, or already
    /// read the whole body ([`Self::next_chunk`] then).
    pub async fn kernel_input(&mut self) -> Option<KernelInput> {
        let input = self
            .conn
            .splice_from
            .as_ref()
            .filter(|_| !self.conn.broken)?;
        let (fd, gate) = (input.fd.try_clone().ok()?, input.gate.clone());
        // As in relay_data_spliced: pause only while the descriptor still
        // owes bytes of this body.
        let have = (self.conn.end - self.conn.start) as u64 + gate.held();
        if have >= self.remaining {
            return None;
        }
        gate.pause().await;
        Some(KernelInput {
            fd,
            reopen: Reopen(gate),
        })
    }

    /// With the reader parked: the next piece that already left the
    /// descriptor, `None` once the rest is only in the descriptor.
    pub async fn next_buffered(&mut self, input: &KernelInput) -> Result<Option<&[u8]>, ConnError> {
        if self.conn.start == self.conn.end && input.reopen.0.held() == 0 {
            return Ok(None);
        }
        self.next_chunk().await
    }

    /// The rest of the body, from the descriptor into every pipe of
    /// `outs` (tee, then splice into the last: no byte through our
    /// buffers); the reader's thread goes on afterwards. An output that
    /// fails drops out and the others go on; the input failing or ending
    /// early breaks the connection.
    pub async fn tee_rest(
        &mut self,
        input: KernelInput,
        outs: Vec<OwnedFd>,
    ) -> Result<TeeRest, ConnError> {
        let KernelInput { fd, reopen } = input;
        let len = self.remaining;
        let moved = tokio::task::spawn_blocking(move || tee::tee_all(&fd, &outs, len))
            .await
            .unwrap_or_else(|join| {
                let e = std::io::Error::other(join.to_string());
                Err((0, SpliceStop::Input(e)))
            });
        drop(reopen);
        let (taken, stop) = match moved {
            Ok(got) => {
                self.remaining = 0;
                return Ok(TeeRest::Done(got));
            }
            Err(failed) => failed,
        };
        self.remaining -= taken;
        let received = self.expected - self.remaining;
        let expected = self.expected;
        match stop {
            SpliceStop::Unsupported => Ok(TeeRest::Unsupported),
            SpliceStop::InputEnded => self.conn.fail(ConnError::ShortData { expected, received }),
            SpliceStop::Input(e) | SpliceStop::Output(e) => self.conn.fail(ConnError::Io(e)),
        }
    }
}

impl<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> DataWriter<'_, R, W> {
    /// Flush what was written so far, before the kernel adds to it.
    async fn flush_now(&mut self) -> Result<(), ConnError> {
        self.conn.check()?;
        if let Err(e) = self.conn.writer.flush().await {
            return self.conn.fail(ConnError::Io(e));
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "kernel_tests.rs"]
mod tests;
