//! GET bodies from a file to a plain-HTTP socket by sendfile(2), with
//! hyper still framing the response.
//!
//! hyper owns the socket and writes what a body yields, so a file's part
//! of a body is yielded as *marker* bytes: slices of one static buffer
//! that is never read. The socket under hyper ([`Sendfile`]) knows a
//! slice of it by its address, and writes that many bytes of the file
//! the body armed ([`FileSlot::arm`]) by sendfile instead. hyper is told
//! to queue body chunks and write them by writev (`writev(true)`), never
//! to copy them into its own buffer, so a marker reaches the socket as
//! itself; chunk framing and headers around it go out as written.
//!
//! Only for plain TCP: TLS must encrypt every byte in user space, and
//! keeps reading the file into the body's chunks.

use std::fs::File;
use std::io::{self, IoSlice};
use std::os::fd::AsFd;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

/// The largest marker: one body chunk.
pub const MARK_LEN: usize = 1 << 20;

/// Never read or written: only its addresses mean something.
static MARKER: [u8; MARK_LEN] = [0; MARK_LEN];

/// `n` (≤ [`MARK_LEN`]) marker bytes, standing for the next `n` bytes of
/// the armed file.
pub fn marker(n: usize) -> Bytes {
    Bytes::from_static(&MARKER[..n])
}

fn is_marker(s: &[u8]) -> bool {
    let base = MARKER.as_ptr() as usize;
    let at = s.as_ptr() as usize;
    !s.is_empty() && at >= base && at + s.len() <= base + MARK_LEN
}

/// Which bytes of which file the markers of a connection's current
/// response stand for: armed by the body, used up by the socket.
#[derive(Clone, Default)]
pub struct FileSlot(Arc<Mutex<Option<Armed>>>);

struct Armed {
    file: Arc<File>,
    at: u64,
    left: u64,
}

impl FileSlot {
    /// The next `len` marker bytes on this connection are `file`'s from
    /// `at`. One response at a time per connection, so one file at a time.
    pub fn arm(&self, file: Arc<File>, at: u64, len: u64) {
        *self.lock() = Some(Armed {
            file,
            at,
            left: len,
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Armed>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A plain TCP socket that writes marker bytes from the armed file.
pub struct Sendfile {
    tcp: TcpStream,
    slot: FileSlot,
}

impl Sendfile {
    pub fn new(tcp: TcpStream, slot: FileSlot) -> Sendfile {
        Sendfile { tcp, slot }
    }

    /// Up to `n` bytes of the armed file to the socket.
    fn poll_send_file(&self, cx: &mut Context<'_>, n: usize) -> Poll<io::Result<usize>> {
        let mut slot = self.slot.lock();
        let Some(armed) = slot.as_mut() else {
            return Poll::Ready(Err(io::Error::other("a file body with no file armed")));
        };
        let want = usize::try_from(armed.left).unwrap_or(usize::MAX).min(n);
        if want == 0 {
            return Poll::Ready(Err(io::Error::other("a file body past its file's part")));
        }
        loop {
            ready!(self.tcp.poll_write_ready(cx))?;
            let sent = self.tcp.try_io(Interest::WRITABLE, || {
                let mut at = i64::try_from(armed.at).map_err(io::Error::other)?;
                let fd = self.tcp.as_fd();
                nix::sys::sendfile::sendfile64(fd, &*armed.file, Some(&mut at), want)
                    .map_err(io::Error::from)
            });
            match sent {
                Ok(0) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the content file ended early",
                    )))
                }
                Ok(k) => {
                    armed.at += k as u64;
                    armed.left -= k as u64;
                    if armed.left == 0 {
                        *slot = None;
                    }
                    return Poll::Ready(Ok(k));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncRead for Sendfile {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for Sendfile {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    /// What precedes the first marker goes out as it is; a marker at the
    /// front goes out from the file. Each call writes one or the other, and
    /// hyper calls again for the rest.
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let first = bufs.iter().position(|b| is_marker(b));
        let plain = &bufs[..first.unwrap_or(bufs.len())];
        match first {
            Some(i) if plain.iter().all(|b| b.is_empty()) => {
                let n = bufs[i].len();
                self.poll_send_file(cx, n)
            }
            _ => Pin::new(&mut self.tcp).poll_write_vectored(cx, plain),
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}
