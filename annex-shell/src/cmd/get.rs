//! GET: stream content from an offset, then say whether it was intact.

use std::io::SeekFrom;

use annex::key::Key;
use annex::p2p::Message;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncSeekExt, AsyncWrite};

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
            let upload = s.store.begin_upload(&key, &s.client_uuid, file.as_deref())?;
            record = Some(upload);
            let before = content.metadata()?;
            let len = size.saturating_sub(offset);
            let mut content = tokio::fs::File::from_std(content);
            if len > 0 {
                content.seek(SeekFrom::Start(offset)).await?;
            }
            let mut body = (&mut content).take(len);
            s.conn.send_data(len, &mut body).await?;
            // Content is frozen, but someone with write access could still
            // replace it; the client then re-fetches instead of storing a
            // mix of two versions.
            let after = content.metadata().await?;
            same_file(&before, &after)
        }
        None => {
            s.conn.send_data(0, &mut tokio::io::empty()).await?;
            false
        }
    };
    if s.version >= 1 {
        s.send(if valid { Message::Valid } else { Message::Invalid })
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

fn same_file(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    a.len() == b.len() && a.mtime() == b.mtime() && a.mtime_nsec() == b.mtime_nsec()
}
