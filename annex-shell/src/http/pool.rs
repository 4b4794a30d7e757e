//! Sessions kept open between requests.
//!
//! Opening a session costs opening the repository (and, for a proxied
//! remote, a connection to it), and closing one commits the git-annex
//! branch's journal: for a 2 KiB upload that was most of the request.
//! So a session that answered a request cleanly goes back here, and the
//! next request for the same target (server, client, version, bypass,
//! mode) takes it instead of opening one, as git-annex's own p2phttp
//! keeps a pool of `--jobs` P2P connections per repository.
//!
//! What bounds it:
//! - at most `cap` (`--jobs`) sessions wait here in all; one more is
//!   closed at once;
//! - a session waits at most [`IDLE`]; then it is closed, which commits
//!   what its requests journalled: the branch is committed about a second
//!   after the server goes idle, as after an ssh session, instead of once
//!   per request (every acknowledged change is in the journal before the
//!   answer goes out; git-annex reads the journal as part of the branch);
//! - only a session that finished its request cleanly comes back (any
//!   error, a cut-off body, HEAD's half-sent DATA close it), and one
//!   whose session thread has ended is never handed out.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::session::SessionClient;

/// How long an unused session stays open. With the sweep's period, the
/// journal is committed at most about a second after the last request.
pub const IDLE: Duration = Duration::from_millis(750);

/// How often idle sessions are looked at.
const SWEEP: Duration = Duration::from_millis(250);

/// Idle sessions by target.
pub struct Pool {
    cap: usize,
    idle: Mutex<Idle>,
}

#[derive(Default)]
struct Idle {
    by_target: HashMap<String, Vec<(SessionClient, Instant)>>,
    count: usize,
}

impl Idle {
    fn take_where(&mut self, keep: impl Fn(Instant) -> bool) -> Vec<SessionClient> {
        let mut out = Vec::new();
        for list in self.by_target.values_mut() {
            let (stay, go): (Vec<_>, Vec<_>) = list.drain(..).partition(|(_, t)| keep(*t));
            *list = stay;
            out.extend(go.into_iter().map(|(s, _)| s));
        }
        self.by_target.retain(|_, l| !l.is_empty());
        self.count -= out.len();
        out
    }
}

impl Pool {
    /// A pool of at most `cap` idle sessions, swept in the background.
    pub fn new(cap: usize) -> Arc<Pool> {
        let pool = Arc::new(Pool {
            cap,
            idle: Mutex::new(Idle::default()),
        });
        let weak = Arc::downgrade(&pool);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SWEEP);
            loop {
                tick.tick().await;
                let Some(pool) = weak.upgrade() else { return };
                pool.close_idle(IDLE).await;
            }
        });
        pool
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Idle> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// An open session for `target`, if one waits.
    pub fn take(&self, target: &str) -> Option<SessionClient> {
        let mut dead = Vec::new();
        let found = {
            let mut idle = self.lock();
            let mut found = None;
            if let Some(list) = idle.by_target.get_mut(target) {
                while let Some((s, _)) = list.pop() {
                    if s.is_running() {
                        found = Some(s);
                        break;
                    }
                    dead.push(s);
                }
                if list.is_empty() {
                    idle.by_target.remove(target);
                }
            }
            idle.count -= dead.len() + usize::from(found.is_some());
            found
        };
        for s in dead {
            tokio::spawn(s.close());
        }
        found
    }

    /// Keep `s`, done with its request cleanly, for the next request of
    /// its target; close it if the pool is full.
    pub fn put(&self, mut s: SessionClient) {
        s.permit = None;
        let mut idle = self.lock();
        if idle.count >= self.cap || !s.is_running() {
            drop(idle);
            tokio::spawn(s.close());
            return;
        }
        idle.count += 1;
        let target = s.target().to_owned();
        idle.by_target
            .entry(target)
            .or_default()
            .push((s, Instant::now()));
    }

    /// Close the sessions unused for `after` (all of them for zero),
    /// waiting for their commits.
    pub async fn close_idle(&self, after: Duration) {
        let now = Instant::now();
        let old = self
            .lock()
            .take_where(|t| !after.is_zero() && now.duration_since(t) < after);
        for s in old {
            s.close().await;
        }
    }

    /// Sessions waiting here now.
    pub fn idle_count(&self) -> usize {
        self.lock().count
    }
}
