//! One module per P2P verb that needs more than a line of handling.
//! Each `handle` gets the session and the message's fields, and says whether
//! the session goes on.

pub mod connect;
pub mod get;
pub mod lockcontent;
pub mod notifychange;
pub mod put;
pub mod remove;

use annex::p2p::Message;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::serve::{ServeError, Session};

/// Read the client's verdict after we sent DATA. `None` when the client hung
/// up. Anything but a verdict gets the ERROR git-annex sends, and counts as a
/// failure.
pub(crate) async fn read_verdict<R, W>(s: &mut Session<R, W>) -> Result<Option<bool>, ServeError>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    let msg = match s.conn.read_message().await {
        Ok(Some(m)) => Some(m),
        Ok(None) => return Ok(None),
        Err(e) if e.is_recoverable() => None,
        Err(e) => return Err(e.into()),
    };
    let plus = s.version >= 2;
    Ok(Some(match msg {
        Some(Message::Success) => true,
        Some(Message::Failure) | Some(Message::Error(_)) => false,
        Some(Message::SuccessPlus(_)) if plus => true,
        Some(Message::FailurePlus(_)) if plus => false,
        _ => {
            let expected = if plus {
                "expected SUCCESS or SUCCESS-PLUS or FAILURE or FAILURE-PLUS"
            } else {
                "expected SUCCESS or FAILURE"
            };
            s.send(Message::Error(expected.into())).await?;
            false
        }
    }))
}
