//! A P2P peer as a back-end: each request relayed to a node (a child
//! `git-annex-shell`, ssh, tor-annex, p2p-annex) over its own session
//! (spec §6.3).
//!
//! The client is greeted with the node's UUID; the version the client
//! offers is offered to the node and the node's answer is the session's,
//! so nothing is forwarded that either side's version does not allow. DATA
//! bodies go by splice where both ends are descriptors, else in bounded
//! chunks. Changes the node reports to its location log (a stored PUT, a
//! REMOVE) are journalled in *our* git-annex branch too, committed when
//! the session ends, so clients that sync with us learn where content
//! went.
//!
//! A node that cannot be reached, or dies, costs only the requests made
//! of it: each is refused with an ERROR naming the node, and nothing is
//! recorded that the node did not confirm. Only a node dying while its
//! DATA is half relayed ends the session ([`BackendError::Lost`]), since
//! the client then waits for bytes that will never come.

mod body;

use annex::branch::{Branch, LogStatus};
use annex::key::Key;
use annex::p2p::{ConnError, Connection, Message, Service};
use annex::store::VerifyMode;
use annex::transport::{connect, ConnectOptions, NodeConnection, NodeRemote};

use super::owed::OwedLogs;
use tokio::io::{AsyncRead, AsyncWrite};

pub(crate) use body::{node_validity, relay_body};

use super::{Backend, BackendError, Failure, Outcome, StoreEnd, Storing};
use crate::restrict::Rules;

/// Either the node's connection, or why there is none.
enum Node {
    Up(Box<NodeConnection>),
    Down(String),
}

pub struct Peer {
    node: Node,
    remote: NodeRemote,
    opts: ConnectOptions,
    branch: Branch,
    my_uuid: String,
    /// Whether CONNECT may go on to the node (see [`Rules::relays_git_to`]).
    git_relay: bool,
    /// The version both sides speak, once settled.
    version: Option<u32>,
    journalled: bool,
    /// Lines for the node owed until the session commits, when the
    /// session ends with its client's command ([`Peer::owing`]).
    owed: Option<OwedLogs>,
    /// The node holds a lock for the client.
    locked: bool,
    /// The PUT being relayed, and the node's failure if it broke while
    /// the client's body was still coming.
    storing: Option<(Key, Option<ConnError>)>,
}

impl Peer {
    /// A back-end for `remote`, reached with `opts` once the client's
    /// version is known; `my_uuid` is who we are to the node.
    pub fn new(remote: NodeRemote, opts: ConnectOptions, branch: Branch, my_uuid: String) -> Peer {
        Peer {
            node: Node::Down(format!("{}: not connected", remote.name)),
            remote,
            opts,
            branch,
            my_uuid,
            git_relay: true,
            version: None,
            journalled: false,
            owed: None,
            locked: false,
            storing: None,
        }
    }

    /// For a session that ends with its client's command (ssh): the node's
    /// lines go into the session's commit rather than a journal file each
    /// (`owed.rs`), as a local repository's do. Sessions that outlive it
    /// (p2phttp's pooled ones) journal at once, so the lines are seen when
    /// the client is done.
    pub fn owing(mut self) -> Self {
        self.owed = Some(OwedLogs::default());
        self
    }

    /// Whether git's services (CONNECT) are relayed to the node.
    pub fn relaying_git(mut self, allowed: bool) -> Self {
        self.git_relay = allowed;
        self
    }

    fn failure(&self, what: &'static str, why: String) -> BackendError {
        BackendError::Refused(Failure {
            node: self.remote.name.clone(),
            what,
            why,
        })
    }

    /// The node's connection, or the refusal the client hears instead.
    fn up(&mut self, what: &'static str) -> Result<&mut NodeConnection, BackendError> {
        match &mut self.node {
            Node::Up(nc) => Ok(nc),
            Node::Down(why) => Err(BackendError::Refused(Failure {
                node: self.remote.name.clone(),
                what,
                why: why.clone(),
            })),
        }
    }

    /// The node failed: close it (for its last words) and answer this and
    /// every later request with why.
    async fn take_down(&mut self, e: ConnError) -> String {
        let name = self.remote.name.clone();
        let down = Node::Down(String::new());
        let why = match std::mem::replace(&mut self.node, down) {
            Node::Up(nc) => {
                let (_, stderr) = nc.close_with_stderr().await;
                let stderr = stderr.trim().to_owned();
                if stderr.is_empty() {
                    format!("{name}: connection lost ({e})")
                } else {
                    format!("{name}: connection lost ({e}): {stderr}")
                }
            }
            Node::Down(why) => why,
        };
        crate::user::tell(format_args!("{why}"));
        self.node = Node::Down(why.clone());
        why
    }

