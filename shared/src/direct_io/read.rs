//! Sending a large object that is not in the page cache: read by direct
//! I/O into a few blocks on a thread of its own, while this thread writes
//! the block before to the output; see the parent module.
//!
//! (sendfile from the descriptor with `O_DIRECT` set would need no thread,
//! but it reads only as much as the pipe has room for, 32 KiB at a time
//! when the client drains it slowly, and a direct read that small costs
//! more than the copy: twice the CPU of this in the bench.)

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::fs::FileExt;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use super::{set_direct, Block, ALIGN, BLOCK, BLOCKS, DIRECT_FROM};

/// What [`send_uncached`] did.
#[derive(Debug)]
pub enum Sent {
    /// Nothing: the bytes are in the page cache (or the body is small, or
    /// the file system has no direct I/O); send them the ordinary way.
    Cached,
    /// All of them.
    Whole,
    /// `sent` bytes, then `error`; `None`: the file ended early.
    Failed { sent: u64, error: Option<io::Error> },
}

/// Sends `len` bytes of `file` from `pos` to `out` (blocking; waits while
/// a non-blocking `out` is full) by direct reads, when `len` is at least
/// [`DIRECT_FROM`] and most of them are not in the page cache. The
/// descriptor is left without `O_DIRECT`.
pub fn send_uncached(file: &File, pos: u64, len: u64, out: BorrowedFd<'_>) -> Sent {
    if len < DIRECT_FROM || in_page_cache(file, pos, len) || set_direct(file, true).is_err() {
        return Sent::Cached;
    }
    let sent = send_direct(file, pos, len, out);
    let _ = set_direct(file, false);
    sent
}

/// Whether most of `pos..pos + len` of `file` is in the page cache. A
/// kernel that cannot tell (before Linux 6.5) is taken to say yes, so the
/// bytes go by sendfile as they always did.
pub fn in_page_cache(file: &File, pos: u64, len: u64) -> bool {
    let Some(cached) = cached_pages(file, pos, len) else {
        return true;
    };
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .and_then(|p| u64::try_from(p).ok())
        .unwrap_or(4096);
    let pages = (pos + len).div_ceil(page) - pos / page;
    cached * 2 >= pages
}

/// `struct cachestat_range` of `<linux/mman.h>`.
#[repr(C)]
struct CachestatRange {
    off: u64,
    len: u64,
}

/// `struct cachestat` of `<linux/mman.h>`.
#[repr(C)]
#[derive(Default)]
struct Cachestat {
    nr_cache: u64,
    nr_dirty: u64,
    nr_writeback: u64,
    nr_evicted: u64,
    nr_recently_evicted: u64,
}

/// cachestat(2)'s number, the same on every architecture (it came after
/// their tables were unified); the libc crate has it for some only.
const SYS_CACHESTAT: nix::libc::c_long = 451;

/// How many pages of the range are in the page cache, by cachestat(2),
/// which only looks: a read that may not wait (`RWF_NOWAIT`) would start
/// reading ahead, so the next probe found the start cached. `None` when
/// the kernel has no cachestat.
#[allow(unsafe_code)]
fn cached_pages(file: &File, pos: u64, len: u64) -> Option<u64> {
    let range = CachestatRange { off: pos, len };
    let mut stat = Cachestat::default();
    // SAFETY: cachestat(2) on a descriptor `file` keeps open for the call;
    // it reads `range` and writes `stat`, both alive and laid out as the
    // kernel's structs, and touches no other memory.
    let rc = unsafe {
        nix::libc::syscall(
            SYS_CACHESTAT,
            file.as_raw_fd(),
            &range as *const CachestatRange,
            &mut stat as *mut Cachestat,
            0u32,
        )
    };
    (rc == 0).then_some(stat.nr_cache)
}

/// A block read from the file, or why not.
type Filled = (Block, io::Result<()>);

