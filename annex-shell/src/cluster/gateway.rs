//! One client's session with a cluster (spec §7.3): the client speaks to
//! the cluster's UUID as to one repository; each request is answered by
//! asking the nodes — one of them (GET), those that should get the key
//! (PUT), or all (REMOVE) — and the answer names the nodes that now hold
//! or no longer hold the key, so the client's location log stays true.
//!
//! The gateway's own location log learns the same, in its own git-annex
//! branch, committed when the session ends. The cluster UUID itself is
//! never logged: a key is in the cluster exactly when it is on a node.

use std::collections::BTreeSet;

use annex::branch::{Branch, LogStatus};
use annex::key::Key;
use annex::p2p::{ConnError, Connection, Message, MAX_PROTOCOL_VERSION};
use annex::store::ObjectStore;
use tokio::io::{AsyncRead, AsyncWrite};

use super::pool::{fan_out, Pool};
use crate::proxy::relay::{fit, RelayError};
use crate::restrict::Rules;

pub(super) enum Flow {
    Continue,
    Stop,
}

/// What the gateway knows about the placement of keys: which nodes want
/// a key (preferred content), and whether the gateway itself does.
pub trait Placement: Send {
    /// Of `nodes`, those that should get `key` given that `holders` have
    /// it (with the fallbacks when none wants it; empty when none can).
    fn wanted(
        &mut self,
        nodes: &[&str],
        key: &Key,
        file: Option<&str>,
        holders: &BTreeSet<String>,
    ) -> BTreeSet<String>;
    /// Whether the gateway stores the key too.
    fn gateway_wants(&mut self, key: &Key, file: Option<&str>, holders: &BTreeSet<String>) -> bool;
    /// The key was stored on `uuids` (sizes change).
    fn placed(&mut self, key: &Key, uuids: &BTreeSet<String>);
    /// Why `uuid` has no room for `key` (its maxsize), if that is so.
    fn no_room(&mut self, _uuid: &str, _key: &Key) -> Option<String> {
        None
    }
}

pub struct Gateway<R, W> {
    pub(super) client: Connection<R, W>,
    pub(super) pool: Pool,
    /// Index of the slot that is the gateway's own repository, served by
    /// a child of ours like any node.
    pub(super) own: Option<usize>,
    pub(super) store: ObjectStore,
    pub(super) branch: Branch,
    pub(super) placement: Box<dyn Placement>,
    pub(super) rules: Rules,
    /// The nodes git (CONNECT) may go on to (see [`Rules::relays_git_to`]).
    pub(super) git_relay: BTreeSet<String>,
    pub(super) version: u32,
    pub(super) jobs: usize,
    /// Our clock's reading when we answered GETTIMESTAMP, to translate
    /// REMOVE-BEFORE deadlines into each node's clock.
    pub(super) our_timestamp: Option<u64>,
    pub(super) journalled: bool,
}

pub struct Setup {
    pub cluster_uuid: String,
    pub my_uuid: String,
    pub store: ObjectStore,
    pub branch: Branch,
    pub placement: Box<dyn Placement>,
    pub rules: Rules,
    /// Names of the remotes git may be relayed to.
    pub git_relay: BTreeSet<String>,
    pub jobs: usize,
}

