use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use tokio::io::AsyncReadExt;

use super::*;

fn flags(fd: &OwnedFd) -> OFlag {
    OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL).expect("F_GETFL"))
}

/// Reads everything until EOF, in reads of at most `chunk` bytes.
async fn read_all(r: &mut InputReader, chunk: usize) -> Vec<u8> {
    let mut all = Vec::new();
    let mut buf = vec![0; chunk];
    loop {
        let n = r.read(&mut buf).await.expect("read");
        if n == 0 {
            return all;
        }
        all.extend_from_slice(&buf[..n]);
    }
}

/// A pipe is read on the caller's thread, in order, across waits for the
/// writer, to EOF; its descriptor's flags stay as they were (the writer
/// here shares the read end's description, as a parent shell would).
#[tokio::test]
async fn a_pipe_is_read_directly_and_its_flags_stay() {
    let (rd, wr) = nix::unistd::pipe().expect("pipe");
    let ours = rd.try_clone().expect("dup");
    let before = flags(&ours);
    let (mut r, gate) = InputReader::new(File::from(rd)).expect("reader");
    assert!(r.is_direct());
    let writer = std::thread::spawn(move || {
        let mut w = File::from(wr);
        for i in 0..50u8 {
            w.write_all(&[i; 1000]).expect("write");
            if i % 10 == 0 {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    });
    let got = read_all(&mut r, 777).await;
    writer.join().expect("writer");
    let want: Vec<u8> = (0..50u8).flat_map(|i| [i; 1000]).collect();
    assert!(got == want, "read {} bytes", got.len());
    assert_eq!(flags(&ours), before);
    assert!(!flags(&ours).contains(OFlag::O_NONBLOCK));
    // Nothing is ever held back from the descriptor.
    assert_eq!(gate.held(), 0);
}

/// A socket is read directly too.
#[tokio::test]
async fn a_socket_is_read_directly() {
    let (a, b) = std::os::unix::net::UnixStream::pair().expect("socketpair");
    let (mut r, _gate) = InputReader::new(File::from(OwnedFd::from(a))).expect("reader");
    assert!(r.is_direct());
    let writer = std::thread::spawn(move || {
        let mut b = b;
        b.write_all(b"VERSION 1\n").expect("write");
        std::thread::sleep(Duration::from_millis(5));
        b.write_all(b"CHECKPRESENT x\n").expect("write");
    });
    assert_eq!(read_all(&mut r, 4096).await, b"VERSION 1\nCHECKPRESENT x\n");
    writer.join().expect("writer");
}

/// What the reactor cannot wait for is read by a thread, whole.
#[tokio::test]
async fn a_regular_file_is_read_by_a_thread() {
    let mut f = tempfile::NamedTempFile::new().expect("tempfile");
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    f.write_all(&data).expect("write");
    let f = File::open(f.path()).expect("open");
    let (mut r, _gate) = InputReader::new(f).expect("reader");
    assert!(!r.is_direct());
    assert!(read_all(&mut r, 65536).await == data);
}

/// Bytes another reader of the same descriptor takes between two reads
/// (a body spliced on by the kernel) are not seen, and nothing is lost:
/// the gate's pause waits for nothing.
#[tokio::test]
async fn another_reader_may_take_bytes_between_reads() {
    let (rd, wr) = nix::unistd::pipe().expect("pipe");
    let other = rd.try_clone().expect("dup");
    let (mut r, gate) = InputReader::new(File::from(rd)).expect("reader");
    let mut w = File::from(wr);
    w.write_all(b"DATA 5\n").expect("write");
    let mut buf = [0; 7];
    r.read_exact(&mut buf).await.expect("header");
    assert_eq!(&buf, b"DATA 5\n");
    tokio::time::timeout(Duration::from_secs(5), gate.pause())
        .await
        .expect("a direct reader's gate pauses at once");
    w.write_all(b"12345VALID\n").expect("write");
    let mut body = [0; 5];
    nix::unistd::read(other.as_fd(), &mut body).expect("the other reader");
    assert_eq!(&body, b"12345");
    gate.resume();
    drop(w);
    assert_eq!(read_all(&mut r, 64).await, b"VALID\n");
}
