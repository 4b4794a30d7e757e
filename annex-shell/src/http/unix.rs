//! `--socket PATH`: the server on a unix socket instead of TCP, as
//! git-annex's `p2phttp --socket`, for a reverse proxy or forge on the
//! same host. Who may connect is decided by the socket's file
//! permissions (put it in a directory only the proxy can reach), so with
//! `--forge-headers` its peers' user and mode headers are believed.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UnixListener;
use tokio::sync::Semaphore;

use super::{connection, forge, HttpError, State, BUSY};

pub(super) async fn serve(
    path: &Path,
    state: Arc<State>,
    connections: Arc<Semaphore>,
    ready: impl FnOnce(String),
) -> Result<(), HttpError> {
    if state.tls.is_some() {
        return Err(HttpError::SocketTls);
    }
    let bind_error = |source| HttpError::Socket {
        path: path.to_owned(),
        source,
    };
    remove_stale(path).map_err(bind_error)?;
    let listener = UnixListener::bind(path).map_err(bind_error)?;
    tracing::info!(socket = %path.display(), "p2phttp listening");
    ready(path.display().to_string());
    let peer = forge::Peer {
        secure: false,
        forge: state.forge_headers,
    };
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::warn!("p2phttp accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        match Arc::clone(&connections).try_acquire_owned() {
            Ok(slot) => {
                tokio::spawn(connection(stream, peer, Arc::clone(&state), slot, None));
            }
            Err(_) => {
                let _ = stream.try_write(BUSY);
                tracing::info!("p2phttp: connection refused, at the connection cap");
            }
        }
    }
}

/// A socket left by a server that is gone is replaced; anything else at
/// the path is left alone (and binding fails).
fn remove_stale(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::AddrInUse,
                    "a server is listening there",
                ));
            }
            std::fs::remove_file(path)
        }
        _ => Ok(()),
    }
}
