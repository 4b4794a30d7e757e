//! A file handed to an in-process peer: the header on the pipe, the file
//! with the body's offset and length beside it, and the session's side
//! broken when the peer does not send the body.

use std::io::{Seek, SeekFrom, Write};

use tokio::io::{AsyncReadExt, DuplexStream, ReadHalf, WriteHalf};

use super::super::{ConnError, Connection};
use super::{file_handoff, FileTaker};

type Pipe = Connection<ReadHalf<DuplexStream>, WriteHalf<DuplexStream>>;

fn pair() -> (Pipe, FileTaker, DuplexStream) {
    let (ours, theirs) = tokio::io::duplex(1024);
    let (giver, taker) = file_handoff();
    let (r, w) = tokio::io::split(ours);
    (
        Connection::new(r, w).with_file_handoff(giver),
        taker,
        theirs,
    )
}

fn file_at(offset: u64) -> std::fs::File {
    let mut f = tempfile::tempfile().expect("temp file");
    f.write_all(b"0123456789abcdefghij").expect("write");
    f.seek(SeekFrom::Start(offset)).expect("seek");
    f
}

#[tokio::test]
async fn the_peer_gets_the_header_then_the_file_from_its_offset() {
    let (mut conn, mut taker, mut peer) = pair();
    let sending = tokio::spawn(async move {
        let r = conn.send_file(12, file_at(7)).await;
        (r, conn)
    });
    let mut head = [0u8; 8];
    peer.read_exact(&mut head).await.expect("header");
    assert_eq!(&head, b"DATA 12\n");
    let handed = taker.take().expect("the file comes with its header");
    assert_eq!((handed.offset, handed.len), (7, 12));
    handed.sent();
    let (sent, conn) = sending.await.expect("join");
    assert!(sent.expect("sent"));
    assert!(!conn.is_broken());
    assert!(taker.take().is_none());
}

#[tokio::test]
async fn a_file_the_peer_drops_breaks_the_connection() {
    let (mut conn, mut taker, mut peer) = pair();
    let sending = tokio::spawn(async move {
        let r = conn.send_file(12, file_at(0)).await;
        (r, conn)
    });
    let mut head = [0u8; 8];
    peer.read_exact(&mut head).await.expect("header");
    drop(taker.take().expect("handed"));
    let (sent, conn) = sending.await.expect("join");
    assert!(
        matches!(sent, Err(ref e @ ConnError::Io(_)) if e.is_hangup()),
        "{sent:?}"
    );
    assert!(conn.is_broken());
}

#[tokio::test]
async fn with_the_taker_gone_nothing_is_sent() {
    let (mut conn, taker, _peer) = pair();
    drop(taker);
    let sent = conn.send_file(12, file_at(0)).await;
    assert!(matches!(sent, Err(ref e) if e.is_hangup()), "{sent:?}");
    assert!(conn.is_broken());
}
