//! Splicing a received body into a node's pipe, over real pipes on both
//! sides: the bytes on the node's side, what the reader thread saw, and
//! the client's connection being in step afterwards.

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::thread::JoinHandle;

use super::super::{ConnError, Connection};
use crate::p2p::Message;
use crate::threadio::{ReadGate, ThreadReader};

const LEN: usize = 3 << 20;

fn body(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 253) as u8).collect()
}

/// A client that sends `DATA len`, the first `sent` bytes of the body,
/// then (if the whole body went) `VALID`, and closes.
fn client_sending(len: usize, sent: usize) -> (OwnedFd, JoinHandle<()>) {
    let (rd, wr) = nix::unistd::pipe().expect("pipe");
    let writer = std::thread::spawn(move || {
        let mut out = std::fs::File::from(wr);
        let mut msg = format!("DATA {len}\n").into_bytes();
        msg.extend_from_slice(&body(len)[..sent]);
        if sent == len {
            msg.extend_from_slice(b"VALID\n");
        }
        // The peer may stop reading early; that is its business.
        let _ = out.write_all(&msg);
    });
    (rd, writer)
}

/// Our side of the client: a gated reader thread on `rd`, as on stdin.
fn served(rd: OwnedFd) -> (Connection<ThreadReader, tokio::io::Sink>, ReadGate) {
    let fd = rd.try_clone().expect("dup");
    let (reader, gate) = ThreadReader::gated(std::fs::File::from(rd)).expect("reader");
    let conn = Connection::new(reader, tokio::io::sink()).with_splice_input(fd, gate.clone());
    (conn, gate)
}

/// The node: a non-blocking pipe (as a child's stdin under tokio), and a
/// thread reading it that stops after `take` bytes. Returns the node's
/// connection, a duplicate of its pipe to splice into, and the reader.
fn node_taking(
    take: usize,
) -> (
    Connection<tokio::io::Empty, tokio::net::unix::pipe::Sender>,
    OwnedFd,
    JoinHandle<Vec<u8>>,
) {
    let (rd, wr) = nix::unistd::pipe().expect("pipe");
    let reader = std::thread::spawn(move || {
        // Let the pipe fill first, so the splice has to wait for room.
        std::thread::sleep(std::time::Duration::from_millis(50));
        let mut got = Vec::new();
        let _ = std::fs::File::from(rd)
            .take(take as u64)
            .read_to_end(&mut got);
        got
    });
    let dup = wr.try_clone().expect("dup");
    let sender = tokio::net::unix::pipe::Sender::from_owned_fd(wr).expect("sender");
    (Connection::new(tokio::io::empty(), sender), dup, reader)
}

async fn data_header<R: tokio::io::AsyncRead + Unpin, W: tokio::io::AsyncWrite + Unpin>(
    conn: &mut Connection<R, W>,
) -> u64 {
    match conn.read_message().await.expect("read") {
        Some(Message::Data(len)) => len,
        other => panic!("expected DATA, got {other:?}"),
    }
}

/// Read `DATA len`, relay the body to `node` through `pipe`, and find the
/// client's `VALID` next, in step.
async fn relay_then_valid<R, W, R2, W2>(
    conn: &mut Connection<R, W>,
    node: &mut Connection<R2, W2>,
    pipe: OwnedFd,
) where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
    R2: tokio::io::AsyncRead + Unpin,
    W2: tokio::io::AsyncWrite + Unpin,
{
    let len = data_header(conn).await;
    conn.relay_data_spliced(len, node, pipe)
        .await
        .expect("relayed");
    assert_eq!(
        conn.read_message().await.expect("next"),
        Some(Message::Valid)
    );
}

