//! The gateway's connections to the cluster's nodes: opened lazily (a
//! session that only checks presence never starts a node), several at
//! once, each told the BYPASS set so a node that is itself a gateway of
//! the same cluster never routes back to us.
//!
//! A node that cannot be reached, or fails mid-request, is marked down
//! with the reason; it costs the requests made of it, never the session.

use std::collections::BTreeSet;

use annex::p2p::{ConnError, Message};
use annex::transport::{connect, ConnectOptions, NodeConnection, NodeRemote};
use futures_util::future::join_all;

/// One node's connection, or why there is none.
pub enum State {
    Idle,
    Up(Box<NodeConnection>),
    Down(String),
}

pub struct Slot {
    pub remote: NodeRemote,
    pub state: State,
    /// The node's GETTIMESTAMP answer, for translating REMOVE-BEFORE.
    pub timestamp: Option<u64>,
    /// A node on this machine that our own shell would serve: uploads,
    /// downloads and removals are done in-process (no child, no pipe, one
    /// hash for all such nodes), GETTIMESTAMP skips it (its clock is
    /// ours); only git's CONNECT goes through a child.
    pub local: Option<Local>,
}

/// A local node's repository, opened by the gateway itself.
pub struct Local {
    pub store: annex::store::ObjectStore,
    pub branch: annex::branch::Branch,
    /// Whether its journal gained lines this session (committed on close).
    pub journalled: bool,
}

impl Local {
    /// The repository at `dir`, if it is the annex repository `uuid`.
    pub fn open(dir: &std::path::Path, uuid: &str) -> Option<Local> {
        let repo = annex::repo::Repo::open(dir).ok()?;
        if !repo.is_annex_initialized() || repo.uuid().as_deref() != Some(uuid) {
            return None;
        }
        Some(Local {
            store: repo.store(),
            branch: repo.branch(),
            journalled: false,
        })
    }

    /// Journal a change of the node's own location log, as the node's
    /// own server would.
    pub fn log(&mut self, key: &annex::key::Key, uuid: &str, status: annex::branch::LogStatus) {
        match self.branch.log_key_location(key, uuid, status) {
            Ok(changed) => self.journalled |= changed,
            Err(e) => eprintln!("git-annex-shell: recording {key} in {uuid}: {e}"),
        }
    }
}

impl Slot {
    pub fn new(remote: NodeRemote) -> Slot {
        Slot {
            remote,
            state: State::Idle,
            timestamp: None,
            local: None,
        }
    }

    pub fn with_local(mut self, local: Option<Local>) -> Slot {
        self.local = local;
        self
    }

    /// A node known to be unusable before anything is asked of it.
    pub fn down(remote: NodeRemote, why: String) -> Slot {
        Slot {
            remote,
            state: State::Down(why),
            timestamp: None,
            local: None,
        }
    }

    pub fn name(&self) -> &str {
        &self.remote.name
    }

    pub fn uuid(&self) -> &str {
        &self.remote.uuid
    }

    pub fn conn(&mut self) -> Option<&mut NodeConnection> {
        match &mut self.state {
            State::Up(nc) => Some(nc),
            _ => None,
        }
    }

    pub fn conn_ref(&self) -> Option<&NodeConnection> {
        match &self.state {
            State::Up(nc) => Some(nc),
            _ => None,
        }
    }

    /// Whether the node is serving other uploads now (known for local
    /// nodes only).
    pub fn busy(&self) -> bool {
        if let Some(local) = &self.local {
            return local.store.uploads_running() > 0;
        }
        let annex::transport::Location::Local(dir) = &self.remote.location else {
            return false;
        };
        let dot_git = dir.join(".git");
        let (gitdir, bare) = if dot_git.is_dir() {
            (dot_git, false)
        } else {
            (dir.clone(), true)
        };
        annex::store::ObjectStore::new(gitdir, bare, 0).uploads_running() > 0
    }

    pub fn version(&self) -> u32 {
        match &self.state {
            State::Up(nc) => nc.version,
            _ => 0,
        }
    }

    pub fn down_reason(&self) -> Option<&str> {
        match &self.state {
            State::Down(why) => Some(why),
            _ => None,
        }
    }

    /// The node failed: close it (for its last words) and remember why.
    /// Returns the reason, which names the node.
    pub async fn fail(&mut self, e: ConnError) -> String {
        let name = self.remote.name.clone();
        let why = match std::mem::replace(&mut self.state, State::Idle) {
            State::Up(nc) => {
                let (_, stderr) = nc.close_with_stderr().await;
                match stderr.trim() {
                    "" => format!("{name}: connection lost ({e})"),
                    s => format!("{name}: connection lost ({e}): {s}"),
                }
            }
            State::Down(why) => why,
            State::Idle => format!("{name}: {e}"),
        };
        eprintln!("git-annex-shell: {why}");
        self.state = State::Down(why.clone());
        why
    }
}

