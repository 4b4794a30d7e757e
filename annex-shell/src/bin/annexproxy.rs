//! annexproxy: the operator's commands for a server repository, with no
//! git-annex installed.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use annex_shell::listen::{self, Endpoint};
use annex_shell::operator::p2p;
use annex_shell::operator::p2phttp::P2pHttpArgs;
use annex_shell_front::handoff;
use clap::{Args, Parser, Subcommand};

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
    /// git's post-receive hook (installed by updateproxy): a push of the
    /// tracking branch of a proxied exporttree=yes remote changes its
    /// export, as `git annex post-receive` does.
    PostReceive,
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
    /// Set up a special remote (type=directory directory=PATH; type=S3
    /// bucket=NAME …; type=external externaltype=NAME … runs
    /// git-annex-remote-NAME's INITREMOTE), each with encryption=none,
    /// shared, hybrid, pubkey or sharedpubkey (keyid=KEY for the last
    /// three; [mac=HMACSHA1…HMACSHA512]) and [chunk=SIZE]; a directory or
    /// S3 remote may be an export, exporttree=yes [annexobjects=yes]
    /// (unencrypted), as `git annex initremote` does.
    Initremote {
        name: String,
        /// key=value parameters.
        #[arg(value_name = "KEY=VALUE")]
        params: Vec<String>,
    },
    /// Enable a special remote recorded in remote.log on this host
    /// (directory=PATH, other parameters changed), as `git annex
    /// enableremote` does.
    Enableremote {
        name: String,
        #[arg(value_name = "KEY=VALUE")]
        params: Vec<String>,
    },
    /// Show a special remote's configuration; with --safe, accept it (the
    /// proxy serves only accepted configurations), as `git annex
    /// verifyremote` does.
    Verifyremote {
        name: String,
        #[arg(long)]
        safe: bool,
    },
    /// Serve the P2P protocol to peers holding an auth token (what
    /// git-annex's remotedaemon does for tor and P2P networks), read-write,
    /// git clone/fetch/push included. Runs until killed.
    ServeP2p {
        #[command(flatten)]
        on: ListenOn,
        /// Accept the tokens stored for this P2P address
        /// (p2p-annex::NET:ADDR); without it, those stored with none.
        #[arg(long, value_name = "ADDR")]
        address: Option<String>,
        /// Serve this proxied remote or cluster (by name or UUID) instead
        /// of the repository itself; one listener per remote served.
        #[arg(long = "for", value_name = "NAME")]
        serve_for: Option<String>,
        /// Sessions served at once; further peers that authenticated wait.
        #[arg(long, value_name = "N", default_value_t = listen::MAX_CONNECTIONS)]
        max_connections: usize,
        /// Peers accepted at once that have not authenticated yet; further
        /// ones wait to be accepted.
        #[arg(long, value_name = "N", default_value_t = listen::MAX_UNAUTHENTICATED)]
        max_unauthenticated: usize,
        /// Seconds a peer has from connecting to a successful AUTH; then
        /// it is disconnected.
        #[arg(long, value_name = "SECS", default_value_t = listen::AUTH_TIMEOUT.as_secs())]
        auth_timeout: u64,
    },
    /// Serve git-annex's P2P protocol over HTTP (annex+http:// remotes),
    /// as `git annex p2phttp` does, from the repository and the remotes
    /// and clusters it proxies for. Runs until killed.
    P2phttp(Box<P2pHttpCli>),
    /// Manage the auth tokens peers use (annex/creds/p2pauth).
    P2pToken {
        #[command(subcommand)]
        action: TokenCmd,
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

#[derive(Args)]
#[group(required = true, multiple = false)]
struct ListenOn {
    /// Listen on this unix socket (tor's HiddenServicePort can point here).
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Listen on this loopback TCP address (port 0: any free port).
    #[arg(long, value_name = "IP:PORT")]
    listen: Option<SocketAddr>,
}

/// `git annex p2phttp`'s options, and a few of our own.
#[derive(Args)]
struct P2pHttpCli {
    /// Address to listen on (default: every address, IPv6 and IPv4).
    #[arg(long, value_name = "ADDRESS")]
    bind: Option<String>,
    /// Port to listen on (default 9417).
    #[arg(long, value_name = "N")]
    port: Option<u16>,
    /// Requests served at once (default 8); more wait in a bounded queue.
    #[arg(short = 'J', long, value_name = "N")]
    jobs: Option<usize>,
    /// Users from GIT_ANNEX_P2PHTTP_PASSWORD_<user> (and _PERMISSIONS_),
    /// over HTTPS only.
    #[arg(long)]
    authenv: bool,
    /// Users from the environment, over plain HTTP too.
    #[arg(long = "authenv-http")]
    authenv_http: bool,
    /// Anonymous users may read (and lock).
    #[arg(long = "unauth-readonly")]
    unauth_readonly: bool,
    /// Anonymous users may read and add content (and lock).
    #[arg(long = "unauth-appendonly")]
    unauth_appendonly: bool,
    /// Anonymous users may not lock content.
    #[arg(long = "unauth-nolocking")]
    unauth_nolocking: bool,
    /// Anonymous users may do everything.
    #[arg(long)]
    wideopen: bool,
    /// Content locks held at once (default 100); more get {"locked":false}.
    #[arg(long, value_name = "N")]
    lockedfiles: Option<usize>,
    /// Open connections at once (default 512); one more is answered 503.
    #[arg(long, value_name = "N")]
    max_connections: Option<usize>,
    /// Requests waiting for one of the --jobs (default 256); one more is
    /// answered 503.
    #[arg(long, value_name = "N")]
    queue: Option<usize>,
    /// Seconds a client has to send a request's headers (default 20).
    #[arg(long, value_name = "SECS")]
    header_timeout: Option<u64>,
    /// Seconds a body may make no progress before it is cut off (default 120).
    #[arg(long, value_name = "SECS")]
    idle_timeout: Option<u64>,
    /// Seconds requests in flight may go on after SIGTERM or SIGINT
    /// (default 30).
    #[arg(long, value_name = "SECS")]
    grace: Option<u64>,
    /// Serve HTTPS with this certificate (PEM); needs --privatekeyfile.
    #[arg(long, value_name = "FILE")]
    certfile: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, value_name = "FILE")]
    privatekeyfile: Option<PathBuf>,
    /// Intermediate certificates sent after --certfile (PEM; repeatable).
    #[arg(long, value_name = "FILE")]
    chainfile: Vec<PathBuf>,
    /// Serve every git-annex repository under this directory (repeatable),
    /// found by UUID or by the URL's path; ones added later are found too.
    #[arg(long, value_name = "DIR")]
    directory: Vec<PathBuf>,
    /// Ours: believe X-Annexproxy-User and X-Annexproxy-Mode
    /// (readwrite, appendonly, readonly, none) from loopback peers: a forge
    /// or reverse proxy on this host that authenticated the user.
    #[arg(long = "forge-headers")]
    forge_headers: bool,
    /// Listen on this unix socket instead of TCP (plain HTTP, for a proxy
    /// in front; with --forge-headers its peers are believed).
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Idle connections to proxied remotes and clusters kept per
    /// repository for later requests (default: --jobs; 0 keeps none).
    #[arg(long, value_name = "N")]
    proxyconnections: Option<usize>,
    /// Cluster nodes one request reaches at once (default: annex.jobs).
    #[arg(long, value_name = "N")]
    clusterjobs: Option<usize>,
    /// Ours: seconds a git request over HTTP may take in all (default
    /// 3600); it holds one of the --jobs meanwhile.
    #[arg(long, value_name = "SECS")]
    git_timeout: Option<u64>,
}

