//! The requests that are one P2P request and one answer: checkpresent,
//! remove, remove-before, gettimestamp, putoffset.

use annex::key::Key;
use annex::p2p::Message;
use hyper::Response;
use serde_json::json;

use super::reply::{self, Body};
use super::session::{unexpected, SessionError};
use super::Request;

/// Asks `msg` in a session of `req`'s, gives it back to the pool (or
/// closes it), and answers what `answer` makes of the reply.
async fn one_shot(
    req: &Request<'_>,
    msg: Message,
    answer: impl FnOnce(Message) -> Result<serde_json::Value, SessionError>,
) -> Response<Body> {
    // After PUT-FROM the session waits for DATA: putoffset hangs up
    // there, so it gets a session of its own.
    let pooled = !matches!(msg, Message::Put { .. });
    let mut s = match req.open_from(pooled).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let asked = s.ask(msg).await;
    // After any other answer it waits for the next request.
    let reusable = matches!(&asked, Ok(m) if !matches!(m, Message::PutFrom(_)));
    let result = asked.and_then(answer);
    if reusable && result.is_ok() {
        req.release(s);
    } else {
        s.close().await;
    }
    match result {
        Ok(v) => reply::json(v),
        Err(e) => reply::session_error(&e),
    }
}

pub async fn check_present(req: &Request<'_>, key: Key) -> Response<Body> {
    one_shot(req, Message::CheckPresent(key), |m| match m {
        Message::Success => Ok(json!({ "present": true })),
        Message::Failure => Ok(json!({ "present": false })),
        m => Err(unexpected(&m)),
    })
    .await
}

/// REMOVE or REMOVE-BEFORE. Content that is locked is `{"removed":false}`
/// (git-annex answers 500 there; its design says this, and the client
/// then reports a failed drop instead of a server error).
pub async fn remove(req: &Request<'_>, key: Key, before: Option<u64>) -> Response<Body> {
    let msg = match before {
        Some(timestamp) => Message::RemoveBefore { timestamp, key },
        None => Message::Remove(key),
    };
    let api = req.api_version();
    one_shot(req, msg, |m| {
        let (ok, plus) = outcome(m)?;
        Ok(if api >= 2 {
            json!({ "removed": ok, "plusuuids": plus })
        } else {
            json!({ "removed": ok })
        })
    })
    .await
}

pub async fn timestamp(req: &Request<'_>) -> Response<Body> {
    one_shot(req, Message::GetTimestamp, |m| match m {
        Message::Timestamp(t) => Ok(json!({ "timestamp": t })),
        m => Err(unexpected(&m)),
    })
    .await
}

/// PUT, to learn the offset, then hang up: what is there stays for the
/// upload that follows.
pub async fn put_offset(req: &Request<'_>, key: Key) -> Response<Body> {
    let api = req.api_version();
    one_shot(req, Message::Put { file: None, key }, |m| match m {
        Message::PutFrom(n) => Ok(json!({ "offset": n })),
        m => {
            let plus = already_have(m)?;
            Ok(if api >= 2 {
                json!({ "alreadyhave": true, "plusuuids": plus })
            } else {
                json!({ "alreadyhave": true })
            })
        }
    })
    .await
}

/// SUCCESS, FAILURE and their -PLUS forms: whether it happened, and who
/// else did it.
pub fn outcome(m: Message) -> Result<(bool, Vec<String>), SessionError> {
    match m {
        Message::Success => Ok((true, Vec::new())),
        Message::Failure => Ok((false, Vec::new())),
        Message::SuccessPlus(u) => Ok((true, u)),
        Message::FailurePlus(u) => Ok((false, u)),
        m => Err(unexpected(&m)),
    }
}

/// ALREADY-HAVE and its -PLUS form: who else has it.
pub fn already_have(m: Message) -> Result<Vec<String>, SessionError> {
    match m {
        Message::AlreadyHave => Ok(Vec::new()),
        Message::AlreadyHavePlus(u) => Ok(u),
        m => Err(unexpected(&m)),
    }
}
