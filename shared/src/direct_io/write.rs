//! Writing a large body by direct I/O, from a thread of its own; see the
//! parent module.
//!
//! The body is copied into blocks, each full one handed to the writer
//! thread; at most [`BLOCKS`] exist, so a transfer holds at most that much
//! memory and the reader waits when the disk is slower than the sender. A
//! block's unaligned ends (a resume's first bytes, the body's last) go
//! through the page cache, on the same descriptor, whose `O_DIRECT` flag
//! the writer sets and clears.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use super::{gone, set_direct, Block, ALIGN, BLOCK, BLOCKS};

/// The writer's side: a block comes back with the result of writing it.
type Done = (Block, io::Result<()>);

/// Writes a file from some offset on, by direct I/O where it can; see the
/// module's comment. Bytes are on their way once [`Writer::write_all`]
/// returns and written once [`Writer::flush`] has.
pub(crate) struct Writer {
    current: Option<Block>,
    spare: Vec<Block>,
    made: usize,
    busy: usize,
    jobs: Option<SyncSender<Block>>,
    done: Receiver<Done>,
    worker: Option<JoinHandle<()>>,
    /// Where the next byte goes.
    pos: u64,
    /// The first write that failed; every later call reports it.
    failed: Option<(io::ErrorKind, String)>,
}

impl Writer {
    /// `None` when the file system refuses `O_DIRECT` or no thread can be
    /// started: the caller writes through the page cache.
    pub(crate) fn start(file: Arc<File>, pos: u64) -> Option<Writer> {
        // Tried once here, so a file system without direct I/O costs
        // nothing more (the writer sets it again when it needs it).
        set_direct(&file, true).ok()?;
        set_direct(&file, false).ok()?;
        let (jobs, inbox) = mpsc::sync_channel::<Block>(BLOCKS);
        let (outbox, done) = mpsc::sync_channel::<Done>(BLOCKS);
        let worker = std::thread::Builder::new()
            .name("store-direct".into())
            .spawn(move || write_blocks(&file, &inbox, &outbox))
            .ok()?;
        Some(Writer {
            current: None,
            spare: Vec::new(),
            made: 0,
            busy: 0,
            jobs: Some(jobs),
            done,
            worker: Some(worker),
            pos,
            failed: None,
        })
    }

    fn check(&self) -> io::Result<()> {
        match &self.failed {
            Some((kind, msg)) => Err(io::Error::new(*kind, msg.clone())),
            None => Ok(()),
        }
    }

    /// A block back from the writer, its failure kept.
    fn take_done(&mut self, done: Done) -> Block {
        self.busy -= 1;
        let (block, result) = done;
        if let (Err(e), None) = (result, &self.failed) {
            self.failed = Some((e.kind(), e.to_string()));
        }
        block
    }

    /// An empty block for the range holding `pos`: a spare one, a new one
    /// while fewer than [`BLOCKS`] exist, else the next the writer returns.
    fn block_at(&mut self, pos: u64) -> io::Result<Block> {
        let mut block = match self.spare.pop() {
            Some(b) => b,
            None if self.made < BLOCKS => {
                self.made += 1;
                Block::new()
            }
            None => {
                let done = self.done.recv().map_err(|_| gone())?;
                self.take_done(done)
            }
        };
        self.check()?;
        block.start = pos - pos % BLOCK as u64;
        block.from = (pos % BLOCK as u64) as usize;
        block.to = block.from;
        block.release = false;
        Ok(block)
    }

    fn send(&mut self, block: Block) -> io::Result<()> {
        let jobs = self.jobs.as_ref().ok_or_else(gone)?;
        jobs.send(block).map_err(|_| gone())?;
        self.busy += 1;
        Ok(())
    }

    pub(crate) fn write_all(&mut self, mut data: &[u8]) -> io::Result<()> {
        self.check()?;
        while !data.is_empty() {
            let mut block = match self.current.take() {
                Some(b) => b,
                None => self.block_at(self.pos)?,
            };
            let n = (BLOCK - block.to).min(data.len());
            let at = block.off + block.to;
            block.mem[at..at + n].copy_from_slice(&data[..n]);
            block.to += n;
            self.pos += n as u64;
            data = &data[n..];
            if block.to == BLOCK {
                self.send(block)?;
            } else {
                self.current = Some(block);
            }
        }
        Ok(())
    }

