//! Storage back-ends: what a repository can do for a key, whatever and
//! wherever the repository is.
//!
//! The session loop ([`crate::session`]) speaks the protocol with the
//! client and asks a [`Backend`] for each request; the back-end never
//! reads a request or writes a reply line itself. The local repository
//! ([`local::Local`]) is one back-end; a P2P peer (a child
//! `git-annex-shell`, ssh, tor-annex, p2p-annex) and a cluster (a
//! composite of back-ends) are the others, so the plain server, the proxy
//! and the gateway are the same loop over different back-ends.
//!
//! # What every back-end promises
//!
//! - **Nothing unverified becomes visible under a key's name.** A store
//!   receives into a temporary place and moves the content under the key
//!   only once [`Backend::store_end`] has verified it (or the node that
//!   holds it said it did). A body cut short stays where a resumed store
//!   finds it: [`Backend::store_begin`] then answers a later offset.
//! - **Offsets.** `store_begin` says from which byte the client sends
//!   (what an earlier attempt left); `retrieve` sends the content from the
//!   offset the client asked for, and the DATA length it announces is the
//!   rest of the content from there.
//! - **Deadlines.** `remove` with a deadline (REMOVE-BEFORE, a monotonic
//!   clock reading from [`Backend::timestamp`]) removes only if the
//!   deadline has not passed while the back-end holds what stops a
//!   concurrent lock, so a lock taken just before the deadline is never
//!   raced.
//! - **Bodies by the kernel.** DATA bodies go between the client's
//!   connection and the back-end's storage without the loop copying them:
//!   `retrieve` and `store_body` get the client's [`Connection`] and use
//!   whatever path their storage allows (sendfile from an object file,
//!   splice from or into a peer's pipe, bounded chunks otherwise).
//! - **Outcomes name who did it.** A store or removal answers an
//!   [`Outcome`]: whether it happened here, and which other repositories
//!   (the nodes of a cluster, the repositories behind a proxy) did it too,
//!   so a fan-out reports per-node results as `SUCCESS-PLUS` or
//!   `FAILURE-PLUS`. A node that failed is a [`Failure`]: which node, what
//!   was asked of it, why.
//! - **Errors split by who is left.** [`BackendError::Refused`] fails one
//!   request (the client hears `ERROR` with the failure and the session
//!   goes on); [`BackendError::Client`] is the client's connection failing;
//!   anything else ends the session (the repository or the node it was
//!   streaming is gone).
//! - **The session's changes are committed once**, by [`Backend::finish`],
//!   however the session ended.

mod files;
pub mod local;
pub(crate) mod owed;
pub mod peer;

pub(crate) use files::{same_file, send_body};

use std::future::Future;

use annex::key::Key;
use annex::p2p::{ConnError, Connection, Message, Service};
use annex::store::VerifyMode;
use tokio::io::{AsyncRead, AsyncWrite};