impl<R, W> Gateway<R, W>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    /// Greet the client, agree on the version and take its BYPASS set,
    /// then serve it. `make_pool` gets the version and BYPASS set, and
    /// returns the nodes (and which of them is the gateway itself).
    pub async fn serve(
        mut client: Connection<R, W>,
        setup: Setup,
        make_pool: impl FnOnce(u32, BTreeSet<String>) -> (Pool, Option<usize>),
    ) -> Result<(), RelayError> {
        client
            .write_message(&Message::AuthSuccess(setup.cluster_uuid.clone()))
            .await?;
        let mut pending = None;
        let version = match client.read_message().await {
            Ok(None) => return Ok(()),
            Ok(Some(Message::Version(v))) => {
                let v = v.min(MAX_PROTOCOL_VERSION);
                // Answered at once: nodes are only started when needed.
                client.write_message(&Message::Version(v)).await?;
                v
            }
            Ok(Some(other)) => {
                pending = Some(Ok(other));
                0
            }
            Err(e) if e.is_recoverable() => {
                pending = Some(Err(e));
                0
            }
            Err(e) => return Err(e.into()),
        };
        let mut bypass = BTreeSet::new();
        if version >= 2 && pending.is_none() {
            match client.read_message().await {
                Ok(None) => return Ok(()),
                Ok(Some(Message::Bypass(us))) => bypass.extend(us),
                Ok(Some(other)) => pending = Some(Ok(other)),
                Err(e) if e.is_recoverable() => pending = Some(Err(e)),
                Err(e) => return Err(e.into()),
            }
        }
        bypass.insert(setup.my_uuid.clone());
        let (pool, own) = make_pool(version, bypass);
        let mut gw = Gateway {
            client,
            pool,
            own,
            store: setup.store,
            branch: setup.branch,
            placement: setup.placement,
            rules: setup.rules,
            git_relay: setup.git_relay,
            version,
            jobs: setup.jobs,
            our_timestamp: None,
            journalled: false,
        };
        let result = gw.run(pending).await;
        gw.pool.close().await;
        if gw.journalled || gw.branch.journal_dirty() {
            if let Err(e) = gw.branch.commit() {
                eprintln!("git-annex-shell: committing the git-annex branch: {e}");
            }
        }
        result
    }

    async fn run(
        &mut self,
        mut pending: Option<Result<Message, ConnError>>,
    ) -> Result<(), RelayError> {
        loop {
            let msg = match pending.take() {
                Some(m) => m,
                None => match self.client.read_message().await {
                    Ok(None) => return Ok(()),
                    Ok(Some(m)) => Ok(m),
                    Err(e) => Err(e),
                },
            };
            let msg = match msg {
                Ok(m) => m,
                Err(e) if e.is_recoverable() => {
                    self.send(Message::Error("unknown command".into())).await?;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            if let Flow::Stop = self.dispatch(msg).await? {
                return Ok(());
            }
        }
    }

    async fn dispatch(&mut self, msg: Message) -> Result<Flow, RelayError> {
        if let Err(refusal) = self.rules.admit(&msg) {
            let ends = refusal.ends_session;
            self.send(refusal.into()).await?;
            return Ok(if ends { Flow::Stop } else { Flow::Continue });
        }
        match msg {
            Message::CheckPresent(key) => {
                let present = self.in_cluster(&key);
                self.send(if present {
                    Message::Success
                } else {
                    Message::Failure
                })
                .await?;
            }
            // Clients lock content on individual nodes, which they reach
            // as proxied remotes; a lock on "the cluster" would promise a
            // copy no single node guarantees.
            Message::LockContent(_) => self.send(Message::Failure).await?,
            Message::GetTimestamp => self.get_timestamp().await?,
            Message::Remove(key) => self.remove(key, None).await?,
            Message::RemoveBefore { timestamp, key } => self.remove(key, Some(timestamp)).await?,
            Message::Get { offset, file, key } => self.get(offset, file, key).await?,
            Message::Put { file, key } => self.put(file, key).await?,
            // Only the first message of a session may carry BYPASS.
            Message::Bypass(_) => {}
            Message::Connect(service) => return super::connect::handle(self, service).await,
            Message::NotifyChange => {
                self.send(Message::Error(
                    "change notification is not available through a cluster".into(),
                ))
                .await?;
            }
            Message::Error(_) => return Ok(Flow::Stop),
            _ => {
                self.send(Message::Error("unexpected command".into()))
                    .await?
            }
        }
        Ok(Flow::Continue)
    }

    pub(super) async fn send(&mut self, msg: Message) -> Result<(), RelayError> {
        self.client.write_message(&fit(msg, self.version)).await?;
        Ok(())
    }

    /// UUIDs the gateway's location log says have the key.
    pub(super) fn holders(&self, key: &Key) -> BTreeSet<String> {
        match self.branch.key_locations(key) {
            Ok(us) => us.into_iter().collect(),
            Err(e) => {
                eprintln!("git-annex-shell: reading the location log of {key}: {e}");
                BTreeSet::new()
            }
        }
    }

    /// CHECKPRESENT trusts the location log (git-annex's gateway does too):
    /// asking every node would cost a connection each for what the client
    /// mostly asks before a PUT.
    fn in_cluster(&self, key: &Key) -> bool {
        let holders = self.holders(key);
        self.pool.uuids().any(|u| holders.contains(u))
            || (self.own.is_some() && self.store.has(key))
    }

    /// Several nodes each have their own clock: we answer with ours and
    /// remember each node's, to translate a later REMOVE-BEFORE.
    async fn get_timestamp(&mut self) -> Result<(), RelayError> {
        // Local nodes are served in-process: their clock is ours.
        let all: Vec<usize> = (0..self.pool.len())
            .filter(|&i| self.pool.slots[i].local.is_none())
            .collect();
        self.pool.ensure(&all, self.jobs).await;
        fan_out(&mut self.pool.slots, None, |_, slot| async move {
            let answer = match slot.conn() {
                Some(nc) => nc.exchange(&Message::GetTimestamp).await,
                None => return,
            };
            slot.timestamp = match answer {
                Ok(Message::Timestamp(t)) => Some(t),
                Ok(_) => None,
                Err(e) => {
                    slot.fail(e).await;
                    None
                }
            };
        })
        .await;
        let now = annex::clock::monotonic_seconds();
        self.our_timestamp = Some(now);
        self.send(Message::Timestamp(now)).await
    }

    /// Journal, in our own branch, what the nodes told us happened.
    pub(super) fn record<'a>(
        &mut self,
        key: &Key,
        uuids: impl IntoIterator<Item = &'a String>,
        status: LogStatus,
    ) {
        for u in uuids {
            if annex::branch::maplog::is_cluster_uuid(u) {
                continue;
            }
            match self.branch.log_key_location(key, u, status) {
                Ok(changed) => self.journalled |= changed,
                Err(e) => eprintln!("git-annex-shell: recording {key} for {u}: {e}"),
            }
        }
    }
}