    async fn failed(&mut self, what: &'static str, e: ConnError) -> BackendError {
        let why = self.take_down(e).await;
        self.failure(what, why)
    }

    /// Forward one request and return the node's one answer; an ERROR
    /// from the node is this request's refusal, passed on as it is.
    async fn ask(&mut self, msg: Message) -> Result<Message, BackendError> {
        let what = msg.verb();
        let answer = self.up(what)?.exchange(&msg).await;
        match answer {
            Ok(Message::Error(why)) => Err(self.failure(what, why)),
            Ok(m) => Ok(m),
            Err(e) => Err(self.failed(what, e).await),
        }
    }

    /// An answer the request does not allow.
    fn unexpected(&self, what: &'static str, m: &Message) -> BackendError {
        let why = format!("{}: unexpected {}", self.remote.name, m.verb());
        self.failure(what, why)
    }

    /// Send the node a message that has no answer; a node that cannot take
    /// it is taken down, and the next request hears why.
    async fn tell(&mut self, msg: Message) {
        if let Node::Up(nc) = &mut self.node {
            if let Err(e) = nc.conn.write_message(&msg).await {
                self.take_down(e).await;
            }
        }
    }

    /// Journal, in our own branch, what the node told us happened. Before
    /// the answer, unlike the local back-end (`owed.rs`): whether the node
    /// still holds what it said cannot be asked when a deferred line is
    /// written, so a late line could outdate a newer one.
    fn record<'a>(
        &mut self,
        key: &Key,
        uuids: impl IntoIterator<Item = &'a str>,
        status: LogStatus,
    ) {
        if let Some(owed) = &mut self.owed {
            owed.owe(key, uuids, status);
            return;
        }
        match self.branch.log_key_locations(key, uuids, status) {
            Ok(changed) => self.journalled |= changed,
            Err(e) => tracing::warn!(%key, error = %e, "recording in the location log"),
        }
    }

    /// Commits the owed lines; what cannot be logged is told on stderr
    /// (the node's answers stand, `git annex fsck` logs them later).
    fn pay_logs(&mut self) {
        let Some(owed) = &mut self.owed else { return };
        let unlogged = |key: &Key, _, e: &annex::branch::BranchError| {
            crate::user::tell(format_args!("{key}: not logged for the node: {e}"));
        };
        if let Err(e) = owed.pay_as_of(&self.branch, unlogged) {
            tracing::warn!(error = %e, "committing the git-annex branch");
        }
    }

    /// The node's word on a store or removal, journalled as `status`.
    fn outcome(
        &mut self,
        key: &Key,
        reply: Message,
        status: LogStatus,
    ) -> Result<Outcome, BackendError> {
        let node_uuid = self.remote.uuid.clone();
        let (ok, also) = match reply {
            Message::Success => (true, Vec::new()),
            Message::SuccessPlus(us) => (true, us),
            Message::Failure => (false, Vec::new()),
            Message::FailurePlus(us) => (false, us),
            m => return Err(self.unexpected("outcome", &m)),
        };
        // Others that removed it did so even when the node failed to.
        let others = (ok || status == LogStatus::Missing).then_some(&also);
        let node = ok.then_some(node_uuid.as_str());
        let all = node
            .into_iter()
            .chain(others.into_iter().flatten().map(String::as_str));
        self.record(key, all, status);
        Ok(Outcome { ok, also })
    }

    fn node_version(&self) -> u32 {
        match &self.node {
            Node::Up(nc) => nc.version,
            Node::Down(_) => self.version.unwrap_or(0),
        }
    }
}

impl Backend for Peer {
    fn uuid(&self) -> &str {
        &self.remote.uuid
    }

    /// The node is reached now, offered the client's version; a node that
    /// cannot be reached leaves the client's version, and every request
    /// is refused naming it.
    async fn negotiate(&mut self, offered: u32) -> u32 {
        // The node's session has its version: a client offering another
        // later is told the one both sides speak.
        if let Some(v) = self.version {
            return v;
        }
        let version = match connect(&self.remote, &self.my_uuid, offered, &self.opts).await {
            Ok(nc) => {
                let v = nc.version;
                self.node = Node::Up(Box::new(nc));
                v
            }
            Err(e) => {
                crate::user::tell(format_args!("{e}"));
                self.node = Node::Down(e.to_string());
                offered
            }
        };
        self.version = Some(version);
        version
    }

