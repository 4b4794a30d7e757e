//! Async pipes backed by one dedicated OS thread each, moving large buffers.
//!
//! `tokio::io::stdin()`/`stdout()` and `tokio::fs::File` hand every single
//! read or write to tokio's blocking pool, and stdout also goes through
//! std's line-buffered `Stdout`, which splits binary data at newlines. With
//! 64 KiB protocol chunks that cost more than half of a raw GET's time.
//! Here one thread per pipe does plain blocking reads or writes on its own
//! `Read`/`Write` and exchanges whole buffers with the async side, so the
//! async side pays one wake-up per buffer rather than one thread hop per
//! chunk.
//!
//! Why threads and not non-blocking fds registered with the reactor: stdin
//! and stdout are usually shared with our parent (sshd, a test harness, a
//! terminal, often the same description as stderr), and `O_NONBLOCK` is a
//! property of that shared description; a crash would leave it set for
//! them. Regular files cannot be polled at all. Blocking I/O on a thread
//! works for every kind of fd and changes nothing outside this process.
//!
//! Memory is bounded: each pipe owns two buffers of its size, one with the
//! thread and one with the async side.
//!
//! A reader can be made with a [`ReadGate`], which parks its thread between
//! reads so that someone else may take bytes from the same descriptor (a
//! body spliced on by the kernel) without the thread racing it.

use std::io::{self, Read, Write};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::mpsc;

/// Default buffer size: large enough that the per-buffer wake-up is noise,
/// small enough that two of them per pipe do not matter.
pub const BUF: usize = 1024 * 1024;

/// The error the I/O thread hit, kept so every later call can report it
/// (`io::Error` is not `Clone`).
fn replay(kind: io::ErrorKind, msg: &str) -> io::Error {
    io::Error::new(kind, msg.to_owned())
}

fn thread_gone() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "I/O thread ended")
}

/// A buffer filled by the thread: its first `len` bytes are data, `len` 0
/// is EOF.
type Filled = io::Result<(Vec<u8>, usize)>;

/// Parks a [`ThreadReader`]'s thread between reads, for as long as another
/// reader of the same descriptor needs it to stay away.
#[derive(Clone)]
pub struct ReadGate {
    shared: Arc<GateShared>,
}

struct GateShared {
    state: Mutex<GateState>,
    /// Wakes the thread when the gate opens again.
    opened: Condvar,
    /// Wakes a [`ReadGate::pause`] when the thread's read in flight ends.
    idle: tokio::sync::Notify,
    /// Bytes the thread has read, all told.
    read: AtomicU64,
    /// Bytes the reader has handed out, all told.
    delivered: AtomicU64,
    /// Reads the thread has started, all told (for tests that must catch
    /// it inside a given read).
    #[cfg(test)]
    entered: AtomicU64,
}

#[derive(Default)]
struct GateState {
    closed: bool,
    /// The thread is inside `read`, or past the gate on its way there.
    reading: bool,
}

