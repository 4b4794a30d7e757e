//! Connections that go quiet: a socket wrapper that notes when bytes last
//! moved, and the watchdog that closes a connection idle for too long.
//!
//! hyper's header deadline covers a request's head, but not a keep-alive
//! connection waiting for its next request, nor a response its reader
//! stopped taking; each would hold a connection slot for ever. After
//! `idle` without a byte either way the connection is asked to shut down
//! gracefully (an idle keep-alive connection closes at once, a request in
//! flight may finish); after twice that it is dropped.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// When bytes last moved, in milliseconds since `start`.
#[derive(Clone)]
pub struct Activity {
    start: Instant,
    last_ms: Arc<AtomicU64>,
}

impl Activity {
    pub fn new() -> Activity {
        Activity {
            start: Instant::now(),
            last_ms: Arc::new(AtomicU64::new(0)),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.start.elapsed().saturating_sub(last)
    }
}

/// A socket whose traffic is noted in an [`Activity`].
pub struct Watched<S> {
    inner: S,
    activity: Activity,
}

impl<S> Watched<S> {
    pub fn new(inner: S, activity: Activity) -> Watched<S> {
        Watched { inner, activity }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    /// hyper queues a body's chunks and writes them with one writev, head
    /// and chunk framing included, when the socket says it can; else it
    /// copies every chunk into its own buffer first.
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// What the watchdog may do to a connection.
pub trait GracefulShutdown: Future {
    fn shut_down(self: Pin<&mut Self>);
}

impl<I, S> GracefulShutdown for hyper::server::conn::http1::Connection<I, S>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    S: hyper::service::HttpService<hyper::body::Incoming>,
    S::ResBody: hyper::body::Body + 'static,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn shut_down(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

/// Runs `conn` until it ends, or until it has been idle too long; once
/// `stopping` says so, it ends after the request in flight (if any).
pub async fn watch<C: GracefulShutdown>(
    conn: C,
    activity: Activity,
    idle: Duration,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) -> Option<C::Output> {
    tokio::pin!(conn);
    let tick = (idle / 4).max(Duration::from_millis(50));
    let mut asked = false;
    loop {
        tokio::select! {
            out = conn.as_mut() => return Some(out),
            _ = tokio::time::sleep(tick) => {}
            _ = stopping.wait_for(|s| *s), if !asked => {
                asked = true;
                conn.as_mut().shut_down();
                continue;
            }
        }
        let quiet = activity.idle_for();
        if quiet >= idle * 2 {
            tracing::info!(?quiet, "p2phttp: an idle connection is dropped");
            return None;
        }
        if quiet >= idle && !asked {
            asked = true;
            conn.as_mut().shut_down();
        }
    }
}
