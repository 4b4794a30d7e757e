use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 251) as u8).collect()
}

#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Shared {
    fn bytes(&self) -> Vec<u8> {
        self.0.lock().expect("test lock").clone()
    }
}

impl Write for Shared {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0.lock().expect("test lock").extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Fails after `ok` bytes.
struct FailAfter {
    ok: usize,
}

impl Read for FailAfter {
    fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
        if self.ok == 0 {
            return Err(io::Error::new(io::ErrorKind::ConnectionReset, "boom"));
        }
        let n = self.ok.min(b.len());
        b[..n].fill(b'x');
        self.ok -= n;
        Ok(n)
    }
}

impl Write for FailAfter {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        if self.ok == 0 {
            return Err(io::Error::new(io::ErrorKind::BrokenPipe, "gone"));
        }
        let n = self.ok.min(b.len());
        self.ok -= n;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn reader_passes_every_byte_across_many_buffers_then_eof() {
    let data = pattern(7 * 13 + 5);
    let mut r = ThreadReader::with_capacity(io::Cursor::new(data.clone()), 7).expect("spawn");
    let mut got = Vec::new();
    r.read_to_end(&mut got).await.expect("read");
    assert_eq!(got, data);
    let mut more = [0u8; 4];
    assert_eq!(r.read(&mut more).await.expect("eof again"), 0);
}

#[tokio::test]
async fn reader_reports_the_inner_error_after_the_good_bytes() {
    let mut r = ThreadReader::with_capacity(FailAfter { ok: 10 }, 4).expect("spawn");
    let mut got = Vec::new();
    let err = r.read_to_end(&mut got).await.expect_err("inner fails");
    assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
    assert_eq!(got, vec![b'x'; 10]);
    let mut b = [0u8; 1];
    let again = r.read(&mut b).await.expect_err("the error stays");
    assert_eq!(again.kind(), io::ErrorKind::ConnectionReset);
}

#[tokio::test]
async fn writer_holds_bytes_until_flush_and_flush_means_written() {
    let sink = Shared::default();
    let mut w = ThreadWriter::with_capacity(sink.clone(), 16).expect("spawn");
    w.write_all(b"abc").await.expect("write");
    // Less than a buffer: nothing went to the thread yet.
    assert!(sink.bytes().is_empty());
    w.flush().await.expect("flush");
    assert_eq!(sink.bytes(), b"abc");
}

#[tokio::test]
async fn writer_keeps_order_across_many_buffers() {
    let sink = Shared::default();
    let data = pattern(16 * 40 + 3);
    let mut w = ThreadWriter::with_capacity(sink.clone(), 16).expect("spawn");
    for piece in data.chunks(5) {
        w.write_all(piece).await.expect("write");
    }
    w.flush().await.expect("flush");
    assert_eq!(sink.bytes(), data);
}

#[tokio::test]
async fn writer_error_is_reported_and_sticks() {
    let mut w = ThreadWriter::with_capacity(FailAfter { ok: 5 }, 4).expect("spawn");
    let res = async {
        w.write_all(b"0123456789abcdef").await?;
        w.flush().await
    }
    .await;
    assert_eq!(
        res.expect_err("inner fails").kind(),
        io::ErrorKind::BrokenPipe
    );
    let again = w.write_all(b"x").await.expect_err("the error stays");
    assert_eq!(again.kind(), io::ErrorKind::BrokenPipe);
}

#[tokio::test]
async fn a_socket_pair_carries_megabytes_both_ways_without_deadlock() {
    let (a, b) = std::os::unix::net::UnixStream::pair().expect("pair");
    let data = pattern(5 * 1024 * 1024 + 17);
    let mut w = ThreadWriter::new(a).expect("spawn");
    let mut r = ThreadReader::new(b).expect("spawn");
    let send = {
        let data = data.clone();
        async move {
            w.write_all(&data).await.expect("write");
            w.shutdown().await.expect("shutdown");
            drop(w);
        }
    };
    let recv = async {
        let mut got = Vec::new();
        r.read_to_end(&mut got).await.expect("read");
        got
    };
    let ((), got) = tokio::join!(send, recv);
    assert_eq!(got.len(), data.len());
    assert!(got == data);
}

/// A pause waits out the read in flight, whose bytes the reader then hands
/// out; after that the thread leaves the descriptor alone until resumed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_reader_reads_nothing_until_resumed() {
    use std::time::Duration;
    let (rd, wr) = nix::unistd::pipe().expect("pipe");
    let mut wr = std::fs::File::from(wr);
    let (mut r, gate) = ThreadReader::gated(std::fs::File::from(rd)).expect("spawn");
    let mut buf = [0u8; 16];
    wr.write_all(b"abc").expect("write");
    r.read_exact(&mut buf[..3]).await.expect("read");
    assert_eq!(&buf[..3], b"abc");

    // Once the thread is blocked in its next read (not still finishing
    // the one that brought "abc"), the pause waits for that read, and the
    // reader holds what it brought.
    while !gate.in_read(2) {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let late = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        wr.write_all(b"defg").expect("write");
        wr
    });
    gate.pause().await;
    let mut wr = late.join().expect("writer");
    let held = gate.held();
    assert_eq!(held, 4, "the read in flight was not waited for");
    r.read_exact(&mut buf[..4]).await.expect("read");
    assert_eq!(&buf[..4], b"defg");
    assert_eq!(gate.held(), 0);

    wr.write_all(b"hij").expect("write");
    let parked = tokio::time::timeout(Duration::from_millis(150), r.read(&mut buf)).await;
    assert!(parked.is_err(), "a paused reader read {parked:?}");
    assert_eq!(gate.bytes_read(), 7, "the thread took bytes while paused");
    gate.resume();
    let mut rest = [0u8; 3];
    r.read_exact(&mut rest).await.expect("read");
    assert_eq!(&rest, b"hij");
    assert_eq!(gate.bytes_read(), 10);
}

#[tokio::test]
async fn a_direct_writer_keeps_order_between_small_flushes_and_large_buffers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("out");
    let file = std::fs::File::create(&path).expect("create");
    let mut w = ThreadWriter::direct(file).expect("writer");
    let big = pattern(3 * BUF + 17);
    let mut want = Vec::new();
    for round in 0..3 {
        let small = format!("reply {round}\n");
        w.write_all(small.as_bytes()).await.expect("small");
        w.flush().await.expect("flush small");
        want.extend_from_slice(small.as_bytes());
        // Written before flushing: the thread's buffers, then a tail that
        // a flush writes directly only once the thread is idle.
        w.write_all(&big).await.expect("big");
        w.flush().await.expect("flush big");
        want.extend_from_slice(&big);
        assert_eq!(std::fs::read(&path).expect("read"), want, "round {round}");
    }
    w.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn a_direct_writer_reports_a_failed_write_and_it_sticks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("out");
    std::fs::write(&path, b"").expect("create");
    // Opened read-only: every write fails.
    let file = std::fs::File::open(&path).expect("open");
    let mut w = ThreadWriter::direct(file).expect("writer");
    w.write_all(b"SUCCESS\n").await.expect("buffered");
    assert!(w.flush().await.is_err());
    assert!(w.write_all(b"more").await.is_err());
}
