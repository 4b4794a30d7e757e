//! `p2pstdio`: the P2P protocol on stdin/stdout.

use std::os::fd::AsFd;

use annex::p2p::Connection;
use annex::repo::Repo;
use annex::threadio::{ReadGate, ThreadReader, ThreadWriter};

use crate::args::BuiltinCall;
use crate::backend::local::Local;
use crate::backend::BackendError;
use crate::error::ShellError;
use crate::restrict::Policy;
use crate::session::{ServeError, Session};

pub fn run(repo: Repo, call: &BuiltinCall, policy: &Policy) -> Result<i32, ShellError> {
    let my_uuid = repo.uuid().ok_or(ShellError::NotAnnex)?;
    serve(call, |conn, client_uuid| {
        let store = repo.store();
        let local = Local::new(repo, store, my_uuid, client_uuid);
        Session::new(conn, local, policy.rules()).run()
    })
}

/// The connection every P2P session on stdin/stdout is served on.
pub(crate) type Stdio = Connection<ThreadReader, ThreadWriter>;

/// Serve one P2P session on stdin/stdout, whatever serves it (the local
/// repository, a proxied node, a special remote, a cluster): `session`
/// gets the connection and the client's UUID (the one parameter of
/// `p2pstdio`). The exit code: 0 when the session ended or the client hung
/// up, 1 when a node was lost (said on stderr already; once is enough).
pub(crate) fn serve<F, Fut>(call: &BuiltinCall, session: F) -> Result<i32, ShellError>
where
    F: FnOnce(Stdio, String) -> Fut,
    Fut: std::future::Future<Output = Result<(), ServeError>>,
{
    let [client_uuid] = call.params.as_slice() else {
        return Err(ShellError::Other("missing UUID parameter".into()));
    };
    let (runtime, conn) = runtime_and_stdio()?;
    let result = runtime.block_on(session(conn, client_uuid.clone()));
    // Child processes and blocked stdin reads must not keep us alive.
    runtime.shutdown_background();
    match result {
        Ok(()) => Ok(0),
        Err(e) if e.is_hangup() => Ok(0),
        Err(ServeError::Backend(BackendError::Lost(_))) => Ok(1),
        Err(e) => Err(ShellError::Other(format!("p2pstdio: {e}"))),
    }
}

/// What every P2P session on stdin/stdout runs on, served locally or
/// relayed: a small runtime, and the protocol connection over stdio.
fn runtime_and_stdio() -> Result<(tokio::runtime::Runtime, Stdio), ShellError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| ShellError::Other(e.to_string()))?;
    let (input, gate, output) = stdio().map_err(|e| ShellError::Other(format!("p2pstdio: {e}")))?;
    let mut conn = Connection::new(input, output);
    // Large PUT bodies a proxy relays go from stdin to the node's pipe by
    // splice, with the stdin thread parked meanwhile.
    if let Ok(fd) = std::io::stdin().as_fd().try_clone_to_owned() {
        // A PUT body then arrives in reads of up to 1 MiB rather than one
        // 64 KiB pipe at a time: fewer wake-ups of the stdin thread (refused
        // for a socket or without permission: no harm).
        let _ = nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_SETPIPE_SZ(1 << 20));
        conn = conn.with_splice_input(fd, gate);
    }
    // Large GET bodies go from the object file to stdout by sendfile: the
    // kernel moves them, once the writer thread has flushed.
    if let Ok(out) = std::io::stdout().as_fd().try_clone_to_owned() {
        // A pipe of 1 MiB rather than 64 KiB: a tenth of the wake-ups on
        // both ends (refused for a socket or without permission: no harm).
        let _ = nix::fcntl::fcntl(&out, nix::fcntl::FcntlArg::F_SETPIPE_SZ(1 << 20));
        conn = conn.with_sendfile(out);
    }
    Ok((runtime, conn))
}

/// stdin and stdout, each served by its own thread (see `annex::threadio`
/// for why not tokio's, nor non-blocking fds). Duplicates of fd 0 and 1,
/// so std's buffered handles are bypassed and nothing of the parent's
/// shared file descriptions is changed.
fn stdio() -> std::io::Result<(ThreadReader, ReadGate, ThreadWriter)> {
    let input = std::fs::File::from(std::io::stdin().as_fd().try_clone_to_owned()?);
    let output = std::fs::File::from(std::io::stdout().as_fd().try_clone_to_owned()?);
    let (reader, gate) = ThreadReader::gated(input)?;
    Ok((reader, gate, ThreadWriter::direct(output)?))
}
