//! One client's session relayed to one node (spec §6.3).
//!
//! The client is greeted with the node's UUID; its VERSION is passed on
//! and the node's answer returned, so both sides speak the same version
//! and nothing is forwarded that either side's version does not allow.
//! Each request is forwarded and its answer relayed; DATA bodies stream
//! through in bounded chunks. Changes the node reports to its location
//! log (a stored PUT, a REMOVE) are journalled in *our* git-annex branch
//! too, committed when the session ends, so clients that sync with us
//! learn where content went.
//!
//! A node that cannot be reached, or dies, costs only the requests made
//! of it: the client gets an ERROR naming the node for each, and nothing
//! is recorded that the node did not confirm. Only a node dying while its
//! DATA is half relayed ends the session, since the client then waits for
//! bytes that will never come.

use annex::branch::{Branch, LogStatus};
use annex::key::Key;
use annex::p2p::{ConnError, Connection, Message, MAX_PROTOCOL_VERSION};
use annex::transport::{connect, ConnectOptions, NodeConnection, NodeRemote};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::restrict::Rules;
use crate::session::{LOCKED_ERROR, WAITING_ERROR};

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error(transparent)]
    Client(#[from] ConnError),
    /// The node failed in a way the client cannot be told about in
    /// protocol (in the middle of a DATA it was receiving).
    #[error("{0}")]
    Node(String),
}

impl RelayError {
    /// The client went away; as for a local session, not worth a word.
    pub fn is_hangup(&self) -> bool {
        match self {
            RelayError::Client(ConnError::ShortData { .. } | ConnError::UnexpectedEof) => true,
            RelayError::Client(ConnError::Io(e)) => matches!(
                e.kind(),
                std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::UnexpectedEof
            ),
            _ => false,
        }
    }
}

enum Flow {
    Continue,
    Stop,
    /// CONNECT was forwarded: the rest is the node's git service.
    Tunnel,
}

/// After the greeting: the client's first request unless it was BYPASS
/// (`Err` when unreadable), or the end of the session.
enum Opening {
    Next(Option<Result<Message, ConnError>>),
    Stop,
}

/// Either the node's connection, or why there is none.
pub(super) enum Node {
    Up(Box<NodeConnection>),
    Down(String),
}

pub struct Relay<R, W> {
    pub(super) client: Connection<R, W>,
    pub(super) node: Node,
    pub(super) remote: NodeRemote,
    pub(super) branch: Branch,
    pub(super) my_uuid: String,
    pub(super) rules: Rules,
    /// Whether CONNECT may go on to the node (see [`Rules::relays_git_to`]).
    pub(super) git_relay: bool,
    /// The version both sides speak.
    pub(super) version: u32,
    pub(super) journalled: bool,
}

