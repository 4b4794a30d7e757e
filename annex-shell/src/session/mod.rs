//! The one P2P session loop, whatever the transport and whatever serves
//! the keys.
//!
//! A [`Session`] greets the client with its back-end's UUID, negotiates
//! the version, passes every message through [`Rules::admit`] (the one
//! gate for READONLY/APPENDONLY/LIMITED, so no back-end can be asked what
//! a plain session refuses), speaks the protocol of each verb, asks the
//! [`Backend`] for what only it can do, and has the back-end commit what
//! the session changed however it ends.
//!
//! Errors split the way git-annex splits them: an unparseable line gets
//! `ERROR unknown command`, a well-formed message out of place gets
//! `ERROR unexpected command`, and both keep the session; a broken
//! connection or a broken repository ends it.

mod verbs;

use std::time::Instant;

use annex::key::Key;
use annex::p2p::{ConnError, Connection, Message, MAX_PROTOCOL_VERSION};
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::Instrument;

use crate::backend::{Backend, BackendError};
use crate::restrict::Rules;

/// The answer to anything but UNLOCKCONTENT while the content is locked.
pub const LOCKED_ERROR: &str = "expected UNLOCKCONTENT";

/// The answer to anything but ERROR from a client waiting for a change.
pub const WAITING_ERROR: &str = "expected nothing while waiting for a change";

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Connection(#[from] ConnError),
    #[error(transparent)]
    Backend(BackendError),
    #[error("{0}")]
    Fatal(String),
}

/// The client's connection failing is the session's connection failing,
/// whoever noticed it.
impl From<BackendError> for ServeError {
    fn from(e: BackendError) -> ServeError {
        match e {
            BackendError::Client(c) => ServeError::Connection(c),
            e => ServeError::Backend(e),
        }
    }
}

impl From<std::io::Error> for ServeError {
    fn from(e: std::io::Error) -> ServeError {
        ServeError::Backend(e.into())
    }
}

impl From<annex::repo::RepoError> for ServeError {
    fn from(e: annex::repo::RepoError) -> ServeError {
        ServeError::Backend(e.into())
    }
}

impl ServeError {
    /// The client went away: not an error worth reporting. git-annex exits
    /// quietly when its peer hangs up between messages, and with status 1
    /// and an internal error in the middle of a DATA; nobody is left to read
    /// either, so we exit quietly in both cases (the partial upload is kept
    /// for a resume either way).
    pub fn is_hangup(&self) -> bool {
        matches!(self, ServeError::Connection(e) if e.is_hangup())
    }
}

/// What a verb tells the loop.
pub(crate) enum Flow {
    Continue,
    /// The session is over (after CONNECT, or the client sent ERROR).
    Stop,
}

/// One client's session against one back-end.
pub struct Session<R, W, B> {
    conn: Connection<R, W>,
    backend: B,
    rules: Rules,
    /// The version both sides speak.
    version: u32,
    /// Whether the version is settled (VERSION came, or a first request).
    negotiated: bool,
    /// The back-end is yet to hear the client's BYPASS set, which comes
    /// right after VERSION from version 2 on, if at all.
    bypass_due: bool,
}

