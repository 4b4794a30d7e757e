//! git-remote-annexproxy: git's smart protocol to a repository served by
//! annexproxy's git-annex-shell, tunnelled in a P2P `CONNECT`.
//!
//! git runs us as `git-remote-annexproxy <remote> <url>` for
//! `annexproxy::<url>`; see `helper` for the command loop, `url` for the
//! address forms, `resolve` for `#REMOTE` and `tunnel` for the session.
//!
//! Progress is left to git: its own counters ("Receiving objects",
//! "Writing objects") already show the bytes of the pack and their rate,
//! and a second line of ours on the same terminal would be drawn over
//! them.
//!
//! Run by a person as `git-remote-annexproxy --list <url> [--add PREFIX]`,
//! it lists the proxied remotes and clusters a server offers (and adds
//! them as git remotes); see `discover`.

mod discover;
mod resolve;
mod tunnel;

// Re-exported at the crate root so `tunnel` reaches them as `crate::…`.
use git_remote_annexproxy::{helper, url};

use std::path::PathBuf;
use std::process::ExitCode;

use annex::threadio::{ThreadReader, ThreadWriter};
use anyhow::{bail, Context};

use crate::helper::Outcome;
use crate::resolve::ResolveError;
use crate::tunnel::TunnelError;

/// Why `connect` failed: the `#REMOTE` was not found, or the session.
#[derive(Debug, thiserror::Error)]
enum ConnectError {
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    #[error(transparent)]
    Tunnel(#[from] TunnelError),
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("git-remote-annexproxy: {e:#}");
            // what git itself exits with on a fatal error
            ExitCode::from(128)
        }
    }
}

fn run() -> anyhow::Result<u8> {
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    if args.first().is_some_and(|a| a == "--list") {
        return discover::run(&args[1..]);
    }
    // The remote name is not needed: everything is in the URL.
    let [_remote, url] = args.as_slice() else {
        bail!(
            "usage: git-remote-annexproxy <remote> <url> (run by git for annexproxy::<url>)\n   \
             or: git-remote-annexproxy --list <url> [--add PREFIX]"
        );
    };
    let url::Url { target, remote } =
        url::parse_url(url).with_context(|| format!("bad URL {url:?}"))?;
    let git_dir = std::env::var_os("GIT_DIR").map(PathBuf::from);
    let client_uuid = tunnel::client_uuid(git_dir.as_deref());

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    // The command loop and the tunnel share std's stdin buffer (tokio's
    // stdin reads through it), so nothing git sends after `connect` is lost.
    let outcome = {
        let mut input = std::io::stdin().lock();
        let mut output = std::io::stdout();
        helper::run(
            &mut input,
            &mut output,
            |_service, options| -> Result<_, ConnectError> {
                let node = match &remote {
                    Some(r) => Some(resolve::resolve(&target, options.family, r)?),
                    None => None,
                };
                let open = tunnel::open(
                    &target,
                    node.as_deref(),
                    options.family,
                    &client_uuid,
                    git_dir.as_deref(),
                );
                Ok(runtime.block_on(open)?)
            },
        )
    };
    let result = match outcome {
        Ok(Outcome::Done) => Ok(0),
        Ok(Outcome::Connected {
            service,
            options,
            tunnel,
        }) => {
            if options.verbosity >= 2 {
                eprintln!(
                    "git-remote-annexproxy: {} on {url} (repository {})",
                    service.as_str(),
                    tunnel.server_uuid()
                );
            }
            let (git_in, git_out) = git_pipes().context("setting up stdin/stdout")?;
            runtime
                .block_on(tunnel.relay(service, git_in, git_out))
                .map(exit_byte)
                .map_err(anyhow::Error::from)
        }
        Err(e) => Err(e.into()),
    };
    // A read of git's stdin may still be blocked in a runtime thread; it
    // must not keep us from exiting.
    runtime.shutdown_background();
    result
}

/// git's pipes for the relay, each served by a thread of its own (see
/// `annex::threadio`). stdin is read through std's `Stdin`, whose buffer
/// may hold what git sent right after `connect`; stdout is a duplicate of
/// fd 1, bypassing std's line buffering.
fn git_pipes() -> std::io::Result<(ThreadReader, ThreadWriter)> {
    use std::os::fd::AsFd;
    let output = std::fs::File::from(std::io::stdout().as_fd().try_clone_to_owned()?);
    Ok((
        ThreadReader::new(std::io::stdin())?,
        ThreadWriter::new(output)?,
    ))
}

/// The service's exit status as ours; statuses that are not one byte
/// (a signal, reported as -1) become a plain failure.
fn exit_byte(code: i32) -> u8 {
    u8::try_from(code).unwrap_or(1)
}
