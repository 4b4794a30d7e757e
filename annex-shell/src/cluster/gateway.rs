//! A cluster as one back-end (spec §7.3): the client speaks to the
//! cluster's UUID as to one repository, through the one session loop;
//! each request is answered by asking the nodes — one of them (GET),
//! those that should get the key (PUT), or all (REMOVE) — and the answer
//! names the nodes that now hold or no longer hold the key, so the
//! client's location log stays true.
//!
//! The gateway's own location log learns the same, in its own git-annex
//! branch, committed when the session ends. The cluster UUID itself is
//! never logged: a key is in the cluster exactly when it is on a node.
//! The gateway is a composite of [`Node`]s: [`super::policy`] chooses
//! which nodes a request goes to, and the same [`Node`] calls go to each
//! of them through the one fan-out ([`super::pool::fan_out`]), whatever
//! kind of node each is. The gateway's own repository is one of the
//! nodes; like every node on this machine it is served in-process for
//! transfers and removals (git's CONNECT goes through a child).
//!
//! [`Node`]: super::node::Node

use std::collections::BTreeSet;

use annex::branch::{Branch, LogStatus};
use annex::key::Key;
use annex::p2p::{Connection, Message, Service};
use annex::store::ObjectStore;
use tokio::io::{AsyncRead, AsyncWrite};

use super::pool::{fan_out, Pool};
use super::put::Put;
use crate::backend::owed::OwedLogs;
use crate::backend::{Backend, BackendError, Failure, Outcome, StoreEnd, Storing};

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

/// Builds the nodes' pool from the session's version and BYPASS set (our
/// own UUID included); returns the pool and which node is the gateway's
/// own repository.
pub type MakePool = Box<dyn FnOnce(u32, BTreeSet<String>) -> (Pool, Option<usize>) + Send>;

pub struct Gateway {
    cluster_uuid: String,
    my_uuid: String,
    /// Until the pool is built (at BYPASS, or at the first request of a
    /// client too old to send one).
    make_pool: Option<MakePool>,
    pub(super) pool: Pool,
    /// Index of the node that is the gateway's own repository.
    pub(super) own: Option<usize>,
    pub(super) store: ObjectStore,
    pub(super) branch: Branch,
    pub(super) placement: Box<dyn Placement>,
    /// The nodes git (CONNECT) may go on to (see
    /// [`crate::restrict::Rules::relays_git_to`]).
    pub(super) git_relay: BTreeSet<String>,
    pub(super) version: u32,
    pub(super) jobs: usize,
    /// Our clock's reading when we answered GETTIMESTAMP, to translate
    /// REMOVE-BEFORE deadlines into each node's clock.
    pub(super) our_timestamp: Option<u64>,
    pub(super) journalled: bool,
    /// The nodes' lines owed to the session's commit, when the session
    /// ends with its client's command ([`Setup::owing`]).
    owed: Option<OwedLogs>,
    /// The PUT under way, between `store_begin` and `store_end`.
    pub(super) put: Option<Put>,
    /// The node serving the GET under way, between `retrieve` and
    /// `retrieved`.
    pub(super) serving: Option<usize>,
}

pub struct Setup {
    pub cluster_uuid: String,
    pub my_uuid: String,
    pub store: ObjectStore,
    pub branch: Branch,
    pub placement: Box<dyn Placement>,
    /// Names of the remotes git may be relayed to.
    pub git_relay: BTreeSet<String>,
    pub jobs: usize,
    /// The session ends with its client's command (ssh): the nodes' lines
    /// go into its one commit, each as of its answer (`backend/owed.rs`),
    /// rather than a journal file per key; sessions that outlive it
    /// (p2phttp's) journal after each answer.
    pub owing: bool,
}

impl Gateway {
    pub fn new(setup: Setup, make_pool: MakePool) -> Gateway {
        Gateway {
            pool: Pool::empty(setup.my_uuid.clone()),
            cluster_uuid: setup.cluster_uuid,
            my_uuid: setup.my_uuid,
            make_pool: Some(make_pool),
            own: None,
            store: setup.store,
            branch: setup.branch,
            placement: setup.placement,
            git_relay: setup.git_relay,
            version: 0,
            jobs: setup.jobs,
            our_timestamp: None,
            journalled: false,
            owed: setup.owing.then(OwedLogs::default),
            put: None,
            serving: None,
        }
    }

    /// The nodes, reached lazily: building the pool starts no node.
    fn build_pool(&mut self, bypass: impl IntoIterator<Item = String>) {
        if let Some(make) = self.make_pool.take() {
            let mut set: BTreeSet<String> = bypass.into_iter().collect();
            set.insert(self.my_uuid.clone());
            let (pool, own) = make(self.version, set);
            self.pool = pool;
            self.own = own;
        }
    }

    /// A failure of this request, named after the cluster.
    pub(super) fn refusal(&self, what: &'static str, why: String) -> BackendError {
        BackendError::Refused(Failure {
            node: self.cluster_uuid.clone(),
            what,
            why,
        })
    }

