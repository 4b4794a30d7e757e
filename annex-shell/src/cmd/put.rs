//! PUT: receive content (resuming a partial upload), verify it while it
//! streams, and only then move it into place and log it.
//!
//! Whatever goes wrong on our side (no space, another transfer of the same
//! key, a write error) the DATA is still read to its end, so the protocol
//! stays in step and the client gets a FAILURE for this key alone; the
//! reason goes to stderr, which ssh carries to the client's terminal.

use std::io;

use annex::key::Key;
use annex::p2p::{DataSink, Message};
use annex::store::{Incoming, StoreError, VerifyMode};
use tokio::io::{AsyncRead, AsyncWrite};

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
    if s.store.has(&key) {
        s.send(Message::AlreadyHave).await?;
        return Ok(Flow::Continue);
    }
    let mut sink = match s.store.begin_receive(&key, &s.client_uuid, file.as_deref()) {
        Ok(incoming) => Receiver::Store {
            incoming: Box::new(incoming),
            failed: None,
        },
        // Another receiver, no room, a read-only or broken annex/: this
        // key fails (the body is still read, to stay in step), the session
        // goes on for the others.
        Err(e) => Receiver::Refused(e),
    };
    s.send(Message::PutFrom(sink.offset())).await?;
    let msg = match s.conn.read_message().await {
        Ok(Some(m)) => Some(m),
        Ok(None) => return Ok(Flow::Stop),
        Err(e) if e.is_recoverable() => None,
        Err(e) => return Err(e.into()),
    };
    let stored = match msg {
        Some(Message::Data(len)) => {
            // More than the key can hold is refused before a byte is
            // written; the body is still read, and thrown away.
            sink.expect_len(len);
            // A short body ends the connection; the partial bytes stay in
            // annex/tmp for a resumed PUT.
            s.conn.recv_data(len, &mut sink).await?;
            let (mode, hung_up) = if s.version >= 1 {
                read_validity(s).await?
            } else {
                (VerifyMode::Unknown, false)
            };
            let stored = match sink.finish(mode) {
                Ok(()) => true,
                // The client's offset probe (DATA 0, INVALID) is no error.
                Err(StoreError::NoContentSent) => false,
                Err(e) => {
                    eprintln!("git-annex-shell: {key}: {e}");
                    false
                }
            };
            if hung_up {
                // As git-annex: content that arrived whole and verifies is
                // kept and logged even though nobody hears the verdict.
                let logged = stored && log_stored(s, &key);
                let _ = s.send(success(logged)).await;
                return Ok(Flow::Stop);
            }
            stored
        }
        Some(Message::DataPresent) if s.version >= 4 => {
            sink.abandon();
            s.store.has(&key)
        }
        // The sender could not send after all; it expects no reply.
        Some(Message::Error(_)) => {
            sink.abandon();
            return Ok(Flow::Continue);
        }
        _ => {
            sink.abandon();
            s.send(Message::Error("expected DATA".into())).await?;
            return Ok(Flow::Continue);
        }
    };
    let logged = stored && log_stored(s, &key);
    s.send(success(logged)).await?;
    Ok(Flow::Continue)
}

/// Records the stored key in the location log. A log that cannot be
/// written fails this key alone (the reason on stderr) instead of the
/// session; the object stays, and `git annex fsck` records it later.
fn log_stored<R, W>(s: &mut Session<R, W>, key: &Key) -> bool
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    match s.log_presence(key, true) {
        Ok(()) => true,
        Err(e) => {
            eprintln!("git-annex-shell: {key}: stored, but not logged: {e}");
            false
        }
    }
}

/// Where DATA goes: the object store, or nowhere when we could not accept
/// it, remembering the first write error instead of stopping mid-DATA.
enum Receiver {
    Store {
        incoming: Box<Incoming>,
        failed: Option<io::Error>,
    },
    Refused(StoreError),
}

impl Receiver {
    fn offset(&self) -> u64 {
        match self {
            Receiver::Store { incoming, .. } => incoming.offset(),
            Receiver::Refused(_) => 0,
        }
    }

    /// A body of `len` bytes is coming: refuse it here when it cannot be
    /// the key's content (it is then read and discarded).
    fn expect_len(&mut self, len: u64) {
        if let Receiver::Store { incoming, .. } = self {
            let end = incoming.offset().saturating_add(len);
            if let Err(e) = incoming.expect_end(end) {
                *self = Receiver::Refused(e);
            }
        }
    }

    fn abandon(self) {
        if let Receiver::Store { incoming, .. } = self {
            incoming.abandon();
        }
    }

    fn finish(self, mode: VerifyMode) -> Result<(), StoreError> {
        match self {
            Receiver::Store {
                incoming,
                failed: None,
            } => incoming.finish(mode).map(drop),
            Receiver::Store {
                failed: Some(e), ..
            } => Err(StoreError::Io {
                op: "write",
                path: "annex/tmp".into(),
                source: e,
            }),
            Receiver::Refused(e) => Err(e),
        }
    }
}

impl DataSink for Receiver {
    fn write_chunk(&mut self, chunk: &[u8]) -> io::Result<()> {
        if let Receiver::Store { incoming, failed } = self {
            if failed.is_none() {
                if let Err(e) = incoming.write_chunk(chunk) {
                    *failed = Some(e);
                }
            }
        }
        Ok(())
    }
}

/// The sender's word on the DATA it sent, and whether it hung up instead
/// of saying it (then the content is verified in full, as with protocol 0).
async fn read_validity<R, W>(s: &mut Session<R, W>) -> Result<(VerifyMode, bool), ServeError>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    let msg = match s.conn.read_message().await {
        Ok(Some(m)) => Some(m),
        Ok(None) => return Ok((VerifyMode::Unknown, true)),
        Err(e) if e.is_recoverable() => None,
        Err(e) => return Err(e.into()),
    };
    Ok(match msg {
        Some(Message::Valid) => (VerifyMode::Valid, false),
        Some(Message::Invalid) => (VerifyMode::Invalid, false),
        _ => {
            s.send(Message::Error("expected VALID or INVALID".into()))
                .await?;
            (VerifyMode::Unknown, false)
        }
    })
}
