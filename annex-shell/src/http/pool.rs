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
//! - of those with a proxied remote or a cluster, which hold node
//!   processes or connections, at most `proxy_cap`
//!   (`--proxyconnections`) per repository; one more closes the
//!   repository's longest unused one, as git-annex evicts from its pool;
//! - a session waits at most [`IDLE`]; then it is closed, which commits
//!   what its requests journalled: the branch is committed about a second
//!   after the server goes idle, as after an ssh session, instead of once
//!   per request (every acknowledged change is in the journal by the time
//!   the session takes its next request, written right after the answer
//!   goes out, see `backend/owed.rs`; git-annex reads the journal as part
//!   of the branch);
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
    proxy_cap: usize,
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

    /// Idle sessions proxied by the repository `dir`.
    fn proxied_by(&self, dir: &std::path::Path) -> usize {
        self.by_target
            .values()
            .flatten()
            .filter(|(s, _)| s.proxied_by() == Some(dir))
            .count()
    }

    /// Takes out the longest unused session proxied by `dir`.
    fn take_oldest_proxied(&mut self, dir: &std::path::Path) -> Option<SessionClient> {
        let (target, i) = self
            .by_target
            .iter()
            .flat_map(|(k, l)| l.iter().enumerate().map(move |(i, e)| (k, i, e)))
            .filter(|(_, _, (s, _))| s.proxied_by() == Some(dir))
            .min_by_key(|(_, _, (_, t))| *t)
            .map(|(k, i, _)| (k.clone(), i))?;
        let list = self.by_target.get_mut(&target)?;
        let (s, _) = list.remove(i);
        if list.is_empty() {
            self.by_target.remove(&target);
        }
        self.count -= 1;
        Some(s)
    }

    fn insert(&mut self, s: SessionClient, at: Instant) {
        self.count += 1;
        let target = s.target().to_owned();
        self.by_target.entry(target).or_default().push((s, at));
    }
}

impl Pool {
    /// A pool of at most `cap` idle sessions, `proxy_cap` of them per
    /// repository with a proxied remote or cluster, swept in the
    /// background.
    pub fn new(cap: usize, proxy_cap: usize) -> Arc<Pool> {
        let pool = Arc::new(Pool {
            cap,
            proxy_cap,
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
        let mut closing = Vec::new();
        {
            let mut idle = self.lock();
            let proxied = s.proxied_by().map(std::path::Path::to_owned);
            if idle.count >= self.cap || !s.is_running() {
                closing.push(s);
            } else if let Some(dir) = proxied.as_ref().filter(|_| self.proxy_cap == 0) {
                tracing::debug!(repo = %dir.display(), "no proxied session is kept");
                closing.push(s);
            } else {
                if let Some(dir) = proxied {
                    while idle.proxied_by(&dir) >= self.proxy_cap {
                        match idle.take_oldest_proxied(&dir) {
                            Some(old) => closing.push(old),
                            None => break,
                        }
                    }
                }
                idle.insert(s, Instant::now());
            }
        }
        for s in closing {
            tokio::spawn(s.close());
        }
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
