//! What the cluster gateway still shares with relayed sessions: its
//! error type, reading the client's validity, and fitting a message to
//! the client's version. A session relayed to one node is the session
//! loop over [`crate::backend::peer::Peer`].

use annex::p2p::{ConnError, Connection, Message};
use tokio::io::{AsyncRead, AsyncWrite};

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
        matches!(self, RelayError::Client(e) if e.is_hangup())
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

/// Defined with the protocol's messages; kept here for the gateway.
pub use annex::p2p::fit;

#[cfg(test)]
#[path = "relay_tests.rs"]
mod tests;
