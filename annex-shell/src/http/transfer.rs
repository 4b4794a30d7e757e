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

use std::sync::atomic::Ordering;
use std::time::Duration;

use annex::key::Key;
use annex::p2p::Message;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Response, StatusCode};
use serde_json::json;

use super::content::{FileChunks, Source};
use super::range::{self, Wanted};
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
    /// The Range header (unversioned endpoint only).
    pub range: Option<String>,
}

pub async fn get(req: &Request<'_>, a: GetArgs) -> Response<Body> {
    let wanted = range::resolve(a.range.as_deref(), a.key.size());
    let (offset, limit) = match wanted {
        Wanted::All => (a.offset, None),
        Wanted::Part { start, end, .. } => (start, Some(end - start + 1)),
        Wanted::Unsatisfiable { total } => return reply::unsatisfiable(total),
    };
    let mut s = match req.open().await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let msg = Message::Get {
        offset,
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
        return short_get(req, s, len, plain_client).await;
    }
    // A reader that stops reading holds its session, but not a --jobs
    // slot: other requests go on (git-annex's pool is taken by them).
    s.permit = None;
    let count = limit.map_or(len, |l| l.min(len));
    let (sender, body) = reply::channel_body(BODY_DEPTH);
    let pool = std::sync::Arc::clone(&req.state.pool);
    let f = Feed {
        len,
        count,
        out: sender,
        truncate: !plain_client,
        idle: req.state.limits.idle_timeout,
        metrics: std::sync::Arc::clone(&req.state.metrics),
        files: req.files.clone(),
    };
    tokio::spawn(async move {
        if let Some(s) = feed(s, f).await {
            pool.put(s);
        }
    });
    let mut r = Response::builder()
        .header(hyper::header::CONTENT_TYPE, "application/octet-stream")
        .header(DATA_LENGTH, count.to_string());
    if plain_client {
        r = r
            .header(hyper::header::ACCEPT_RANGES, "bytes")
            .header(hyper::header::CONTENT_LENGTH, count.to_string());
    }
    if let Wanted::Part { start, total, .. } = wanted {
        let end = start + count - 1;
        r = r.status(StatusCode::PARTIAL_CONTENT).header(
            hyper::header::CONTENT_RANGE,
            format!("bytes {start}-{end}/{total}"),
        );
    }
    r.body(BodyExt::boxed(body))
        .expect("static headers are valid")
}

/// Back to the pool after a clean answer, else closed.
async fn finish(req: &Request<'_>, s: SessionClient, clean: bool) {
    if clean {
        req.release(s);
    } else {
        s.close().await;
    }
}

async fn fail(s: SessionClient, e: SessionError) -> Response<Body> {
    s.close().await;
    reply::session_error(&e)
}

/// An empty body (content absent, or empty) or HEAD's headers alone.
async fn short_get(
    req: &Request<'_>,
    mut s: SessionClient,
    len: u64,
    plain_client: bool,
) -> Response<Body> {
    let mut valid = true;
    // HEAD: hanging up mid-DATA ends the session; the upload counts as
    // failed, as it should.
    let mut clean = false;
    if len == 0 {
        let verdict = if s.version >= 1 {
            s.read().await.ok()
        } else {
            Some(Message::Valid)
        };
        valid = matches!(verdict, Some(Message::Valid));
        let answered = s.conn.write_message(&success(valid)).await.is_ok();
        clean = answered && matches!(verdict, Some(Message::Valid | Message::Invalid));
    }
    finish(req, s, clean).await;
    if !valid && plain_client {
        return reply::empty(StatusCode::NOT_FOUND);
    }
    let mut r = Response::builder()
        .header(hyper::header::CONTENT_TYPE, "application/octet-stream")
        .header(DATA_LENGTH, len.to_string());
    if plain_client {
        // HEAD's answer says what a GET's would.
        r = r
            .header(hyper::header::ACCEPT_RANGES, "bytes")
            .header(hyper::header::CONTENT_LENGTH, len.to_string());
    }
    r.body(reply::empty(StatusCode::OK).into_body())
        .expect("static headers are valid")
}

fn success(ok: bool) -> Message {
    if ok {
        Message::Success
    } else {
        Message::Failure
    }
}

