//! One node of a cluster, whatever kind it is: the interface the gateway
//! ([`super::gateway::Gateway`]) calls on every node it chose, through the
//! one fan-out ([`super::pool::fan_out`]).
//!
//! The gateway is a composite: [`super::policy`] says which nodes a
//! request goes to, and the same [`Node`] calls go to each of them. The
//! kinds today are a node reached through its own P2P session
//! ([`super::peer::PeerNode`]: a child `git-annex-shell`, ssh, tor-annex,
//! p2p-annex), a repository on this machine served in-process
//! ([`super::local::LocalNode`]), and a special remote driven in-process
//! through the special-remote framework ([`super::special::SpecialNode`]).
//! A new kind is one module implementing [`Node`], and one line where the
//! kind is chosen for a remote ([`super::node_set`], [`super::node_for`]).
//!
//! # What a node kind implements
//!
//! - **Who it is**: [`Node::name`] (the remote's name, which every reason
//!   given to the client starts with) and [`Node::uuid`] (what the client's
//!   location log records).
//! - **Presence** ([`Node::check_present`]) and **removal**
//!   ([`Node::remove`]), with an [`Outcome`] (`ok`, and other repositories
//!   that did it too when the node is itself a gateway), or the reason,
//!   why it could not answer (a [`Failure`]: the node, the request, the
//!   reason as the client is told it, naming the node). A deadline comes in the
//!   gateway's clock with the reading the client was given
//!   ([`Deadline`]); a node with a clock of its own translates it (see
//!   [`Node::sync_clock`]), one that cannot keep it does not remove.
//! - **Retrieve from an offset** ([`Node::retrieve`]): a [`Source`] the
//!   gateway sends to the client as one DATA (by sendfile, splice or
//!   chunks; the node never sees the client's connection), or why it has
//!   nothing to send (then nothing was sent and the next node is asked).
//!   After the body, [`Node::sent`] says whether what went was intact, and
//!   [`Node::retrieved`] hears the client's verdict.
//! - **Store** as a share of one fan-out: [`Node::offer`] answers where
//!   its own resume offset is (or that it has the key, or why not);
//!   [`Node::begin_body`] hears where the body will end; every chunk of the
//!   client's body comes to [`Node::receive`] once, with the offset it
//!   starts at (the node skips what it has); [`Node::end_body`] after the
//!   last chunk; [`Node::conclude`] gets how the client ended it
//!   ([`Ending`]) and answers the node's [`Outcome`]. The client's body is
//!   read once by the gateway for all nodes, and hashed once for all the
//!   nodes that let it ([`Node::shares_hash`]): those get the stream's
//!   digest in [`Ending::Body`] instead of hashing again. When every
//!   receiving node is a pipe ([`Node::body_pipe`]) and nothing is hashed,
//!   the kernel tees the body into the pipes instead, and
//!   [`Node::piped`] says what each got.
//! - **Failure**: a node's failure costs the requests made of it, never
//!   the session; a node that is lost mid-way answers with the reason, and
//!   [`Node::fail`] (the gateway calls it when sending from the node broke)
//!   returns the reason and keeps the node down.
//! - **Lifetime**: [`Node::open`] starts what the node needs before a
//!   request (a peer's session; nothing for in-process kinds),
//!   [`Node::abandon`] drops a store the client never finished (partial
//!   content kept for a resume), and [`Node::close`] ends the node's part
//!   in the session (commits what it journalled). A kind that git can
//!   reach (CONNECT) gives its P2P session in [`Node::link`].
//!
//! `open`, `sync_clock`, `end_body`, `busy`, `shares_hash`, `body_pipe`,
//! `piped` and `link` have defaults for kinds that need nothing started,
//! have this machine's clock, write as they receive, know no load, hash
//! for themselves, are no pipe and serve no git.
//!
//! Methods return boxed futures ([`Fut`]) so that the gateway holds its
//! nodes as `Box<dyn Node>` of any kind.

use std::future::Future;
use std::os::fd::OwnedFd;
use std::pin::Pin;

