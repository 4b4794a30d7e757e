//! From a parsed invocation to a served command: the checks git-annex-shell
//! makes before it runs anything, in git-annex's order, then the command.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;

use annex::repo::Repo;

use crate::args::{self, Builtin, BuiltinCall, Invocation};
use crate::proxy::{self, Selection};
use crate::restrict::Policy;
use crate::{builtins, cluster, p2pstdio, special};

// Where builtins (and older code) look for it.
use crate::error::ShellError;

/// The full server as git-annex-shell: `annexproxy git-annex-shell
/// ARGS…`, which the `git-annex-shell` front execs for every call it does
/// not answer itself. `argv` is what follows the subcommand.
pub fn serve(argv: impl Iterator<Item = std::ffi::OsString>) -> std::process::ExitCode {
    let argv: Vec<String> = argv.map(|a| a.to_string_lossy().into_owned()).collect();
    init_logging();
    // A session ends at its last answer; the unlinks of large objects it
    // dropped go on in a helper (unless this binary cannot be found again:
    // then on threads, before we end).
    if let Ok(exe) = std::env::current_exe() {
        annex::store::discard::use_helper(exe);
    }
    let result = run(&argv);
    annex::store::discard::finish();
    match result {
        Ok(code) => std::process::ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            eprintln!("git-annex-shell: {e}");
            std::process::ExitCode::from(1)
        }
    }
}

/// `annexproxy discard-helper`: unlinks what a session sends it, until
/// the session closes the pipe.
pub fn discard_helper() -> std::process::ExitCode {
    use std::os::fd::AsFd;
    init_logging();
    // Unbuffered: the helper polls the descriptor for what comes next.
    let stdin = match std::io::stdin().as_fd().try_clone_to_owned() {
        Ok(fd) => std::fs::File::from(fd),
        Err(_) => return std::process::ExitCode::FAILURE,
    };
    match annex::store::discard::serve_helper(stdin) {
        Ok(_) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::warn!("{}: {e}", annex::store::discard::HELPER_SUBCOMMAND);
            std::process::ExitCode::FAILURE
        }
    }
}

/// Logs to stderr, filtered by `ANNEXPROXY_LOG`, when that is set.
pub fn init_logging() {
    if std::env::var_os("ANNEXPROXY_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_env_filter(tracing_subscriber::EnvFilter::from_env("ANNEXPROXY_LOG"))
            .init();
    }
}

/// Run git-annex-shell with argv (without argv[0]); returns the exit code.
pub fn run(argv: &[String]) -> Result<i32, ShellError> {
    let invocation = args::parse(argv)?;
    let policy = Policy::from_env();
    let home = home_dir();
    match invocation {
        Invocation::GitShell { command, dir } => {
            policy.check_directory(dir.as_deref(), &home)?;
            policy.check_git_shell()?;
            // exec, so git's service owns our stdio and exit status.
            let err = std::process::Command::new("git-shell")
                .arg("-c")
                .args(&command)
                .exec();
            Err(ShellError::GitShell(err))
        }
        Invocation::Builtin(call) => run_builtin(call, &policy, &home),
    }
}

fn run_builtin(call: BuiltinCall, policy: &Policy, home: &str) -> Result<i32, ShellError> {
    policy.check_builtin(call.cmd)?;
    policy.check_directory(Some(&call.dir), home)?;
    let path: PathBuf = args::resolve_dir(&call.dir, home);
    let mut repo = Repo::open(&path).map_err(|_| ShellError::NoRepo {
        host: hostname(),
        dir: call.dir.clone(),
    })?;

    let proxy_to = match &call.expected_uuid {
        Some(expected) => check_uuid(&repo, expected, call.cmd)?,
        None => None,
    };
    if !matches!(call.cmd, Builtin::ConfigList | Builtin::GcryptSetup)
        && !repo.is_annex_initialized()
        && repo.config_get("core.gcrypt-id").is_none()
    {
        return Err(ShellError::NotAnnex);
    }

    match call.cmd {
        Builtin::ConfigList => builtins::configlist(&mut repo, &call, policy),
        Builtin::P2pStdio => match proxy_to {
            Some(Target::Node(node)) => proxy::run(repo, node, &call, policy),
            Some(Target::Special(remote)) => special::run(repo, remote, &call, policy),
            Some(Target::Cluster(uuid)) => cluster::run(repo, uuid, &call, policy),
            None => p2pstdio::run(repo, &call, policy),
        },
        Builtin::InAnnex => builtins::inannex(&repo, &call),
        Builtin::DropKey => builtins::dropkey(&repo, &call),
        Builtin::LockContent => builtins::lockcontent(&repo, &call),
        Builtin::Commit => builtins::commit(&repo),
        Builtin::NotifyChanges => builtins::notifychanges(&repo),
        Builtin::TransferInfo => builtins::transferinfo(&repo, &call),
        Builtin::SendKey | Builtin::RecvKey => Err(ShellError::Other(format!(
            "{} (rsync transfers) is not supported by this server; git-annex clients since 6.20180312 use p2pstdio",
            call.cmd.name()
        ))),
        Builtin::GcryptSetup => Err(ShellError::Other(
            "gcryptsetup is not supported by this server: encrypted gcrypt repositories need the real git-annex-shell".into(),
        )),
    }
}

/// Whom a proxied session is served for.
enum Target {
    Node(annex::transport::NodeRemote),
    Special(crate::special::SpecialRemote),
    Cluster(String),
}

/// The `--uuid` check: the repository must be the one the client expects,
/// or one we proxy for (then the node to relay to, or the cluster to
/// serve, is returned, and only commands that can be relayed may go on).
fn check_uuid(repo: &Repo, expected: &str, cmd: Builtin) -> Result<Option<Target>, ShellError> {
    let mine = match repo.uuid() {
        Some(u) if u == expected => return Ok(None),
        Some(u) => u,
        None => {
            return Err(ShellError::WrongUuid {
                expected: expected.into(),
                found: "uninitialized repository".into(),
            })
        }
    };
    let selection =
        proxy::select(repo, &mine, expected).map_err(|e| ShellError::Other(e.to_string()))?;
    let target = match selection {
        Selection::Node(node) => Target::Node(node),
        Selection::Cluster(uuid) => Target::Cluster(uuid),
        Selection::NotListed => {
            return Err(ShellError::WrongUuid {
                expected: expected.into(),
                found: format!("UUID {mine}"),
            })
        }
        Selection::NotConfigured(desc) => return Err(ShellError::NotConfiguredProxy(desc)),
        Selection::Special(remote) => Target::Special(remote),
        Selection::Unreachable(e) => return Err(ShellError::Other(e.to_string())),
        Selection::Unserved(e) => return Err(ShellError::Other(e.to_string())),
    };
    if !cmd.proxyable() {
        return Err(ShellError::CannotProxy(cmd.name()));
    }
    // notifychanges watches our own refs, as git-annex does when proxying.
    Ok((cmd == Builtin::P2pStdio).then_some(target))
}

pub fn home_dir() -> String {
    if let Ok(h) = std::env::var("HOME") {
        if !h.is_empty() {
            return h;
        }
    }
    nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|u| u.dir.to_string_lossy().into_owned())
        .unwrap_or_else(|| "/".into())
}

fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "unknown".into())
}