    /// UUIDs the gateway's location log says have the key, updated
    /// with what this session owes it still.
    pub(super) fn holders(&self, key: &Key) -> BTreeSet<String> {
        let mut holders = match self.branch.key_locations(key) {
            Ok(us) => us.into_iter().collect(),
            Err(e) => {
                tracing::warn!(%key, error = %e, "reading the location log");
                BTreeSet::new()
            }
        };
        if let Some(owed) = &self.owed {
            owed.apply_to(key, &mut holders);
        }
        holders
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
    async fn get_timestamp(&mut self) -> Result<u64, BackendError> {
        if !Message::GetTimestamp.known_in(self.version) {
            let answer = Message::Timestamp(0).verb();
            let why = format!("{answer} is not in protocol version {}", self.version);
            return Err(self.refusal("timestamp", why));
        }
        // (Nodes served in-process have our clock: they read none.)
        let all: Vec<usize> = (0..self.pool.len())
            .filter(|&i| !self.pool.nodes[i].in_process())
            .collect();
        self.pool.ensure(&all, self.jobs).await;
        fan_out(&mut self.pool.nodes, Some(&all), |_, node| {
            node.sync_clock()
        })
        .await;
        let now = annex::clock::monotonic_seconds();
        self.our_timestamp = Some(now);
        Ok(now)
    }

    /// Commits the owed lines as of their answers (the nodes cannot be
    /// asked under our journal lock; see `Branch::key_locations_change_as_of`).
    fn pay_logs(&mut self) {
        let Some(owed) = &mut self.owed else { return };
        let unlogged = |key: &Key, _, e: &annex::branch::BranchError| {
            tracing::warn!(%key, error = %e, "recording in the location log");
        };
        if let Err(e) = owed.pay_as_of(&self.branch, unlogged) {
            tracing::warn!(error = %e, "committing the git-annex branch");
        }
    }

    /// Journal, in our own branch, what the nodes told us happened (or owe
    /// it to the session's commit).
    pub(super) fn record<'a>(
        &mut self,
        key: &Key,
        uuids: impl IntoIterator<Item = &'a String>,
        status: LogStatus,
    ) {
        let uuids = uuids.into_iter().map(String::as_str);
        if let Some(owed) = &mut self.owed {
            owed.owe(key, uuids, status);
            return;
        }
        match self.branch.log_key_locations(key, uuids, status) {
            Ok(changed) => self.journalled |= changed,
            Err(e) => tracing::warn!(%key, error = %e, "recording in the location log"),
        }
    }
}

impl Backend for Gateway {
    fn uuid(&self) -> &str {
        &self.cluster_uuid
    }

    /// Answered at once: nodes are only started when needed.
    async fn negotiate(&mut self, offered: u32) -> u32 {
        self.version = offered;
        offered
    }

    /// Only the first message of a session may carry BYPASS; a later one
    /// changes nothing.
    async fn bypass(&mut self, set: Vec<String>) -> Result<(), BackendError> {
        self.build_pool(set);
        Ok(())
    }

    async fn check_present(&mut self, key: &Key) -> Result<bool, BackendError> {
        self.build_pool([]);
        Ok(self.in_cluster(key))
    }

    /// Clients lock content on individual nodes, which they reach as
    /// proxied remotes; a lock on "the cluster" would promise a copy no
    /// single node guarantees.
    async fn lock(&mut self, _key: &Key) -> Result<bool, BackendError> {
        Ok(false)
    }

    async fn unlock(&mut self) {}

    async fn remove(&mut self, key: &Key, deadline: Option<u64>) -> Result<Outcome, BackendError> {
        self.build_pool([]);
        Ok(self.remove_everywhere(key, deadline).await)
    }

    async fn timestamp(&mut self) -> Result<u64, BackendError> {
        self.build_pool([]);
        self.get_timestamp().await
    }

    async fn retrieve<R, W>(
        &mut self,
        key: &Key,
        offset: u64,
        file: Option<&str>,
        client: &mut Connection<R, W>,
    ) -> Result<bool, BackendError>
    where
        R: AsyncRead + Unpin + Send,
        W: AsyncWrite + Unpin + Send,
    {
        self.build_pool([]);
        self.get(offset, file, key, client).await
    }

    async fn retrieved(&mut self, verdict: Option<bool>) {
        if let Some(i) = self.serving.take() {
            self.pool.nodes[i].retrieved(verdict).await;
        }
    }

    async fn store_begin(
        &mut self,
        key: &Key,
        file: Option<&str>,
    ) -> Result<Storing, BackendError> {
        self.build_pool([]);
        Ok(self.offer(key, file).await)
    }

    async fn store_body<R, W>(
        &mut self,
        len: u64,
        client: &mut Connection<R, W>,
    ) -> Result<(), BackendError>
    where
        R: AsyncRead + Unpin + Send,
        W: AsyncWrite + Unpin + Send,
    {
        self.take_body(len, client).await
    }

    async fn store_end(&mut self, end: StoreEnd) -> Result<Outcome, BackendError> {
        Ok(self.conclude(end).await)
    }

    async fn changed_refs(&mut self) -> Result<Vec<String>, BackendError> {
        let why = "change notification is not available through a cluster";
        Err(self.refusal("notifychange", why.into()))
    }

    async fn git_service<R, W>(
        &mut self,
        service: Service,
        client: &mut Connection<R, W>,
    ) -> Result<Option<i32>, BackendError>
    where
        R: AsyncRead + Unpin + Send,
        W: AsyncWrite + Unpin + Send,
    {
        self.build_pool([]);
        super::connect::handle(self, service, client).await
    }

    /// Close the nodes' sessions, drop what a PUT cut short left (kept for
    /// a resume), and commit what the nodes told us.
    async fn settle(&mut self) {
        if self.owed.as_ref().is_some_and(OwedLogs::due) {
            self.pay_logs();
        }
    }

    async fn finish(&mut self) -> Result<(), BackendError> {
        self.abandon_put();
        self.pool.close().await;
        if self.owed.as_ref().is_some_and(|o| !o.is_empty()) {
            // One commit, with the journal.
            self.pay_logs();
            return Ok(());
        }
        if self.journalled || self.branch.journal_dirty() {
            self.journalled = false;
            if let Err(e) = self.branch.commit() {
                tracing::warn!(error = %e, "committing the git-annex branch");
            }
        }
        Ok(())
    }
}