use annex::key::Key;
use annex::p2p::{ConnError, TeeOut};
use annex::store::{Checked, Mismatch, VerifyMode};
use annex::transport::NodeConnection;
use tokio::io::AsyncRead;

use super::pool::{Link, Reach};
use crate::backend::{Failure, Outcome};

/// A node's future, boxed so that nodes of every kind are one type.
pub type Fut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The check of the gateway's one hash of a body that began at offset 0.
pub type Digest = Result<Checked, Mismatch>;

/// A node's answer: what happened, or why it could not answer.
pub type Answer = Result<Outcome, Failure>;

/// How a node kind makes its [`Failure`]s: `failure(name, "REMOVE")`
/// turns a reason (which names the node, as the client is told it) into
/// the node's failure at that request.
pub fn failure(node: &str, what: &'static str) -> impl FnOnce(String) -> Failure {
    let node = node.to_owned();
    move |why| Failure { node, what, why }
}

/// How a node answers a PUT.
#[derive(Debug, PartialEq, Eq)]
pub enum Offer {
    /// Wants the body from this offset (what an earlier attempt left).
    From(u64),
    /// Already has it (with the UUIDs a node that is itself a gateway
    /// names for the nodes behind it).
    Has(Vec<String>),
    /// Refused or failed.
    No(Failure),
}

/// How the client ended a PUT, as each receiving node hears it.
pub enum Ending<'a> {
    /// The body came (or was cut short: then the node lost nothing, its
    /// partial content stays for a resume).
    Body {
        /// The client's VALID or INVALID; `Unknown` from a version 0
        /// client, or one that hung up.
        mode: VerifyMode,
        /// The client hung up instead of a verdict (protocol 1 and up):
        /// a node that needs the verdict keeps what came for a resume and
        /// answers nothing.
        hung_up: bool,
        /// The stream's digest when the gateway hashed it for the nodes
        /// that share one hash ([`Node::shares_hash`]).
        digest: Option<&'a Digest>,
    },
    /// DATA-PRESENT: the content reached the node another way, if it has
    /// it now.
    Present,
    /// The client sent no body after all (ERROR, or nonsense); `why` is
    /// passed on, and nobody answers.
    Abandon(&'a str),
}

/// A REMOVE-BEFORE deadline, in the gateway's monotonic clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deadline {
    /// The client's deadline.
    pub at: u64,
    /// Our clock's reading when the client asked for it (GETTIMESTAMP),
    /// if it did in this session.
    pub ours: Option<u64>,
}

/// What a node sends for a GET: the gateway sends it to the client as one
/// `DATA len`, by the kernel where it can.
pub enum Source<'a> {
    /// A file on this machine, positioned at the offset: `len` bytes from
    /// there (sendfile to a descriptor client).
    File(std::fs::File, u64),
    /// The node's own DATA of `len` bytes on its connection (spliced from
    /// its pipe where both ends allow it).
    Relay(&'a mut NodeConnection, u64),
    /// Any reader of `len` bytes (a special remote's stream).
    Reader(Box<dyn AsyncRead + Unpin + Send + 'a>, u64),
}

impl Source<'_> {
    /// The length of the DATA it sends.
    pub fn body_len(&self) -> u64 {
        match self {
            Source::File(_, len) | Source::Relay(_, len) | Source::Reader(_, len) => *len,
        }
    }
}

/// One node of a cluster (see the module's documentation).
pub trait Node: Send {
    fn name(&self) -> &str;

    fn uuid(&self) -> &str;

    /// Whether a request costs no start-up (in-process, or connected).
    fn ready(&self) -> bool;

    /// Whether the node is serving other uploads now (as far as is known).
    fn busy(&self) -> bool {
        false
    }

    /// Whether the node is on this machine and served in-process: its
    /// clock is ours, and its writes are done while the pipes of the
    /// others drain.
    fn in_process(&self) -> bool;

    /// Start what requests need (a peer's session); nothing when it is
    /// running or cannot start (then requests are answered with why).
    /// Kinds that need nothing started keep this default.
    fn open<'a>(&'a mut self, _reach: &'a Reach) -> Fut<'a, ()> {
        Box::pin(async {})
    }

