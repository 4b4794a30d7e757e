//! Chunked special remotes as git-annex chunks them
//! (`Remote/Helper/Chunked.hs`, `Logs/Chunk.hs`):
//!
//! - with `chunk=SIZE` a key's content is stored as chunk keys
//!   `KEY-S<size>-C1`, `-C2`, … of `size` bytes each (the last shorter);
//! - once every chunk is stored, the chunk log
//!   `<hashdir>/<keyfile>.log.cnk` in the git-annex branch records
//!   `<clock> <uuid>:<size> <count>` (count 0 once removed);
//! - a key may be on a remote whole or in chunks of any recorded size, so
//!   reads try the layouts git-annex tries, in its order, ending with the
//!   "speculative" chunks the remote's present `chunk=` would give (found
//!   present, they are logged, as git-annex logs them).

use annex::branch::location::location_log_path_for;
use annex::branch::maplog::MapLog;
use annex::branch::VectorClock;
use annex::key::{Backend as KeyBackend, Key};

/// How a remote is configured to store new content.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChunkConfig {
    Whole,
    /// `chunk=`: fixed-size chunks of this many bytes.
    Fixed(u64),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChunkConfigError {
    #[error("bad configuration {field}={value}")]
    BadSize { field: &'static str, value: String },
    /// `chunksize=`: git-annex's chunks from before 2014, another layout.
    #[error("chunksize={0} (old-style chunks) is not served by annexproxy; use chunk=")]
    Legacy(String),
}

impl ChunkConfig {
    /// From a remote's `chunk=` (and `chunksize=`) parameters; a size of 0
    /// means no chunks, as in git-annex.
    pub fn from_params(
        chunk: Option<&str>,
        chunksize: Option<&str>,
    ) -> Result<ChunkConfig, ChunkConfigError> {
        if let Some(v) = chunksize {
            return Err(ChunkConfigError::Legacy(v.to_owned()));
        }
        match chunk {
            None => Ok(ChunkConfig::Whole),
            Some(v) => match annex::repo::parse_data_size(v) {
                Some(0) => Ok(ChunkConfig::Whole),
                Some(n) => Ok(ChunkConfig::Fixed(n)),
                None => Err(ChunkConfigError::BadSize {
                    field: "chunk",
                    value: v.to_owned(),
                }),
            },
        }
    }

    /// The chunk size new content of `key` is stored with: git-annex chunks
    /// only keys whose content cannot vary (not URL keys).
    pub fn chunk_size_for(self, key: &Key) -> Option<u64> {
        match self {
            ChunkConfig::Fixed(n) if !matches!(key.backend(), KeyBackend::Url) => Some(n),
            _ => None,
        }
    }
}

/// One way a key may be stored on a remote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Unchunked, under the key itself.
    Whole,
    /// `count` chunks of `size` bytes; `logged` when the chunk log says so
    /// (else a guess from the remote's configuration).
    Chunks { size: u64, count: u64, logged: bool },
}

impl Layout {
    /// The objects that make up the content, in order.
    pub fn objects(&self, key: &Key) -> Vec<Key> {
        match self {
            Layout::Whole => vec![key.non_chunk()],
            Layout::Chunks { size, count, .. } => {
                (1..=*count).map(|n| key.chunk(*size, n)).collect()
            }
        }
    }
}

/// How many chunks of `chunk` bytes hold `size` bytes (at least one).
pub fn chunk_count(size: u64, chunk: u64) -> u64 {
    size.div_ceil(chunk.max(1)).max(1)
}

/// The chunk log's path in the git-annex branch (`Logs.hs: chunkLogFile`).
pub fn chunk_log_path(key: &Key) -> String {
    format!("{}.cnk", location_log_path_for(&key.non_chunk()))
}

/// The chunk log: field `<uuid>:<chunksize>`, value the chunk count.
pub fn parse_chunk_log(content: &[u8]) -> MapLog<u64> {
    MapLog::parse_with(content, |v| v.trim().parse().ok())
}

/// The chunk sizes and counts recorded for `uuid` (count above 0), in the
/// log's order. Chunk methods other than a size are skipped: git-annex
/// knows no other.
pub fn recorded(log: &MapLog<u64>, uuid: &str) -> Vec<(u64, u64)> {
    log.entries
        .iter()
        .filter_map(|(field, e)| {
            let (u, method) = field.rsplit_once(':')?;
            let size = method.parse::<u64>().ok()?;
            (u == uuid && e.value > 0 && size > 0).then_some((size, e.value))
        })
        .collect()
}

/// The log's text with `uuid`'s chunks of `size` set to `count`.
pub fn change_chunk_log(old: &[u8], uuid: &str, size: u64, count: u64) -> Vec<u8> {
    let mut log = parse_chunk_log(old);
    log.set(
        &format!("{uuid}:{size}"),
        count,
        VectorClock::candidate_now(),
    );
    log.format_with(u64::to_string)
}

/// The layouts to try for `key`, most likely first (`chunkKeys`): an
/// unchunked remote tries the whole key first, a chunked one last; the
/// recorded chunk lists in between; then the chunks the configuration
/// would give, unless recorded already.
pub fn layouts(key: &Key, config: ChunkConfig, logged: &[(u64, u64)]) -> Vec<Layout> {
    let recorded = logged.iter().map(|&(size, count)| Layout::Chunks {
        size,
        count,
        logged: true,
    });
    let mut out: Vec<Layout> = match config {
        ChunkConfig::Whole => std::iter::once(Layout::Whole).chain(recorded).collect(),
        ChunkConfig::Fixed(_) => recorded.chain(std::iter::once(Layout::Whole)).collect(),
    };
    if let (ChunkConfig::Fixed(size), Some(key_size)) = (config, key.size()) {
        let count = chunk_count(key_size, size);
        if !logged.contains(&(size, count)) {
            out.push(Layout::Chunks {
                size,
                count,
                logged: false,
            });
        }
    }
    out
}

#[cfg(test)]
#[path = "chunks_tests.rs"]
mod tests;
