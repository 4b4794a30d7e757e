//! annexproxy: the operator's commands for a server repository, with no
//! git-annex installed.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "annexproxy",
    about = "Set up a repository served by our git-annex-shell"
)]
struct Cli {
    /// Run as if started in this directory (the repository).
    #[arg(short = 'C', value_name = "DIR", default_value = ".")]
    dir: PathBuf,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Make the repository a git-annex repository (UUID, git-annex branch,
    /// description), as `git annex init` does.
    Init {
        /// Description recorded in uuid.log.
        description: Option<String>,
    },
    /// Record in proxy.log the remotes configured with annex-proxy=true,
    /// as `git annex updateproxy` does.
    Updateproxy,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut out = std::io::stdout().lock();
    let mut err = std::io::stderr().lock();
    let result = match &cli.command {
        Cmd::Init { description } => {
            annex_shell::operator::init(&cli.dir, description.as_deref(), &mut out)
        }
        Cmd::Updateproxy => annex_shell::operator::updateproxy(&cli.dir, &mut out, &mut err),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("annexproxy: {e}");
            ExitCode::FAILURE
        }
    }
}