/// Where a GET's DATA goes.
struct Feed {
    len: u64,
    /// The bytes of the DATA the body holds: fewer than `len` for a range.
    count: u64,
    out: BodySender,
    /// Content found bad ends one byte short (versioned endpoint).
    truncate: bool,
    idle: Duration,
    metrics: std::sync::Arc<super::metrics::Metrics>,
    /// The connection's sendfile, over plain TCP.
    files: Option<super::sendfile::FileSlot>,
}

/// The DATA body to the response, holding back the last chunk until the
/// session says whether the content was intact. The session comes back
/// when it answered cleanly, to be pooled. For a range, the session is
/// hung up on after `count` bytes, mid-DATA (the upload counts as failed,
/// which for a range it is), so it ends rather than going back to the pool.
async fn feed(mut s: SessionClient, f: Feed) -> Option<SessionClient> {
    let _streaming = f.metrics.transfer();
    let whole = f.count == f.len;
    let held = match body(&mut s, &f, whole).await {
        Some(held) if whole => held,
        streamed => {
            if streamed.is_some() {
                f.out.complete();
            }
            s.close().await;
            return None;
        }
    };
    let valid = match s.version {
        0 => Some(true),
        _ => match s.read().await {
            Ok(Message::Valid) => Some(true),
            Ok(Message::Invalid) => Some(false),
            _ => None,
        },
    };
    if let Some(valid) = valid {
        let mut last = held.unwrap_or_default();
        if !valid && f.truncate {
            last.truncate(last.len().saturating_sub(1));
        }
        if f.send(last).await.is_some() {
            f.out.complete();
            if s.conn.write_message(&Message::Success).await.is_ok() {
                return Some(s);
            }
        }
    }
    s.close().await;
    None
}

/// The first `f.count` bytes of the DATA to the response, from the file
/// the session handed over or else from its pipe; when `whole`, all but
/// the last chunk, which is returned.
async fn body(s: &mut SessionClient, f: &Feed, whole: bool) -> Option<Option<Bytes>> {
    let mut src = match s.files.take() {
        Some(h) => Source::File(FileChunks::new(h, f.count, f.files.as_ref()).ok()?),
        None => Source::Pipe(s.conn.data_body(f.len)),
    };
    let mut held: Option<Bytes> = None;
    let mut left = f.count;
    while left > 0 {
        let chunk = src.next(left).await?;
        left -= chunk.len() as u64;
        let ready = if whole {
            held.replace(chunk)
        } else {
            Some(chunk)
        };
        if let Some(c) = ready {
            f.send(c).await?;
        }
    }
    if whole {
        src.sent();
    }
    Some(held)
}

impl Feed {
    /// `None` when the reader has gone, or read nothing for `idle`.
    /// Counted as it is handed to hyper, so a scrape right after the
    /// client's read sees it.
    async fn send(&self, chunk: Bytes) -> Option<()> {
        let n = chunk.len() as u64;
        self.metrics.bytes_out.fetch_add(n, Ordering::Relaxed);
        send(&self.out, chunk, self.idle).await
    }
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
            finish(req, s, r.is_ok()).await;
            return put_reply(api, r);
        }
        Err(e) => return fail(s, e).await,
    };
    let result = if a.data_present {
        s.ask(Message::DataPresent)
            .await
            .and_then(outcome)
            .map(Some)
    } else {
        let _streaming = req.state.metrics.transfer();
        send_body(&mut s, &a, from, body, req.state).await
    };
    // A body cut short (None) ends the session: not stored, and closed.
    finish(req, s, matches!(result, Ok(Some(_)))).await;
    put_reply(api, result.map(|r| r.unwrap_or((false, Vec::new()))))
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
/// which keeps what arrived for a resume, and is `None` (`stored: false`).
async fn send_body(
    s: &mut SessionClient,
    a: &PutArgs,
    from: u64,
    mut body: Incoming,
    state: &super::State,
) -> Result<Option<(bool, Vec<String>)>, SessionError> {
    let (mut skip, len, mut invalid) = match from.checked_sub(a.offset) {
        Some(ahead) => (ahead, a.len.saturating_sub(ahead), false),
        None => (0, a.len, true),
    };
    let idle = state.limits.idle_timeout;
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
            let n = d.len() as u64;
            state.metrics.bytes_in.fetch_add(n, Ordering::Relaxed);
        }
    }
    if w.remaining() > 0 {
        // Dropping the writer short breaks the pipe's DATA: the session
        // keeps what arrived, and ends.
        drop(w);
        return Ok(None);
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
    s.read().await.and_then(outcome).map(Some)
}
