//! The relay, driven as a client over an in-memory pipe, with the REAL
//! git-annex-shell as the node (ours is the node in the end-to-end tests).

use std::path::PathBuf;

use annex::branch::{LocationLog, LogStatus};
use annex::key::Key;
use annex::p2p::{Connection, Message};
use annex::repo::Repo;
use annex::transport::{ConnectOptions, Location, NodeRemote};
use tokio::io::duplex;

use crate::backend::peer::Peer;
use crate::restrict::{Rules, ServerMode, APPENDONLY_ERROR, READONLY_ERROR};
use crate::session::{ServeError, Session};
use crate::testutil::{git, hear, new_repo, real_shell, say, Client};

const K6: &str = "SHA256E-s6--5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03";

fn key() -> Key {
    Key::parse(K6).expect("test key")
}

fn get(offset: u64) -> Message {
    Message::Get {
        offset,
        file: None,
        key: key(),
    }
}

struct World {
    _t: tempfile::TempDir,
    proxy: PathBuf,
    node_dir: PathBuf,
    node: NodeRemote,
    my_uuid: String,
    opts: ConnectOptions,
}

fn world() -> World {
    let t = tempfile::tempdir().expect("tempdir");
    let shell = real_shell(t.path());
    let (proxy, my_uuid) = new_repo(t.path(), "proxy", "proxy");
    let (node_dir, node_uuid) = new_repo(t.path(), "node1", "node one");
    let node = NodeRemote {
        name: "node1".into(),
        uuid: node_uuid,
        location: Location::Local(node_dir.clone()),
        annex_shell: Some(shell.display().to_string()),
        ssh_options: vec![],
    };
    World {
        opts: ConnectOptions::new(shell),
        _t: t,
        proxy,
        node_dir,
        node,
        my_uuid,
    }
}

/// Start a relay for `w` in `mode`; the test is its client.
fn start(
    w: &World,
    rules: impl Into<Rules>,
) -> (Client, tokio::task::JoinHandle<Result<(), ServeError>>) {
    let (c_read, s_write) = duplex(1 << 16);
    let (s_read, c_write) = duplex(1 << 16);
    let branch = Repo::open(&w.proxy).expect("proxy").branch();
    let rules: Rules = rules.into();
    let peer = Peer::new(w.node.clone(), w.opts.clone(), branch, w.my_uuid.clone())
        .relaying_git(!rules.restricted);
    let session = Session::new(Connection::new(s_read, s_write), peer, rules);
    let task = tokio::spawn(session.run());
    (Connection::new(c_read, c_write), task)
}

/// A session started and past the greeting, at version 4.
async fn greeted(
    w: &World,
    rules: impl Into<Rules>,
) -> (Client, tokio::task::JoinHandle<Result<(), ServeError>>) {
    let (mut c, task) = start(w, rules);
    hear(&mut c).await;
    say(&mut c, Message::Version(4)).await;
    hear(&mut c).await;
    (c, task)
}

async fn hang_up(c: Client, task: tokio::task::JoinHandle<Result<(), ServeError>>) {
    drop(c);
    task.await.expect("relay task").expect("relay ends cleanly");
}

fn proxy_log(w: &World) -> LocationLog {
    let b = Repo::open(&w.proxy).expect("proxy").branch();
    let path = annex::branch::location_log_path_for(&key());
    LocationLog::parse(&b.read_committed(&path).expect("read").unwrap_or_default())
}