pub struct Pool {
    pub slots: Vec<Slot>,
    my_uuid: String,
    /// The version the client speaks; nodes are asked for no more.
    version: u32,
    /// Sent to every node (version 2 and up) right after VERSION.
    bypass: BTreeSet<String>,
    opts: ConnectOptions,
}

/// The one fan-out: `each` runs on the slots at `targets` (every slot
/// when `None`) at once, and their results come back in slot order. What
/// is sent and how an answer is read is the caller's; how the nodes are
/// reached at once is said here only.
pub(super) async fn fan_out<'a, T, Fut>(
    slots: &'a mut [Slot],
    targets: Option<&[usize]>,
    mut each: impl FnMut(usize, &'a mut Slot) -> Fut,
) -> Vec<T>
where
    Fut: std::future::Future<Output = T> + 'a,
{
    let wanted: Option<BTreeSet<usize>> = targets.map(|t| t.iter().copied().collect());
    let runs: Vec<Fut> = slots
        .iter_mut()
        .enumerate()
        .filter(|(i, _)| wanted.as_ref().is_none_or(|w| w.contains(i)))
        .map(|(i, slot)| each(i, slot))
        .collect();
    join_all(runs).await
}

impl Pool {
    pub fn new(
        slots: Vec<Slot>,
        my_uuid: String,
        version: u32,
        bypass: BTreeSet<String>,
        opts: ConnectOptions,
    ) -> Pool {
        Pool {
            slots,
            my_uuid,
            version,
            bypass,
            opts,
        }
    }

    /// No nodes yet: the gateway's pool before the session's BYPASS set
    /// is known (the options are never used to start a node).
    pub fn empty(my_uuid: String) -> Pool {
        let opts = ConnectOptions::new(std::path::PathBuf::new());
        Pool::new(Vec::new(), my_uuid, 0, BTreeSet::new(), opts)
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    pub fn uuids(&self) -> impl Iterator<Item = &str> {
        self.slots.iter().map(Slot::uuid)
    }

    /// Make sure the nodes at `which` are connected (those that can be),
    /// connecting at most `jobs` at a time.
    pub async fn ensure(&mut self, which: &[usize], jobs: usize) {
        let wanted: BTreeSet<usize> = which.iter().copied().collect();
        let idle: Vec<&mut Slot> = self
            .slots
            .iter_mut()
            .enumerate()
            .filter(|(i, s)| wanted.contains(i) && matches!(s.state, State::Idle))
            .map(|(_, s)| s)
            .collect();
        let (my_uuid, version, bypass, opts) =
            (&self.my_uuid, self.version, &self.bypass, &self.opts);
        let mut idle = idle.into_iter();
        loop {
            let batch: Vec<&mut Slot> = idle.by_ref().take(jobs.max(1)).collect();
            if batch.is_empty() {
                break;
            }
            join_all(
                batch
                    .into_iter()
                    .map(|slot| open(slot, my_uuid, version, bypass, opts)),
            )
            .await;
        }
    }

    /// Close every connection, letting the nodes commit what they journalled.
    pub async fn close(&mut self) {
        join_all(self.slots.iter_mut().map(|slot| async move {
            if let State::Up(nc) = std::mem::replace(&mut slot.state, State::Idle) {
                nc.close().await;
            }
        }))
        .await;
        for slot in &mut self.slots {
            if let Some(local) = slot.local.as_mut().filter(|l| l.journalled) {
                if let Err(e) = local.branch.commit() {
                    eprintln!(
                        "git-annex-shell: {}: committing its git-annex branch: {e}",
                        slot.remote.name
                    );
                }
                local.journalled = false;
            }
        }
    }

    pub fn my_uuid(&self) -> &str {
        &self.my_uuid
    }
}

async fn open(
    slot: &mut Slot,
    my_uuid: &str,
    version: u32,
    bypass: &BTreeSet<String>,
    opts: &ConnectOptions,
) {
    slot.state = match connect(&slot.remote, my_uuid, version, opts).await {
        Ok(mut nc) => {
            let told = if Message::Bypass(Vec::new()).known_in(nc.version) {
                let list = bypass.iter().cloned().collect();
                nc.conn.write_message(&Message::Bypass(list)).await
            } else {
                Ok(())
            };
            match told {
                Ok(()) => State::Up(Box::new(nc)),
                Err(e) => {
                    slot.state = State::Up(Box::new(nc));
                    slot.fail(e).await;
                    return;
                }
            }
        }
        Err(e) => {
            eprintln!("git-annex-shell: {e}");
            State::Down(e.to_string())
        }
    };
}
