//! Reading a program's pipes: its stdout a bounded line at a time, its
//! stderr logged with its last lines kept.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufRead, AsyncBufReadExt, BufReader};

use super::driver::STDERR_KEPT;

pub(super) enum Line {
    Text(Vec<u8>),
    TooLong,
    Eof,
}

/// One line without its `\n` (and a `\r` before it), never buffering
/// more than `limit` bytes of it.
pub(super) async fn read_line<R: AsyncBufRead + Unpin>(
    r: &mut R,
    limit: usize,
) -> std::io::Result<Line> {
    let mut line = Vec::new();
    loop {
        let buf = r.fill_buf().await?;
        if buf.is_empty() {
            return Ok(Line::Eof);
        }
        let (take, done) = match buf.iter().position(|b| *b == b'\n') {
            Some(i) => (i, true),
            None => (buf.len(), false),
        };
        if line.len() + take > limit {
            return Ok(Line::TooLong);
        }
        line.extend_from_slice(&buf[..take]);
        r.consume(take + usize::from(done));
        if done {
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            return Ok(Line::Text(line));
        }
    }
}

/// Log the program's stderr, keeping its last lines.
pub(super) async fn keep_stderr(
    program: String,
    err: tokio::process::ChildStderr,
    kept: Arc<Mutex<VecDeque<String>>>,
) {
    let mut lines = BufReader::new(err).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        tracing::debug!(program = %program, "stderr: {line}");
        if let Ok(mut k) = kept.lock() {
            if k.len() == STDERR_KEPT {
                k.pop_front();
            }
            k.push_back(line);
        }
    }
}