impl P2pHttpCli {
    fn resolve(&self) -> P2pHttpArgs {
        P2pHttpArgs {
            bind: self.bind.clone(),
            port: self.port,
            jobs: self.jobs,
            authenv: self.authenv,
            authenv_http: self.authenv_http,
            unauth_readonly: self.unauth_readonly,
            unauth_appendonly: self.unauth_appendonly,
            unauth_nolocking: self.unauth_nolocking,
            wideopen: self.wideopen,
            locked_files: self.lockedfiles,
            max_connections: self.max_connections,
            queue: self.queue,
            header_timeout: self.header_timeout,
            idle_timeout: self.idle_timeout,
            certfile: self.certfile.clone(),
            privatekeyfile: self.privatekeyfile.clone(),
            chainfile: self.chainfile.clone(),
            directory: self.directory.clone(),
            forge_headers: self.forge_headers,
            socket: self.socket.clone(),
            grace: self.grace,
            proxy_connections: self.proxyconnections,
            cluster_jobs: self.clusterjobs,
            git_timeout: self.git_timeout,
        }
    }
}

#[derive(Subcommand)]
enum TokenCmd {
    /// Generate and accept a token; prints ADDR:TOKEN (as
    /// `git annex p2p --gen-addresses`), or the token alone.
    Add {
        #[arg(long, value_name = "ADDR")]
        address: Option<String>,
    },
    /// Print the accepted tokens, with the address each is for.
    List,
    /// Stop accepting a token.
    Remove { token: String },
}

