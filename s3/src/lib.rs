//! S3 storage for git-annex special remotes of `type=S3`: git-annex's
//! parameters and credentials ([`S3Config`], [`find_credentials`]), and the
//! bucket's named objects ([`S3Storage`]) moved as the special-remote
//! framework needs them: stat, ranged streaming reads, staged writes that
//! resume after an interruption and become visible only when committed,
//! and remove.
//!
//! Requests are signed with SigV4 by rusty-s3 (presigned URLs, the Host
//! signed as it is sent, port included, with any region string) and sent
//! by reqwest; see the README's "Dependencies" for why.

mod client;
pub mod config;
pub mod creds;
pub mod error;
mod retry;
mod stale;
mod storage;
mod write;
mod xml;

pub use config::{ConfigError, Protocol, RequestStyle, S3Config, Signature};
pub use creds::{find_credentials, CredsError, CredsSource, S3Credentials};
pub use error::{ErrorKind, Op, S3Error, SetupError};
pub use storage::{ObjectReader, S3Storage};
pub use write::StagedWrite;
