//! What can stop git-annex-shell before or while it serves a command, as
//! the user is told. Apart from [`crate::run`], which picks the command,
//! so the commands can fail with it without depending on their caller.

use crate::args;
use crate::restrict::Refused;

#[derive(Debug, thiserror::Error)]
pub enum ShellError {
    #[error(transparent)]
    Args(#[from] args::ArgsError),
    #[error(transparent)]
    Refused(#[from] Refused),
    #[error("failed to read git config of git repository in {host} on {dir}; perhaps this repository is not set up correctly or has moved")]
    NoRepo { host: String, dir: String },
    #[error("Not a git-annex or gcrypt repository.")]
    NotAnnex,
    #[error("expected repository UUID {expected} but found {found}")]
    WrongUuid { expected: String, found: String },
    #[error("Cannot proxy {0} command.")]
    CannotProxy(&'static str),
    #[error("not configured to proxy for repository {0}")]
    NotConfiguredProxy(String),
    #[error("{0}")]
    Other(String),
    #[error("git-shell: {0}")]
    GitShell(std::io::Error),
}