    /// Our UUID goes to the node in BYPASS, after the client's own set: a
    /// proxy that finds itself in the set is being asked in a circle (two
    /// proxies each listing the other's route to a repository) and says
    /// so, instead of relaying forever.
    async fn bypass(&mut self, mut set: Vec<String>) -> Result<(), BackendError> {
        if set.contains(&self.my_uuid) {
            let why = format!("proxy loop: this request already passed {}", self.my_uuid);
            crate::user::tell(format_args!("{why}"));
            return Err(BackendError::Refused(Failure {
                node: self.my_uuid.clone(),
                what: "BYPASS",
                why,
            }));
        }
        set.push(self.my_uuid.clone());
        set.sort();
        set.dedup();
        let bypass = Message::Bypass(set);
        if bypass.known_in(self.node_version()) {
            self.tell(bypass).await;
        }
        Ok(())
    }

    async fn check_present(&mut self, key: &Key) -> Result<bool, BackendError> {
        match self.ask(Message::CheckPresent(key.clone())).await? {
            Message::Success => Ok(true),
            Message::Failure => Ok(false),
            m => Err(self.unexpected("CHECKPRESENT", &m)),
        }
    }

    async fn lock(&mut self, key: &Key) -> Result<bool, BackendError> {
        match self.ask(Message::LockContent(key.clone())).await? {
            Message::Success => {
                self.locked = true;
                Ok(true)
            }
            Message::Failure => Ok(false),
            m => Err(self.unexpected("LOCKCONTENT", &m)),
        }
    }

    /// Only UNLOCKCONTENT reaches the node, whatever the client said: its
    /// anything else would be a request no rule checked.
    async fn unlock(&mut self) {
        if std::mem::take(&mut self.locked) {
            // No answer comes; a node that is gone took the lock with it.
            self.tell(Message::UnlockContent).await;
        }
    }

    async fn remove(&mut self, key: &Key, deadline: Option<u64>) -> Result<Outcome, BackendError> {
        let msg = match deadline {
            // A node too old for REMOVE-BEFORE (which came with
            // GETTIMESTAMP) gets a plain REMOVE, as git-annex sends it.
            Some(timestamp) if Message::GetTimestamp.known_in(self.node_version()) => {
                Message::RemoveBefore {
                    timestamp,
                    key: key.clone(),
                }
            }
            _ => Message::Remove(key.clone()),
        };
        let reply = self.ask(msg).await?;
        self.outcome(key, reply, LogStatus::Missing)
    }

    async fn timestamp(&mut self) -> Result<u64, BackendError> {
        match self.ask(Message::GetTimestamp).await? {
            Message::Timestamp(t) => Ok(t),
            m => Err(self.unexpected("GETTIMESTAMP", &m)),
        }
    }

