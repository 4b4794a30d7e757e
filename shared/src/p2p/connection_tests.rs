use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{duplex, AsyncRead, AsyncReadExt, AsyncWriteExt, ReadBuf};

use super::*;
use crate::key::Key;

const K6: &str = "SHA256E-s6--5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03.txt";
const K64: &str =
    "SHA256E-s64--a8ae0000000000000000000000000000000000000000000000000000000007c8e.bin";

fn key(s: &str) -> Key {
    Key::parse(s).expect("test key")
}

/// A connection reading prepared bytes and writing into a Vec.
fn scripted(input: &[u8]) -> Connection<&[u8], Vec<u8>> {
    Connection::new(input, Vec::new())
}

/// Hands out at most `step` bytes per read, to split lines and bodies at
/// awkward places.
struct Trickle<'a> {
    data: &'a [u8],
    step: usize,
}

impl AsyncRead for Trickle<'_> {
    fn poll_read(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let n = this.step.min(this.data.len()).min(buf.remaining());
        buf.put_slice(&this.data[..n]);
        this.data = &this.data[n..];
        Poll::Ready(Ok(()))
    }
}

/// Records the size of every chunk it gets.
#[derive(Default)]
struct Recorder {
    bytes: Vec<u8>,
    chunks: Vec<usize>,
}

impl DataSink for Recorder {
    fn write_chunk(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        self.chunks.push(chunk.len());
        self.bytes.extend_from_slice(chunk);
        Ok(())
    }
}

struct FailingSink;

impl DataSink for FailingSink {
    fn write_chunk(&mut self, _: &[u8]) -> std::io::Result<()> {
        Err(std::io::Error::other("disk full"))
    }
}

#[tokio::test]
async fn server_side_of_a_get_is_byte_exact() {
    let input = format!("VERSION 4\nGET 0 a.txt {K6}\nSUCCESS\n");
    let mut conn = scripted(input.as_bytes());
    conn.write_message(&Message::AuthSuccess(
        "8f99040c-c5ea-4ad6-b9a2-6d84c3e7f096".into(),
    ))
    .await
    .unwrap();
    assert_eq!(
        conn.read_message().await.unwrap(),
        Some(Message::Version(4))
    );
    conn.write_message(&Message::Version(4)).await.unwrap();
    let Some(Message::Get {
        offset: 0,
        file,
        key: k,
    }) = conn.read_message().await.unwrap()
    else {
        panic!("expected GET")
    };
    assert_eq!((file.as_deref(), k), (Some("a.txt"), key(K6)));
    conn.send_data(6, &mut &b"hello\n"[..]).await.unwrap();
    conn.write_message(&Message::Valid).await.unwrap();
    assert_eq!(conn.read_message().await.unwrap(), Some(Message::Success));
    assert_eq!(conn.read_message().await.unwrap(), None);
    let (_, written) = conn.into_inner();
    assert_eq!(
        String::from_utf8(written).unwrap(),
        "AUTH-SUCCESS 8f99040c-c5ea-4ad6-b9a2-6d84c3e7f096\nVERSION 4\nDATA 6\nhello\nVALID\n"
    );
}

#[tokio::test]
async fn client_side_of_a_put_is_byte_exact() {
    let mut conn = scripted(b"PUT-FROM 0\nSUCCESS\n");
    conn.write_message(&Message::Put {
        file: Some("c d.txt".into()),
        key: key(K6),
    })
    .await
    .unwrap();
    assert_eq!(
        conn.read_message().await.unwrap(),
        Some(Message::PutFrom(0))
    );
    conn.send_data(6, &mut &b"hello\nEXTRA"[..]).await.unwrap();
    conn.write_message(&Message::Valid).await.unwrap();
    assert_eq!(conn.read_message().await.unwrap(), Some(Message::Success));
    let (_, written) = conn.into_inner();
    assert_eq!(
        written,
        format!("PUT c%d.txt {K6}\nDATA 6\nhello\nVALID\n").into_bytes()
    );
}

#[tokio::test]
async fn data_body_and_next_message_in_one_buffer() {
    // The body contains a newline and looks like a message; it must not be
    // read as one.
    let input = b"DATA 8\nSUCCESS\nVALID\nFAILURE\n";
    for step in [1, 2, 3, 7, 64, 1 << 20] {
        let mut conn = Connection::new(Trickle { data: input, step }, Vec::new());
        assert_eq!(conn.read_message().await.unwrap(), Some(Message::Data(8)));
        let mut body = Vec::new();
        assert_eq!(conn.recv_data(8, &mut body).await.unwrap(), 8);
        assert_eq!(body, b"SUCCESS\n", "step {step}");
        assert_eq!(conn.read_message().await.unwrap(), Some(Message::Valid));
        assert_eq!(conn.read_message().await.unwrap(), Some(Message::Failure));
        assert_eq!(conn.read_message().await.unwrap(), None);
    }
}

