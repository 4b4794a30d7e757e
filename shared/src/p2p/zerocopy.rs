//! Moving body bytes by the kernel instead of through our buffers:
//! sendfile(2) from an object file, splice(2) from a node's pipe. Both run
//! on a blocking thread (the output descriptor is blocking stdout).

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::SpliceFFlags;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

/// The most asked of the kernel in one call.
const STEP: u64 = 1 << 30;

/// Why the kernel did not move a whole body.
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
pub(super) fn send_file(out: &OwnedFd, file: &File, len: u64) -> Result<(), KernelCopy> {
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

/// `len` bytes from the pipe `from` (possibly non-blocking: waited on with
/// poll) to `out`, by splice(2), blocking.
pub(super) fn splice_all(from: &OwnedFd, out: &OwnedFd, len: u64) -> Result<(), KernelCopy> {
    let mut sent = 0u64;
    let flags = SpliceFFlags::SPLICE_F_MOVE | SpliceFFlags::SPLICE_F_MORE;
    while sent < len {
        let want = usize::try_from((len - sent).min(STEP)).unwrap_or(1 << 30);
        match nix::fcntl::splice(from, None, out, None, want, flags) {
            Ok(0) => return Err(KernelCopy::Failed { sent, error: None }),
            Ok(n) => sent += n as u64,
            Err(Errno::EINTR) => continue,
            Err(Errno::EAGAIN) => {
                let mut fds = [PollFd::new(from.as_fd(), PollFlags::POLLIN)];
                match poll(&mut fds, PollTimeout::NONE) {
                    Ok(_) | Err(Errno::EINTR) => continue,
                    Err(e) => {
                        return Err(KernelCopy::Failed {
                            sent,
                            error: Some(e.into()),
                        })
                    }
                }
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