impl<R, W> Relay<R, W>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    pub fn new(
        client: Connection<R, W>,
        branch: Branch,
        my_uuid: String,
        remote: NodeRemote,
        rules: Rules,
    ) -> Self {
        Relay {
            client,
            node: Node::Down(format!("{}: not connected", remote.name)),
            remote,
            branch,
            my_uuid,
            git_relay: !rules.restricted,
            rules,
            version: 0,
            journalled: false,
        }
    }

    /// Whether git's services (CONNECT) are relayed to the node.
    pub fn relaying_git(mut self, allowed: bool) -> Self {
        self.git_relay = allowed;
        self
    }

    pub async fn run(mut self, opts: &ConnectOptions) -> Result<(), RelayError> {
        let served = self.serve(opts).await;
        let tunnel = matches!(served, Ok(Flow::Tunnel));
        let node = std::mem::replace(&mut self.node, Node::Down(String::new()));
        match node {
            Node::Up(nc) if tunnel => {
                let client = self.client;
                (*nc).tunnel(client).await;
                finish(&self.branch, self.journalled);
                return Ok(());
            }
            Node::Up(nc) => {
                nc.close().await;
            }
            Node::Down(_) => {}
        }
        finish(&self.branch, self.journalled);
        served.map(|_| ())
    }

    async fn serve(&mut self, opts: &ConnectOptions) -> Result<Flow, RelayError> {
        self.send(Message::AuthSuccess(self.remote.uuid.clone()))
            .await?;
        // A version 0 client sends no VERSION: its first request waits
        // until the node is up.
        let (client_version, mut pending) = match self.client.read_message().await {
            Ok(None) => return Ok(Flow::Stop),
            Ok(Some(Message::Version(v))) => (v.min(MAX_PROTOCOL_VERSION), None),
            Ok(Some(other)) => (0, Some(Ok(other))),
            Err(e) if e.is_recoverable() => (0, Some(Err(e))),
            Err(e) => return Err(e.into()),
        };
        self.version = client_version;
        match connect(&self.remote, &self.my_uuid, client_version, opts).await {
            Ok(nc) => {
                self.version = nc.version;
                self.node = Node::Up(Box::new(nc));
            }
            Err(e) => {
                eprintln!("git-annex-shell: {e}");
                self.node = Node::Down(e.to_string());
            }
        }
        if pending.is_none() {
            self.send(Message::Version(self.version)).await?;
            if self.version >= 2 {
                match self.bypass().await? {
                    Opening::Next(first) => pending = first,
                    Opening::Stop => return Ok(Flow::Stop),
                }
            }
        }
        loop {
            let msg = match pending.take() {
                Some(m) => m,
                None => match self.client.read_message().await {
                    Ok(None) => return Ok(Flow::Stop),
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
            match self.dispatch(msg).await? {
                Flow::Continue => {}
                done => return Ok(done),
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
            Message::CheckPresent(_) | Message::GetTimestamp => {
                self.request(msg).await?;
            }
            Message::LockContent(_) => return self.lock_content(msg).await,
            Message::Remove(ref key) | Message::RemoveBefore { ref key, .. } => {
                let key = key.clone();
                self.remove(key, msg).await?;
            }
            Message::Get { .. } => self.get(msg).await?,
            Message::Put { ref key, .. } => {
                let key = key.clone();
                self.put(key, msg).await?;
            }
            // Only meaningful to a cluster gateway choosing among nodes.
            Message::Bypass(_) => {}
            Message::Connect(_) => {
                if !self.git_relay {
                    let why = Rules::git_relay_refusal(&self.remote.name);
                    self.send(Message::Error(why)).await?;
                    return Ok(Flow::Stop);
                }
                return self.connect_service(msg).await;
            }
            Message::NotifyChange => return self.notify_change().await,
            // The client gives up on an ERROR; so do we.
            Message::Error(_) => return Ok(Flow::Stop),
            _ => {
                self.send(Message::Error("unexpected command".into()))
                    .await?
            }
        }
        Ok(Flow::Continue)
    }

    /// Our UUID goes to the node in BYPASS, after the client's own set:
    /// a proxy that finds itself in the set is being asked in a circle
    /// (two proxies each listing the other's route to a repository) and
    /// says so, instead of relaying forever.
    async fn bypass(&mut self) -> Result<Opening, RelayError> {
        let (mut set, first) = match self.client.read_message().await {
            Ok(None) => return Ok(Opening::Stop),
            Ok(Some(Message::Bypass(us))) => (us, None),
            Ok(Some(m)) => (Vec::new(), Some(Ok(m))),
            Err(e) if e.is_recoverable() => (Vec::new(), Some(Err(e))),
            Err(e) => return Err(e.into()),
        };
        if set.contains(&self.my_uuid) {
            let loop_error = format!("proxy loop: this request already passed {}", self.my_uuid);
            eprintln!("git-annex-shell: {loop_error}");
            self.send(Message::Error(loop_error)).await?;
            return Ok(Opening::Stop);
        }
        set.push(self.my_uuid.clone());
        set.sort();
        set.dedup();
        if let Node::Up(nc) = &mut self.node {
            if nc.version >= 2 {
                if let Err(e) = nc.conn.write_message(&Message::Bypass(set)).await {
                    self.take_node_down(e).await;
                }
            }
        }
        Ok(Opening::Next(first))
    }

    pub(super) async fn send(&mut self, msg: Message) -> Result<(), RelayError> {
        self.client.write_message(&fit(msg, self.version)).await?;
        Ok(())
    }

    /// The node's connection, or the ERROR the client gets instead.
    async fn node(&mut self) -> Result<Option<&mut NodeConnection>, RelayError> {
        if !self.tell_if_down().await? {
            return Ok(None);
        }
        Ok(up(&mut self.node))
    }

    /// When the node is down, send the client why; returns whether it is up.
    pub(super) async fn tell_if_down(&mut self) -> Result<bool, RelayError> {
        match &self.node {
            Node::Up(_) => Ok(true),
            Node::Down(why) => {
                let why = why.clone();
                self.send(Message::Error(why)).await?;
                Ok(false)
            }
        }
    }

    /// The node failed: close it (for its last words), tell the client,
    /// and answer every later request with the same.
    pub(super) async fn node_failed(&mut self, e: ConnError) -> Result<(), RelayError> {
        let why = self.take_node_down(e).await;
        self.send(Message::Error(why)).await
    }

    pub(super) async fn take_node_down(&mut self, e: ConnError) -> String {
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
        eprintln!("git-annex-shell: {why}");
        self.node = Node::Down(why.clone());
        why
    }

    /// Forward one message and relay the one answer. `None` when the client
    /// already got an ERROR instead.
    pub(super) async fn request(&mut self, msg: Message) -> Result<Option<Message>, RelayError> {
        let Some(nc) = self.node().await? else {
            return Ok(None);
        };
        let answer = match nc.exchange(&msg).await {
            Ok(a) => a,
            Err(e) => {
                self.node_failed(e).await?;
                return Ok(None);
            }
        };
        self.send(answer.clone()).await?;
        Ok(Some(answer))
    }

    async fn lock_content(&mut self, msg: Message) -> Result<Flow, RelayError> {
        if self.request(msg).await? != Some(Message::Success) {
            return Ok(Flow::Continue);
        }
        // The node holds the lock until it hears from the client again.
        let unlock = match self.client.read_message().await {
            Ok(Some(m)) => m == Message::UnlockContent,
            Ok(None) => return Ok(Flow::Stop),
            Err(e) if e.is_recoverable() => false,
            Err(e) => return Err(e.into()),
        };
        let Some(nc) = up(&mut self.node) else {
            return Ok(Flow::Continue);
        };
        // Only UNLOCKCONTENT goes on, whatever came: anything else would
        // reach the node past the rules' check. What came instead is
        // consumed with the ERROR a plain session gives.
        if let Err(e) = nc.conn.write_message(&Message::UnlockContent).await {
            // The client expects no answer; the lock is gone with the node.
            self.take_node_down(e).await;
        }
        if !unlock {
            self.send(Message::Error(LOCKED_ERROR.into())).await?;
        }
        Ok(Flow::Continue)
    }

    async fn remove(&mut self, key: Key, msg: Message) -> Result<(), RelayError> {
        let msg = match msg {
            // A node too old for REMOVE-BEFORE gets a plain REMOVE, as
            // git-annex sends it.
            Message::RemoveBefore { key, .. } if self.node_version() < 3 => Message::Remove(key),
            m => m,
        };
        let node_uuid = self.remote.uuid.clone();
        match self.request(msg).await? {
            Some(Message::Success) => self.record(&key, [node_uuid.as_str()], LogStatus::Missing),
            Some(Message::SuccessPlus(us)) => {
                self.record(&key, [node_uuid.as_str()], LogStatus::Missing);
                self.record(&key, us.iter().map(String::as_str), LogStatus::Missing);
            }
            Some(Message::FailurePlus(us)) => {
                self.record(&key, us.iter().map(String::as_str), LogStatus::Missing)
            }
            _ => {}
        }
        Ok(())
    }

    fn node_version(&self) -> u32 {
        match &self.node {
            Node::Up(nc) => nc.version,
            Node::Down(_) => self.version,
        }
    }

    async fn connect_service(&mut self, msg: Message) -> Result<Flow, RelayError> {
        let Some(nc) = self.node().await? else {
            return Ok(Flow::Stop);
        };
        match nc.conn.write_message(&msg).await {
            Ok(()) => Ok(Flow::Tunnel),
            Err(e) => {
                self.node_failed(e).await?;
                Ok(Flow::Stop)
            }
        }
    }

    /// NOTIFYCHANGE: the node answers when a ref changes. The client has
    /// nothing to say meanwhile: its ERROR is passed on and ends the wait;
    /// anything else is answered as a plain session answers it and never
    /// reaches the node, where it would be a request no rule checked.
    async fn notify_change(&mut self) -> Result<Flow, RelayError> {
        if !self.tell_if_down().await? {
            return Ok(Flow::Continue);
        }
        let Some(nc) = up(&mut self.node) else {
            return Ok(Flow::Continue);
        };
        if let Err(e) = nc.conn.write_message(&Message::NotifyChange).await {
            self.node_failed(e).await?;
            return Ok(Flow::Continue);
        }
        let from_node = tokio::select! {
            m = nc.conn.read_message() => m,
            m = self.client.read_message() => {
                match m {
                    Ok(Some(m @ Message::Error(_))) => {
                        let _ = nc.conn.write_message(&m).await;
                        return Ok(Flow::Stop);
                    }
                    Ok(None) => return Ok(Flow::Stop),
                    Ok(Some(_)) => Ok(Some(Message::Error(WAITING_ERROR.into()))),
                    Err(e) if e.is_recoverable() => Ok(Some(Message::Error(WAITING_ERROR.into()))),
                    Err(e) => return Err(e.into()),
                }
            }
        };
        match from_node {
            Ok(Some(reply)) => {
                let stop = matches!(reply, Message::Error(_));
                self.send(reply).await?;
                Ok(if stop { Flow::Stop } else { Flow::Continue })
            }
            Ok(None) => {
                self.node_failed(ConnError::UnexpectedEof).await?;
                Ok(Flow::Continue)
            }
            Err(e) => {
                self.node_failed(e).await?;
                Ok(Flow::Continue)
            }
        }
    }

    /// Journal, in our own branch, what the node told us happened.
    pub(super) fn record<'a>(
        &mut self,
        key: &Key,
        uuids: impl IntoIterator<Item = &'a str>,
        status: LogStatus,
    ) {
        for u in uuids {
            match self.branch.log_key_location(key, u, status) {
                Ok(changed) => self.journalled |= changed,
                Err(e) => eprintln!("git-annex-shell: recording {key} for {u}: {e}"),
            }
        }
    }
}

pub(super) fn up(node: &mut Node) -> Option<&mut NodeConnection> {
    match node {
        Node::Up(nc) => Some(nc),
        Node::Down(_) => None,
    }
}

/// Commit what the session journalled (and anything an earlier autoinit
/// left), whatever way the session ended.
fn finish(branch: &Branch, journalled: bool) {
    if journalled || branch.journal_dirty() {
        if let Err(e) = branch.commit() {
            eprintln!("git-annex-shell: committing the git-annex branch: {e}");
        }
    }
}

pub(crate) async fn read_validity<R, W>(
    client: &mut Connection<R, W>,
) -> Result<Message, RelayError>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    match client.read_message().await {
        Ok(Some(v @ (Message::Valid | Message::Invalid))) => Ok(v),
        Ok(Some(_)) => Ok(Message::Invalid),
        Ok(None) => Err(RelayError::Client(ConnError::UnexpectedEof)),
        Err(e) if e.is_recoverable() => Ok(Message::Invalid),
        Err(e) => Err(e.into()),
    }
}

/// A message as a peer speaking `version` may receive it: `-PLUS` forms
/// lose their lists below version 2. (Both sides normally speak the same
/// version; this is the guard for when they do not.)
pub fn fit(msg: Message, version: u32) -> Message {
    if msg.min_version() <= version {
        return msg;
    }
    match msg {
        Message::SuccessPlus(_) => Message::Success,
        Message::FailurePlus(_) => Message::Failure,
        Message::AlreadyHavePlus(_) => Message::AlreadyHave,
        m => Message::Error(format!("{} is not in protocol version {version}", m.verb())),
    }
}

#[cfg(test)]
#[path = "relay_tests.rs"]
mod tests;
