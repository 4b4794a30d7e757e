//! The operator's commands (`annexproxy …`), run in the server repository
//! itself, with no git-annex installed: what `git annex init`,
//! `updateproxy`, `initcluster`, `updatecluster`, `extendcluster`,
//! `initremote`, `enableremote` and `verifyremote` would do there, with
//! the same output lines; and `status`, which git-annex
//! has no counterpart of.
//!
//! Output goes to the writers given (stdout for results, stderr for
//! warnings), so the binary stays a thin `main`.

pub mod extendcluster;
pub mod initcluster;
pub mod initremote;
mod initremote_crypto;
mod initremote_external;
mod initremote_s3;
pub mod p2p;
pub mod p2phttp;
pub mod postreceive;
pub mod status;
pub mod updatecluster;
pub mod updateproxy;

use std::io::Write;
use std::path::{Path, PathBuf};

use annex::repo::{Repo, RepoError};

pub use extendcluster::extendcluster;
pub use initcluster::initcluster;
pub use initremote::{enableremote, initremote, verifyremote};
pub use postreceive::post_receive;
pub use status::status;
pub use updatecluster::updatecluster;
pub use updateproxy::updateproxy;

#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    #[error("{} is not a git repository: {source}", dir.display())]
    NotARepo {
        dir: PathBuf,
        #[source]
        source: RepoError,
    },
    #[error("First run: annexproxy init")]
    NotInitialized,
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error(transparent)]
    Branch(#[from] annex::branch::BranchError),
    #[error(transparent)]
    Cluster(#[from] annex::cluster::ClusterError),
    #[error("That cluster name is not a valid git remote name.")]
    BadClusterName,
    #[error("there is no available git remote named \"{0}\"")]
    NoSuchRemote(String),
    #[error("{0} is not a cluster remote.")]
    NotAClusterRemote(String),
    #[error(transparent)]
    P2p(#[from] p2p::P2pError),
    #[error(transparent)]
    P2pHttp(#[from] p2phttp::P2pHttpError),
    #[error("{0}")]
    Served(String),
    #[error(transparent)]
    Status(#[from] status::StatusError),
    #[error(transparent)]
    RemoteSetup(#[from] initremote::RemoteSetupError),
    #[error("writing output: {0}")]
    Output(#[from] std::io::Error),
}

pub fn open(dir: &Path) -> Result<Repo, OperatorError> {
    Repo::open(dir).map_err(|source| OperatorError::NotARepo {
        dir: dir.to_owned(),
        source,
    })
}

/// The repository and its UUID, which it must have been given by init,
/// with fetched git-annex branches merged first, as git-annex merges them
/// when it starts: another gateway's `proxy.log` and `cluster.log` are
/// part of what the cluster commands decide from.
pub(crate) fn open_initialized(dir: &Path) -> Result<(Repo, String), OperatorError> {
    let repo = open(dir)?;
    let uuid = repo
        .uuid()
        .filter(|_| repo.is_annex_initialized())
        .ok_or(OperatorError::NotInitialized)?;
    repo.branch().commit()?;
    Ok((repo, uuid))
}

/// `init [DESCRIPTION]`: give the repository an annex UUID, a git-annex
/// branch and a description in `uuid.log`, as `git annex init` does.
/// Running it again keeps the UUID; a new description replaces the old.
pub fn init(
    dir: &Path,
    description: Option<&str>,
    out: &mut dyn Write,
) -> Result<(), OperatorError> {
    let mut repo = open(dir)?;
    let already = repo.is_annex_initialized();
    repo.init(description)?;
    // git-annex prints the description it was given (none: an empty
    // field), and notes the branch commit unless nothing changed.
    writeln!(out, "init {} ok", description.unwrap_or(""))?;
    if !already || description.is_some() {
        writeln!(out, "(recording state in git...)")?;
    }
    Ok(())
}

/// Where our git-annex-shell is, for reaching local nodes: next to this
/// program.
pub fn sibling_shell() -> PathBuf {
    std::env::current_exe()
        .map(|p| p.with_file_name("git-annex-shell"))
        .unwrap_or_else(|_| PathBuf::from("git-annex-shell"))
}

#[cfg(test)]
mod tests;
