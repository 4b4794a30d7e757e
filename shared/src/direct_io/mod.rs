//! Large objects move between the disk and our buffers by direct I/O
//! (`O_DIRECT`), past the page cache: a PUT's body is written so
//! ([`write`]), and a GET sends so an object that is not in the cache
//! ([`read`]).
//!
//! Written through the page cache, a 300 MB object costs its pages and one
//! buffer head per 4 KiB block: about 65 ms of CPU to write here, a
//! writeback that the `fsync` before the rename then waits for, and 15 to
//! 20 ms more to free them all when the object is dropped (a drop's
//! largest cost). Written directly, the bytes leave our buffer for the
//! device while the next ones arrive, the `fsync` finds nothing dirty, and
//! an unlink frees only the blocks: about 13 ms to write and 0.5 ms to
//! unlink on this machine (README, "Direct I/O for large objects"). Object
//! stores that keep large objects (MinIO, Ceph's BlueStore) write them the
//! same way.
//!
//! Such an object is then not in the page cache. Read into the cache by
//! sendfile, pages this virtual machine has not touched lately cost up to
//! 0.8 s of CPU per 300 MB, mostly in the reader of the pipe; read
//! directly into a few blocks that are used again and written to the
//! pipe, 0.1 s (README, "Direct I/O for large objects"). An object that is
//! in the cache (written by git-annex, read lately) is sent from it by
//! sendfile.
//!
//! Direct I/O needs offsets, lengths and memory aligned to the device's
//! block; a file system that refuses it gets the page cache, as before.

use std::fs::File;
use std::io;

use nix::fcntl::{fcntl, FcntlArg, OFlag};

pub(crate) mod read;
pub(crate) mod write;

pub use read::{in_page_cache, send_uncached, Sent};
pub(crate) use write::Writer;

/// Objects from this size on are written, and when not cached read, by
/// direct I/O: below it the page cache costs less than a thread and the
/// blocks.
pub const DIRECT_FROM: u64 = 16 * 1024 * 1024;

/// One block of a body, and the file range it holds.
const BLOCK: usize = 1 << 20;
/// Blocks per transfer: one filled or sent while the others are on
/// their way to or from the disk.
const BLOCKS: usize = 3;
/// What direct I/O is aligned to: the largest logical block size of
/// common devices (512 or 4096 bytes), and a page.
const ALIGN: usize = 4096;

/// `mem[off..off + BLOCK]`, aligned to [`ALIGN`], holds the file's bytes
/// from `start`; the ones that count are `from..to` of it.
struct Block {
    mem: Vec<u8>,
    off: usize,
    start: u64,
    from: usize,
    to: usize,
    /// The last block a writer gets before a flush: the descriptor is left
    /// without `O_DIRECT` after it, for what reads or syncs the file next.
    release: bool,
}

impl Block {
    fn new() -> Block {
        let mem = vec![0u8; BLOCK + ALIGN];
        let off = mem.as_ptr().align_offset(ALIGN);
        Block {
            mem,
            off,
            start: 0,
            from: 0,
            to: 0,
            release: false,
        }
    }

    fn bytes(&self, from: usize, to: usize) -> &[u8] {
        &self.mem[self.off + from..self.off + to]
    }

    fn bytes_mut(&mut self, from: usize, to: usize) -> &mut [u8] {
        &mut self.mem[self.off + from..self.off + to]
    }
}

fn gone() -> io::Error {
    io::Error::other("the direct I/O thread is gone")
}

/// Sets or clears `O_DIRECT` on the open file description.
pub fn set_direct(file: &File, on: bool) -> io::Result<()> {
    let flags = OFlag::from_bits_truncate(fcntl(file, FcntlArg::F_GETFL)?);
    let wanted = if on {
        flags | OFlag::O_DIRECT
    } else {
        flags - OFlag::O_DIRECT
    };
    if wanted != flags {
        fcntl(file, FcntlArg::F_SETFL(wanted))?;
    }
    Ok(())
}
