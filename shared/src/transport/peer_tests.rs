//! Nodes at P2P addresses against a scripted tor peer behind a one-shot
//! SOCKS5 stand-in: the AUTH we send, the UUID check, the handshake, and
//! closing only once the peer has ended its session.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use super::*;
use crate::transport::p2paddr::{P2pAddress, PeerError};

const NODE: &str = "e0bc0cf7-0000-4000-8000-000000000002";
const ME: &str = "8539dd90-0000-4000-8000-000000000491";
const ONION: &str = "abcdefg.onion";
const TOKEN: &str = "0123456789abcdef";

/// Tests that read tokens and the tor proxy from files and settings mean
/// nothing when the environment overrides both.
fn env_overrides() -> bool {
    std::env::var_os(auth::TOKEN_ENV).is_some() || std::env::var_os(socks::SOCKS_ENV).is_some()
}

struct Peer {
    proxy: SocketAddr,
    /// The lines the peer received, once it saw our end close.
    lines: tokio::task::JoinHandle<Vec<String>>,
    /// Set just before the peer closes its end, a moment after ours closed
    /// (as a node commits its journal before it goes).
    finished: Arc<AtomicBool>,
}

/// A SOCKS5 proxy that takes its one connection to a P2P peer which
/// answers the lines it reads with `replies`, in turn.
async fn tor_peer(replies: &'static [&'static str]) -> Peer {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let proxy = listener.local_addr().expect("addr");
    let finished = Arc::new(AtomicBool::new(false));
    let done = Arc::clone(&finished);
    let lines = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.expect("accept");
        let mut greeting = [0u8; 2];
        s.read_exact(&mut greeting).await.expect("greeting");
        let mut methods = vec![0u8; usize::from(greeting[1])];
        s.read_exact(&mut methods).await.expect("methods");
        s.write_all(&[5, 0]).await.expect("choose");
        let mut head = [0u8; 5];
        s.read_exact(&mut head).await.expect("request");
        let mut rest = vec![0u8; usize::from(head[4]) + 2];
        s.read_exact(&mut rest).await.expect("name and port");
        s.write_all(&[5, 0, 0, 1, 0, 0, 0, 0, 0, 0])
            .await
            .expect("reply");
        let (r, mut w) = s.into_split();
        let mut r = BufReader::new(r);
        let mut seen = Vec::new();
        let mut replies = replies.iter();
        loop {
            let mut line = String::new();
            if r.read_line(&mut line).await.expect("read") == 0 {
                break;
            }
            seen.push(line.trim_end().to_owned());
            match replies.next() {
                Some(reply) => w
                    .write_all(format!("{reply}\n").as_bytes())
                    .await
                    .expect("write"),
                None => break,
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        done.store(true, Ordering::SeqCst);
        seen
    });
    Peer {
        proxy,
        lines,
        finished,
    }
}

fn tor_node(uuid: &str) -> NodeRemote {
    NodeRemote {
        name: "tornode".into(),
        uuid: uuid.into(),
        location: Location::P2p(P2pAddress::Tor {
            onion: ONION.into(),
            port: 5555,
        }),
        annex_shell: None,
        ssh_options: vec![],
    }
}

/// Options of a repository at `git_dir` holding `TOKEN` for the onion.
fn opts_with_creds(git_dir: &Path, proxy: SocketAddr) -> ConnectOptions {
    let creds = git_dir.join("annex/creds");
    std::fs::create_dir_all(&creds).expect("mkdir");
    std::fs::write(creds.join("abcdefg%2Eonion"), format!("{TOKEN}\n")).expect("creds");
    let mut o = ConnectOptions::new("/nonexistent/git-annex-shell".into());
    o.git_dir = Some(git_dir.to_owned());
    o.tor_socks = Some(proxy.to_string());
    o
}

#[test]
fn remote_urls_at_p2p_addresses_are_nodes() {
    let mut remote = crate::repo::RemoteConfig {
        name: "n1".into(),
        settings: Default::default(),
    };
    remote
        .settings
        .insert("url".into(), "p2p-annex::unixsock:/run/n1".into());
    remote.settings.insert("annex-uuid".into(), NODE.into());
    let node = NodeRemote::from_config(&remote, Path::new("/")).expect("supported");
    assert_eq!(
        node.location,
        Location::P2p(P2pAddress::Net {
            net: "unixsock".into(),
            address: "/run/n1".into()
        })
    );
    remote
        .settings
        .insert("url".into(), "tor-annex::x.onion".into());
    let err = NodeRemote::from_config(&remote, Path::new("/")).expect_err("no port");
    assert!(matches!(err, TransportError::Unsupported { .. }), "{err}");
}

