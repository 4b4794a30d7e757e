//! What the cluster gateway shares with a relayed session: the client's
//! verdict after a GET.

use annex::p2p::{Connection, Message};
use tokio::io::{AsyncRead, AsyncWrite};

use super::relay::RelayError;

/// The client's SUCCESS or FAILURE after a GET, to pass on to the node;
/// `None` when it hung up. Anything unreadable counts as FAILURE.
pub(crate) async fn client_verdict<R, W>(
    client: &mut Connection<R, W>,
) -> Result<Option<Message>, RelayError>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    match client.read_message().await {
        Ok(Some(m)) => Ok(Some(m)),
        Ok(None) => Ok(None),
        Err(e) if e.is_recoverable() => Ok(Some(Message::Failure)),
        Err(e) => Err(e.into()),
    }
}
