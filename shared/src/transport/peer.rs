//! Nodes at P2P addresses (`tor-annex::`, `p2p-annex::`), reached the way
//! git-annex reaches a P2P remote (`Remote/P2P.hs`): connect, send
//! `AUTH <our uuid> <token>` with the token stored for that address, and
//! take the `AUTH-SUCCESS` UUID for the repository's.
//!
//! A P2P listener serves only its own repository, so there is nothing
//! like git-annex-shell's `--uuid` to pass: a node is relayed to as
//! itself, and its UUID is checked against the remote's `annex-uuid`.

use std::process::Stdio;

use tokio::io::AsyncReadExt;

use super::auth::{self, AuthToken, Creds};
use super::p2paddr::{BoxRead, P2pAddress, PeerError, PeerStream};
use super::socks;
use super::{ConnectOptions, Handshake, NodeConnection, NodeRemote, StderrTail, TransportError};
use crate::p2p::Connection;

/// Connect to the peer behind `addr` with the token we have for it; the
/// session is not yet authenticated.
pub(super) async fn open(
    node: &NodeRemote,
    addr: &P2pAddress,
    opts: &ConnectOptions,
) -> Result<(NodeConnection, AuthToken), TransportError> {
    let peer_err = |source| TransportError::Peer {
        name: node.name.clone(),
        source,
    };
    let token = token_for(node, addr, opts)?;
    let proxy = match addr {
        P2pAddress::Tor { .. } => socks::tor_socks_proxy(opts.tor_socks.as_deref())
            .map_err(|e| peer_err(PeerError::Socks(e)))?,
        // Not used for other networks; an unset or broken tor setting
        // must not stand in their way.
        P2pAddress::Net { .. } => socks::DEFAULT_TOR_SOCKS,
    };
    // The network program's stderr is kept like a shell's, for errors.
    let PeerStream {
        reader,
        writer,
        mut child,
    } = addr
        .connect_with(proxy, Stdio::piped())
        .await
        .map_err(peer_err)?;
    let stderr = match child.as_mut() {
        Some(c) => StderrTail::start(c, opts.forward_stderr),
        None => StderrTail::none(),
    };
    let nc = NodeConnection {
        conn: Connection::new(reader, writer),
        version: 0,
        name: node.name.clone(),
        child,
        stderr,
        pipe_out: None,
        pipe_in: None,
    };
    Ok((nc, token))
}

/// `AUTH`, answered by `AUTH-SUCCESS` with the peer's UUID.
pub(super) async fn authenticate(
    nc: &mut NodeConnection,
    addr: &P2pAddress,
    my_uuid: &str,
    token: &AuthToken,
) -> Result<String, Handshake> {
    match super::p2paddr::authenticate(&mut nc.conn, addr, my_uuid, token).await {
        Ok(uuid) => Ok(uuid),
        // The peer's program may have said why on its stderr.
        Err(PeerError::Closed { .. }) => Err(Handshake::Eof),
        Err(source) => Err(Handshake::Failed(TransportError::Peer {
            name: nc.name.clone(),
            source,
        })),
    }
}

/// The token git-annex would send to `addr` from the connecting
/// repository: `GIT_ANNEX_P2P_AUTHTOKEN` if set, else the first line of
/// that repository's `annex/creds/` file for the address.
fn token_for(
    node: &NodeRemote,
    addr: &P2pAddress,
    opts: &ConnectOptions,
) -> Result<AuthToken, TransportError> {
    let found = match &opts.git_dir {
        Some(dir) => Creds::new(&dir.join("annex")).peer_token(addr),
        None => auth::env_token(),
    };
    let found = found.map_err(|source| TransportError::Creds {
        name: node.name.clone(),
        source,
    })?;
    found.ok_or_else(|| TransportError::Peer {
        name: node.name.clone(),
        source: PeerError::NoToken {
            address: addr.to_string(),
            file: addr.creds_file_name(),
        },
    })
}

/// The UUID the peer answers our `AUTH` with. Callers are synchronous
/// (the operator's commands), and may or may not be inside a runtime, so
/// the exchange runs on a thread with a runtime of its own.
pub(super) fn discover_uuid(
    node: &NodeRemote,
    addr: &P2pAddress,
    opts: &ConnectOptions,
) -> Result<String, TransportError> {
    let my_uuid = opts.local_uuid.clone().unwrap_or_default();
    let run = || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| TransportError::Spawn {
                name: node.name.clone(),
                program: "an async runtime".into(),
                source,
            })?;
        runtime.block_on(async {
            let (mut nc, token) = open(node, addr, opts).await?;
            match authenticate(&mut nc, addr, &my_uuid, &token).await {
                Ok(uuid) => {
                    nc.close().await;
                    Ok(uuid)
                }
                Err(e) => {
                    let name = nc.name.clone();
                    let (_, stderr) = nc.close_with_stderr().await;
                    Err(match e {
                        Handshake::Eof => TransportError::Closed { name, stderr },
                        Handshake::Failed(err) => err,
                    })
                }
            }
        })
    };
    std::thread::scope(|s| {
        s.spawn(run)
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// Read what a socket node still sends until it closes its end, which it
/// does once its session has ended and been committed.
pub(super) async fn drain(from: &mut BoxRead) -> Option<i32> {
    let mut chunk = vec![0u8; 4096];
    let until_eof = async {
        loop {
            match from.read(&mut chunk).await {
                Ok(0) => return Some(0),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    };
    tokio::time::timeout(super::CLOSE_GRACE, until_eof)
        .await
        .ok()
        .flatten()
}