impl ReadGate {
    fn new() -> ReadGate {
        ReadGate {
            shared: Arc::new(GateShared {
                state: Mutex::new(GateState::default()),
                opened: Condvar::new(),
                idle: tokio::sync::Notify::new(),
                read: AtomicU64::new(0),
                delivered: AtomicU64::new(0),
                #[cfg(test)]
                entered: AtomicU64::new(0),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, GateState> {
        // The state is two flags, consistent at every unlock: a panic
        // elsewhere cannot leave it half-written.
        self.shared
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Close the gate and wait until the thread's read in flight (if any)
    /// has ended and been handed to the reader. From then until
    /// [`Self::resume`] the thread reads nothing, so the reader holds every
    /// byte taken from the descriptor and polls it `Pending` once they are
    /// used up. A read in flight ends only when bytes (or EOF) arrive, so
    /// pause where more input is certain, such as inside a body.
    pub async fn pause(&self) {
        self.lock().closed = true;
        loop {
            let idle = self.shared.idle.notified();
            if !self.lock().reading {
                return;
            }
            idle.await;
        }
    }

    /// Let the thread read again.
    pub fn resume(&self) {
        self.lock().closed = false;
        self.shared.opened.notify_all();
    }

    /// How many bytes the thread has read from the descriptor.
    pub fn bytes_read(&self) -> u64 {
        self.shared.read.load(Ordering::Relaxed)
    }

    /// Bytes read from the descriptor that the reader has not handed out
    /// yet. Exact while paused; a moment's view otherwise.
    pub fn held(&self) -> u64 {
        // `delivered` first: it never passes `read`.
        let delivered = self.shared.delivered.load(Ordering::Acquire);
        self.shared
            .read
            .load(Ordering::Acquire)
            .saturating_sub(delivered)
    }

    /// Whether the thread is inside its `nth` read (from 1): past the
    /// gate and not yet done (for tests that must catch it there).
    #[cfg(test)]
    pub(crate) fn in_read(&self, nth: u64) -> bool {
        let state = self.lock();
        state.reading && self.shared.entered.load(Ordering::Acquire) == nth
    }

    /// The thread, before a read: wait while closed, then mark the read.
    fn enter(&self) {
        let mut state = self.lock();
        while state.closed {
            state = self
                .shared
                .opened
                .wait(state)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        state.reading = true;
        #[cfg(test)]
        self.shared.entered.fetch_add(1, Ordering::Release);
    }

    fn count(&self, n: usize) {
        self.shared.read.fetch_add(n as u64, Ordering::Release);
    }

    /// The thread, once the read's result is with the reader.
    fn leave(&self) {
        self.lock().reading = false;
        self.shared.idle.notify_one();
    }
}

/// Reads `R` on its own thread, up to one buffer ahead of the async side.
pub struct ThreadReader {
    filled: mpsc::Receiver<Filled>,
    free: mpsc::Sender<Vec<u8>>,
    cur: Vec<u8>,
    pos: usize,
    len: usize,
    ended: Option<Result<(), (io::ErrorKind, String)>>,
    gate: ReadGate,
}

impl ThreadReader {
    pub fn new<R: Read + Send + 'static>(inner: R) -> io::Result<Self> {
        Self::with_capacity(inner, BUF)
    }

    pub fn with_capacity<R: Read + Send + 'static>(inner: R, size: usize) -> io::Result<Self> {
        Self::start(inner, size, ReadGate::new())
    }

    /// A reader whose thread the returned gate can park between reads.
    pub fn gated<R: Read + Send + 'static>(inner: R) -> io::Result<(Self, ReadGate)> {
        let gate = ReadGate::new();
        Ok((Self::start(inner, BUF, gate.clone())?, gate))
    }

    fn start<R: Read + Send + 'static>(
        mut inner: R,
        size: usize,
        gate: ReadGate,
    ) -> io::Result<Self> {
        let size = size.max(1);
        let (free_tx, mut free_rx) = mpsc::channel::<Vec<u8>>(2);
        let (filled_tx, filled_rx) = mpsc::channel::<Filled>(2);
        let thread_gate = gate.clone();
        std::thread::Builder::new()
            .name("threadio-read".into())
            .spawn(move || {
                // Buffers stay at full length (zeroed once), so no read pays
                // for clearing a megabyte it may fill only a little of.
                while let Some(mut buf) = free_rx.blocking_recv() {
                    thread_gate.enter();
                    let res = loop {
                        match inner.read(&mut buf) {
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                            r => break r,
                        }
                    };
                    let n = *res.as_ref().unwrap_or(&0);
                    let stop = n == 0;
                    // Counted before the reader can hand any of them out.
                    thread_gate.count(n);
                    let sent = filled_tx.blocking_send(res.map(|n| (buf, n)));
                    // Only now: a paused reader must find these bytes queued.
                    thread_gate.leave();
                    if sent.is_err() || stop {
                        return;
                    }
                }
            })?;
        // Only one buffer starts with the thread: the second is `cur`, and
        // goes back once the async side has used it.
        free_tx
            .try_send(vec![0; size])
            .expect("fresh channel has room");
        Ok(ThreadReader {
            filled: filled_rx,
            free: free_tx,
            cur: vec![0; size],
            pos: 0,
            len: 0,
            ended: None,
            gate,
        })
    }
}

impl AsyncRead for ThreadReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.pos == this.len {
            match &this.ended {
                Some(Ok(())) => return Poll::Ready(Ok(())),
                Some(Err((kind, msg))) => return Poll::Ready(Err(replay(*kind, msg))),
                None => {}
            }
            match ready!(this.filled.poll_recv(cx)) {
                Some(Ok((buf, n))) => {
                    // Hand the used buffer back so the thread can read ahead
                    // while we drain this one.
                    let used = std::mem::replace(&mut this.cur, buf);
                    if this.free.try_send(used).is_err() && n > 0 {
                        // The thread always returns before taking another, so
                        // the channel has room unless the thread is gone.
                        this.ended =
                            Some(Err((io::ErrorKind::BrokenPipe, "I/O thread ended".into())));
                    }
                    this.pos = 0;
                    this.len = n;
                    if n == 0 {
                        this.ended = Some(Ok(()));
                        return Poll::Ready(Ok(()));
                    }
                }
                Some(Err(e)) => {
                    this.ended = Some(Err((e.kind(), e.to_string())));
                    return Poll::Ready(Err(e));
                }
                None => return Poll::Ready(Err(thread_gone())),
            }
        }
        let n = (this.len - this.pos).min(out.remaining());
        out.put_slice(&this.cur[this.pos..this.pos + n]);
        this.pos += n;
        this.gate
            .shared
            .delivered
            .fetch_add(n as u64, Ordering::Release);
        Poll::Ready(Ok(()))
    }
}

