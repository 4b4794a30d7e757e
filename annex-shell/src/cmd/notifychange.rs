//! NOTIFYCHANGE: wait until a ref changes, then answer CHANGED with the new
//! values. Real git-annex-shell refuses this under p2pstdio.

use std::collections::BTreeMap;
use std::time::Duration;

use annex::p2p::Message;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::serve::{Flow, ServeError, Session};

const POLL: Duration = Duration::from_millis(250);

/// The answer to anything but ERROR from a client waiting for a change.
pub const WAITING_ERROR: &str = "expected nothing while waiting for a change";

pub async fn handle<R, W>(s: &mut Session<R, W>) -> Result<Flow, ServeError>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    let before = s.repo.ref_values()?;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {
                let now = s.repo.ref_values()?;
                let changed = changed_values(&before, &now);
                if !changed.is_empty() {
                    s.send(Message::Changed(changed)).await?;
                    return Ok(Flow::Continue);
                }
            }
            // The client waits silently; anything from it, or its hanging
            // up, ends the wait.
            msg = s.conn.read_message() => {
                return match msg {
                    Ok(None) => Ok(Flow::Stop),
                    Ok(Some(Message::Error(_))) => Ok(Flow::Stop),
                    Ok(Some(_)) | Err(_) => {
                        s.send(Message::Error(WAITING_ERROR.into())).await?;
                        Ok(Flow::Stop)
                    }
                };
            }
        }
    }
}

fn changed_values(
    before: &BTreeMap<String, String>,
    now: &BTreeMap<String, String>,
) -> Vec<String> {
    let mut out: Vec<String> = now
        .iter()
        .filter(|(name, sha)| before.get(*name) != Some(*sha))
        .map(|(_, sha)| sha.clone())
        .collect();
    out.sort();
    out.dedup();
    out
}
