//! The P2P session loop for a repository served from this host.
//!
//! Reads one message at a time and hands it to its verb's handler in
//! [`crate::cmd`]. Errors split the way git-annex splits them: an
//! unparseable line gets `ERROR unknown command`, a well-formed message
//! out of place gets `ERROR unexpected command`, and both keep the session;
//! a broken connection or a broken repository ends it.

use annex::branch::{Branch, LogStatus};
use annex::p2p::{ConnError, Connection, Message, MAX_PROTOCOL_VERSION};
use annex::repo::Repo;
use annex::store::ObjectStore;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::cmd;
use crate::restrict::Rules;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Connection(#[from] ConnError),
    #[error("{0}")]
    Store(#[from] annex::store::StoreError),
    #[error("{0}")]
    Branch(#[from] annex::branch::BranchError),
    #[error("{0}")]
    Repo(#[from] annex::repo::RepoError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("client error: {0}")]
    ClientError(String),
    #[error("{0}")]
    Fatal(String),
}

/// What a handler tells the loop.
pub enum Flow {
    Continue,
    /// The session is over (after CONNECT, or the client sent ERROR).
    Stop,
}

/// One client's session against one local repository.
pub struct Session<R, W> {
    pub conn: Connection<R, W>,
    pub repo: Repo,
    pub store: ObjectStore,
    pub branch: Branch,
    pub my_uuid: String,
    pub client_uuid: String,
    pub rules: Rules,
    pub version: u32,
    /// Whether the journal gained lines this session, so the branch needs a
    /// commit when it ends.
    pub journalled: bool,
}

impl<R, W> Session<R, W>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    pub fn new(
        conn: Connection<R, W>,
        repo: Repo,
        store: ObjectStore,
        my_uuid: String,
        client_uuid: String,
        rules: Rules,
    ) -> Self {
        Session {
            conn,
            branch: repo.branch(),
            repo,
            store,
            my_uuid,
            client_uuid,
            rules,
            version: 0,
            journalled: false,
        }
    }

    pub async fn send(&mut self, msg: Message) -> Result<(), ServeError> {
        self.conn.write_message(&msg).await?;
        Ok(())
    }

    /// Serve until the client hangs up; commit what was journalled whatever
    /// way the session ends, so a store that happened is never forgotten.
    pub async fn run(mut self) -> Result<(), ServeError> {
        let served = self.serve().await;
        let committed = self.finish();
        served.and(committed)
    }

    async fn serve(&mut self) -> Result<(), ServeError> {
        self.send(Message::AuthSuccess(self.my_uuid.clone()))
            .await?;
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
            match self.dispatch(msg).await? {
                Flow::Continue => {}
                Flow::Stop => return Ok(()),
            }
        }
    }

    async fn dispatch(&mut self, msg: Message) -> Result<Flow, ServeError> {
        if let Err(refusal) = self.rules.admit(&msg) {
            let ends = refusal.ends_session;
            self.send(refusal.into()).await?;
            return Ok(if ends { Flow::Stop } else { Flow::Continue });
        }
        match msg {
            Message::Version(v) => {
                self.version = v.min(MAX_PROTOCOL_VERSION);
                self.send(Message::Version(self.version)).await?;
                Ok(Flow::Continue)
            }
            Message::Bypass(_) => Ok(Flow::Continue),
            Message::CheckPresent(key) => {
                let ok = self.store.has(&key);
                self.send(success(ok)).await?;
                Ok(Flow::Continue)
            }
            Message::GetTimestamp => {
                self.send(Message::Timestamp(annex::clock::monotonic_seconds()))
                    .await?;
                Ok(Flow::Continue)
            }
            Message::LockContent(key) => cmd::lockcontent::handle(self, key).await,
            Message::Remove(key) => cmd::remove::handle(self, key, None).await,
            Message::RemoveBefore { timestamp, key } => {
                cmd::remove::handle(self, key, Some(timestamp)).await
            }
            Message::Get { offset, file, key } => cmd::get::handle(self, offset, file, key).await,
            Message::Put { file, key } => cmd::put::handle(self, file, key).await,
            Message::Connect(service) => cmd::connect::handle(self, service).await,
            Message::NotifyChange => cmd::notifychange::handle(self).await,
            // The client gives up on an ERROR; so do we, cleanly.
            Message::Error(_) => Ok(Flow::Stop),
            _ => {
                self.send(Message::Error("unexpected command".into()))
                    .await?;
                Ok(Flow::Continue)
            }
        }
    }

    /// Record in the location log that this repository now has, or no
    /// longer has, a key.
    pub fn log_presence(&mut self, key: &annex::key::Key, present: bool) -> Result<(), ServeError> {
        let status = if present {
            LogStatus::Present
        } else {
            LogStatus::Missing
        };
        if self.branch.log_key_location(key, &self.my_uuid, status)? {
            self.journalled = true;
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), ServeError> {
        // Like git-annex, commit whatever the journal holds, also lines an
        // earlier `configlist` autoinit left there.
        if self.journalled || self.branch.journal_dirty() {
            self.branch.commit()?;
        }
        Ok(())
    }
}

impl ServeError {
    /// The client went away: not an error worth reporting. git-annex exits
    /// quietly when its peer hangs up between messages, and with status 1
    /// and an internal error in the middle of a DATA; nobody is left to read
    /// either, so we exit quietly in both cases (the partial upload is kept
    /// for a resume either way).
    pub fn is_hangup(&self) -> bool {
        match self {
            ServeError::Connection(ConnError::ShortData { .. })
            | ServeError::Connection(ConnError::UnexpectedEof) => true,
            ServeError::Connection(ConnError::Io(e)) => matches!(
                e.kind(),
                std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::UnexpectedEof
            ),
            _ => false,
        }
    }
}

pub fn success(ok: bool) -> Message {
    if ok {
        Message::Success
    } else {
        Message::Failure
    }
}
