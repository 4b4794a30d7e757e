//! GET: stream content from an offset, then say whether it was intact.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};

use annex::key::Key;
use annex::p2p::{Connection, Message};
use annex::threadio::{self, ThreadReader};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::cmd::read_verdict;
use crate::serve::{Flow, ServeError, Session};

pub async fn handle<R, W>(
    s: &mut Session<R, W>,
    offset: u64,
    file: Option<String>,
    key: Key,
) -> Result<Flow, ServeError>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    let mut record = None;
    let valid = match s.store.open_content(&key)? {
        Some((content, size)) => {
            let upload = s
                .store
                .begin_upload(&key, &s.client_uuid, file.as_deref())?;
            record = Some(upload);
            let before = content.metadata()?;
            let len = size.saturating_sub(offset);
            let mut content = content;
            if len > 0 {
                content.seek(SeekFrom::Start(offset))?;
            }
            // Kept to stat the file once the reader thread has it.
            let probe = content.try_clone()?;
            send_body(&mut s.conn, len, content).await?;
            // Content is frozen, but someone with write access could still
            // replace it; the client then re-fetches instead of storing a
            // mix of two versions.
            let after = probe.metadata()?;
            same_file(&before, &after)
        }
        None => {
            s.conn.send_data(0, &mut tokio::io::empty()).await?;
            false
        }
    };
    if s.version >= 1 {
        s.send(if valid {
            Message::Valid
        } else {
            Message::Invalid
        })
        .await?;
    }
    // GET never changes the location log: the client may not keep it. The
    // upload counts as failed unless the client says it got it.
    let verdict = read_verdict(s).await?;
    if let Some(upload) = record {
        upload.finish(verdict == Some(true));
    }
    match verdict {
        None => Ok(Flow::Stop),
        Some(_) => Ok(Flow::Continue),
    }
}

/// Below this a body is read in one go: a page-cache read of a few KiB
/// costs less than starting a reader thread.
const SMALL: u64 = 64 * 1024;

pub(crate) async fn send_body<R, W>(
    conn: &mut Connection<R, W>,
    len: u64,
    file: File,
) -> Result<(), ServeError>
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