#[tokio::test]
async fn full_session_through_the_real_node_shell() {
    let w = world();
    let (mut c, task) = start(&w, ServerMode::ReadWrite);
    assert_eq!(
        hear(&mut c).await,
        Message::AuthSuccess(w.node.uuid.clone())
    );
    say(&mut c, Message::Version(4)).await;
    assert_eq!(hear(&mut c).await, Message::Version(4));
    say(&mut c, Message::Bypass(vec!["x".into()])).await;
    say(&mut c, Message::CheckPresent(key())).await;
    assert_eq!(hear(&mut c).await, Message::Failure);

    say(
        &mut c,
        Message::Put {
            file: Some("a b.txt".into()),
            key: key(),
        },
    )
    .await;
    assert_eq!(hear(&mut c).await, Message::PutFrom(0));
    c.send_data(6, &mut &b"hello\n"[..]).await.expect("data");
    say(&mut c, Message::Valid).await;
    assert_eq!(hear(&mut c).await, Message::Success);

    say(&mut c, Message::CheckPresent(key())).await;
    assert_eq!(hear(&mut c).await, Message::Success);
    say(&mut c, get(2)).await;
    assert_eq!(hear(&mut c).await, Message::Data(4));
    let mut body = Vec::new();
    c.recv_data(4, &mut body).await.expect("body");
    assert_eq!(body, b"llo\n");
    assert_eq!(hear(&mut c).await, Message::Valid);
    say(&mut c, Message::Success).await;

    say(&mut c, Message::LockContent(key())).await;
    assert_eq!(hear(&mut c).await, Message::Success);
    say(&mut c, Message::UnlockContent).await;
    say(&mut c, Message::GetTimestamp).await;
    let Message::Timestamp(ts) = hear(&mut c).await else {
        panic!("expected TIMESTAMP")
    };
    // Unknown verbs and out-of-place messages are answered, not fatal.
    say(&mut c, Message::Success).await;
    assert_eq!(
        hear(&mut c).await,
        Message::Error("unexpected command".into())
    );
    say(
        &mut c,
        Message::RemoveBefore {
            timestamp: ts + 600,
            key: key(),
        },
    )
    .await;
    assert_eq!(hear(&mut c).await, Message::Success);
    say(&mut c, Message::CheckPresent(key())).await;
    assert_eq!(hear(&mut c).await, Message::Failure);
    hang_up(c, task).await;

    // The proxy recorded both changes, and committed them at the end.
    let log = proxy_log(&w);
    let line = log.get(&w.node.uuid).expect("node line");
    assert_eq!(line.status, LogStatus::Missing);
    assert_eq!(log.lines().count(), 1, "only the node is recorded");
    // The node logged its own copy coming and going as well.
    let node_log = git(
        &w.node_dir,
        &[
            "show",
            &format!("git-annex:{}", annex::branch::location_log_path_for(&key())),
        ],
    );
    assert!(
        node_log.contains(&format!(" 0 {}", w.node.uuid)),
        "{node_log}"
    );
}

#[tokio::test]
async fn version_is_the_lower_of_client_and_node() {
    let w = world();
    let (mut c, task) = start(&w, ServerMode::ReadWrite);
    hear(&mut c).await;
    say(&mut c, Message::Version(1)).await;
    assert_eq!(hear(&mut c).await, Message::Version(1));
    say(
        &mut c,
        Message::Put {
            file: None,
            key: key(),
        },
    )
    .await;
    assert_eq!(hear(&mut c).await, Message::PutFrom(0));
    c.send_data(6, &mut &b"hello\n"[..]).await.expect("data");
    say(&mut c, Message::Valid).await;
    assert_eq!(hear(&mut c).await, Message::Success);
    hang_up(c, task).await;
    assert_eq!(proxy_log(&w).present(), vec![w.node.uuid.as_str()]);
}

#[tokio::test]
async fn version_zero_client_sends_no_version() {
    let w = world();
    let (mut c, task) = start(&w, ServerMode::ReadWrite);
    hear(&mut c).await;
    say(&mut c, Message::CheckPresent(key())).await;
    // No VERSION reply: the request itself is answered.
    assert_eq!(hear(&mut c).await, Message::Failure);
    say(&mut c, get(0)).await;
    assert_eq!(hear(&mut c).await, Message::Data(0));
    c.recv_data(0, &mut Vec::new()).await.expect("empty body");
    // Version 0 has no VALID/INVALID: the next thing is ours to say.
    say(&mut c, Message::Failure).await;
    say(&mut c, Message::CheckPresent(key())).await;
    assert_eq!(hear(&mut c).await, Message::Failure);
    hang_up(c, task).await;
}

#[tokio::test]
async fn a_gone_node_gets_errors_naming_it_and_nothing_is_recorded() {
    let w = world();
    std::fs::remove_dir_all(&w.node_dir).expect("remove node");
    let (mut c, task) = start(&w, ServerMode::ReadWrite);
    assert_eq!(
        hear(&mut c).await,
        Message::AuthSuccess(w.node.uuid.clone())
    );
    say(&mut c, Message::Version(4)).await;
    assert_eq!(hear(&mut c).await, Message::Version(4));
    let why = format!("node1: no repository at {}", w.node_dir.display());
    say(&mut c, Message::CheckPresent(key())).await;
    assert_eq!(hear(&mut c).await, Message::Error(why.clone()));
    say(
        &mut c,
        Message::Put {
            file: None,
            key: key(),
        },
    )
    .await;
    assert_eq!(hear(&mut c).await, Message::Error(why.clone()));
    say(&mut c, get(0)).await;
    assert_eq!(hear(&mut c).await, Message::Error(why));
    hang_up(c, task).await;
    assert_eq!(proxy_log(&w).lines().count(), 0);
}

