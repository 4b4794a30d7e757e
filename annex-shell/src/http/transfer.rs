//! Content over HTTP: GET streams the session's DATA out as the response
//! body, PUT streams the request body in as the session's DATA.
//!
//! Choices where git-annex's server and its design document differ:
//! - content that is not here is 200 with `X-git-annex-data-length: 0` on
//!   the versioned endpoint (what the client handles in one request; a
//!   404 would send it through every lower version first), and 404 on the
//!   unversioned `key` endpoint, meant for plain HTTP clients;
//! - content found bad after it was sent ends one byte short, so the
//!   length no longer matches the header (the client's only way to know).

use std::time::Duration;

use annex::key::Key;
use annex::p2p::Message;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Response, StatusCode};
use serde_json::json;

use super::reply::{self, Body, BodySender, DATA_LENGTH};
use super::requests::{already_have, outcome};
use super::session::{unexpected, SessionClient, SessionError};
use super::Request;

/// Chunks queued between the session and a slow HTTP reader.
const BODY_DEPTH: usize = 4;

pub struct GetArgs {
    pub key: Key,
    pub file: Option<String>,
    pub offset: u64,
    pub head: bool,
}

pub async fn get(req: &Request<'_>, a: GetArgs) -> Response<Body> {
    let mut s = match req.open().await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let msg = Message::Get {
        offset: a.offset,
        file: a.file,
        key: a.key,
    };
    let len = match s.ask(msg).await {
        Ok(Message::Data(n)) => n,
        Ok(m) => return fail(s, unexpected(&m)).await,
        Err(e) => return fail(s, e).await,
    };
    let plain_client = req.ep.version.is_none();
    if len == 0 || a.head {
        return short_get(s, len, plain_client).await;
    }
    // A reader that stops reading holds its session, but not a --jobs
    // slot: other requests go on (git-annex's pool is taken by them).
    s.permit = None;
    let (sender, body) = reply::channel_body(BODY_DEPTH);
    let idle = req.state.limits.idle_timeout;
    tokio::spawn(feed(s, len, sender, !plain_client, idle));
    Response::builder()
        .header(hyper::header::CONTENT_TYPE, "application/octet-stream")
        .header(DATA_LENGTH, len.to_string())
        .body(BodyExt::boxed(body))
        .expect("static headers are valid")
}

async fn fail(s: SessionClient, e: SessionError) -> Response<Body> {
    s.close().await;
    reply::session_error(&e)
}

/// An empty body (content absent, or empty) or HEAD's headers alone.
async fn short_get(mut s: SessionClient, len: u64, plain_client: bool) -> Response<Body> {
    let mut valid = true;
    if len == 0 {
        if s.version >= 1 {
            valid = matches!(s.read().await, Ok(Message::Valid));
        }
        let _ = s.conn.write_message(&success(valid)).await;
    }
    // HEAD: hanging up mid-DATA ends the session; the upload counts as
    // failed, as it should.
    s.close().await;
    if !valid && plain_client {
        return reply::empty(StatusCode::NOT_FOUND);
    }
    Response::builder()
        .header(hyper::header::CONTENT_TYPE, "application/octet-stream")
        .header(DATA_LENGTH, len.to_string())
        .body(reply::empty(StatusCode::OK).into_body())
        .expect("static headers are valid")
}

fn success(ok: bool) -> Message {
    if ok {
        Message::Success
    } else {
        Message::Failure
    }
}

/// The DATA body to the response, holding back the last chunk until the
/// session says whether the content was intact.
async fn feed(mut s: SessionClient, len: u64, out: BodySender, truncate: bool, idle: Duration) {
    let sent = async {
        let mut held: Option<Bytes> = None;
        let mut body = s.conn.data_body(len);
        while let Some(chunk) = body.next_chunk().await.ok()? {
            if let Some(prev) = held.replace(Bytes::copy_from_slice(chunk)) {
                send(&out, prev, idle).await?;
            }
        }
        drop(body);
        let valid = s.version == 0 || matches!(s.read().await, Ok(Message::Valid));
        let mut last = held.unwrap_or_default();
        if !valid && truncate {
            last.truncate(last.len().saturating_sub(1));
        }
        send(&out, last, idle).await?;
        Some(())
    }
    .await;
    if sent.is_some() {
        out.complete();
        let _ = s.conn.write_message(&Message::Success).await;
    }
    s.close().await;
}

