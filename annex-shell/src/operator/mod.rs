//! The operator's commands (`annexproxy …`), run in the server repository
//! itself, with no git-annex installed: what `git annex init` and
//! `git annex updateproxy` would do there, with the same output lines.
//!
//! Output goes to the writers given (stdout for results, stderr for
//! warnings), so the binary stays a thin `main`.

pub mod p2p;
pub mod updateproxy;

use std::io::Write;
use std::path::{Path, PathBuf};

use annex::repo::{Repo, RepoError};

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
    P2p(#[from] p2p::P2pError),
    #[error("writing output: {0}")]
    Output(#[from] std::io::Error),
}

pub fn open(dir: &Path) -> Result<Repo, OperatorError> {
    Repo::open(dir).map_err(|source| OperatorError::NotARepo {
        dir: dir.to_owned(),
        source,
    })
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