#[tokio::test]
async fn short_data_hands_over_what_arrived() {
    let mut conn = scripted(b"DATA 10\nabcd");
    assert_eq!(conn.read_message().await.unwrap(), Some(Message::Data(10)));
    let mut sink = Vec::new();
    match conn.recv_data(10, &mut sink).await {
        Err(ConnError::ShortData {
            expected: 10,
            received: 4,
        }) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(sink, b"abcd");
    assert!(conn.is_broken());
    assert!(matches!(conn.read_message().await, Err(ConnError::Broken)));
    assert!(matches!(
        conn.write_message(&Message::Success).await,
        Err(ConnError::Broken)
    ));
}

#[tokio::test]
async fn clean_eof_versus_eof_mid_line() {
    let mut conn = scripted(b"");
    assert_eq!(conn.read_message().await.unwrap(), None);
    let mut conn = scripted(b"SUCCESS\nFAIL");
    assert_eq!(conn.read_message().await.unwrap(), Some(Message::Success));
    let err = conn.read_message().await.unwrap_err();
    assert!(
        matches!(err, ConnError::UnexpectedEof) && !err.is_recoverable(),
        "{err:?}"
    );
    assert!(conn.is_broken());
}

#[tokio::test]
async fn unparseable_line_is_skipped_and_session_goes_on() {
    let mut conn = Connection::new(
        Trickle {
            data: b"FOO bar\r\nGETTIMESTAMP\n",
            step: 2,
        },
        Vec::new(),
    );
    let err = conn.read_message().await.unwrap_err();
    assert!(err.is_recoverable());
    assert!(matches!(&err, ConnError::Unparseable { line } if line == "FOO bar"));
    conn.write_message(&Message::Error("unknown command".into()))
        .await
        .unwrap();
    assert_eq!(
        conn.read_message().await.unwrap(),
        Some(Message::GetTimestamp)
    );
    assert_eq!(conn.into_inner().1, b"ERROR unknown command\n");
}

#[tokio::test]
async fn line_too_long_is_fatal() {
    let input = vec![b'x'; 200_000];
    let mut conn = Connection::new(
        Trickle {
            data: &input,
            step: 5000,
        },
        Vec::new(),
    );
    assert!(matches!(
        conn.read_message().await,
        Err(ConnError::LineTooLong)
    ));
    assert!(conn.is_broken());
    // A long but legal line (multi-byte characters) still gets through the
    // growing buffer.
    let mut line = b"ERROR ".to_vec();
    for _ in 0..20000 {
        line.extend_from_slice("é".as_bytes());
    }
    line.push(b'\n');
    let mut conn = Connection::new(
        Trickle {
            data: &line,
            step: 4096,
        },
        Vec::new(),
    );
    assert!(
        matches!(conn.read_message().await.unwrap(), Some(Message::Error(t)) if t.chars().count() == 20000)
    );
}

#[tokio::test]
async fn put_resume_appends_after_the_partial_file() {
    // Server side of spec 2.7's resume: 20 bytes already in the tmp file.
    let content: Vec<u8> = (0..64u8).collect();
    let mut input = format!("PUT my%20file.bin {K64}\nDATA 44\n").into_bytes();
    input.extend_from_slice(&content[20..]);
    input.extend_from_slice(b"VALID\n");
    let mut conn = scripted(&input);
    let Some(Message::Put { file, .. }) = conn.read_message().await.unwrap() else {
        panic!("PUT")
    };
    assert_eq!(file.as_deref(), Some("my_20file.bin"));
    let mut partial = content[..20].to_vec();
    conn.write_message(&Message::PutFrom(partial.len() as u64))
        .await
        .unwrap();
    let Some(Message::Data(n)) = conn.read_message().await.unwrap() else {
        panic!("DATA")
    };
    conn.recv_data(n, &mut partial).await.unwrap();
    assert_eq!(conn.read_message().await.unwrap(), Some(Message::Valid));
    conn.write_message(&Message::Success).await.unwrap();
    assert_eq!(partial, content);
    assert_eq!(conn.into_inner().1, b"PUT-FROM 20\nSUCCESS\n");
}

#[tokio::test]
async fn short_body_source_breaks_the_connection() {
    let mut conn = scripted(b"");
    match conn.send_data(10, &mut &b"abc"[..]).await {
        Err(ConnError::ShortBody {
            expected: 10,
            sent: 3,
        }) => {}
        other => panic!("{other:?}"),
    }
    assert!(conn.is_broken());
    assert!(matches!(
        conn.write_message(&Message::Valid).await,
        Err(ConnError::Broken)
    ));
}

#[tokio::test]
async fn failing_sink_keeps_the_connection_in_step() {
    let mut conn = scripted(b"DATA 5\nhelloVALID\n");
    assert_eq!(conn.read_message().await.unwrap(), Some(Message::Data(5)));
    let err = conn.recv_data(5, &mut FailingSink).await.unwrap_err();
    assert!(matches!(err, ConnError::Sink(_)) && err.is_recoverable());
    assert_eq!(conn.read_message().await.unwrap(), Some(Message::Valid));
}

#[tokio::test]
async fn dropping_a_body_early_breaks_the_connection() {
    let mut conn = scripted(b"DATA 5\nhelloVALID\n");
    conn.read_message().await.unwrap();
    {
        let mut body = conn.data_body(5);
        assert_eq!(body.next_chunk().await.unwrap(), Some(&b"hello"[..]));
        assert_eq!(body.remaining(), 0);
        assert_eq!(body.next_chunk().await.unwrap(), None);
    }
    assert_eq!(conn.read_message().await.unwrap(), Some(Message::Valid));
    let mut conn = scripted(b"DATA 5\nhelloVALID\n");
    conn.read_message().await.unwrap();
    drop(conn.data_body(5));
    assert!(conn.is_broken());
}

#[tokio::test]
async fn large_body_streams_in_bounded_chunks_through_a_pipe() {
    const LEN: usize = 3 * CHUNK + 12345;
    let content: Vec<u8> = (0..LEN).map(|i| (i * 7 % 251) as u8).collect();
    let (a, b) = duplex(8 * 1024);
    let (a_read, a_write) = tokio::io::split(a);
    let (b_read, b_write) = tokio::io::split(b);
    let mut sender = Connection::new(a_read, a_write);
    let mut receiver = Connection::new(b_read, b_write);
    let body = content.clone();
    let send = tokio::spawn(async move {
        sender.send_data(LEN as u64, &mut &body[..]).await.unwrap();
        sender.write_message(&Message::Valid).await.unwrap();
    });
    assert_eq!(
        receiver.read_message().await.unwrap(),
        Some(Message::Data(LEN as u64))
    );
    let mut rec = Recorder::default();
    receiver.recv_data(LEN as u64, &mut rec).await.unwrap();
    assert_eq!(receiver.read_message().await.unwrap(), Some(Message::Valid));
    send.await.unwrap();
    assert!(rec.bytes == content, "body differs");
    assert!(rec.chunks.iter().all(|&c| c > 0 && c <= CHUNK));
}

#[tokio::test]
async fn relay_to_another_connection_is_byte_exact() {
    // Proxy: client's DATA goes on to the node with its own header.
    let mut client = scripted(b"DATA 6\nhello\nVALID\n");
    let mut node = scripted(b"");
    assert_eq!(client.read_message().await.unwrap(), Some(Message::Data(6)));
    client.relay_data_to(6, &mut node).await.unwrap();
    let valid = client.read_message().await.unwrap().expect("VALID");
    node.write_message(&valid).await.unwrap();
    assert_eq!(node.into_inner().1, b"DATA 6\nhello\nVALID\n");
}

#[tokio::test]
async fn relay_to_raw_pipe_and_failing_target() {
    let mut conn = scripted(b"DATA 4\nabcdDATA 3\nxyzCONNECTDONE 0\n");
    let mut git_stdin = Vec::new();
    let Some(Message::Data(n)) = conn.read_message().await.unwrap() else {
        panic!()
    };
    conn.relay_data(n, &mut git_stdin).await.unwrap();
    // A dead target: the body is still consumed, this side stays usable.
    let (mut dead, far) = duplex(16);
    drop(far);
    let Some(Message::Data(n)) = conn.read_message().await.unwrap() else {
        panic!()
    };
    let err = conn.relay_data(n, &mut dead).await.unwrap_err();
    assert!(matches!(err, ConnError::Relay(_)) && err.is_recoverable());
    assert_eq!(
        conn.read_message().await.unwrap(),
        Some(Message::ConnectDone(0))
    );
    assert_eq!(git_stdin, b"abcd");
}

#[tokio::test]
async fn fan_out_writer_checks_lengths() {
    let mut node = scripted(b"");
    let mut w = node.start_data(5).await.unwrap();
    w.write_chunk(b"hel").await.unwrap();
    assert!(matches!(
        w.write_chunk(b"lo!").await,
        Err(ConnError::TooMuchData {
            remaining: 2,
            offered: 3
        })
    ));
    w.write_chunk(b"lo").await.unwrap();
    w.finish().await.unwrap();
    assert!(!node.is_broken());
    let mut w = node.start_data(5).await.unwrap();
    w.write_chunk(b"ab").await.unwrap();
    assert!(matches!(
        w.finish().await,
        Err(ConnError::ShortBody {
            expected: 5,
            sent: 2
        })
    ));
    assert!(node.is_broken());
    assert_eq!(node.into_inner().1, b"DATA 5\nhelloDATA 5\nab");
}

/// A body parked between chunks goes on where it stopped; one left
/// short still breaks the connection when its writer is dropped.
#[tokio::test]
async fn parked_body_resumes_where_it_stopped() {
    let mut node = scripted(b"");
    let mut w = node.start_data(5).await.unwrap();
    w.write_chunk(b"he").await.unwrap();
    let parked = w.park();
    assert_eq!(parked.remaining(), 3);
    assert!(!node.is_broken());
    let mut w = node.resume_data(parked);
    w.write_chunk(b"llo").await.unwrap();
    w.finish().await.unwrap();
    assert!(!node.is_broken());
    let mut w = node.start_data(5).await.unwrap();
    w.write_chunk(b"ab").await.unwrap();
    let parked = w.park();
    drop(node.resume_data(parked));
    assert!(node.is_broken());
    assert_eq!(node.into_inner().1, b"DATA 5\nhelloDATA 5\nab");
}

#[tokio::test]
async fn duplex_round_trip_of_a_session() {
    let (a, b) = duplex(4096);
    let (ar, aw) = tokio::io::split(a);
    let (br, mut bw) = tokio::io::split(b);
    let mut server = Connection::new(ar, aw);
    bw.write_all(format!("VERSION 4\nCHECKPRESENT {K6}\n").as_bytes())
        .await
        .unwrap();
    // Half-close: the server must see EOF while its replies are still read.
    bw.shutdown().await.unwrap();
    assert_eq!(
        server.read_message().await.unwrap(),
        Some(Message::Version(4))
    );
    server.write_message(&Message::Version(4)).await.unwrap();
    assert_eq!(
        server.read_message().await.unwrap(),
        Some(Message::CheckPresent(key(K6)))
    );
    server.write_message(&Message::Failure).await.unwrap();
    assert_eq!(server.read_message().await.unwrap(), None);
    drop(server);
    let mut got = String::new();
    let mut br = br;
    br.read_to_string(&mut got).await.unwrap();
    assert_eq!(got, "VERSION 4\nFAILURE\n");
}

/// A body from a file goes out by sendfile, after what was written before
/// it, and a connection without a descriptor for it says so and sends
/// nothing.
#[tokio::test]
async fn send_file_moves_the_body_by_the_kernel_in_order() {
    use std::io::{Read, Seek, SeekFrom, Write};
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    let mut file = tempfile::tempfile().expect("tempfile");
    file.write_all(&data).expect("write");
    file.seek(SeekFrom::Start(10)).expect("seek");

    let (rd, wr) = nix::unistd::pipe().expect("pipe");
    let reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        std::fs::File::from(rd).read_to_end(&mut got).expect("read");
        got
    });
    let writer =
        crate::threadio::ThreadWriter::new(std::fs::File::from(wr.try_clone().expect("dup")))
            .expect("writer");
    let mut plain = Connection::new(tokio::io::empty(), tokio::io::sink());
    assert!(!plain
        .send_file(5, file.try_clone().expect("dup"))
        .await
        .expect("no error"));

    let mut conn = Connection::new(tokio::io::empty(), writer).with_sendfile(wr);
    conn.write_message(&Message::Success).await.expect("line");
    let len = (data.len() - 10) as u64;
    assert!(conn.send_file(len, file).await.expect("sent"));
    conn.write_message(&Message::Valid).await.expect("line");
    drop(conn);
    let got = reader.join().expect("reader");
    let mut want = format!("SUCCESS\nDATA {len}\n").into_bytes();
    want.extend_from_slice(&data[10..]);
    want.extend_from_slice(b"VALID\n");
    assert!(got == want, "{} bytes, wanted {}", got.len(), want.len());
}
