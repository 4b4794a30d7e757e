//! One body from a pipe into several pipes without passing through our
//! buffers: tee(2) duplicates the input's pages into every output but
//! the last, then splice(2) moves them into the last one, which takes
//! them out of the input. A cluster gateway feeds nodes behind pipes
//! (ssh, a child `git-annex-shell`) this way, so no byte is copied once
//! per node in user space.
//!
//! tee always duplicates from the front of the input, so an output that
//! takes only part of a step (its pipe filled up) cannot be given the
//! rest by tee again; that rare tail goes the ordinary way, read once
//! from the input and written to the outputs that lack it. Runs on a
//! blocking thread: the input (our stdin) is a blocking descriptor; the
//! outputs may be non-blocking and are waited for with poll.

use std::io;
use std::os::fd::{AsFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::SpliceFFlags;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use super::zerocopy::{wait_ready, SpliceStop};

/// The most moved in one step: a pipe's worth of our grown pipes.
const STEP: usize = 1 << 20;

/// What one output of [`tee_all`] got.
#[derive(Debug, Default)]
pub struct TeeOut {
    /// Bytes written to it.
    pub sent: u64,
    /// Why it stopped taking bytes (its reader went away); the others
    /// went on without it.
    pub error: Option<io::Error>,
}

/// How one output took its share of a step.
enum Took {
    All,
    /// Its pipe filled after this many bytes of the step.
    Part(usize),
    Failed(io::Error),
}

/// `len` bytes from the pipe `from` into every pipe of `outs`. Each
/// output's outcome; `Err` when the input failed or ended early (with the
/// bytes taken from it), or when the kernel cannot tee between these
/// descriptors (nothing taken then).
pub(super) fn tee_all(
    from: &OwnedFd,
    outs: &[OwnedFd],
    len: u64,
) -> Result<Vec<TeeOut>, (u64, SpliceStop)> {
    // A step moves at most what the input pipe holds: grown to STEP, a
    // step wakes each node once per MiB rather than per 64 KiB (refused
    // without permission: no harm; the pipe is the client's and ours).
    let _ = nix::fcntl::fcntl(from, nix::fcntl::FcntlArg::F_SETPIPE_SZ(STEP as i32));
    let mut got: Vec<TeeOut> = outs.iter().map(|_| TeeOut::default()).collect();
    let mut taken = 0u64;
    let mut spare = Vec::new();
    while taken < len {
        let want = usize::try_from(len - taken).map_or(STEP, |r| r.min(STEP));
        let live: Vec<usize> = (0..outs.len())
            .filter(|&i| got[i].error.is_none())
            .collect();
        let Some((&last, teed)) = live.split_last() else {
            discard(from, len - taken, &mut spare).map_err(|e| (taken, e))?;
            return Ok(got);
        };
        let n = match step(from, outs, teed, last, want, &mut got, &mut spare) {
            Ok(n) => n,
            // Unsupported, but some output has bytes already: too late
            // for the caller to copy instead.
            Err(SpliceStop::Unsupported) if taken > 0 || got.iter().any(|g| g.sent > 0) => {
                let e = io::Error::from(Errno::EINVAL);
                return Err((taken, SpliceStop::Input(e)));
            }
            Err(e) => return Err((taken, e)),
        };
        taken += n as u64;
    }
    Ok(got)
}

/// One step: up to `want` bytes to the outputs `teed` (by tee) and `last`
/// (by splice, which takes them from the input). Returns how many bytes
/// the step took from the input.
fn step(
    from: &OwnedFd,
    outs: &[OwnedFd],
    teed: &[usize],
    last: usize,
    want: usize,
    got: &mut [TeeOut],
    spare: &mut Vec<u8>,
) -> Result<usize, SpliceStop> {
    let Some((&first, others)) = teed.split_first() else {
        // One output left: splice alone.
        let n = splice_some(from, &outs[last], want, got, last)?;
        return Ok(n);
    };
    let n = match tee_some(from, &outs[first], want)? {
        Ok(n) => n,
        Err(e) => {
            got[first].error = Some(e);
            return Ok(0);
        }
    };
    got[first].sent += n as u64;
    let mut short: Vec<(usize, usize)> = Vec::new();
    for &i in others {
        match tee_exact(from, &outs[i], n)? {
            Took::All => got[i].sent += n as u64,
            Took::Part(k) => {
                got[i].sent += k as u64;
                short.push((i, k));
            }
            Took::Failed(e) => got[i].error = Some(e),
        }
    }
    if short.is_empty() {
        splice_exact(from, &outs[last], n, got, last, spare)?;
        return Ok(n);
    }
    // Someone is short: the step's bytes once through our buffer.
    spare.resize(n, 0);
    read_exact(from, &mut spare[..n])?;
    short.push((last, 0));
    for (i, k) in short {
        match write_all(&outs[i], &spare[k..n]) {
            Ok(()) => got[i].sent += (n - k) as u64,
            Err(e) => got[i].error = Some(e),
        }
    }
    Ok(n)
}

/// tee up to `want` bytes into `out`, waiting for data or room: the
/// count, or the output's failure inside `Ok` (the input is fine).
fn tee_some(
    from: &OwnedFd,
    out: &OwnedFd,
    want: usize,
) -> Result<Result<usize, io::Error>, SpliceStop> {
    loop {
        match nix::fcntl::tee(from, out, want, SpliceFFlags::empty()) {
            Ok(0) => return Err(SpliceStop::InputEnded),
            Ok(n) => return Ok(Ok(n)),
            Err(Errno::EINTR) => {}
            // Whichever side held it up: the input may be non-blocking too.
            Err(Errno::EAGAIN) => wait_ready(from, out).map_err(|e| SpliceStop::Input(e.into()))?,
            Err(Errno::EINVAL) => return Err(SpliceStop::Unsupported),
            Err(e @ Errno::EPIPE) => return Ok(Err(e.into())),
            Err(e) => return Err(SpliceStop::Input(e.into())),
        }
    }
}

/// tee `n` bytes (the input holds them) into `out`.
fn tee_exact(from: &OwnedFd, out: &OwnedFd, n: usize) -> Result<Took, SpliceStop> {
    Ok(match tee_some(from, out, n)? {
        Ok(k) if k == n => Took::All,
        Ok(k) => Took::Part(k),
        Err(e) => Took::Failed(e),
    })
}

/// splice up to `want` bytes into `out` (at least one): the count taken
/// from the input. An output that fails has one more byte-less step.
fn splice_some(
    from: &OwnedFd,
    out: &OwnedFd,
    want: usize,
    got: &mut [TeeOut],
    i: usize,
) -> Result<usize, SpliceStop> {
    let flags = SpliceFFlags::SPLICE_F_MOVE | SpliceFFlags::SPLICE_F_MORE;
    loop {
        match nix::fcntl::splice(from, None, out, None, want, flags) {
            Ok(0) => return Err(SpliceStop::InputEnded),
            Ok(n) => {
                got[i].sent += n as u64;
                return Ok(n);
            }
            Err(Errno::EINTR) => {}
            // Whichever side held it up: the input may be non-blocking too.
            Err(Errno::EAGAIN) => wait_ready(from, out).map_err(|e| SpliceStop::Input(e.into()))?,
            Err(Errno::EINVAL) => return Err(SpliceStop::Unsupported),
            Err(e @ Errno::EPIPE) => {
                got[i].error = Some(e.into());
                return Ok(0);
            }
            Err(e) => return Err(SpliceStop::Input(e.into())),
        }
    }
}

/// splice exactly `n` bytes (the input holds them) into `out`; if it
/// fails part way, the rest is still taken from the input.
fn splice_exact(
    from: &OwnedFd,
    out: &OwnedFd,
    n: usize,
    got: &mut [TeeOut],
    i: usize,
    spare: &mut Vec<u8>,
) -> Result<(), SpliceStop> {
    let mut left = n;
    while left > 0 {
        left -= splice_some(from, out, left, got, i)?;
        if got[i].error.is_some() {
            return discard(from, left as u64, spare);
        }
    }
    Ok(())
}

/// Take `len` bytes from the input and drop them.
fn discard(from: &OwnedFd, mut len: u64, spare: &mut Vec<u8>) -> Result<(), SpliceStop> {
    spare.resize(STEP.min(usize::try_from(len).unwrap_or(STEP)), 0);
    while len > 0 {
        let n = spare.len().min(usize::try_from(len).unwrap_or(usize::MAX));
        read_exact(from, &mut spare[..n])?;
        len -= n as u64;
    }
    Ok(())
}

fn read_exact(from: &OwnedFd, buf: &mut [u8]) -> Result<(), SpliceStop> {
    let mut at = 0;
    while at < buf.len() {
        match nix::unistd::read(from, &mut buf[at..]) {
            Ok(0) => return Err(SpliceStop::InputEnded),
            Ok(n) => at += n,
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) => {
                wait(from, PollFlags::POLLIN).map_err(|e| SpliceStop::Input(e.into()))?
            }
            Err(e) => return Err(SpliceStop::Input(e.into())),
        }
    }
    Ok(())
}

/// Write all of `buf` to a pipe that may be non-blocking.
fn write_all(out: &OwnedFd, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        match nix::unistd::write(out, buf) {
            Ok(n) => buf = &buf[n..],
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) => wait_room(out)?,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

fn wait_room(out: &OwnedFd) -> Result<(), Errno> {
    wait(out, PollFlags::POLLOUT)
}

fn wait(fd: &OwnedFd, flags: PollFlags) -> Result<(), Errno> {
    match poll(&mut [PollFd::new(fd.as_fd(), flags)], PollTimeout::NONE) {
        Ok(_) | Err(Errno::EINTR) => Ok(()),
        Err(e) => Err(e),
    }
}
