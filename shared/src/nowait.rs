//! A session's input read on the session's own thread where the kernel
//! can be asked not to wait: a pipe or a socket (sshd's pipes, a test's,
//! a socket handed to us), registered with the runtime's reactor and read
//! with `preadv2(RWF_NOWAIT)`.
//!
//! [`ThreadReader`] reads on a thread of its own and wakes the session for
//! every buffer: one futex wake and two thread switches per request, about
//! a fifth of a small-file session's CPU. Here the session's thread waits
//! in the reactor and reads itself, straight into the caller's buffer.
//!
//! The descriptor's flags are never changed. `O_NONBLOCK` belongs to the
//! open file description, which stdin shares with our parent (sshd, a
//! shell that ran us with a pipe, a test harness), often with our stdout
//! or stderr too: set, it would make their reads and writes fail with
//! `EAGAIN`, and a crash would leave it so. `RWF_NOWAIT` asks the same of
//! one read alone. A kernel that does not offer it for this descriptor
//! (`EOPNOTSUPP`: pipes before Linux 5.9) gets a [`ThreadReader`] instead,
//! at the first read, before any byte was taken. So does anything that is
//! neither a pipe nor a socket (a terminal, a regular file, `/dev/null`):
//! the reactor cannot wait for those, or must not change them.
//!
//! The [`ReadGate`] given with the reader parks a [`ThreadReader`]'s thread
//! while the kernel splices a body on from the same descriptor. A direct
//! reader needs no parking: it reads only when polled, and nobody polls it
//! while its connection is busy splicing; its gate stays open and counts
//! nothing held.

use std::fs::File;
use std::io::{self, IoSliceMut};
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use nix::sys::stat::{fstat, SFlag};
use rustix::io::{preadv2, Errno, ReadWriteFlags};
use tokio::io::unix::{AsyncFd, AsyncFdRegisterError};
use tokio::io::{AsyncRead, Interest, ReadBuf};

use crate::threadio::{ReadGate, ThreadReader, BUF};

/// Reads a session's input: directly when it can, else by a thread.
pub struct InputReader {
    how: How,
    gate: ReadGate,
}

enum How {
    Direct(AsyncFd<OwnedFd>),
    Thread(ThreadReader),
    /// Between the two, while a fallback is set up.
    Gone,
}

impl InputReader {
    /// A reader of `file` and the gate that parks it (see the module's
    /// documentation for which kind). Must be called within a tokio
    /// runtime with I/O enabled.
    pub fn new(file: File) -> io::Result<(InputReader, ReadGate)> {
        let gate = ReadGate::new();
        let how = if pollable(&file) {
            match register(OwnedFd::from(file)) {
                Ok(fd) => How::Direct(fd),
                // The reactor refused it: the thread reads it.
                Err(refused) => {
                    let (fd, e) = refused.into_parts();
                    tracing::debug!("input not taken by the reactor ({e}): reading it on a thread");
                    How::Thread(ThreadReader::start(File::from(fd), BUF, gate.clone())?)
                }
            }
        } else {
            How::Thread(ThreadReader::start(file, BUF, gate.clone())?)
        };
        Ok((
            InputReader {
                how,
                gate: gate.clone(),
            },
            gate,
        ))
    }

    /// Whether this reader reads on the caller's thread (no thread of its
    /// own).
    pub fn is_direct(&self) -> bool {
        matches!(self.how, How::Direct(_))
    }

    /// The kernel cannot read this descriptor without waiting: hand it to
    /// a thread that reads it blocking, parked by the same gate.
    fn fall_back(&mut self) -> io::Result<()> {
        let How::Direct(fd) = std::mem::replace(&mut self.how, How::Gone) else {
            return Ok(());
        };
        tracing::debug!("no RWF_NOWAIT reads of this input: reading it on a thread");
        let file = File::from(fd.into_inner());
        self.how = How::Thread(ThreadReader::start(file, BUF, self.gate.clone())?);
        Ok(())
    }
}

/// A pipe or a socket: what epoll can wait for and `RWF_NOWAIT` can read.
fn pollable(file: &File) -> bool {
    match fstat(file) {
        Ok(st) => {
            let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
            kind == SFlag::S_IFIFO || kind == SFlag::S_IFSOCK
        }
        Err(_) => false,
    }
}

/// `fd` joins the current runtime's reactor, waited for as readable.
///
/// The one `unsafe` here: tokio's registration asks that the descriptor
/// stay open, and the same description, for as long as the `AsyncFd`
/// holds it, which an `OwnedFd` it owns guarantees (nothing else can
/// close it, and it is never replaced).
#[allow(unsafe_code)]
fn register(fd: OwnedFd) -> Result<AsyncFd<OwnedFd>, AsyncFdRegisterError<OwnedFd>> {
    // SAFETY: `fd` is owned by the AsyncFd until it is dropped or taken
    // back with `into_inner`, so it stays open and the same description.
    unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
}

/// One read that takes what is there and never waits.
fn read_now(fd: &OwnedFd, into: &mut [u8]) -> Result<usize, Errno> {
    // Offset -1 (u64::MAX): read at the current position, as read(2).
    preadv2(
        fd,
        &mut [IoSliceMut::new(into)],
        u64::MAX,
        ReadWriteFlags::NOWAIT,
    )
}

impl AsyncRead for InputReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            let fd = match &mut this.how {
                How::Direct(fd) => fd,
                How::Thread(reader) => return Pin::new(reader).poll_read(cx, out),
                How::Gone => return Poll::Ready(Err(io::Error::other("input reader lost"))),
            };
            let mut ready = ready!(fd.poll_read_ready(cx))?;
            match read_now(ready.get_inner(), out.initialize_unfilled()) {
                Ok(n) => {
                    out.advance(n);
                    return Poll::Ready(Ok(()));
                }
                // Nothing there (the readiness was an old one): wait for
                // the next.
                Err(Errno::AGAIN) => ready.clear_ready(),
                Err(Errno::INTR) => {}
                Err(Errno::OPNOTSUPP) => {
                    drop(ready);
                    this.fall_back()?;
                }
                Err(e) => return Poll::Ready(Err(e.into())),
            }
        }
    }
}

#[cfg(test)]
#[path = "nowait_tests.rs"]
mod tests;