/// `None` when the reader has gone, or read nothing for `idle`.
async fn send(out: &BodySender, chunk: Bytes, idle: Duration) -> Option<()> {
    match tokio::time::timeout(idle, out.tx.send(chunk)).await {
        Ok(Ok(())) => Some(()),
        Ok(Err(_)) => None,
        Err(_) => {
            tracing::info!("p2phttp: a reader stopped reading; its GET is cut off");
            None
        }
    }
}

pub struct PutArgs {
    pub key: Key,
    pub file: Option<String>,
    pub offset: u64,
    pub data_present: bool,
    pub len: u64,
}

pub async fn put(req: &Request<'_>, a: PutArgs, body: Incoming) -> Response<Body> {
    let mut s = match req.open().await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let api = req.ep.version.unwrap_or(0);
    let from = match s
        .ask(Message::Put {
            file: a.file.clone(),
            key: a.key.clone(),
        })
        .await
    {
        Ok(Message::PutFrom(n)) => n,
        Ok(m) => {
            let r = already_have(m).map(|plus| (true, plus));
            s.close().await;
            return put_reply(api, r);
        }
        Err(e) => return fail(s, e).await,
    };
    let result = if a.data_present {
        s.ask(Message::DataPresent).await.and_then(outcome)
    } else {
        send_body(&mut s, &a, from, body, req.state.limits.idle_timeout).await
    };
    s.close().await;
    put_reply(api, result)
}

fn put_reply(api: u32, r: Result<(bool, Vec<String>), SessionError>) -> Response<Body> {
    match r {
        Ok((ok, plus)) if api >= 2 => reply::json(json!({ "stored": ok, "plusuuids": plus })),
        Ok((ok, _)) => reply::json(json!({ "stored": ok })),
        Err(e) => reply::session_error(&e),
    }
}

/// The request body as DATA, from the offset the session asked for.
/// The client sends from `a.offset`: bytes the session has already are
/// skipped; if it has fewer than the client thinks, what is sent is
/// marked INVALID, as git-annex does. A body cut short hangs up mid-DATA,
/// which keeps what arrived for a resume, and is `stored: false`.
async fn send_body(
    s: &mut SessionClient,
    a: &PutArgs,
    from: u64,
    mut body: Incoming,
    idle: Duration,
) -> Result<(bool, Vec<String>), SessionError> {
    let (mut skip, len, mut invalid) = match from.checked_sub(a.offset) {
        Some(ahead) => (ahead, a.len.saturating_sub(ahead), false),
        None => (0, a.len, true),
    };
    let mut w = s.conn.start_data(len).await?;
    loop {
        let frame = match tokio::time::timeout(idle, body.frame()).await {
            Ok(Some(Ok(f))) => f,
            Ok(None) => break,
            Ok(Some(Err(_))) | Err(_) => break,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let mut d: &[u8] = &data;
        let skipped = d.len().min(usize::try_from(skip).unwrap_or(usize::MAX));
        d = &d[skipped..];
        skip -= skipped as u64;
        let room = usize::try_from(w.remaining()).unwrap_or(usize::MAX);
        if d.len() > room {
            invalid = true;
            d = &d[..room];
        }
        if !d.is_empty() {
            w.write_chunk(d).await?;
        }
    }
    if w.remaining() > 0 {
        // Dropping the writer short breaks the pipe's DATA: the session
        // keeps what arrived, and ends.
        drop(w);
        return Ok((false, Vec::new()));
    }
    w.finish().await?;
    if s.version >= 1 {
        let v = if invalid {
            Message::Invalid
        } else {
            Message::Valid
        };
        s.conn.write_message(&v).await?;
    }
    s.read().await.and_then(outcome)
}