/// Writes to `W` on its own thread. Bytes are gathered into a buffer that
/// goes to the thread when full or on flush; one buffer can be with the
/// thread while the next fills. `poll_flush` returns once every byte was
/// written to `W` (and `W` flushed), so a flushed message has left us.
pub struct ThreadWriter {
    jobs: Option<mpsc::Sender<Vec<u8>>>,
    done: mpsc::Receiver<io::Result<Vec<u8>>>,
    cur: Vec<u8>,
    size: usize,
    /// A buffer is with the thread.
    in_flight: bool,
    /// The buffer the thread gave back, for the next fill.
    spare: Option<Vec<u8>>,
    failed: Option<(io::ErrorKind, String)>,
    /// The same file, for writing small flushes from the caller's thread.
    direct: Option<std::fs::File>,
}

/// Flushes up to this size go out by the caller's own `write`: one
/// protocol reply is a few dozen bytes, and handing it to the thread and
/// waiting for it back cost two thread switches per reply (a tenth of a
/// small-file session's CPU). At most `PIPE_BUF`, which a pipe with room
/// takes whole, so the caller only waits when the reader has stopped
/// reading, and then the protocol cannot go on anyway.
const DIRECT_MAX: usize = 4096;

impl ThreadWriter {
    pub fn new<W: Write + Send + 'static>(inner: W) -> io::Result<Self> {
        Self::with_capacity(inner, BUF)
    }

    /// A writer of `file` that writes small flushes itself (see
    /// [`DIRECT_MAX`]) and hands larger ones to its thread.
    pub fn direct(file: std::fs::File) -> io::Result<Self> {
        let mut w = Self::with_capacity(file.try_clone()?, BUF)?;
        w.direct = Some(file);
        Ok(w)
    }

    pub fn with_capacity<W: Write + Send + 'static>(mut inner: W, size: usize) -> io::Result<Self> {
        let size = size.max(1);
        let (jobs_tx, mut jobs_rx) = mpsc::channel::<Vec<u8>>(1);
        let (done_tx, done_rx) = mpsc::channel::<io::Result<Vec<u8>>>(1);
        std::thread::Builder::new()
            .name("threadio-write".into())
            .spawn(move || {
                while let Some(mut buf) = jobs_rx.blocking_recv() {
                    let res = inner.write_all(&buf).and_then(|()| inner.flush());
                    let failed = res.is_err();
                    buf.clear();
                    if done_tx.blocking_send(res.map(|()| buf)).is_err() || failed {
                        return;
                    }
                }
            })?;
        Ok(ThreadWriter {
            jobs: Some(jobs_tx),
            done: done_rx,
            cur: Vec::with_capacity(size),
            size,
            in_flight: false,
            spare: None,
            failed: None,
            direct: None,
        })
    }

    fn check(&self) -> io::Result<()> {
        match &self.failed {
            Some((kind, msg)) => Err(replay(*kind, msg)),
            None => Ok(()),
        }
    }

    /// Wait until the thread holds no buffer; its buffer becomes the spare.
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.in_flight {
            return Poll::Ready(Ok(()));
        }
        let res = ready!(self.done.poll_recv(cx));
        self.in_flight = false;
        match res {
            Some(Ok(buf)) => {
                self.spare = Some(buf);
                Poll::Ready(Ok(()))
            }
            Some(Err(e)) => {
                self.failed = Some((e.kind(), e.to_string()));
                Poll::Ready(Err(e))
            }
            None => {
                self.failed = Some((io::ErrorKind::BrokenPipe, "I/O thread ended".into()));
                Poll::Ready(Err(thread_gone()))
            }
        }
    }

    /// Hand `cur` to the thread (after the previous buffer came back).
    fn poll_submit(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_idle(cx))?;
        if self.cur.is_empty() {
            return Poll::Ready(Ok(()));
        }
        let size = self.size;
        let next = self
            .spare
            .take()
            .unwrap_or_else(|| Vec::with_capacity(size));
        let full = std::mem::replace(&mut self.cur, next);
        let sent = match &self.jobs {
            Some(jobs) => jobs.try_send(full).is_ok(),
            None => false,
        };
        if !sent {
            self.failed = Some((io::ErrorKind::BrokenPipe, "I/O thread ended".into()));
            return Poll::Ready(Err(thread_gone()));
        }
        self.in_flight = true;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for ThreadWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        this.check()?;
        if this.cur.len() >= this.size {
            ready!(this.poll_submit(cx))?;
        }
        let n = (this.size - this.cur.len()).min(data.len());
        this.cur.extend_from_slice(&data[..n]);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        this.check()?;
        // Nothing with the thread, so nothing this could overtake.
        if let Some(file) = this.direct.as_ref().filter(|_| !this.in_flight) {
            if !this.cur.is_empty() && this.cur.len() <= DIRECT_MAX {
                let res = (&*file).write_all(&this.cur);
                this.cur.clear();
                if let Err(e) = &res {
                    this.failed = Some((e.kind(), e.to_string()));
                }
                return Poll::Ready(res);
            }
        }
        ready!(this.poll_submit(cx))?;
        this.poll_idle(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.as_mut().poll_flush(cx))?;
        // The thread ends once its job channel is closed.
        self.jobs = None;
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
#[path = "threadio_tests.rs"]
mod tests;
