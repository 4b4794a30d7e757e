//! REMOVE and REMOVE-BEFORE.

use annex::key::Key;
use annex::store::RemoveOutcome;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::serve::{success, Flow, ServeError, Session};

pub use crate::restrict::{APPENDONLY_ERROR, READONLY_ERROR};

pub async fn handle<R, W>(
    s: &mut Session<R, W>,
    key: Key,
    before: Option<u64>,
) -> Result<Flow, ServeError>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    // The deadline is checked while the removal lock is held, so a lock
    // that a client took just before the deadline cannot be raced.
    let still_allowed = || match before {
        Some(ts) => annex::clock::monotonic_seconds() < ts,
        None => true,
    };
    let ok = match s.store.remove(&key, still_allowed)? {
        RemoveOutcome::NotPresent => true,
        RemoveOutcome::Removed => {
            s.log_presence(&key, false)?;
            true
        }
        // git-annex dies here with "content is locked"; a FAILURE tells the
        // client the same thing and keeps the session.
        RemoveOutcome::Locked | RemoveOutcome::TooLate => false,
    };
    s.send(success(ok)).await?;
    Ok(Flow::Continue)
}