    /// The session ends with its client's command (ssh): a node that logs
    /// its own content's changes (an in-process one) owes them to one
    /// commit when it closes, as a served repository does
    /// (`backend/owed.rs`). The others keep this default.
    fn owe_logs(&mut self) {}

    /// The client asked for our clock (GETTIMESTAMP): a node with a clock
    /// of its own reads it now, to translate a later [`Deadline`]. Nodes
    /// with this machine's clock keep this default.
    fn sync_clock(&mut self) -> Fut<'_, ()> {
        Box::pin(async {})
    }

    fn check_present<'a>(&'a mut self, key: &'a Key) -> Fut<'a, Result<bool, Failure>>;

    /// Remove the content (before the deadline, if any); content that is
    /// not there is removed already.
    fn remove<'a>(&'a mut self, key: &'a Key, deadline: Option<Deadline>) -> Fut<'a, Answer>;

    /// The content from `offset`, or why not (nothing was sent). `to`:
    /// who the content goes to (the gateway's UUID), for transfer records.
    fn retrieve<'a>(
        &'a mut self,
        key: &'a Key,
        offset: u64,
        file: Option<&'a str>,
        to: &'a str,
    ) -> Fut<'a, Result<Source<'a>, Failure>>;

    /// After the [`Source`] went to the client whole: whether it was
    /// intact.
    fn sent(&mut self) -> Fut<'_, bool>;

    /// The client's word after a retrieve, `None` when it hung up.
    fn retrieved(&mut self, verdict: Option<bool>) -> Fut<'_, ()>;

    /// PUT: from which offset the node wants the body. `to`: as for
    /// [`Node::retrieve`].
    fn offer<'a>(&'a mut self, key: &'a Key, file: Option<&'a str>, to: &'a str) -> Fut<'a, Offer>;

    /// Whether the node verifies with the gateway's one hash of the
    /// stream, given that the body starts at offset `start`.
    fn shares_hash(&self, _start: u64) -> bool {
        false
    }

    /// The client's body (after an accepted offer) ends at byte `end` of
    /// the content.
    fn begin_body(&mut self, end: u64) -> Fut<'_, ()>;

    /// The pipe into which the kernel may write the node's share of the
    /// body from offset `start` on (tee, see [`annex::p2p::DataBody::tee_rest`]),
    /// instead of handing it to [`Node::receive`]; `None` for nodes that
    /// are no pipe or want another part of the body.
    fn body_pipe(&mut self, _start: u64) -> Option<OwnedFd> {
        None
    }

    /// What the kernel wrote into [`Node::body_pipe`] (and why it
    /// stopped, when it did).
    fn piped(&mut self, _got: TeeOut) {}

    /// The piece of the body that starts at byte `at` of the content;
    /// `hashed`: the gateway hashes the stream for the nodes sharing one
    /// hash. A node that fails keeps reading nothing and answers why in
    /// [`Node::conclude`].
    fn receive<'a>(&'a mut self, at: u64, chunk: &'a [u8], hashed: bool) -> Fut<'a, ()>;

    /// The body's last chunk came.
    fn end_body(&mut self) -> Fut<'_, ()> {
        Box::pin(async {})
    }

    /// The node's outcome of the PUT, `None` when it gives none (the
    /// client hung up, or abandoned the store).
    fn conclude<'a>(&'a mut self, ending: &'a Ending<'a>) -> Fut<'a, Option<Answer>>;

    /// The session ends with a store unfinished: keep what came for a
    /// resume.
    fn abandon(&mut self);

    /// Sending from the node broke during `what`: the node's failure, and
    /// the node stays down.
    fn fail(&mut self, what: &'static str, e: ConnError) -> Fut<'_, Failure>;

    /// The node's P2P session through its shell, which git's CONNECT
    /// goes through; kinds that serve no git have none.
    fn link(&mut self) -> Option<&mut Link> {
        None
    }

    /// The session is over: let go, commit what was journalled.
    fn close(&mut self) -> Fut<'_, ()>;
}
