//! Serving a proxied remote: when a client asks (with `--uuid`) for a
//! repository this one proxies for, `p2pstdio` relays the session to that
//! node instead of serving the local repository.
//!
//! [`select`] decides whether we may proxy (git-annex's rules: `proxy.log`
//! under our own UUID lists the UUID, and a remote of that name and UUID
//! is configured `annex-proxy=true`); the session is the one session loop
//! over a [`Peer`] back-end.

pub mod select;

use annex::p2p::Connection;
use annex::repo::Repo;
use annex::transport::{ConnectOptions, NodeRemote};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::args::BuiltinCall;
use crate::backend::peer::Peer;
use crate::error::ShellError;
use crate::restrict::{Policy, Rules};
use crate::session::{ServeError, Session};

pub use select::{select, Selection};

#[cfg(test)]
#[path = "relay_tests.rs"]
mod relay_tests;

/// `p2pstdio` for a proxied node: relay the client on stdin/stdout to it.
pub fn run(
    repo: Repo,
    node: NodeRemote,
    call: &BuiltinCall,
    policy: &Policy,
) -> Result<i32, ShellError> {
    let my_uuid = repo.uuid().ok_or(ShellError::NotAnnex)?;
    // The client's UUID is not needed: the node is told ours.
    crate::p2pstdio::serve(call, |conn, _client| {
        // The session ends with the client's command: the node's lines
        // go into its one commit.
        relay_session(conn, &repo, my_uuid, node, Rules::of(policy), true)
    })
}

/// One client's session, on any connection, relayed to `node`. `owing`:
/// the session ends with its client's command (ssh), and the node's
/// location lines wait for its commit (`Peer::owing`); otherwise they are
/// journalled after each answer.
pub async fn relay_session<R, W>(
    conn: Connection<R, W>,
    repo: &Repo,
    my_uuid: String,
    node: NodeRemote,
    rules: Rules,
    owing: bool,
) -> Result<(), ServeError>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    let mut opts = ConnectOptions::new(our_shell()).with_repo(repo);
    // The node's complaints reach the client's terminal, as git-annex
    // lets its children's stderr through.
    opts.forward_stderr = true;
    // Under a restriction, git reaches the node only if its operator said so.
    let git_relay = rules.relays_git_to(repo, &node.name);
    let mut peer = Peer::new(node, opts, repo.branch(), my_uuid).relaying_git(git_relay);
    if owing {
        peer = peer.owing();
    }
    Session::new(conn, peer, rules).run().await
}

/// Our git-annex-shell, which serves local nodes unless a remote names
/// another `annex-shell`: this very program, or the one installed next to
/// it when this is `annexproxy` (serving P2P peers).
pub(crate) fn our_shell() -> std::path::PathBuf {
    let me = std::env::current_exe().unwrap_or_else(|_| "git-annex-shell".into());
    if me.file_name().is_some_and(|n| n == "git-annex-shell") {
        me
    } else {
        me.with_file_name("git-annex-shell")
    }
}
