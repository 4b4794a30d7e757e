//! Moving body bytes by the kernel instead of through our buffers:
//! sendfile(2) from an object file, splice(2) between a node's pipe and
//! our stdin or stdout. All run on a blocking thread (stdin and stdout
//! are blocking descriptors).

use std::fs::File;
use std::io::Seek;
use std::os::fd::{AsFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::SpliceFFlags;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::direct_io::{self, Sent};

/// The most asked of the kernel in one call.
const STEP: u64 = 1 << 30;

/// Why sendfile did not move a whole body.
pub(super) enum KernelCopy {
    /// Not for this pair of descriptors; nothing was sent.
    Unsupported(std::fs::File),
    /// Part was sent: the peer's stream is beyond repair. `None`: the file
    /// ended early.
    Failed {
        sent: u64,
        error: Option<std::io::Error>,
    },
}

/// `len` bytes from `file`'s position to `out`, by sendfile(2), blocking.
/// A large object not in the page cache is read by direct I/O instead
/// (`direct_io/read.rs`).
pub(super) fn send_file(out: &OwnedFd, file: &File, len: u64) -> Result<(), KernelCopy> {
    let mut reader = file;
    if let Ok(pos) = reader.stream_position() {
        match direct_io::send_uncached(file, pos, len, out.as_fd()) {
            Sent::Cached => {}
            Sent::Whole => return Ok(()),
            Sent::Failed { sent, error } => return Err(KernelCopy::Failed { sent, error }),
        }
    }
    let mut sent = 0u64;
    while sent < len {
        let want = usize::try_from((len - sent).min(STEP)).unwrap_or(1 << 30);
        match nix::sys::sendfile::sendfile64(out, file, None, want) {
            Ok(0) => return Err(KernelCopy::Failed { sent, error: None }),
            Ok(n) => sent += n as u64,
            Err(Errno::EINTR | Errno::EAGAIN) => continue,
            Err(Errno::EINVAL | Errno::ENOSYS) if sent == 0 => {
                return Err(KernelCopy::Unsupported(match file.try_clone() {
                    Ok(f) => f,
                    Err(e) => {
                        return Err(KernelCopy::Failed {
                            sent,
                            error: Some(e),
                        })
                    }
                }))
            }
            Err(e) => {
                return Err(KernelCopy::Failed {
                    sent,
                    error: Some(e.into()),
                })
            }
        }
    }
    Ok(())
}

/// Why a splice stopped short.
pub(super) enum SpliceStop {
    /// The kernel cannot splice between these two; nothing was moved.
    Unsupported,
    /// `from` reached its end.
    InputEnded,
    Input(std::io::Error),
    /// Writing to `out` failed (`EPIPE`: its reader is gone); what `from`
    /// still holds of the body was not taken.
    Output(std::io::Error),
}

/// `len` bytes from `from` to `out` by splice(2), blocking; one of them
/// must be a pipe. Either may be non-blocking: a side that is not ready is
/// waited for with poll. On failure, also how many bytes were moved.
pub(super) fn splice_all(from: &OwnedFd, out: &OwnedFd, len: u64) -> Result<(), (u64, SpliceStop)> {
    let mut sent = 0u64;
    let flags = SpliceFFlags::SPLICE_F_MOVE | SpliceFFlags::SPLICE_F_MORE;
    while sent < len {
        let want = usize::try_from((len - sent).min(STEP)).unwrap_or(1 << 30);
        let stop = match nix::fcntl::splice(from, None, out, None, want, flags) {
            Ok(0) => SpliceStop::InputEnded,
            Ok(n) => {
                sent += n as u64;
                continue;
            }
            Err(Errno::EINTR) => continue,
            Err(Errno::EAGAIN) => match wait_ready(from, out) {
                Ok(()) => continue,
                Err(e) => SpliceStop::Input(e.into()),
            },
            Err(Errno::EINVAL) if sent == 0 => SpliceStop::Unsupported,
            Err(e @ Errno::EPIPE) => SpliceStop::Output(e.into()),
            Err(e) => SpliceStop::Input(e.into()),
        };
        return Err((sent, stop));
    }
    Ok(())
}

/// After `EAGAIN`: wait for whichever side held the splice up. The output
/// is asked first, since a full output with input waiting would otherwise
/// have poll return at once, again and again.
pub(super) fn wait_ready(from: &OwnedFd, out: &OwnedFd) -> Result<(), Errno> {
    let mut room = [PollFd::new(out.as_fd(), PollFlags::POLLOUT)];
    let (fd, flags) = match poll(&mut room, PollTimeout::ZERO) {
        Ok(0) => (out.as_fd(), PollFlags::POLLOUT),
        Ok(_) => (from.as_fd(), PollFlags::POLLIN),
        Err(Errno::EINTR) => return Ok(()),
        Err(e) => return Err(e),
    };
    match poll(&mut [PollFd::new(fd, flags)], PollTimeout::NONE) {
        Ok(_) | Err(Errno::EINTR) => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, SeekFrom};

    /// A large body, from an offset, cached or not (this file system may
    /// keep it cached after the write): whole, and the descriptor left
    /// without `O_DIRECT`.
    #[test]
    fn a_large_file_arrives_whole_from_an_offset() {
        let body: Vec<u8> = (0..crate::direct_io::DIRECT_FROM as usize + 4077)
            .map(|i| (i % 251) as u8)
            .collect();
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("object");
        std::fs::write(&path, &body).expect("write");
        let mut file = File::open(&path).expect("open");
        file.seek(SeekFrom::Start(1000)).expect("seek");
        let (rd, wr) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe");
        let drain = std::thread::spawn(move || {
            let mut got = Vec::new();
            File::from(rd).read_to_end(&mut got).expect("read pipe");
            got
        });
        assert!(send_file(&wr, &file, body.len() as u64 - 1000).is_ok());
        drop(wr);
        assert!(drain.join().expect("drain") == body[1000..], "bytes differ");
        let flags = nix::fcntl::fcntl(&file, nix::fcntl::FcntlArg::F_GETFL).expect("getfl");
        assert_eq!(flags & nix::libc::O_DIRECT, 0, "O_DIRECT left set");
    }
}