/// The pipeline of [`send_uncached`], on a descriptor with `O_DIRECT` set.
fn send_direct(file: &File, pos: u64, len: u64, out: BorrowedFd<'_>) -> Sent {
    let end = pos + len;
    std::thread::scope(|scope| {
        let (filled_tx, filled) = sync_channel::<Filled>(BLOCKS);
        let (free, free_rx) = sync_channel::<Block>(BLOCKS);
        for _ in 0..BLOCKS {
            let _ = free.send(Block::new());
        }
        let reader = std::thread::Builder::new()
            .name("store-direct-read".into())
            .spawn_scoped(scope, move || {
                read_blocks(file, pos, end, &free_rx, &filled_tx)
            });
        if reader.is_err() {
            return Sent::Failed {
                sent: 0,
                error: Some(io::Error::other("no thread for the direct read")),
            };
        }
        let mut sent = 0u64;
        for (block, read) in filled {
            if let Err(e) = read.and_then(|()| write_all(out, block.bytes(block.from, block.to))) {
                return Sent::Failed {
                    sent,
                    error: Some(e),
                };
            }
            sent += (block.to - block.from) as u64;
            // Back for the next read; the reader may be done already.
            let _ = free.send(block);
        }
        // The reader ends at the range's end, at the file's end or at an
        // error, and when this side returns (its channels are gone).
        if sent == len {
            Sent::Whole
        } else {
            Sent::Failed { sent, error: None }
        }
    })
}

/// The reader thread: the aligned blocks around `pos..end`, each marked
/// with the part of it that is to be sent.
fn read_blocks(
    file: &File,
    pos: u64,
    end: u64,
    free: &Receiver<Block>,
    filled: &SyncSender<Filled>,
) {
    let mut at = pos - pos % ALIGN as u64;
    let mut cached = false;
    while at < end {
        let Ok(mut block) = free.recv() else { return };
        let want = usize::try_from((end - at).next_multiple_of(ALIGN as u64))
            .unwrap_or(BLOCK)
            .min(BLOCK);
        let read = read_block(file, &mut block, at, want, &mut cached);
        let got = *read.as_ref().unwrap_or(&0);
        block.start = at;
        block.from = usize::try_from(pos.saturating_sub(at))
            .unwrap_or(0)
            .min(got);
        block.to = usize::try_from(end - at).unwrap_or(got).min(got);
        let last = read.is_err() || got < want;
        if filled.send((block, read.map(drop))).is_err() || last {
            return;
        }
        at += got as u64;
    }
}