/// A whole body of `len` relayed, then `VALID` read after it: what the
/// node got, checked, and how many bytes the reader thread read.
async fn relay_whole(len: usize) -> u64 {
    let (rd, client) = client_sending(len, len);
    let (mut conn, gate) = served(rd);
    let (mut node, pipe, node_reader) = node_taking(usize::MAX);
    relay_then_valid(&mut conn, &mut node, pipe).await;
    assert_eq!(conn.read_message().await.expect("eof"), None);
    drop(node);
    client.join().expect("client");
    let got = node_reader.join().expect("node");
    let mut want = format!("DATA {len}\n").into_bytes();
    want.extend_from_slice(&body(len));
    assert!(
        got == want,
        "node got {} bytes, wanted {}",
        got.len(),
        want.len()
    );
    gate.bytes_read()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_goes_into_the_nodes_pipe_by_the_kernel_and_the_session_goes_on() {
    let read = relay_whole(LEN).await;
    // What the reader thread read ahead went through our buffers; the
    // rest never left the kernel.
    assert!(
        read < (LEN as u64) / 2,
        "the reader thread read {read} of {LEN} bytes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_body_already_read_needs_no_splice() {
    let read = relay_whole(1000).await;
    assert_eq!(read, "DATA 1000\nVALID\n".len() as u64 + 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_gone_mid_body_leaves_the_client_in_step() {
    let (rd, client) = client_sending(LEN, LEN);
    let (mut conn, _gate) = served(rd);
    let (mut node, pipe, node_reader) = node_taking(200_000);
    let len = data_header(&mut conn).await;
    // The node stops reading: its pipe's read end closes with the thread.
    let err = conn
        .relay_data_spliced(len, &mut node, pipe)
        .await
        .expect_err("node gone");
    assert_eq!(node_reader.join().expect("node").len(), 200_000);
    assert!(matches!(err, ConnError::Relay(_)), "{err:?}");
    assert!(node.is_broken());
    assert_eq!(
        conn.read_message().await.expect("next"),
        Some(Message::Valid)
    );
    client.join().expect("client");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_gone_mid_body_is_short_data() {
    let sent = LEN / 2 + 12_345;
    let (rd, client) = client_sending(LEN, sent);
    let (mut conn, _gate) = served(rd);
    let (mut node, pipe, node_reader) = node_taking(usize::MAX);
    let len = data_header(&mut conn).await;
    let err = conn
        .relay_data_spliced(len, &mut node, pipe)
        .await
        .expect_err("short");
    match err {
        ConnError::ShortData { expected, received } => {
            assert_eq!((expected, received), (LEN as u64, sent as u64));
        }
        other => panic!("expected ShortData, got {other:?}"),
    }
    assert!(conn.is_broken());
    // The node was promised more than it got: its connection is unusable.
    assert!(node.is_broken());
    drop(node);
    client.join().expect("client");
    let got = node_reader.join().expect("node");
    assert_eq!(got.len(), format!("DATA {LEN}\n").len() + sent);
}

/// A peer that sent a whole body and waits for our answer (protocol
/// version 0 sends nothing after it): no pause may wait for its next byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_read_ahead_whole_needs_no_more_input() {
    let len = 40_000;
    let (rd, wr) = nix::unistd::pipe().expect("pipe");
    let mut peer = std::fs::File::from(wr);
    let mut msg = format!("DATA {len}\n").into_bytes();
    msg.extend_from_slice(&body(len));
    peer.write_all(&msg).expect("write");
    let (mut conn, gate) = served(rd);
    let (mut node, pipe, node_reader) = node_taking(usize::MAX);
    let got_len = data_header(&mut conn).await;
    // The reader thread waits in its next read (the first took the whole
    // message), with the pipe still open.
    while !gate.in_read(2) {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    let relayed = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        conn.relay_data_spliced(got_len, &mut node, pipe),
    )
    .await
    .expect("the relay waited for input the peer never sends");
    relayed.expect("relayed");
    drop(node);
    drop(peer);
    assert_eq!(node_reader.join().expect("node"), msg);
}

/// Without a descriptor to splice from, the body is copied, with the same
/// bytes on the node's side.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_descriptor_the_body_is_copied() {
    let mut input = format!("DATA {LEN}\n").into_bytes();
    input.extend_from_slice(&body(LEN));
    input.extend_from_slice(b"VALID\n");
    let mut conn = Connection::new(&input[..], tokio::io::sink());
    assert!(!conn.splices_input());
    let (mut node, pipe, node_reader) = node_taking(usize::MAX);
    relay_then_valid(&mut conn, &mut node, pipe).await;
    drop(node);
    assert_eq!(node_reader.join().expect("node"), input[..input.len() - 6]);
}

/// A node's pipe for a teed body: non-blocking on our side (as a child's
/// stdin under tokio), read by a thread that starts late (so the pipe
/// fills and the tee must wait, or take only part of a step) and stops
/// after `take` bytes, closing its end.
fn pipe_taking(take: usize, late_ms: u64) -> (OwnedFd, JoinHandle<Vec<u8>>) {
    let (rd, wr) = nix::unistd::pipe().expect("pipe");
    nix::fcntl::fcntl(
        &wr,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    )
    .expect("non-blocking");
    let reader = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(late_ms));
        let mut got = Vec::new();
        let mut from = std::fs::File::from(rd);
        let mut buf = vec![0; 7000];
        while got.len() < take {
            // Small, uneven reads: the pipes drain at different paces.
            let want = buf.len().min(take - got.len());
            match from.read(&mut buf[..want]) {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        got
    });
    (wr, reader)
}

/// Read `DATA len`, tee the body into `outs`, and find `VALID` next.
async fn tee_then_valid(
    conn: &mut Connection<ThreadReader, tokio::io::Sink>,
    outs: Vec<OwnedFd>,
) -> (Vec<u8>, Vec<super::TeeOut>) {
    let len = data_header(conn).await;
    let mut body = conn.data_body(len);
    let input = body.kernel_input().await.expect("a descriptor to tee from");
    let mut head = Vec::new();
    while let Some(chunk) = body.next_buffered(&input).await.expect("buffered") {
        head.extend_from_slice(chunk);
    }
    let got = match body.tee_rest(input, outs).await.expect("teed") {
        super::TeeRest::Done(got) => got,
        super::TeeRest::Unsupported => panic!("pipes can be teed"),
    };
    drop(body);
    assert_eq!(
        conn.read_message().await.expect("next"),
        Some(Message::Valid)
    );
    (head, got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_is_teed_into_every_nodes_pipe_and_the_session_goes_on() {
    let (rd, client) = client_sending(LEN, LEN);
    let (mut conn, gate) = served(rd);
    let nodes: Vec<_> = [0, 30, 80].map(|late| pipe_taking(usize::MAX, late)).into();
    let outs = nodes
        .iter()
        .map(|(w, _)| w.try_clone().expect("dup"))
        .collect();
    let (head, got) = tee_then_valid(&mut conn, outs).await;
    let rest = LEN - head.len();
    for (out, (w, reader)) in got.iter().zip(nodes) {
        assert_eq!((out.sent, out.error.is_none()), (rest as u64, true));
        drop(w);
        let mut whole = head.clone();
        whole.extend_from_slice(&reader.join().expect("node"));
        assert!(whole == body(LEN), "a node got {} bytes", whole.len());
    }
    client.join().expect("client");
    // Only what the reader thread read ahead went through our buffers.
    let read = gate.bytes_read();
    assert!(
        read < (LEN as u64) / 2,
        "the reader thread read {read} of {LEN} bytes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_gone_mid_tee_drops_out_and_the_others_get_it_all() {
    let (rd, client) = client_sending(LEN, LEN);
    let (mut conn, _gate) = served(rd);
    let nodes: Vec<_> = [(usize::MAX, 0), (300_000, 10), (usize::MAX, 40)]
        .map(|(take, late)| pipe_taking(take, late))
        .into();
    let outs = nodes
        .iter()
        .map(|(w, _)| w.try_clone().expect("dup"))
        .collect();
    let (head, got) = tee_then_valid(&mut conn, outs).await;
    let rest = (LEN - head.len()) as u64;
    assert!(got[1].error.is_some() && got[1].sent < rest, "{:?}", got[1]);
    for (i, (w, reader)) in nodes.into_iter().enumerate() {
        drop(w);
        let got_here = reader.join().expect("node");
        if i == 1 {
            assert_eq!(got_here.len(), 300_000);
            continue;
        }
        assert_eq!(got[i].sent, rest);
        let mut whole = head.clone();
        whole.extend_from_slice(&got_here);
        assert!(whole == body(LEN), "node {i} got {} bytes", whole.len());
    }
    client.join().expect("client");
}