    /// Writes what waits in the current block and waits for every write
    /// to end; the descriptor is left without `O_DIRECT`.
    pub(crate) fn flush(&mut self) -> io::Result<()> {
        let mut last = match self.current.take() {
            Some(b) => b,
            None => self.block_at(self.pos)?,
        };
        last.release = true;
        self.send(last)?;
        while self.busy > 0 {
            let done = self.done.recv().map_err(|_| gone())?;
            let block = self.take_done(done);
            self.spare.push(block);
        }
        self.check()
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // The writer ends with the blocks it has; the file is closed after.
        self.jobs = None;
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

/// The writer thread: each block's range goes to the file, its aligned
/// middle by direct I/O, its unaligned ends through the page cache.
fn write_blocks(file: &File, inbox: &Receiver<Block>, outbox: &SyncSender<Done>) {
    let mut direct = Mode {
        file,
        on: false,
        refused: false,
    };
    for block in inbox {
        let result = direct.write_block(&block);
        if block.release || result.is_err() {
            let _ = direct.set(false);
        }
        if outbox.send((block, result)).is_err() {
            return;
        }
    }
    let _ = direct.set(false);
}

/// The descriptor's `O_DIRECT` as the writer last set it.
struct Mode<'a> {
    file: &'a File,
    on: bool,
    /// A direct write was refused: the rest goes through the page cache.
    refused: bool,
}

impl Mode<'_> {
    fn set(&mut self, on: bool) -> io::Result<()> {
        if self.on != on {
            set_direct(self.file, on)?;
            self.on = on;
        }
        Ok(())
    }

    fn write_block(&mut self, b: &Block) -> io::Result<()> {
        let mid_from = b.from.next_multiple_of(ALIGN).min(b.to);
        let mid_to = (b.to / ALIGN * ALIGN).max(mid_from);
        self.cached(b, b.from, mid_from)?;
        if mid_from < mid_to && !self.refused {
            match self.direct(b, mid_from, mid_to) {
                // The file system takes no direct writes after all.
                Err(e) if e.raw_os_error() == Some(nix::libc::EINVAL) => self.refused = true,
                other => other?,
            }
        }
        if self.refused {
            self.cached(b, mid_from, mid_to)?;
        }
        self.cached(b, mid_to, b.to)
    }

    fn direct(&mut self, b: &Block, from: usize, to: usize) -> io::Result<()> {
        self.set(true)?;
        self.file
            .write_all_at(b.bytes(from, to), b.start + from as u64)
    }

    fn cached(&mut self, b: &Block, from: usize, to: usize) -> io::Result<()> {
        if from == to {
            return Ok(());
        }
        self.set(false)?;
        self.file
            .write_all_at(b.bytes(from, to), b.start + from as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    use std::io::Read;

    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    fn in_tmp() -> (tempfile::TempDir, Arc<File>, std::path::PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("body");
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .expect("open");
        (dir, Arc::new(file), path)
    }

    fn flags_of(file: &File) -> OFlag {
        OFlag::from_bits_truncate(fcntl(file, FcntlArg::F_GETFL).expect("getfl"))
    }

    #[test]
    fn a_body_in_odd_pieces_lands_whole_and_leaves_the_descriptor_cached() {
        let (_dir, file, path) = in_tmp();
        let mut d = Writer::start(file.clone(), 0).expect("this disk takes O_DIRECT");
        let body = pattern(3 * BLOCK + 12_345, 1);
        for piece in body.chunks(65_504) {
            d.write_all(piece).expect("write");
        }
        d.flush().expect("flush");
        assert!(!flags_of(&file).contains(OFlag::O_DIRECT));
        drop(d);
        let mut back = Vec::new();
        File::open(&path)
            .expect("open")
            .read_to_end(&mut back)
            .expect("read");
        assert!(back == body, "the file differs from the body");
    }

    #[test]
    fn a_resume_from_an_unaligned_offset_keeps_the_bytes_before_it() {
        let (_dir, file, path) = in_tmp();
        let before = pattern(BLOCK + 777, 2);
        file.write_all_at(&before, 0).expect("partial");
        let mut d = Writer::start(file.clone(), before.len() as u64).expect("direct");
        let rest = pattern(2 * BLOCK + 5, 3);
        for piece in rest.chunks(100_000) {
            d.write_all(piece).expect("write");
        }
        d.flush().expect("flush");
        // More after a flush carries on where it stopped.
        d.write_all(b"tail").expect("write");
        d.flush().expect("flush");
        drop(d);
        let back = std::fs::read(&path).expect("read");
        let mut want = before;
        want.extend_from_slice(&rest);
        want.extend_from_slice(b"tail");
        assert_eq!(back.len(), want.len());
        assert!(back == want, "the file differs from the body");
    }

    #[test]
    fn a_failed_write_is_reported_by_every_later_call() {
        let (_dir, _file, path) = in_tmp();
        // Read-only: every write fails (EBADF).
        let ro = Arc::new(File::open(&path).expect("open"));
        let mut d = Writer::start(ro, 0).expect("direct");
        let body = pattern(BLOCKS * BLOCK * 2, 4);
        let mut failed = false;
        for piece in body.chunks(BLOCK / 2) {
            if d.write_all(piece).is_err() {
                failed = true;
                break;
            }
        }
        assert!(
            failed || d.flush().is_err(),
            "a write to a read-only file passed"
        );
        assert!(d.write_all(b"x").is_err());
        assert!(d.flush().is_err());
    }
}
