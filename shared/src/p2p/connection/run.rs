//! Bodies handed to a sink in runs: [`DataBody::next_run`].

use tokio::io::{AsyncRead, AsyncWrite};

use super::{ConnError, DataBody};

/// Largest piece of a body [`super::Connection::recv_data`] hands its
/// sink, and the size it gathers before handing one over (or the rest of
/// the body). A store writes an object in pieces this big, so the page
/// cache keeps it in large folios: on this machine's ext4, writing a
/// 300 MB object so took about half the system time of 64 KiB pieces (the
/// size one pipe read gives), and freeing it when dropped half as well
/// (README, "Drops and configlist start-up", with the runs where it did
/// not).
pub const RUN: usize = 1024 * 1024;

impl<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> DataBody<'_, R, W> {
    /// The next `max` bytes of the body (fewer only at its end), gathered
    /// in the connection's buffer, which grows to `max` for it; `None`
    /// once all bytes were handed out. Waiting for bytes the peer has
    /// announced costs nothing: the caller could not go on without them.
    pub async fn next_run(&mut self, max: usize) -> Result<Option<&[u8]>, ConnError> {
        let want = usize::try_from(self.remaining)
            .unwrap_or(usize::MAX)
            .min(max.max(1));
        if want == 0 {
            return Ok(None);
        }
        self.conn.check()?;
        let conn = &mut *self.conn;
        if conn.buf.len() < want {
            conn.buf.resize(want, 0);
        }
        while conn.end - conn.start < want {
            if conn.start + want > conn.buf.len() {
                conn.buf.copy_within(conn.start..conn.end, 0);
                conn.end -= conn.start;
                conn.start = 0;
            }
            if conn.fill().await? == 0 {
                if conn.end > conn.start {
                    // What did arrive goes to the caller first (a sink
                    // keeps it for a resumed upload); the next call fails.
                    break;
                }
                let received = self.expected - self.remaining;
                let expected = self.expected;
                return self.conn.fail(ConnError::ShortData { expected, received });
            }
        }
        let take = want.min(conn.end - conn.start);
        let at = conn.start;
        conn.consume(take);
        self.remaining -= take as u64;
        Ok(Some(&self.conn.buf[at..at + take]))
    }
}