    /// The node's DATA streams through to the client, then its validity.
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
        let len = match self.ask(get_request(offset, file, key)).await? {
            Message::Data(len) => len,
            m => return Err(self.unexpected("GET", &m)),
        };
        tracing::Span::current().record("bytes", len);
        let nc = self.up("GET")?;
        if let Err(e) = relay_body(nc, len, client).await {
            return Err(match e {
                ConnError::Relay(inner) => BackendError::Client(*inner),
                e => {
                    let why = self.take_down(e).await;
                    BackendError::Lost(Failure {
                        node: self.remote.name.clone(),
                        what: "GET",
                        why,
                    })
                }
            });
        }
        if self.version.unwrap_or(0) == 0 {
            return Ok(true);
        }
        let nc = match &mut self.node {
            Node::Up(nc) => Some(&mut **nc),
            Node::Down(_) => None,
        };
        let (validity, failed) = node_validity(nc).await;
        if let Some(e) = failed {
            self.take_down(e).await;
        }
        Ok(validity == Message::Valid)
    }

    async fn retrieved(&mut self, verdict: Option<bool>) {
        match verdict {
            Some(true) => self.tell(Message::Success).await,
            Some(false) => self.tell(Message::Failure).await,
            None => {}
        }
    }

    async fn store_begin(
        &mut self,
        key: &Key,
        file: Option<&str>,
    ) -> Result<Storing, BackendError> {
        // The client sends its DATA from the node's offset.
        match self.ask(put_request(key, file)).await? {
            Message::PutFrom(offset) => {
                self.storing = Some((key.clone(), None));
                Ok(Storing::From(offset))
            }
            Message::AlreadyHave => Ok(Storing::AlreadyHave(Vec::new())),
            Message::AlreadyHavePlus(us) => Ok(Storing::AlreadyHave(us)),
            m => Err(self.unexpected("PUT", &m)),
        }
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
        let Node::Up(nc) = &mut self.node else {
            // Gone since PUT-FROM: the body is still read, to stay in step.
            client.recv_data(len, &mut annex::p2p::Discard).await?;
            return Ok(());
        };
        match body::relay_put_body(client, len, nc).await {
            Ok(()) => Ok(()),
            // The client's body was still read to its end.
            Err(ConnError::Relay(inner)) => {
                if let Some((_, broke)) = &mut self.storing {
                    *broke = Some(*inner);
                }
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn store_end(&mut self, end: StoreEnd) -> Result<Outcome, BackendError> {
        let Some((key, broke)) = self.storing.take() else {
            return Ok(Outcome::plain(false));
        };
        if let Some(e) = broke {
            return Err(self.failed("PUT", e).await);
        }
        let version = self.version.unwrap_or(0);
        let reply = match end {
            StoreEnd::Body(mode) => {
                let nc = self.up("PUT")?;
                let sent = match mode {
                    _ if version == 0 => Ok(()),
                    VerifyMode::Valid => nc.conn.write_message(&Message::Valid).await,
                    _ => nc.conn.write_message(&Message::Invalid).await,
                };
                match sent {
                    Ok(()) => nc.reply().await,
                    Err(e) => Err(e),
                }
            }
            StoreEnd::Present => self.up("PUT")?.exchange(&Message::DataPresent).await,
            // The client could not send after all; neither side answers.
            StoreEnd::Abandon(why) => {
                self.tell(Message::Error(why)).await;
                return Ok(Outcome::plain(false));
            }
        };
        match reply {
            Ok(Message::Error(why)) => Err(self.failure("PUT", why)),
            Ok(reply) => self.outcome(&key, reply, LogStatus::Present),
            Err(e) => Err(self.failed("PUT", e).await),
        }
    }

    /// The node answers when a ref changes. Dropped when the client ends
    /// the wait; nothing the client says meanwhile reaches the node.
    async fn changed_refs(&mut self) -> Result<Vec<String>, BackendError> {
        let nc = self.up("NOTIFYCHANGE")?;
        let answer = match nc.conn.write_message(&Message::NotifyChange).await {
            Ok(()) => nc.reply().await,
            Err(e) => Err(e),
        };
        match answer {
            Ok(Message::Changed(refs)) => Ok(refs),
            Ok(Message::Error(why)) => Err(self.failure("NOTIFYCHANGE", why)),
            Ok(m) => Err(self.unexpected("NOTIFYCHANGE", &m)),
            Err(e) => Err(self.failed("NOTIFYCHANGE", e).await),
        }
    }

    /// After CONNECT the session belongs to the node's git service: the
    /// bytes are copied raw both ways, its CONNECTDONE among them.
    async fn git_service<R, W>(
        &mut self,
        service: Service,
        client: &mut Connection<R, W>,
    ) -> Result<Option<i32>, BackendError>
    where
        R: AsyncRead + Unpin + Send,
        W: AsyncWrite + Unpin + Send,
    {
        if !self.git_relay {
            let why = Rules::git_relay_refusal(&self.remote.name);
            return Err(self.failure("CONNECT", why));
        }
        let sent = self
            .up("CONNECT")?
            .conn
            .write_message(&Message::Connect(service))
            .await;
        if let Err(e) = sent {
            return Err(self.failed("CONNECT", e).await);
        }
        let down = Node::Down(format!("{}: tunnelled", self.remote.name));
        if let Node::Up(nc) = std::mem::replace(&mut self.node, down) {
            (*nc).tunnel(client).await;
        }
        Ok(None)
    }

    /// The node's session ends the way a client ends it; then what we
    /// journalled (and anything an earlier autoinit left) is committed.
    async fn settle(&mut self) {
        if self.owed.as_ref().is_some_and(OwedLogs::due) {
            self.pay_logs();
        }
    }

    async fn finish(&mut self) -> Result<(), BackendError> {
        let down = Node::Down(String::new());
        if let Node::Up(nc) = std::mem::replace(&mut self.node, down) {
            nc.close().await;
        }
        if self.owed.as_ref().is_some_and(|o| !o.is_empty()) {
            // One commit, with the journal.
            self.pay_logs();
            return Ok(());
        }
        if self.journalled || self.branch.journal_dirty() {
            if let Err(e) = self.branch.commit() {
                tracing::warn!(error = %e, "committing the git-annex branch");
            }
        }
        Ok(())
    }
}

/// The GET a client sends for `key` from `offset`, as a node is asked it
/// in turn (by the proxy and by the cluster gateway alike).
pub(crate) fn get_request(offset: u64, file: Option<&str>, key: &Key) -> Message {
    Message::Get {
        offset,
        file: file.map(str::to_owned),
        key: key.clone(),
    }
}

/// The PUT a client sends for `key`, as a node is asked it in turn.
pub(crate) fn put_request(key: &Key, file: Option<&str>) -> Message {
    Message::Put {
        file: file.map(str::to_owned),
        key: key.clone(),
    }
}
