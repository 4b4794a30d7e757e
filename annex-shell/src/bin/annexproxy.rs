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
    /// Make this repository the gateway of a new cluster, as
    /// `git annex initcluster` does.
    Initcluster {
        /// The cluster's name (a legal git remote name).
        name: String,
        /// Description recorded in uuid.log (default: "cluster NAME").
        description: Option<String>,
    },
    /// Record in cluster.log the nodes configured with
    /// remote.R.annex-cluster-node, then do what updateproxy does, as
    /// `git annex updatecluster` does.
    Updatecluster,
    /// Become another gateway of the cluster that GATEWAYREMOTE is a
    /// gateway for, as `git annex extendcluster` does.
    Extendcluster {
        /// The remote that is a gateway of the cluster already.
        gateway: String,
        /// The cluster's name as that gateway knows it.
        name: String,
    },
    /// Show this repository, each remote it proxies and each cluster it
    /// is a gateway for with its nodes: UUID, whether it answers now,
    /// keys and bytes the location log says it holds, free space.
    Status {
        /// One JSON object instead of the table.
        #[arg(long)]
        json: bool,
    },
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
        Cmd::Initcluster { name, description } => {
            annex_shell::operator::initcluster(&cli.dir, name, description.as_deref(), &mut out)
        }
        Cmd::Updatecluster => annex_shell::operator::updatecluster(&cli.dir, &mut out, &mut err),
        Cmd::Extendcluster { gateway, name } => {
            annex_shell::operator::extendcluster(&cli.dir, gateway, name, &mut out, &mut err)
        }
        Cmd::Status { json } => annex_shell::operator::status(&cli.dir, *json, &mut out),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("annexproxy: {e}");
            ExitCode::FAILURE
        }
    }
}