#[tokio::test]
async fn a_node_that_dies_mid_session_is_named_and_the_session_goes_on() {
    let mut w = world();
    // Greets and agrees, then dies on the first request with a last word.
    let script = w.proxy.join("dying-shell");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho 'AUTH-SUCCESS {}'\nread v\necho 'VERSION 4'\nread req\necho 'disk on fire' >&2\nexit 1\n",
            w.node.uuid
        ),
    )
    .expect("script");
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    w.node.annex_shell = Some(script.display().to_string());
    let (mut c, task) = start(&w, ServerMode::ReadWrite);
    hear(&mut c).await;
    say(&mut c, Message::Version(4)).await;
    assert_eq!(hear(&mut c).await, Message::Version(4));
    say(
        &mut c,
        Message::Put {
            file: None,
            key: key(),
        },
    )
    .await;
    let Message::Error(why) = hear(&mut c).await else {
        panic!("expected ERROR")
    };
    assert!(why.starts_with("node1: connection lost"), "{why}");
    assert!(why.ends_with("disk on fire"), "{why}");
    say(&mut c, Message::CheckPresent(key())).await;
    assert_eq!(hear(&mut c).await, Message::Error(why));
    hang_up(c, task).await;
    assert_eq!(proxy_log(&w).lines().count(), 0);
}

/// Replace the node's shell with a script (after the greeting, VERSION
/// and the relay's BYPASS).
fn scripted_node(w: &mut World, after_version: &str) {
    let script = w.proxy.join("scripted-shell");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho 'AUTH-SUCCESS {}'\nread v\necho 'VERSION 4'\nread bypass\n{after_version}",
            w.node.uuid
        ),
    )
    .expect("script");
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    w.node.annex_shell = Some(script.display().to_string());
}

#[tokio::test]
async fn connect_tunnels_raw_bytes_both_ways_until_the_node_ends() {
    let mut w = world();
    let got = w.proxy.join("node-got");
    // The node reads CONNECT, then the client's DATA header and 4 bytes,
    // answers with its own DATA and CONNECTDONE, and exits.
    scripted_node(
        &mut w,
        &format!(
            "read c\necho \"$c\" > '{got}'\nread d\nhead -c 4 >> '{got}'\nprintf 'DATA 3\\nabcCONNECTDONE 0\\n'\n",
            got = got.display()
        ),
    );
    let (mut c, task) = greeted(&w, ServerMode::ReadWrite).await;
    say(&mut c, Message::Connect(annex::p2p::Service::UploadPack)).await;
    c.send_data(4, &mut &b"want"[..]).await.expect("data");
    assert_eq!(hear(&mut c).await, Message::Data(3));
    let mut body = Vec::new();
    c.recv_data(3, &mut body).await.expect("body");
    assert_eq!(body, b"abc");
    assert_eq!(hear(&mut c).await, Message::ConnectDone(0));
    // The node ended the session: so does the relay.
    assert_eq!(c.read_message().await.expect("read"), None);
    task.await.expect("task").expect("clean end");
    assert_eq!(
        std::fs::read_to_string(&got).expect("node input"),
        "CONNECT git-upload-pack\nwant"
    );
}

#[tokio::test]
async fn notifychange_waits_for_the_node() {
    let mut w = world();
    scripted_node(&mut w, "read n\nsleep 0.2\necho \"CHANGED $n\"\nread x\n");
    let (mut c, task) = greeted(&w, ServerMode::ReadWrite).await;
    say(&mut c, Message::NotifyChange).await;
    assert_eq!(
        hear(&mut c).await,
        Message::Changed(vec!["NOTIFYCHANGE".into()])
    );
    hang_up(c, task).await;
}

#[tokio::test]
async fn restricted_modes_refuse_before_the_node_is_asked() {
    let w = world();
    let (mut c, task) = greeted(&w, ServerMode::ReadOnly).await;
    say(
        &mut c,
        Message::Put {
            file: None,
            key: key(),
        },
    )
    .await;
    assert_eq!(hear(&mut c).await, Message::Error(READONLY_ERROR.into()));
    say(&mut c, Message::Remove(key())).await;
    assert_eq!(hear(&mut c).await, Message::Error(READONLY_ERROR.into()));
    say(&mut c, Message::CheckPresent(key())).await;
    assert_eq!(hear(&mut c).await, Message::Failure);
    hang_up(c, task).await;
    let (mut c, task) = greeted(&w, ServerMode::AppendOnly).await;
    say(&mut c, Message::Remove(key())).await;
    assert_eq!(hear(&mut c).await, Message::Error(APPENDONLY_ERROR.into()));
    hang_up(c, task).await;
}

