//! How the local back-end moves bodies: object files out by sendfile or a
//! reader thread, DATA into the object store verified while it streams,
//! and git's service tunnelled through DATA for CONNECT.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;
use std::process::Stdio;

use annex::key::Key;
use annex::p2p::{Connection, DataSink, Service};
use annex::store::{Incoming, ObjectStore, StoreError, VerifyMode};
use annex::threadio::{self, ThreadReader};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::process::Command;

use super::BackendError;

/// Sends an object file of `size` bytes from `offset` as one DATA, and
/// says whether it stayed the same while it was sent.
pub(crate) async fn send_content<R, W>(
    client: &mut Connection<R, W>,
    mut content: File,
    size: u64,
    offset: u64,
) -> Result<bool, BackendError>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    let before = content.metadata()?;
    let len = size.saturating_sub(offset);
    tracing::Span::current().record("bytes", len);
    if len > 0 {
        content.seek(SeekFrom::Start(offset))?;
    }
    // Kept to stat the file once the reader thread has it.
    let probe = content.try_clone()?;
    send_body(client, len, content).await?;
    // Content is frozen, but someone with write access could still replace
    // it; the client then re-fetches instead of storing a mix of two
    // versions.
    Ok(same_file(&before, &probe.metadata()?))
}

/// Below this a body is read in one go: a page-cache read of a few KiB
/// costs less than starting a reader thread.
const SMALL: u64 = 64 * 1024;

pub(crate) async fn send_body<R, W>(
    conn: &mut Connection<R, W>,
    len: u64,
    file: File,
) -> Result<(), BackendError>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    if len > SMALL && conn.send_file(len, file.try_clone()?).await? {
        return Ok(());
    }
    let mut body = file.take(len);
    if len <= SMALL {
        let mut bytes = Vec::with_capacity(len as usize);
        body.read_to_end(&mut bytes)?;
        // A short read is left to send_data, which reports it.
        conn.send_data(len, &mut bytes.as_slice()).await?;
    } else {
        // Large bodies stream through a reader thread with big buffers
        // (bounded: two of at most threadio::BUF), one thread wake-up per
        // buffer instead of a blocking-pool hop per 64 KiB chunk.
        let size = usize::try_from(len)
            .unwrap_or(usize::MAX)
            .min(threadio::BUF);
        let mut reader = ThreadReader::with_capacity(body, size)?;
        conn.send_data(len, &mut reader).await?;
    }
    Ok(())
}

pub(crate) fn same_file(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    a.len() == b.len() && a.mtime() == b.mtime() && a.mtime_nsec() == b.mtime_nsec()
}

/// Where DATA goes: the object store, or nowhere when we could not accept
/// it, remembering the first write error instead of stopping mid-DATA.
pub(crate) enum Receiver {
    /// PUT answered with `offset`; the store is entered only when DATA
    /// comes ([`Receiver::open`]), as git-annex does, so that nothing
    /// but a stat stands between PUT and PUT-FROM.
    Offered {
        offset: u64,
        assoc_file: Option<String>,
    },
    Store {
        incoming: Box<Incoming>,
        failed: Option<io::Error>,
    },
    Refused(StoreError),
}

impl Receiver {
    /// What PUT-FROM tells the sender.
    pub(crate) fn offer(
        store: &ObjectStore,
        key: &Key,
        assoc_file: Option<&str>,
    ) -> (Receiver, u64) {
        match store.resume_offset(key) {
            Ok(offset) => {
                let assoc_file = assoc_file.map(str::to_owned);
                (Receiver::Offered { offset, assoc_file }, offset)
            }
            // This key fails (the body is still read, to stay in step),
            // the session goes on for the others.
            Err(e) => (Receiver::Refused(e), 0),
        }
    }

    /// DATA came: take the transfer lock, check the space and open the
    /// partial file. What fails here (another receiver, no room, a
    /// read-only or broken annex/) refuses the body, so the sender hears
    /// FAILURE after it.
    pub(crate) fn open(&mut self, store: &ObjectStore, key: &Key, remote_uuid: &str) {
        if let Receiver::Offered { offset, assoc_file } = self {
            *self = match store.begin_receive_at(key, remote_uuid, assoc_file.as_deref(), *offset) {
                Ok(incoming) => Receiver::Store {
                    incoming: Box::new(incoming),
                    failed: None,
                },
                Err(e) => Receiver::Refused(e),
            };
        }
    }

    /// A body of `len` bytes is coming: refuse it here when it cannot be
    /// the key's content (it is then read and discarded).
    pub(crate) fn expect_len(&mut self, len: u64) {
        if let Receiver::Store { incoming, .. } = self {
            let end = incoming.offset().saturating_add(len);
            if let Err(e) = incoming.expect_end(end) {
                *self = Receiver::Refused(e);
            }
        }
    }

    pub(crate) fn abandon(self) {
        if let Receiver::Store { incoming, .. } = self {
            incoming.abandon();
        }
    }

    pub(crate) fn finish(self, mode: VerifyMode) -> Result<(), StoreError> {
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
            // No DATA came, so nothing was sent.
            Receiver::Offered { .. } => Err(StoreError::NoContentSent),
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

/// CONNECT: run git-upload-pack or git-receive-pack on the repository at
/// `dir` and tunnel its stdin/stdout through DATA messages; git's exit
/// code for CONNECTDONE.
///
/// Real git-annex-shell refuses CONNECT under p2pstdio; we serve it so
/// plain git (through git-remote-annexproxy) can reach a repository over
/// the same P2P session as its content.
pub(crate) async fn tunnel_git<R, W>(
    dir: &Path,
    service: Service,
    client: &mut Connection<R, W>,
) -> Result<i32, BackendError>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    let sub = match service {
        Service::UploadPack => "upload-pack",
        Service::ReceivePack => "receive-pack",
    };
    let mut child = Command::new("git")
        .arg(sub)
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()?;
    let stdin = child.stdin.take().expect("stdin was piped");
    let mut stdout = child.stdout.take().expect("stdout was piped");
    let mut halves = client.split();
    let (reading, writing) = (&mut halves.reading, &mut halves.writing);
    let sent = {
        // The client's bytes go to git until it says CONNECTDONE, hangs up
        // or git stops reading; then git's stdin closes.
        let input = async move {
            let mut stdin = stdin;
            let _ = reading.recv_stream(&mut stdin).await;
        };
        // git's output goes to the client as fast as the client takes it:
        // a client that stops reading leaves it in git's pipe.
        let output = writing.send_stream(&mut stdout);
        tokio::pin!(input, output);
        let mut input_done = false;
        loop {
            tokio::select! {
                () = &mut input, if !input_done => input_done = true,
                sent = &mut output => break sent,
            }
        }
    };
    sent?;
    drop(halves);
    let status = child.wait().await?;
    Ok(status.code().unwrap_or(1))
}
