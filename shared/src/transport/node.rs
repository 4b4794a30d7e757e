//! An open session with a node: the P2P connection, and what carries it
//! (a child and its stderr, or a socket), closed the way a client closes.

use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::process::Child;

use super::{peer, BoxRead, BoxWrite, TransportError, CLOSE_GRACE};
use crate::p2p::{ConnError, Connection, Message};

/// How much of a child's stderr is kept for error messages.
pub(super) const STDERR_TAIL: usize = 4096;

/// An open P2P session with a node, past AUTH-SUCCESS and VERSION.
///
/// The streams are boxed so that children and sockets look alike to the
/// relay and the cluster gateway; the cost is one indirect call per
/// buffered read or write, not per byte.
pub struct NodeConnection {
    pub conn: Connection<BoxRead, BoxWrite>,
    /// The version the node agreed to.
    pub version: u32,
    pub(super) name: String,
    /// The program carrying the session; `None` for a tor socket.
    pub(super) child: Option<Child>,
    pub(super) stderr: StderrTail,
    /// The read end of the child's stdout pipe, for splicing bodies on.
    pub(super) pipe_out: Option<OwnedFd>,
    /// The write end of the child's stdin pipe, for splicing bodies in.
    /// The child sees its input end only once this is closed too.
    pub(super) pipe_in: Option<OwnedFd>,
}

impl NodeConnection {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The node's output pipe (a duplicate), when it is one: a body can
    /// then be spliced on from it.
    pub fn output_pipe(&self) -> Option<OwnedFd> {
        self.pipe_out.as_ref().and_then(|fd| fd.try_clone().ok())
    }

    /// The node's input pipe (a duplicate), when it is one: a body can
    /// then be spliced into it.
    pub fn input_pipe(&self) -> Option<OwnedFd> {
        self.pipe_in.as_ref().and_then(|fd| fd.try_clone().ok())
    }

    /// What the child wrote to stderr lately (nothing for a socket).
    pub fn stderr_tail(&self) -> String {
        self.stderr.text()
    }

    /// A connection failure on this node, with the node's own last words.
    pub fn error(&self, source: ConnError) -> TransportError {
        TransportError::Connection {
            name: self.name.clone(),
            stderr: self.stderr_tail(),
            source,
        }
    }

    /// Send `msg` and read the node's one answer.
    pub async fn exchange(&mut self, msg: &Message) -> Result<Message, ConnError> {
        self.conn.write_message(msg).await?;
        self.reply().await
    }

    /// The node's next message. Its end is an error; an unparseable line
    /// becomes an ERROR the caller can pass on, since the node is still
    /// in step.
    pub async fn reply(&mut self) -> Result<Message, ConnError> {
        match self.conn.read_message().await {
            Ok(Some(m)) => Ok(m),
            Ok(None) => Err(ConnError::UnexpectedEof),
            Err(ConnError::Unparseable { line }) => {
                Ok(Message::Error(format!("unparseable reply {line:?}")))
            }
            Err(e) => Err(e),
        }
    }

    /// End the session the way a client does, by closing the node's stdin,
    /// and wait for it to finish (it commits what it journalled on the way
    /// out). A node that does not finish in time is killed. The exit code
    /// of a child; for a socket, `Some(0)` once the node closed its end,
    /// `None` when it did not in time.
    pub async fn close(self) -> Option<i32> {
        self.close_with_stderr().await.0
    }

    /// The session's parts, without our duplicates of the child's pipes:
    /// once the connection lets go of them, the child sees its input end
    /// and that nobody reads its output.
    fn into_parts(self) -> (Connection<BoxRead, BoxWrite>, Option<Child>, StderrTail) {
        let NodeConnection {
            conn,
            child,
            stderr,
            ..
        } = self;
        (conn, child, stderr)
    }