impl<R, W, B> Session<R, W, B>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
    B: Backend,
{
    pub fn new(conn: Connection<R, W>, backend: B, rules: Rules) -> Self {
        Session {
            conn,
            backend,
            rules,
            version: 0,
            negotiated: false,
            bypass_due: false,
        }
    }

    /// Serve until the client hangs up; commit what the session changed
    /// whatever way it ends, so a store that happened is never forgotten.
    pub async fn run(mut self) -> Result<(), ServeError> {
        // One span per session, so an operator can follow its requests.
        let span = tracing::info_span!("session", repo = %self.backend.uuid());
        async move {
            let served = self.serve().await;
            let committed = self.backend.finish().await.map_err(ServeError::from);
            tracing::info!(ok = served.is_ok() && committed.is_ok(), "session ends");
            served.and(committed)
        }
        .instrument(span)
        .await
    }

    async fn send(&mut self, msg: Message) -> Result<(), ServeError> {
        self.conn.write_message(&msg).await?;
        Ok(())
    }

    async fn serve(&mut self) -> Result<(), ServeError> {
        let greeting = Message::AuthSuccess(self.backend.uuid().to_owned());
        self.send(greeting).await?;
        loop {
            let msg = match self.conn.read_message().await {
                Ok(Some(m)) => m,
                Ok(None) => return Ok(()),
                Err(e) if e.is_recoverable() => {
                    self.send(Message::Error("unknown command".into())).await?;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            match self.request(msg).await? {
                Flow::Continue => {}
                Flow::Stop => return Ok(()),
            }
        }
    }

    /// One request, in a span of its own: the verb, the key, the bytes
    /// of its body (recorded where the body goes), and when it is done its
    /// outcome and duration.
    async fn request(&mut self, msg: Message) -> Result<Flow, ServeError> {
        let span = tracing::info_span!(
            "request",
            verb = msg.verb(),
            key = key_of(&msg).map(tracing::field::display),
            bytes = tracing::field::Empty,
        );
        let started = Instant::now();
        let flow = self.dispatch(msg).instrument(span.clone()).await;
        self.backend.settle().instrument(span.clone()).await;
        let outcome = match &flow {
            Ok(Flow::Continue) => "served",
            Ok(Flow::Stop) => "session ends",
            Err(_) => "failed",
        };
        let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        span.in_scope(|| tracing::info!(outcome, elapsed_ms, "request done"));
        flow
    }

    async fn dispatch(&mut self, msg: Message) -> Result<Flow, ServeError> {
        if let Err(refusal) = self.rules.admit(&msg) {
            let ends = refusal.ends_session;
            self.send(refusal.into()).await?;
            return Ok(if ends { Flow::Stop } else { Flow::Continue });
        }
        if let Message::Version(v) = msg {
            self.negotiated = true;
            self.version = self.backend.negotiate(v.min(MAX_PROTOCOL_VERSION)).await;
            self.send(Message::Version(self.version)).await?;
            self.bypass_due = Message::Bypass(Vec::new()).known_in(self.version);
            return Ok(Flow::Continue);
        }
        if !self.negotiated {
            // A version 0 client sends no VERSION.
            self.negotiated = true;
            self.version = self.backend.negotiate(0).await;
        }
        let msg = match self.opening_bypass(msg).await? {
            Some(msg) => msg,
            None if self.bypass_due => return Ok(Flow::Stop),
            None => return Ok(Flow::Continue),
        };
        match msg {
            Message::Bypass(set) => match self.backend.bypass(set).await {
                Ok(()) => Ok(Flow::Continue),
                Err(e) => {
                    self.refused(e).await?;
                    Ok(Flow::Stop)
                }
            },
            Message::CheckPresent(key) => {
                let found = self.backend.check_present(&key).await;
                self.answer(found.map(success)).await
            }
            Message::GetTimestamp => {
                let now = self.backend.timestamp().await;
                self.answer(now.map(Message::Timestamp)).await
            }
            Message::Remove(key) => self.remove(key, None).await,
            Message::RemoveBefore { timestamp, key } => self.remove(key, Some(timestamp)).await,
            Message::LockContent(key) => self.lock_content(key).await,
            Message::Get { offset, file, key } => self.get(offset, file, key).await,
            Message::Put { file, key } => self.put(file, key).await,
            Message::Connect(service) => self.connect(service).await,
            Message::NotifyChange => self.notify_change().await,
            // The client gives up on an ERROR; so do we, cleanly.
            Message::Error(_) => Ok(Flow::Stop),
            _ => {
                self.send(Message::Error("unexpected command".into()))
                    .await?;
                Ok(Flow::Continue)
            }
        }
    }

    /// The message after VERSION: the back-end hears the client's BYPASS
    /// set, empty when the client sent none (a proxy adds itself to it
    /// either way). `None` when the message was that BYPASS (with
    /// `bypass_due` still set if the back-end refused it).
    async fn opening_bypass(&mut self, msg: Message) -> Result<Option<Message>, ServeError> {
        if !self.bypass_due {
            return Ok(Some(msg));
        }
        let (set, rest) = match msg {
            Message::Bypass(set) => (set, None),
            m => (Vec::new(), Some(m)),
        };
        if let Err(e) = self.backend.bypass(set).await {
            self.refused(e).await?;
            return Ok(None);
        }
        self.bypass_due = false;
        Ok(rest)
    }

    /// Sends the back-end's answer, or the ERROR of a request it refused.
    async fn answer(&mut self, reply: Result<Message, BackendError>) -> Result<Flow, ServeError> {
        match reply {
            Ok(m) => self.send(m).await?,
            Err(e) => self.refused(e).await?,
        }
        Ok(Flow::Continue)
    }

    /// A request the back-end could not serve is told to the client; any
    /// other error ends the session.
    async fn refused(&mut self, e: BackendError) -> Result<(), ServeError> {
        match e {
            BackendError::Refused(failure) => {
                tracing::info!(node = %failure.node, what = failure.what, why = %failure.why, "request failed");
                self.send(Message::Error(failure.to_string())).await
            }
            e => Err(e.into()),
        }
    }

    async fn remove(&mut self, key: Key, before: Option<u64>) -> Result<Flow, ServeError> {
        let version = self.version;
        let outcome = self.backend.remove(&key, before).await;
        self.answer(outcome.map(|o| o.reply(version))).await
    }
}

/// The key a request is about, if any.
fn key_of(msg: &Message) -> Option<&Key> {
    match msg {
        Message::CheckPresent(k)
        | Message::LockContent(k)
        | Message::Remove(k)
        | Message::RemoveBefore { key: k, .. }
        | Message::Get { key: k, .. }
        | Message::Put { key: k, .. } => Some(k),
        _ => None,
    }
}

pub fn success(ok: bool) -> Message {
    if ok {
        Message::Success
    } else {
        Message::Failure
    }
}

#[cfg(test)]
mod tests;