#[tokio::test]
async fn a_request_that_already_passed_this_proxy_is_a_loop() {
    let mut w = world();
    let got = w.proxy.join("node-got");
    scripted_node(
        &mut w,
        &format!("echo \"$bypass\" > '{}'\nread x\n", got.display()),
    );
    let (mut c, task) = greeted(&w, ServerMode::ReadWrite).await;
    say(&mut c, Message::Bypass(vec![w.my_uuid.clone()])).await;
    let Message::Error(why) = hear(&mut c).await else {
        panic!("expected ERROR")
    };
    assert!(why.starts_with("proxy loop"), "{why}");
    hang_up(c, task).await;

    // Otherwise the node hears the client's set and ours.
    let (mut c, task) = greeted(&w, ServerMode::ReadWrite).await;
    say(&mut c, Message::Bypass(vec!["0000-client-side".into()])).await;
    say(&mut c, Message::CheckPresent(key())).await;
    // The script ends there, which the client hears about.
    assert!(matches!(hear(&mut c).await, Message::Error(_)));
    hang_up(c, task).await;
    let mut want = ["0000-client-side".to_string(), w.my_uuid.clone()];
    want.sort();
    assert_eq!(
        std::fs::read_to_string(&got).expect("node input").trim(),
        format!("BYPASS {}", want.join(" "))
    );
}

/// What the scripted node wrote to `path`, once it has (it writes on its
/// way out, after the relay let go of it).
fn node_heard(path: &std::path::Path) -> String {
    for _ in 0..100 {
        if let Ok(text) = std::fs::read_to_string(path) {
            if text.ends_with('\n') {
                return text.trim_end().to_owned();
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("the node wrote nothing to {}", path.display())
}

/// While a client waits for a change, it has nothing to say: a REMOVE
/// then (refused by READONLY in any session) must not reach the node,
/// which would take it as a request no rule checked. The client gets the
/// plain session's answer.
#[tokio::test]
async fn nothing_the_client_says_while_waiting_for_a_change_reaches_the_node() {
    let mut w = world();
    let got = w.proxy.join("node-got");
    scripted_node(
        &mut w,
        &format!("read n\nread x\necho \"$n|$x\" > '{}'\n", got.display()),
    );
    let (mut c, task) = greeted(&w, ServerMode::ReadOnly).await;
    say(&mut c, Message::NotifyChange).await;
    say(&mut c, Message::Remove(key())).await;
    assert_eq!(
        hear(&mut c).await,
        Message::Error(crate::session::WAITING_ERROR.into())
    );
    hang_up(c, task).await;
    assert_eq!(node_heard(&got), "NOTIFYCHANGE|");
}

/// The same while the node holds a lock for the client: only UNLOCKCONTENT
/// goes on, and what came instead gets the plain session's ERROR.
#[tokio::test]
async fn only_unlockcontent_reaches_a_node_holding_a_lock() {
    let mut w = world();
    let got = w.proxy.join("node-got");
    scripted_node(
        &mut w,
        &format!(
            "read l\necho SUCCESS\nread x\necho \"$x\" > '{}'\n[ \"$x\" = UNLOCKCONTENT ] || echo 'ERROR expected UNLOCKCONTENT'\nread y\n",
            got.display()
        ),
    );
    let (mut c, task) = greeted(&w, ServerMode::ReadOnly).await;
    say(&mut c, Message::LockContent(key())).await;
    assert_eq!(hear(&mut c).await, Message::Success);
    say(&mut c, Message::Remove(key())).await;
    assert_eq!(
        hear(&mut c).await,
        Message::Error(crate::session::LOCKED_ERROR.into())
    );
    hang_up(c, task).await;
    assert_eq!(node_heard(&got), "UNLOCKCONTENT");
}

/// The node's session keeps the version it agreed: a client offering
/// another later is told that one, not one the node does not speak.
#[tokio::test]
async fn a_later_version_offer_keeps_the_nodes_version() {
    let w = world();
    let (mut c, task) = start(&w, ServerMode::ReadWrite);
    hear(&mut c).await;
    say(&mut c, Message::Version(4)).await;
    assert_eq!(hear(&mut c).await, Message::Version(4));
    say(&mut c, Message::Version(1)).await;
    assert_eq!(hear(&mut c).await, Message::Version(4));
    hang_up(c, task).await;
}