/// A node (or repository) that could not do what it was asked.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{why}")]
pub struct Failure {
    /// The remote's name, or the repository's UUID.
    pub node: String,
    /// What was asked of it (a verb, "connect", ...).
    pub what: &'static str,
    /// Why it failed, as the client is told (naming the node).
    pub why: String,
}

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// This request failed; the session goes on.
    #[error(transparent)]
    Refused(Failure),
    /// The client's connection failed.
    #[error(transparent)]
    Client(#[from] ConnError),
    /// The back-end cannot serve this session any more.
    #[error(transparent)]
    Lost(Failure),
    #[error("{0}")]
    Store(#[from] annex::store::StoreError),
    #[error("{0}")]
    Branch(#[from] annex::branch::BranchError),
    #[error("{0}")]
    Repo(#[from] annex::repo::RepoError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// The result of a store or a removal: whether it happened in the
/// repository the client asked, and which other repositories did it too
/// (or, on failure, which did it all the same).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    pub ok: bool,
    pub also: Vec<String>,
}

impl Outcome {
    pub fn plain(ok: bool) -> Outcome {
        Outcome {
            ok,
            also: Vec::new(),
        }
    }

    /// The reply in protocol `version`: `-PLUS` forms only when others
    /// are named and the version has them.
    pub fn reply(self, version: u32) -> Message {
        match (self.ok, self.also.is_empty()) {
            (true, true) => Message::Success,
            (false, true) => Message::Failure,
            (true, false) => Message::SuccessPlus(self.also).fit(version),
            (false, false) => Message::FailurePlus(self.also).fit(version),
        }
    }
}

/// What PUT finds before any DATA.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Storing {
    /// The content is there already (and in these other repositories).
    AlreadyHave(Vec<String>),
    /// Send from this offset.
    From(u64),
}

/// How the client ended a PUT after `PUT-FROM`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreEnd {
    /// A DATA body was taken by [`Backend::store_body`]; the sender's word
    /// on it (`Unknown` for protocol 0, or when it hung up instead).
    Body(VerifyMode),
    /// `DATA-PRESENT`: the content reached the repository another way.
    Present,
    /// No DATA after all: the client sent ERROR, or nonsense (then the
    /// ERROR it hears), which a peer is told in turn.
    Abandon(String),
}

/// What a repository can do for a key. One session drives one back-end,
/// a request at a time: a request's calls (`store_begin`, `store_body`,
/// `store_end`; `retrieve`, `retrieved`; `lock`, `unlock`) come in that
/// order with nothing in between, so a back-end may keep the request's
/// state between them.
pub trait Backend: Send {
    /// The UUID the client is greeted with.
    fn uuid(&self) -> &str;

    /// The protocol version to speak, given what the client offered
    /// (already capped at what we speak); called at VERSION, or with 0
    /// before the first request of a client that sends none.
    fn negotiate(&mut self, offered: u32) -> impl Future<Output = u32> + Send;

    /// BYPASS: repositories the client's request has already passed. A
    /// refusal (a proxy loop) ends the session after the client hears it.
    fn bypass(&mut self, set: Vec<String>)
        -> impl Future<Output = Result<(), BackendError>> + Send;

    fn check_present(
        &mut self,
        key: &Key,
    ) -> impl Future<Output = Result<bool, BackendError>> + Send;

    /// Lock the content so it is not removed until [`Self::unlock`];
    /// `false` when it is not here to lock.
    fn lock(&mut self, key: &Key) -> impl Future<Output = Result<bool, BackendError>> + Send;

    fn unlock(&mut self) -> impl Future<Output = ()> + Send;

    /// Remove the content, before the monotonic `deadline` if one is
    /// given. Absent content is removed already (`ok`).
    fn remove(
        &mut self,
        key: &Key,
        deadline: Option<u64>,
    ) -> impl Future<Output = Result<Outcome, BackendError>> + Send;

    /// The back-end's monotonic clock, in seconds, for REMOVE-BEFORE: this
    /// machine's, unless the content lives behind another server whose
    /// clock decides when its removal is too late (a peer, a cluster).
    fn timestamp(&mut self) -> impl Future<Output = Result<u64, BackendError>> + Send {
        async { Ok(annex::clock::monotonic_seconds()) }
    }

    /// Send the content from `offset` to `client` as one DATA message
    /// (`DATA 0` when it is not here), and return whether what was sent is
    /// intact (the client is told VALID or INVALID).
    fn retrieve<R, W>(
        &mut self,
        key: &Key,
        offset: u64,
        file: Option<&str>,
        client: &mut Connection<R, W>,
    ) -> impl Future<Output = Result<bool, BackendError>> + Send
    where
        R: AsyncRead + Unpin + Send,
        W: AsyncWrite + Unpin + Send;

    /// The client's word after a retrieve: whether it kept the content,
    /// `None` when it hung up.
    fn retrieved(&mut self, verdict: Option<bool>) -> impl Future<Output = ()> + Send;

    /// PUT: whether the content is wanted, and from which offset.
    fn store_begin(
        &mut self,
        key: &Key,
        file: Option<&str>,
    ) -> impl Future<Output = Result<Storing, BackendError>> + Send;

    /// PUT-FROM is on its way to the client: get ready for the DATA while
    /// the client gets ready to send it. What goes wrong here must wait
    /// for the body (read and dropped), to be told as FAILURE after it.
    fn store_offered(&mut self) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// Take the body of the client's `DATA len` from `client`. The body is
    /// read to its end whatever the back-end does with it, so the protocol
    /// stays in step; only a body cut short (or the back-end lost while
    /// it was mid-way through a body it was being sent) is an error.
    fn store_body<R, W>(
        &mut self,
        len: u64,
        client: &mut Connection<R, W>,
    ) -> impl Future<Output = Result<(), BackendError>> + Send
    where
        R: AsyncRead + Unpin + Send,
        W: AsyncWrite + Unpin + Send;

    /// Verify and keep (or discard) what was sent; the outcome the client
    /// hears. After [`StoreEnd::Abandon`] the outcome is not sent.
    fn store_end(
        &mut self,
        end: StoreEnd,
    ) -> impl Future<Output = Result<Outcome, BackendError>> + Send;

    /// NOTIFYCHANGE: wait until a ref changes and return the new values.
    /// The future is dropped when the client ends the wait.
    fn changed_refs(&mut self) -> impl Future<Output = Result<Vec<String>, BackendError>> + Send;

    /// CONNECT: run git's `service` with its input and output tunnelled
    /// through `client`'s DATA; the exit code for CONNECTDONE, or `None`
    /// when the service's own peer sent it through the tunnel.
    fn git_service<R, W>(
        &mut self,
        service: Service,
        client: &mut Connection<R, W>,
    ) -> impl Future<Output = Result<Option<i32>, BackendError>> + Send
    where
        R: AsyncRead + Unpin + Send,
        W: AsyncWrite + Unpin + Send;

    /// The answer to a request has been sent: do what the client need not
    /// wait for (bookkeeping), before the next request is read. What is
    /// still owed when the session ends is done by [`Self::finish`].
    fn settle(&mut self) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// The session is over: let go of peers, commit what it changed.
    fn finish(&mut self) -> impl Future<Output = Result<(), BackendError>> + Send;
}
