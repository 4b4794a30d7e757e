//! HTTP responses as git-annex's p2phttp sends them, and the body that
//! streams content from a session.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Empty, Full};
use hyper::body::{Body as HttpBody, Frame};
use hyper::{header, Response, StatusCode};
use tokio::sync::mpsc;

use super::auth::Denied;
use super::route::RouteError;
use super::session::SessionError;

pub type Body = BoxBody<Bytes, std::io::Error>;

/// The header carrying the length of a body's content (v1+).
pub const DATA_LENGTH: &str = "X-git-annex-data-length";

pub fn json(value: serde_json::Value) -> Response<Body> {
    let text = value.to_string();
    Response::builder()
        .header(header::CONTENT_TYPE, "application/json;charset=utf-8")
        .body(full(text))
        .expect("static headers are valid")
}

pub fn text(status: StatusCode, msg: impl Into<String>) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain;charset=utf-8")
        .body(full(msg.into()))
        .expect("static headers are valid")
}

pub fn empty(status: StatusCode) -> Response<Body> {
    Response::builder()
        .status(status)
        .body(Empty::new().map_err(|e| match e {}).boxed())
        .expect("static headers are valid")
}

fn full(s: String) -> Body {
    Full::new(Bytes::from(s)).map_err(|e| match e {}).boxed()
}

/// 416 for a range past the end of `total` bytes.
pub fn unsatisfiable(total: u64) -> Response<Body> {
    Response::builder()
        .status(StatusCode::RANGE_NOT_SATISFIABLE)
        .header(header::CONTENT_RANGE, format!("bytes */{total}"))
        .body(Empty::new().map_err(|e| match e {}).boxed())
        .expect("static headers are valid")
}

pub fn route_error(e: &RouteError) -> Response<Body> {
    match e {
        // Unknown server, op or version: empty, as git-annex.
        RouteError::NotFound => empty(StatusCode::NOT_FOUND),
        RouteError::Method => empty(StatusCode::METHOD_NOT_ALLOWED),
        RouteError::Bad(m) => text(StatusCode::BAD_REQUEST, m.clone()),
    }
}

pub fn denied(d: Denied) -> Response<Body> {
    match d {
        Denied::Unauthorized => Response::builder()
            .status(StatusCode::UNAUTHORIZED)
            .header(
                header::WWW_AUTHENTICATE,
                "Basic realm=\"git-annex\", charset=\"UTF-8\"",
            )
            .body(full(String::new()))
            .expect("static headers are valid"),
        Denied::Forbidden => empty(StatusCode::FORBIDDEN),
    }
}

pub fn busy() -> Response<Body> {
    text(
        StatusCode::SERVICE_UNAVAILABLE,
        "too many requests; retry later",
    )
}

pub fn session_error(e: &SessionError) -> Response<Body> {
    match e {
        SessionError::NotServed => empty(StatusCode::NOT_FOUND),
        e => {
            tracing::warn!("p2phttp request failed: {e}");
            text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
        }
    }
}

/// A response body fed chunk by chunk from a task. If the task stops
/// before it said the body is complete, the body ends in an error, so
/// hyper cuts the connection instead of ending the body cleanly: a client
/// must never take a short body for a whole one.
pub struct ChannelBody {
    rx: mpsc::Receiver<Bytes>,
    complete: Arc<AtomicBool>,
}

/// The sending side of a [`ChannelBody`].
pub struct BodySender {
    pub tx: mpsc::Sender<Bytes>,
    complete: Arc<AtomicBool>,
}

impl BodySender {
    /// Everything was sent: the body may end when the channel does.
    pub fn complete(self) {
        self.complete.store(true, Ordering::Release);
    }
}

pub fn channel_body(depth: usize) -> (BodySender, ChannelBody) {
    let (tx, rx) = mpsc::channel(depth);
    let complete = Arc::new(AtomicBool::new(false));
    let sender = BodySender {
        tx,
        complete: Arc::clone(&complete),
    };
    (sender, ChannelBody { rx, complete })
}

impl HttpBody for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(b)) => Poll::Ready(Some(Ok(Frame::data(b)))),
            Poll::Ready(None) if self.complete.load(Ordering::Acquire) => Poll::Ready(None),
            Poll::Ready(None) => Poll::Ready(Some(Err(std::io::Error::other(
                "the content could not be sent in full",
            )))),
            Poll::Pending => Poll::Pending,
        }
    }
}
