//! PUT: receive content (resuming a partial upload), verify it while it
//! streams, and only then move it into place and log it.

use annex::key::Key;
use annex::p2p::Message;
use annex::store::{StoreError, Validity};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::cmd::remove::READONLY_ERROR;
use crate::restrict::ServerMode;
use crate::serve::{success, Flow, ServeError, Session};

pub async fn handle<R, W>(
    s: &mut Session<R, W>,
    file: Option<String>,
    key: Key,
) -> Result<Flow, ServeError>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    if s.mode == ServerMode::ReadOnly {
        s.send(Message::Error(READONLY_ERROR.into())).await?;
        return Ok(Flow::Continue);
    }
    if s.store.has(&key) {
        s.send(Message::AlreadyHave).await?;
        return Ok(Flow::Continue);
    }
    let mut incoming = match s.store.begin_receive(&key, &s.client_uuid, file.as_deref()) {
        Ok(i) => i,
        Err(e @ StoreError::TransferInProgress { .. }) => {
            // git-annex ends the session here; an ERROR lets the client
            // fail just this transfer.
            s.send(Message::Error(e.to_string())).await?;
            return Ok(Flow::Continue);
        }
        Err(e) => return Err(e.into()),
    };
    s.send(Message::PutFrom(incoming.offset())).await?;
    let msg = match s.conn.read_message().await {
        Ok(Some(m)) => Some(m),
        Ok(None) => return Ok(Flow::Stop),
        Err(e) if e.is_recoverable() => None,
        Err(e) => return Err(e.into()),
    };
    let stored = match msg {
        Some(Message::Data(len)) => {
            // A short body kills the connection; `incoming` is dropped with
            // the partial bytes kept for a resumed PUT.
            s.conn.recv_data(len, &mut incoming).await?;
            let validity = if s.version >= 1 {
                read_validity(s).await?
            } else {
                Validity::Unknown
            };
            match incoming.finish(len, validity) {
                Ok(()) => true,
                Err(e) => {
                    eprintln!("git-annex-shell: {e}");
                    false
                }
            }
        }
        Some(Message::DataPresent) if s.version >= 4 => {
            drop(incoming);
            s.store.has(&key)
        }
        // The sender could not send after all; it expects no reply.
        Some(Message::Error(_)) => return Ok(Flow::Continue),
        _ => {
            s.send(Message::Error("expected DATA".into())).await?;
            return Ok(Flow::Continue);
        }
    };
    if stored {
        s.log_presence(&key, true)?;
    }
    s.send(success(stored)).await?;
    Ok(Flow::Continue)
}

async fn read_validity<R, W>(s: &mut Session<R, W>) -> Result<Validity, ServeError>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    match s.conn.read_message().await {
        Ok(Some(Message::Valid)) => Ok(Validity::Valid),
        Ok(Some(Message::Invalid)) => Ok(Validity::Invalid),
        Ok(None) => Err(ServeError::Fatal("client hung up before VALID".into())),
        Ok(Some(_)) => {
            s.send(Message::Error("expected VALID or INVALID".into()))
                .await?;
            Ok(Validity::Unknown)
        }
        Err(e) if e.is_recoverable() => {
            s.send(Message::Error("expected VALID or INVALID".into()))
                .await?;
            Ok(Validity::Unknown)
        }
        Err(e) => Err(e.into()),
    }
}