/// Fills `block` with the file's bytes from `at` (aligned), `want` of
/// them or up to the file's end. A direct read refused (`EINVAL`: the file
/// system takes none after all) is read through the page cache, and so
/// is everything after it.
fn read_block(
    file: &File,
    block: &mut Block,
    at: u64,
    want: usize,
    cached: &mut bool,
) -> io::Result<usize> {
    let mut got = 0;
    while got < want {
        let buf = block.bytes_mut(got, want);
        match file.read_at(buf, at + got as u64) {
            Ok(0) => break,
            // A short direct read ends where the file does; a next one
            // from there, unaligned, would fail.
            Ok(n) if !*cached && n % ALIGN != 0 => {
                got += n;
                break;
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.raw_os_error() == Some(nix::libc::EINVAL) && !*cached => {
                set_direct(file, false)?;
                *cached = true;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// All of `buf` to `out`, waiting for room when `out` is non-blocking.
fn write_all(out: BorrowedFd<'_>, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        match nix::unistd::write(out, buf) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => buf = &buf[n..],
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) => {
                match poll(
                    &mut [PollFd::new(out.as_fd(), PollFlags::POLLOUT)],
                    PollTimeout::NONE,
                ) {
                    Ok(_) | Err(Errno::EINTR) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::fd::OwnedFd;

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    /// A file of `body`, and a descriptor of it with `O_DIRECT` set.
    fn direct_file(body: &[u8]) -> (tempfile::TempDir, File) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("object");
        std::fs::write(&path, body).expect("write");
        let file = File::open(&path).expect("open");
        set_direct(&file, true).expect("this file system takes O_DIRECT");
        (dir, file)
    }

    /// What `send_direct` puts into a pipe, read on another thread.
    fn through_pipe(file: &File, pos: u64, len: u64) -> (Sent, Vec<u8>) {
        let (rd, wr): (OwnedFd, OwnedFd) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe");
        let drain = std::thread::spawn(move || {
            let mut got = Vec::new();
            File::from(rd).read_to_end(&mut got).expect("read pipe");
            got
        });
        let sent = send_direct(file, pos, len, wr.as_fd());
        drop(wr);
        (sent, drain.join().expect("drain"))
    }

    #[test]
    fn a_range_from_an_unaligned_offset_arrives_whole() {
        let body = pattern(3 * BLOCK + 1000);
        let (_dir, file) = direct_file(&body);
        let (pos, len) = (5000u64, (2 * BLOCK + 3333) as u64);
        let (sent, got) = through_pipe(&file, pos, len);
        assert!(matches!(sent, Sent::Whole), "{sent:?}");
        assert!(
            got == body[pos as usize..(pos + len) as usize],
            "bytes differ"
        );
    }

    #[test]
    fn to_the_files_unaligned_end() {
        let body = pattern(2 * BLOCK + 77);
        let (_dir, file) = direct_file(&body);
        let (sent, got) = through_pipe(&file, 0, body.len() as u64);
        assert!(matches!(sent, Sent::Whole), "{sent:?}");
        assert!(got == body, "bytes differ");
    }

    #[test]
    fn a_file_shorter_than_asked_fails_with_what_it_had() {
        let body = pattern(BLOCK + 10);
        let (_dir, file) = direct_file(&body);
        let (sent, got) = through_pipe(&file, 0, 2 * BLOCK as u64);
        match sent {
            Sent::Failed { sent, error: None } => assert_eq!(sent, body.len() as u64),
            other => panic!("{other:?}"),
        }
        assert!(got == body, "bytes differ");
    }

    #[test]
    fn a_reader_gone_fails_the_send() {
        let body = pattern(4 * BLOCK);
        let (_dir, file) = direct_file(&body);
        let (rd, wr): (OwnedFd, OwnedFd) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe");
        // Rust programs ignore SIGPIPE: the write fails with EPIPE.
        drop(rd);
        match send_direct(&file, 0, body.len() as u64, wr.as_fd()) {
            Sent::Failed {
                sent: 0,
                error: Some(e),
            } => assert_eq!(e.raw_os_error(), Some(nix::libc::EPIPE)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn asking_does_not_bring_bytes_into_the_cache() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("object");
        let file = std::sync::Arc::new(
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&path)
                .expect("open"),
        );
        let mut w = super::super::Writer::start(file.clone(), 0).expect("direct");
        w.write_all(&pattern(4 * BLOCK)).expect("write");
        w.flush().expect("flush");
        drop(w);
        let len = 4 * BLOCK as u64;
        assert_eq!(
            cached_pages(&file, 0, len),
            Some(0),
            "written directly, nothing cached"
        );
        assert!(!in_page_cache(&file, 0, len));
        assert!(
            !in_page_cache(&file, 0, len),
            "the first question cached some"
        );
        let mut buf = vec![0u8; 3 * BLOCK];
        file.read_at(&mut buf, 0).expect("read");
        assert!(
            in_page_cache(&file, 0, len),
            "three quarters read, the range counts as cached"
        );
    }

    #[test]
    fn bytes_just_written_through_the_cache_are_sent_from_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("object");
        std::fs::write(&path, pattern(DIRECT_FROM as usize)).expect("write");
        let file = File::open(&path).expect("open");
        assert!(in_page_cache(&file, 0, DIRECT_FROM));
        let (rd, wr): (OwnedFd, OwnedFd) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe");
        drop(rd);
        assert!(matches!(
            send_uncached(&file, 0, DIRECT_FROM, wr.as_fd()),
            Sent::Cached
        ));
    }
}
