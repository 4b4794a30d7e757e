//! What failed, on which remote and object: one error for every request,
//! with the operation and the object named, and the cause typed.

use std::fmt;

/// The storage operation that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Stat,
    Read,
    BeginWrite,
    WritePart,
    Commit,
    Abort,
    Remove,
    Copy,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::Stat => "stat",
            Op::Read => "read",
            Op::BeginWrite => "begin write of",
            Op::WritePart => "write of",
            Op::Commit => "commit of",
            Op::Abort => "abort of",
            Op::Remove => "remove of",
            Op::Copy => "copy of",
        })
    }
}

/// A failed storage operation on one object of one remote.
#[derive(Debug, thiserror::Error)]
#[error("S3 remote {remote}: {op} {object}: {kind}")]
pub struct S3Error {
    pub remote: String,
    pub op: Op,
    /// The bucket's object name (file prefix included).
    pub object: String,
    #[source]
    pub kind: ErrorKind,
}

impl S3Error {
    /// True when the object is not in the bucket.
    pub fn is_not_found(&self) -> bool {
        matches!(self.kind, ErrorKind::NotFound)
    }

    /// True when the bucket could not be reached at all (no connection,
    /// or no answer in time), so nothing can be said about the object.
    pub fn is_unreachable(&self) -> bool {
        matches!(&self.kind, ErrorKind::Transport(e) if e.is_connect() || e.is_timeout())
    }
}

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ErrorKind {
    #[error("{0}")]
    Transport(#[from] reqwest::Error),
    /// The server answered with an error status (and, usually, an S3
    /// error document).
    #[error("{}", status_text(*status, code, message))]
    Status {
        status: u16,
        code: Option<String>,
        message: Option<String>,
    },
    #[error("unreadable response: {0}")]
    Xml(#[from] instant_xml::Error),
    #[error("unexpected response: {0}")]
    Response(String),
    #[error("no such object")]
    NotFound,
    #[error("the write was begun for {expected} bytes and got {got}")]
    SizeMismatch { expected: u64, got: u64 },
    #[error("a part upload task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

fn status_text(status: u16, code: &Option<String>, message: &Option<String>) -> String {
    let mut s = format!("HTTP {status}");
    if let Some(c) = code {
        s.push(' ');
        s.push_str(c);
    }
    if let Some(m) = message {
        s.push_str(": ");
        s.push_str(m);
    }
    s
}

/// A remote that cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(
        "S3 remote {remote}: no credentials: set both AWS_ACCESS_KEY_ID and \
         AWS_SECRET_ACCESS_KEY, or store them as git-annex does"
    )]
    NoCredentials { remote: String },
    #[error("S3 remote {remote}: bucket {bucket:?} at {endpoint}: {source}")]
    Bucket {
        remote: String,
        bucket: String,
        endpoint: String,
        source: rusty_s3::BucketError,
    },
    #[error("S3 remote {remote}: endpoint {endpoint:?}: {source}")]
    Endpoint {
        remote: String,
        endpoint: String,
        source: url::ParseError,
    },
    #[error("S3 remote {remote}: HTTP client: {source}")]
    Http {
        remote: String,
        source: reqwest::Error,
    },
}
