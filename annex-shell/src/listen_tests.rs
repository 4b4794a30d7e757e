//! The AUTH phase of a listener connection, with raw protocol bytes.

use std::path::Path;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use super::*;

const TOKEN: &str = "a1b2c3";

/// A fresh annex repository that accepts [`TOKEN`] (on tor) and `other`
/// on `p2p-annex::foo:bar`.
fn repo_accepting(dir: &Path) -> String {
    let path = dir.to_str().expect("test paths are UTF-8");
    testkit::git(dir.parent().expect("a parent"), &["init", "-q", path]);
    let mut repo = Repo::open(dir).expect("open");
    let uuid = repo.init(None).expect("init");
    let creds = Creds::new(&repo.annex_dir());
    let tok = |s| AuthToken::parse(s).expect("token");
    creds.add_accepted(&tok(TOKEN), None).expect("add");
    let foo = P2pAddress::parse("p2p-annex::foo:bar").expect("addr");
    creds.add_accepted(&tok("other"), Some(&foo)).expect("add");
    uuid
}

/// Sends `lines` one at a time, reading one reply line after each, and
/// returns the replies; the listener's task result comes last.
async fn transcript(
    dir: &Path,
    address: Option<P2pAddress>,
    lines: &[&str],
) -> (Vec<String>, Result<(), ServeError>) {
    let (client, server) = tokio::io::duplex(64 * 1024);
    let (sr, sw) = tokio::io::split(server);
    let dir = dir.to_owned();
    let task = tokio::spawn(async move {
        serve_peer(&dir, Connection::new(sr, sw), address.as_ref(), None).await
    });
    let (cr, mut cw) = tokio::io::split(client);
    let mut cr = BufReader::new(cr);
    let mut replies = Vec::new();
    for l in lines {
        cw.write_all(format!("{l}\n").as_bytes())
            .await
            .expect("send");
        let mut reply = String::new();
        cr.read_line(&mut reply).await.expect("reply");
        replies.push(reply.trim_end().to_owned());
    }
    drop(cw);
    drop(cr);
    (replies, task.await.expect("join"))
}

#[tokio::test]
async fn wrong_tokens_fail_and_may_try_again_then_the_session_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let uuid = repo_accepting(dir.path());
    let (replies, result) = transcript(
        dir.path(),
        None,
        &[
            "VERSION 1",
            "AUTH client-uuid wrong",
            "AUTH client-uuid other",
            "NOT A MESSAGE",
            &format!("AUTH client-uuid {}", TOKEN.to_uppercase()),
            "VERSION 2",
        ],
    )
    .await;
    assert_eq!(
        replies,
        vec![
            "ERROR unexpected command".to_owned(),
            "AUTH-FAILURE".into(),
            // Stored for another network only.
            "AUTH-FAILURE".into(),
            "ERROR unknown command".into(),
            format!("AUTH-SUCCESS {uuid}"),
            "VERSION 2".into(),
        ]
    );
    assert!(
        result.is_ok() || result.as_ref().is_err_and(ServeError::is_hangup),
        "{result:?}"
    );
}

#[tokio::test]
async fn a_listener_for_an_address_takes_only_its_tokens() {
    let dir = tempfile::tempdir().expect("tempdir");
    let uuid = repo_accepting(dir.path());
    let foo = P2pAddress::parse("p2p-annex::foo:bar").expect("addr");
    let (replies, _) = transcript(
        dir.path(),
        Some(foo),
        &[&format!("AUTH u {TOKEN}"), "AUTH  other"],
    )
    .await;
    assert_eq!(
        replies,
        vec!["AUTH-FAILURE".to_owned(), format!("AUTH-SUCCESS {uuid}")]
    );
}

#[tokio::test]
async fn a_token_removed_is_refused_from_the_next_try() {
    let dir = tempfile::tempdir().expect("tempdir");
    let uuid = repo_accepting(dir.path());
    let creds = Creds::new(&dir.path().join(".git/annex"));
    assert!(creds
        .remove_accepted(&AuthToken::parse(TOKEN).expect("token"))
        .expect("remove"));
    let (replies, _) = transcript(dir.path(), None, &[&format!("AUTH u {TOKEN}")]).await;
    assert_eq!(replies, vec!["AUTH-FAILURE".to_owned()]);
    assert!(!uuid.is_empty());
}

#[test]
fn tcp_listeners_are_loopback_only() {
    let endpoint = Endpoint::Tcp("0.0.0.0:0".parse().expect("addr"));
    assert!(matches!(
        Listener::bind(&endpoint),
        Err(ListenError::NotLoopback { .. })
    ));
}

/// Whatever the umask, tor (another user) can connect to the socket.
#[test]
fn a_socket_is_open_to_every_user() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("s");
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    let bound = Listener::bind(&Endpoint::Unix(path.clone()));
    nix::sys::stat::umask(old);
    bound.expect("bind");
    let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
    assert_eq!(mode & 0o066, 0o066, "socket mode {mode:o}");
}

#[test]
fn a_live_socket_is_not_taken_over_a_dead_one_is() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("s");
    let live = std::os::unix::net::UnixListener::bind(&path).expect("bind");
    let endpoint = Endpoint::Unix(path.clone());
    assert!(matches!(
        Listener::bind(&endpoint),
        Err(ListenError::SocketInUse { .. })
    ));
    drop(live);
    // A child forked meanwhile by another test may hold the listening
    // descriptor until it execs; give it a moment.
    let mut last = None;
    for _ in 0..50 {
        match Listener::bind(&endpoint) {
            Ok(_) => return,
            Err(e) => last = Some(e),
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!("stale socket not replaced: {last:?}");
}

#[test]
fn connections_beyond_the_limit_wait_for_a_free_slot() {
    let slots = Slots::new(2);
    let first = slots.acquire();
    let _second = slots.acquire();
    let (tx, rx) = std::sync::mpsc::channel();
    let waiting = Arc::clone(&slots);
    let third = std::thread::spawn(move || {
        let _slot = waiting.acquire();
        tx.send(()).expect("test still listening");
    });
    let short = std::time::Duration::from_millis(100);
    assert!(
        rx.recv_timeout(short).is_err(),
        "a third connection got in while two ran"
    );
    drop(first);
    assert!(
        rx.recv_timeout(std::time::Duration::from_secs(10)).is_ok(),
        "freed slot not taken"
    );
    third.join().expect("join");
}
