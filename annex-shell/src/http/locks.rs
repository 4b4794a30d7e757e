//! lockcontent and keeplocked: a content lock held by a session of its
//! own, past the request that took it.
//!
//! `lockcontent` runs LOCKCONTENT in a session and keeps that session
//! (and so the lock) under a fresh lock id; `keeplocked` is the client's
//! long poll on that id, a chunked body of `{"unlock":false}` lines ended
//! by `{"unlock":true}`, answered `{"locked":false}` once the lock is
//! gone.
//!
//! A lock lasts until `{"unlock":true}`, and at most the retention time
//! (ten minutes, git-annex's `p2pDefaultLockContentRetentionDuration`)
//! from when it was taken. If the keeplocked connection ends without
//! `{"unlock":true}`, the lock is kept until that time: the client counts
//! on its copy being locked until then (`clientKeepLocked` checks
//! `starttime + retentionduration`), and a connection that broke is no
//! proof that it is done. git-annex's server drops the lock at once there,
//! against its own design; removing content the client still relies on is
//! the worse failure.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use annex::key::Key;
use annex::p2p::Message;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::Response;
use serde_json::json;
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::reply::{self, Body};
use super::session::{unexpected, SessionClient};
use super::Request;

/// `--lockedfiles`' default.
pub const DEFAULT_LOCKED_FILES: usize = 100;

/// How long a lock lasts at most.
pub const RETENTION: Duration = Duration::from_secs(600);

struct Held {
    unlock: oneshot::Sender<()>,
    /// Fires when the lock is gone.
    gone: oneshot::Receiver<()>,
    until: Instant,
}

pub struct Locks {
    held: Mutex<HashMap<String, Held>>,
    slots: Arc<Semaphore>,
    retention: Duration,
}

impl Locks {
    pub fn new(max: usize, retention: Duration) -> Arc<Locks> {
        Arc::new(Locks {
            held: Mutex::new(HashMap::new()),
            slots: Arc::new(Semaphore::new(max)),
            retention,
        })
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<String, Held>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub async fn lock_content(req: &Request<'_>, key: Key) -> Response<Body> {
    let locks = Arc::clone(&req.state.locks);
    // Over the cap: `{"locked":false}`, as git-annex.
    let Ok(slot) = Arc::clone(&locks.slots).try_acquire_owned() else {
        return reply::json(json!({ "locked": false }));
    };
    // Locks do not take a --jobs slot: they last long and do no work.
    let mut s = match req.open_session().await {
        Ok(s) => s,
        Err(r) => return r,
    };
    match s.ask(Message::LockContent(key)).await {
        Ok(Message::Success) => {}
        Ok(Message::Failure) => {
            s.close().await;
            return reply::json(json!({ "locked": false }));
        }
        Ok(m) => {
            s.close().await;
            return reply::session_error(&unexpected(&m));
        }
        Err(e) => {
            s.close().await;
            return reply::session_error(&e);
        }
    }
    let id = uuid::Uuid::new_v4().to_string();
    let (unlock, unlocked) = oneshot::channel();
    let (gone_tx, gone) = oneshot::channel();
    let until = Instant::now() + locks.retention;
    locks.table().insert(
        id.clone(),
        Held {
            unlock,
            gone,
            until,
        },
    );
    tokio::spawn(hold(
        Arc::clone(&locks),
        id.clone(),
        s,
        slot,
        unlocked,
        gone_tx,
        until,
    ));
    reply::json(json!({ "locked": true, "lockid": id }))
}

/// Keeps the session (and its lock) until unlocked or `until`.
async fn hold(
    locks: Arc<Locks>,
    id: String,
    mut s: SessionClient,
    _slot: OwnedSemaphorePermit,
    unlocked: oneshot::Receiver<()>,
    gone: oneshot::Sender<()>,
    until: Instant,
) {
    tokio::select! {
        _ = unlocked => {}
        _ = tokio::time::sleep_until(until) => {}
    }
    locks.table().remove(&id);
    let _ = s.conn.write_message(&Message::UnlockContent).await;
    s.close().await;
    let _ = gone.send(());
}

pub async fn keep_locked(req: &Request<'_>, id: &str, mut body: Incoming) -> Response<Body> {
    let locks = &req.state.locks;
    let Some(until) = locks.table().get(id).map(|h| h.until) else {
        return reply::json(json!({ "locked": false }));
    };
    let mut line = Vec::new();
    let unlock = loop {
        let frame = tokio::select! {
            f = body.frame() => f,
            // The lock ends at its time whatever the client says.
            _ = tokio::time::sleep_until(until) => break false,
        };
        let Some(Ok(frame)) = frame else {
            // A last line may come without its newline.
            line.push(b'\n');
            break wants_unlock(&mut line);
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        line.extend_from_slice(&data);
        if wants_unlock(&mut line) {
            break true;
        }
        if line.len() > 4096 {
            break false;
        }
    };
    if unlock {
        let held = locks.table().remove(id);
        if let Some(h) = held {
            let _ = h.unlock.send(());
            // Answer once the lock is gone, so the client's next request
            // sees the content unlocked.
            let _ = h.gone.await;
        }
    }
    reply::json(json!({ "locked": false }))
}

/// Consumes the complete lines of `buf`; whether one of them is
/// `{"unlock":true}`.
fn wants_unlock(buf: &mut Vec<u8>) -> bool {
    while let Some(nl) = buf.iter().position(|b| *b == b'\n') {
        let line: Vec<u8> = buf.drain(..=nl).collect();
        let parsed: Result<serde_json::Value, _> = serde_json::from_slice(&line);
        if parsed.ok().and_then(|v| v.get("unlock")?.as_bool()) == Some(true) {
            return true;
        }
    }
    false
}
