//! LOCKCONTENT: hold a shared lock on the content until UNLOCKCONTENT, so a
//! client can count this copy while it drops another.

use annex::key::Key;
use annex::p2p::Message;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::serve::{Flow, ServeError, Session};

/// The answer to anything but UNLOCKCONTENT while the content is locked.
pub const LOCKED_ERROR: &str = "expected UNLOCKCONTENT";

pub async fn handle<R, W>(s: &mut Session<R, W>, key: Key) -> Result<Flow, ServeError>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    let lock = match s.store.lock_content(&key) {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!("locking {key}: {e}");
            None
        }
    };
    let Some(lock) = lock else {
        s.send(Message::Failure).await?;
        return Ok(Flow::Continue);
    };
    s.send(Message::Success).await?;
    let next = s.conn.read_message().await;
    drop(lock);
    match next {
        Ok(Some(Message::UnlockContent)) => Ok(Flow::Continue),
        Ok(None) => Ok(Flow::Stop),
        // git-annex consumes whatever came instead; so do we, but say so.
        Ok(Some(_)) => {
            s.send(Message::Error(LOCKED_ERROR.into())).await?;
            Ok(Flow::Continue)
        }
        Err(e) if e.is_recoverable() => {
            s.send(Message::Error(LOCKED_ERROR.into())).await?;
            Ok(Flow::Continue)
        }
        Err(e) => Err(e.into()),
    }
}