#[tokio::test]
async fn tor_node_authenticates_with_the_stored_token_and_negotiates() {
    if env_overrides() {
        return;
    }
    let peer = tor_peer(&[
        "AUTH-SUCCESS e0bc0cf7-0000-4000-8000-000000000002",
        "VERSION 1",
        "ERROR echo",
    ])
    .await;
    let t = tempfile::tempdir().expect("tempdir");
    let mut nc = connect(
        &tor_node(NODE),
        ME,
        2,
        &opts_with_creds(t.path(), peer.proxy),
    )
    .await
    .expect("connect");
    assert_eq!(nc.version, 1);
    let reply = nc.exchange(&Message::GetTimestamp).await.expect("exchange");
    assert_eq!(reply, Message::Error("echo".into()));
    assert_eq!(nc.stderr_tail(), "", "a socket has no stderr");
    // Closing waits for the peer to end its session.
    assert_eq!(nc.close().await, Some(0));
    assert!(
        peer.finished.load(Ordering::SeqCst),
        "closed before the peer finished"
    );
    assert_eq!(
        peer.lines.await.expect("join"),
        vec![
            format!("AUTH {ME} {TOKEN}"),
            "VERSION 2".into(),
            "GETTIMESTAMP".into()
        ]
    );
}

#[tokio::test]
async fn tor_node_must_be_the_remote_uuid() {
    if env_overrides() {
        return;
    }
    let peer = tor_peer(&["AUTH-SUCCESS 00000000-0000-4000-8000-0000000000ff"]).await;
    let t = tempfile::tempdir().expect("tempdir");
    let err = connect(
        &tor_node(NODE),
        ME,
        2,
        &opts_with_creds(t.path(), peer.proxy),
    )
    .await
    .err()
    .expect("wrong node");
    assert!(
        matches!(&err, TransportError::WrongUuid { found, .. } if found == "00000000-0000-4000-8000-0000000000ff"),
        "{err}"
    );
    // Nothing past AUTH was sent to the wrong repository.
    assert_eq!(peer.lines.await.expect("join").len(), 1);
}

#[tokio::test]
async fn refused_token_and_silent_peer_are_reported() {
    if env_overrides() {
        return;
    }
    let peer = tor_peer(&["AUTH-FAILURE"]).await;
    let t = tempfile::tempdir().expect("tempdir");
    let opts = opts_with_creds(t.path(), peer.proxy);
    let err = connect(&tor_node(NODE), ME, 2, &opts)
        .await
        .err()
        .expect("refused");
    assert!(
        matches!(
            err,
            TransportError::Peer {
                source: PeerError::AuthFailure { .. },
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string()
            .starts_with("tornode: tor-annex::abcdefg.onion:5555 refused"),
        "{err}"
    );

    let peer = tor_peer(&[]).await;
    let opts = opts_with_creds(t.path(), peer.proxy);
    let err = connect(&tor_node(NODE), ME, 2, &opts)
        .await
        .err()
        .expect("closed");
    assert!(matches!(err, TransportError::Closed { .. }), "{err}");
}

#[tokio::test]
async fn no_token_means_no_connection() {
    if env_overrides() {
        return;
    }
    // Nothing listens here: had we connected, the error would say so.
    let gone = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let proxy = gone.local_addr().expect("addr");
    drop(gone);
    let t = tempfile::tempdir().expect("tempdir");
    let mut opts = ConnectOptions::new("/nonexistent".into());
    opts.git_dir = Some(t.path().to_owned());
    opts.tor_socks = Some(proxy.to_string());
    let err = connect(&tor_node(NODE), ME, 2, &opts)
        .await
        .err()
        .expect("no token");
    assert!(
        matches!(
            err,
            TransportError::Peer {
                source: PeerError::NoToken { .. },
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("abcdefg%2Eonion"),
        "names the creds file: {err}"
    );
}

#[tokio::test]
async fn a_missing_network_program_is_named() {
    if env_overrides() {
        return;
    }
    let t = tempfile::tempdir().expect("tempdir");
    let addr = P2pAddress::Net {
        net: "annexproxy-test-absent".into(),
        address: "x".into(),
    };
    let creds = auth::Creds::new(&t.path().join("annex"));
    creds
        .store_peer_token(&addr, &auth::AuthToken::parse(TOKEN).expect("token"))
        .expect("store");
    let mut opts = ConnectOptions::new("/nonexistent".into());
    opts.git_dir = Some(t.path().to_owned());
    let node = NodeRemote {
        location: Location::P2p(addr),
        ..tor_node(NODE)
    };
    let err = connect(&node, ME, 2, &opts)
        .await
        .err()
        .expect("no program");
    assert!(
        matches!(
            err,
            TransportError::Peer {
                source: PeerError::Spawn { .. },
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("git-annex-p2p-annexproxy-test-absent"),
        "{err}"
    );
}

#[test]
fn discovery_takes_the_uuid_auth_answers_with() {
    if env_overrides() {
        return;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let peer = runtime.block_on(tor_peer(&[
        "AUTH-SUCCESS e0bc0cf7-0000-4000-8000-000000000002",
    ]));
    // The peer runs on a thread of its own: discovery blocks this one.
    let serving = std::thread::spawn(move || runtime.block_on(peer.lines));
    let t = tempfile::tempdir().expect("tempdir");
    let mut opts = opts_with_creds(t.path(), peer.proxy);
    opts.local_uuid = Some(ME.into());
    // A cached UUID that is stale does not stand in the way of learning.
    let found =
        discover_uuid(&tor_node("00000000-0000-4000-8000-0000000000ff"), &opts).expect("discover");
    assert_eq!(found, Some(NODE.to_owned()));
    let lines = serving.join().expect("peer thread").expect("join");
    assert_eq!(lines, vec![format!("AUTH {ME} {TOKEN}")]);
}