fn main() -> ExitCode {
    // The git-annex-shell front hands its calls on as `annexproxy
    // git-annex-shell ARGS…`: taken before clap, so the arguments stay
    // exactly as ssh gave them (and the subcommand out of --help).
    let mut args = std::env::args_os();
    match args.nth(1) {
        Some(a) if a == handoff::SERVER_SUBCOMMAND => return annex_shell::run::serve(args),
        // A session's unlinks, after it (`annex::store::discard`).
        Some(a) if a == annex::store::discard::HELPER_SUBCOMMAND => {
            return annex_shell::run::discard_helper();
        }
        _ => {}
    }
    let cli = Cli::parse();
    annex_shell::run::init_logging();
    let mut out = std::io::stdout().lock();
    // Not locked: p2phttp and serve-p2p write to stderr from other threads.
    let mut err = std::io::stderr();
    let result = match &cli.command {
        Cmd::Init { description } => {
            annex_shell::operator::init(&cli.dir, description.as_deref(), &mut out)
        }
        Cmd::Updateproxy => annex_shell::operator::updateproxy(&cli.dir, &mut out, &mut err),
        Cmd::PostReceive => {
            annex_shell::operator::post_receive(&cli.dir, std::io::stdin().lock(), &mut err)
        }
        Cmd::Initcluster { name, description } => {
            annex_shell::operator::initcluster(&cli.dir, name, description.as_deref(), &mut out)
        }
        Cmd::Updatecluster => annex_shell::operator::updatecluster(&cli.dir, &mut out, &mut err),
        Cmd::Initremote { name, params } => {
            annex_shell::operator::initremote(&cli.dir, name, params, &mut out)
        }
        Cmd::Enableremote { name, params } => {
            annex_shell::operator::enableremote(&cli.dir, name, params, &mut out)
        }
        Cmd::Verifyremote { name, safe } => {
            annex_shell::operator::verifyremote(&cli.dir, name, *safe, &mut out)
        }
        Cmd::Extendcluster { gateway, name } => {
            annex_shell::operator::extendcluster(&cli.dir, gateway, name, &mut out, &mut err)
        }
        Cmd::ServeP2p {
            on,
            address,
            serve_for,
            max_connections,
            max_unauthenticated,
            auth_timeout,
        } => {
            let limits = listen::Limits {
                max_connections: *max_connections,
                max_unauthenticated: *max_unauthenticated,
                auth_timeout: std::time::Duration::from_secs(*auth_timeout),
            };
            // clap has made sure one of them is given.
            let endpoint = on
                .socket
                .clone()
                .map(Endpoint::Unix)
                .or(on.listen.map(Endpoint::Tcp));
            match endpoint {
                Some(endpoint) => p2p::serve(
                    &cli.dir,
                    endpoint,
                    address.as_deref(),
                    serve_for.as_deref(),
                    limits,
                    &mut out,
                ),
                None => {
                    eprintln!("annexproxy: serve-p2p needs --socket PATH or --listen IP:PORT");
                    return ExitCode::from(2);
                }
            }
        }
        Cmd::P2pToken { action } => match action {
            TokenCmd::Add { address } => {
                p2p::token_add(&cli.dir, address.as_deref(), &mut out, &mut err)
            }
            TokenCmd::List => p2p::token_list(&cli.dir, &mut out),
            TokenCmd::Remove { token } => p2p::token_remove(&cli.dir, token),
        },
        Cmd::P2phttp(a) => annex_shell::operator::p2phttp::run(&cli.dir, &a.resolve(), &mut out)
            .map_err(Into::into),
        Cmd::Status { json } => annex_shell::operator::status(&cli.dir, *json, &mut out),
    };
    // Objects dropped after their reply are unlinked before we end.
    annex::store::discard::finish();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("annexproxy: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use annex_shell::special::crypto::{MacKind, Method};
    use clap::CommandFactory;

    /// `initremote --help` names every encryption= value, the MACs and
    /// exporttree= that initremote takes (it once named encryption=none
    /// alone, after the others were served).
    #[test]
    fn initremote_help_names_what_initremote_takes() {
        let cli = Cli::command();
        let help = cli
            .find_subcommand("initremote")
            .and_then(|c| c.get_about())
            .expect("initremote has help")
            .to_string();
        let words: Vec<&str> = help
            .split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|w| !w.is_empty())
            .collect();
        for method in ["none", "shared", "hybrid", "pubkey", "sharedpubkey"] {
            assert!(Method::parse(method).is_ok(), "{method}");
            assert!(words.contains(&method), "{method} not in: {help}");
        }
        for mac in ["HMACSHA1", "HMACSHA512"] {
            assert!(MacKind::parse(mac).is_ok(), "{mac}");
            assert!(words.contains(&mac), "{mac} not in: {help}");
        }
        for param in ["keyid=", "chunk=", "exporttree=yes", "annexobjects=yes"] {
            assert!(help.contains(param), "{param} not in: {help}");
        }
    }
}