    /// [`Self::close`], also returning all the stderr tail, which is only
    /// complete once the child has exited.
    pub async fn close_with_stderr(self) -> (Option<i32>, String) {
        let (conn, child, stderr) = self.into_parts();
        let (mut stdout, mut stdin) = conn.into_inner();
        let _ = stdin.shutdown().await;
        drop(stdin);
        match child {
            Some(child) => {
                drop(stdout);
                reap(child, stderr).await
            }
            None => (peer::drain(&mut stdout).await, stderr.finish().await),
        }
    }

    /// After a `CONNECT` was sent: the rest of the session belongs to the
    /// node's git service, so the bytes are copied raw both ways (each way
    /// on its own, so neither side's full pipe can stall the other) until
    /// the node closes its output after `CONNECTDONE`. Bytes already read
    /// into either connection's buffer go first.
    pub async fn tunnel<R, W>(self, client: &mut Connection<R, W>) -> Option<i32>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let (client_early, mut client_in, mut client_out) = client.raw_parts();
        let (conn, child, stderr) = self.into_parts();
        let node_early = conn.buffered().to_vec();
        let (mut node_out, mut node_in) = conn.into_inner();
        let to_client = async {
            let mut src = (&node_early[..]).chain(&mut node_out);
            let _ = tokio::io::copy(&mut src, &mut client_out).await;
            let _ = client_out.flush().await;
        };
        let to_node = async {
            let mut src = (&client_early[..]).chain(&mut client_in);
            let _ = tokio::io::copy(&mut src, &mut node_in).await;
            let _ = node_in.shutdown().await;
            // The client is done talking; the node may not be.
            std::future::pending::<()>().await
        };
        tokio::select! {
            () = to_client => {}
            () = to_node => {}
        }
        drop(node_in);
        match child {
            Some(child) => reap(child, stderr).await.0,
            // The node closed its output: its session is over.
            None => Some(0),
        }
    }
}

/// Wait for a child whose stdin is closed; kill it if it lingers.
async fn reap(mut child: Child, stderr: StderrTail) -> (Option<i32>, String) {
    let status = match tokio::time::timeout(CLOSE_GRACE, child.wait()).await {
        Ok(Ok(status)) => status.code(),
        _ => {
            let _ = child.kill().await;
            None
        }
    };
    let text = stderr.finish().await;
    (status, text)
}

/// The last [`STDERR_TAIL`] bytes a child wrote to stderr, collected by a
/// task of its own.
pub(super) struct StderrTail {
    buf: Arc<Mutex<Vec<u8>>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl StderrTail {
    pub(super) fn none() -> StderrTail {
        StderrTail {
            buf: Arc::new(Mutex::new(Vec::new())),
            task: None,
        }
    }

    pub(super) fn start(child: &mut Child, forward: bool) -> StderrTail {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let task = child.stderr.take().map(|mut err| {
            let buf = Arc::clone(&buf);
            tokio::spawn(async move {
                let mut chunk = vec![0u8; 4096];
                let mut out = tokio::io::stderr();
                loop {
                    let n = match err.read(&mut chunk).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    if forward {
                        let _ = out.write_all(&chunk[..n]).await;
                    }
                    keep_tail(&buf, &chunk[..n]);
                }
            })
        });
        StderrTail { buf, task }
    }

    fn text(&self) -> String {
        let b = self.buf.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&b).into_owned()
    }

    async fn finish(mut self) -> String {
        if let Some(t) = self.task.take() {
            // The child has exited; its stderr ends as soon as any
            // grandchildren holding it do. Don't wait on those forever.
            let _ = tokio::time::timeout(Duration::from_secs(2), t).await;
        }
        self.text()
    }
}

fn keep_tail(buf: &Mutex<Vec<u8>>, more: &[u8]) {
    if let Ok(mut b) = buf.lock() {
        b.extend_from_slice(more);
        if b.len() > STDERR_TAIL {
            let cut = b.len() - STDERR_TAIL;
            b.drain(..cut);
        }
    }
}
