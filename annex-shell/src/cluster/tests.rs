//! The gateway driven as a client over an in-memory pipe, with three
//! nodes served by the REAL git-annex-shell (our shell serves the nodes
//! in the end-to-end tests).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use annex::branch::LocationLog;
use annex::key::{HashKind, Key};
use annex::p2p::{Connection, Message};
use annex::repo::Repo;
use annex::store::ObjectStore;
use annex::transport::{ConnectOptions, Location, NodeRemote};
use tokio::io::duplex;

use super::gateway::{Gateway, Placement, Setup};
use super::pool::{Pool, Reach};
use super::EveryNode;
use crate::session::{ServeError, Session};
use crate::testutil::{hear, new_repo, real_shell, say, Client};

const CLUSTER: &str = "ac0732ba-38cb-808b-9958-79c27a72784e";

struct World {
    _t: tempfile::TempDir,
    gateway: PathBuf,
    my_uuid: String,
    nodes: Vec<NodeRemote>,
    opts: ConnectOptions,
    data: Vec<u8>,
    key: Key,
}

fn world() -> World {
    let t = tempfile::tempdir().expect("tempdir");
    let shell = real_shell(t.path());
    let (gateway, my_uuid) = new_repo(t.path(), "gw", "gateway");
    let nodes = (1..=3)
        .map(|i| {
            let name = format!("n{i}");
            let (dir, uuid) = new_repo(t.path(), &name, &name);
            NodeRemote {
                name,
                uuid,
                location: Location::Local(dir),
                annex_shell: Some(shell.display().to_string()),
                ssh_options: vec![],
            }
        })
        .collect();
    let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let digest = annex::store::verify::hex_digest(HashKind::Sha256, &data);
    let key = Key::parse(&format!("SHA256E-s{}--{digest}", data.len())).expect("key");
    World {
        _t: t,
        gateway,
        my_uuid,
        nodes,
        opts: ConnectOptions::new(shell),
        data,
        key,
    }
}

impl World {
    fn dir(&self, i: usize) -> &Path {
        match &self.nodes[i].location {
            Location::Local(d) => d,
            Location::Ssh(_) | Location::P2p(_) => unreachable!("local nodes only"),
        }
    }

    fn store(&self, i: usize) -> ObjectStore {
        ObjectStore::new(self.dir(i).to_owned(), true, 0)
    }

    fn uuids(&self, which: &[usize]) -> Vec<String> {
        let set: BTreeSet<String> = which.iter().map(|&i| self.nodes[i].uuid.clone()).collect();
        set.into_iter().collect()
    }

    fn gateway_log(&self) -> LocationLog {
        let b = Repo::open(&self.gateway).expect("gateway").branch();
        let path = annex::branch::location_log_path_for(&self.key);
        LocationLog::parse(&b.read_committed(&path).expect("read").unwrap_or_default())
    }

    fn present_in_log(&self) -> Vec<String> {
        let mut p: Vec<String> = self
            .gateway_log()
            .present()
            .into_iter()
            .map(str::to_owned)
            .collect();
        p.sort();
        p
    }
}

type Task = tokio::task::JoinHandle<Result<(), ServeError>>;

fn start_with(w: &World, placement: Box<dyn Placement>) -> (Client, Task) {
    start_full(w, placement, &[])
}

/// `in_process`: the nodes the gateway serves itself rather than through
/// a child (the others run the real git-annex-shell).
fn start_full(w: &World, placement: Box<dyn Placement>, in_process: &[usize]) -> (Client, Task) {
    let (c_read, s_write) = duplex(1 << 16);
    let (s_read, c_write) = duplex(1 << 16);
    let repo = Repo::open(&w.gateway).expect("gateway");
    let setup = Setup {
        cluster_uuid: CLUSTER.into(),
        my_uuid: w.my_uuid.clone(),
        store: repo.store(),
        branch: repo.branch(),
        placement,
        git_relay: BTreeSet::new(),
        jobs: 3,
        owing: true,
    };
    let nodes = w.nodes.clone();
    let in_process = in_process.to_vec();
    let (my_uuid, opts) = (w.my_uuid.clone(), w.opts.clone());
    let task = tokio::spawn(async move {
        let conn = Connection::new(s_read, s_write);
        let make_pool = move |version, bypass| {
            let nodes = nodes
                .into_iter()
                .enumerate()
                .map(|(i, mut n)| {
                    // Without a shell of its own, a node here is served
                    // in-process.
                    if in_process.contains(&i) {
                        n.annex_shell = None;
                    }
                    // As an ssh session's: lines owed to one commit.
                    let mut node = super::node_for(n);
                    node.owe_logs();
                    node
                })
                .collect();
            let reach = Reach {
                my_uuid,
                version,
                bypass,
                opts,
            };
            (Pool::new(nodes, reach), None)
        };
        let gateway = Gateway::new(setup, Box::new(make_pool));
        Session::new(conn, gateway, crate::restrict::Rules::OPEN)
            .run()
            .await
    });
    (Connection::new(c_read, c_write), task)
}

/// A session at `version`, past the greeting.
async fn session(w: &World, version: u32) -> (Client, Task) {
    let (mut c, task) = start_with(w, Box::new(EveryNode));
    greet(&mut c, version).await;
    (c, task)
}

/// The cluster's greeting and the VERSION exchange (and an empty BYPASS
/// from version 2).
async fn greet(c: &mut Client, version: u32) {
    assert_eq!(hear(c).await, Message::AuthSuccess(CLUSTER.into()));
    say(c, Message::Version(version)).await;
    assert_eq!(hear(c).await, Message::Version(version));
    if version >= 2 {
        say(c, Message::Bypass(vec![])).await;
    }
}

/// PUT of the world's key with `body` as its whole content (the gateway
/// must ask from offset 0); the gateway's answer.
async fn put_whole(c: &mut Client, w: &World, body: &[u8]) -> Message {
    say(c, put(w)).await;
    assert_eq!(hear(c).await, Message::PutFrom(0));
    c.send_data(body.len() as u64, &mut &body[..])
        .await
        .expect("data");
    say(c, Message::Valid).await;
    hear(c).await
}

fn get(w: &World, offset: u64) -> Message {
    Message::Get {
        offset,
        file: None,
        key: w.key.clone(),
    }
}

async fn hang_up(c: Client, task: Task) {
    drop(c);
    task.await
        .expect("gateway task")
        .expect("session ends cleanly");
}

fn put(w: &World) -> Message {
    Message::Put {
        file: Some("big file".into()),
        key: w.key.clone(),
    }
}

/// A partial upload of the first `n` bytes left in node `i` by an
/// interrupted transfer.
fn partial(w: &World, i: usize, n: usize) {
    let tmp = w.store(i).tmp_path(&w.key).expect("tmp path");
    std::fs::create_dir_all(tmp.parent().expect("parent")).expect("mkdir");
    std::fs::write(tmp, &w.data[..n]).expect("partial");
}

async fn upload(w: &World) {
    let (mut c, task) = session(w, 4).await;
    assert_eq!(
        put_whole(&mut c, w, &w.data).await,
        Message::SuccessPlus(w.uuids(&[0, 1, 2]))
    );
    hang_up(c, task).await;
}

fn content(w: &World, i: usize) -> Option<Vec<u8>> {
    let path = w.store(i).content_path(&w.key)?;
    std::fs::read(path).ok()
}

fn take_away(w: &World, i: usize) {
    let path = w.store(i).content_path(&w.key).expect("has content");
    let dir = path.parent().expect("object dir");
    std::process::Command::new("chmod")
        .args(["-R", "u+w"])
        .arg(dir)
        .status()
        .expect("chmod");
    std::fs::remove_file(&path).expect("remove content");
}

#[tokio::test]
async fn put_resumes_each_node_from_its_own_offset() {
    let w = world();
    partial(&w, 0, 100_000);
    partial(&w, 1, 50_000);
    partial(&w, 2, 150_000);
    let (mut c, task) = session(&w, 4).await;
    say(&mut c, Message::CheckPresent(w.key.clone())).await;
    assert_eq!(hear(&mut c).await, Message::Failure);
    say(&mut c, put(&w)).await;
    assert_eq!(hear(&mut c).await, Message::PutFrom(50_000));
    let rest = &w.data[50_000..];
    c.send_data(rest.len() as u64, &mut &rest[..])
        .await
        .expect("data");
    say(&mut c, Message::Valid).await;
    assert_eq!(
        hear(&mut c).await,
        Message::SuccessPlus(w.uuids(&[0, 1, 2]))
    );
    say(&mut c, Message::CheckPresent(w.key.clone())).await;
    assert_eq!(hear(&mut c).await, Message::Success);
    hang_up(c, task).await;
    for i in 0..3 {
        assert!(content(&w, i) == Some(w.data.clone()), "node {i} content");
    }
    assert_eq!(w.present_in_log(), w.uuids(&[0, 1, 2]));
}

#[tokio::test]
async fn second_put_hears_which_nodes_already_have_it() {
    let w = world();
    upload(&w).await;
    let (mut c, task) = session(&w, 4).await;
    say(&mut c, put(&w)).await;
    assert_eq!(
        hear(&mut c).await,
        Message::AlreadyHavePlus(w.uuids(&[0, 1, 2]))
    );
    hang_up(c, task).await;
}

#[tokio::test]
async fn remove_names_the_nodes_it_removed_from_when_one_is_gone() {
    let w = world();
    upload(&w).await;
    let gone = w.dir(2).with_extension("moved");
    std::fs::rename(w.dir(2), &gone).expect("move node away");
    let (mut c, task) = session(&w, 4).await;
    say(&mut c, Message::Remove(w.key.clone())).await;
    assert_eq!(hear(&mut c).await, Message::FailurePlus(w.uuids(&[0, 1])));
    hang_up(c, task).await;
    assert_eq!(content(&w, 0), None);
    assert_eq!(content(&w, 1), None);
    // Only what happened is logged: the unreachable node still has it.
    assert_eq!(w.present_in_log(), w.uuids(&[2]));
    std::fs::rename(&gone, w.dir(2)).expect("move node back");
    assert!(content(&w, 2).is_some());
}

#[tokio::test]
async fn get_falls_over_to_a_node_that_still_has_the_key() {
    let w = world();
    upload(&w).await;
    // Two of the three nodes the log names lost their copy behind the
    // gateway's back.
    take_away(&w, 0);
    take_away(&w, 1);
    let (mut c, task) = session(&w, 4).await;
    say(&mut c, get(&w, 0)).await;
    assert_eq!(hear(&mut c).await, Message::Data(w.data.len() as u64));
    let mut body = Vec::new();
    c.recv_data(w.data.len() as u64, &mut body)
        .await
        .expect("body");
    assert!(body == w.data);
    assert_eq!(hear(&mut c).await, Message::Valid);
    say(&mut c, Message::Success).await;
    hang_up(c, task).await;
}

#[tokio::test]
async fn remove_before_keeps_each_node_clock() {
    let w = world();
    upload(&w).await;
    let (mut c, task) = session(&w, 4).await;
    say(&mut c, Message::GetTimestamp).await;
    let Message::Timestamp(ts) = hear(&mut c).await else {
        panic!("expected TIMESTAMP")
    };
    // A deadline already past: no node may remove.
    say(
        &mut c,
        Message::RemoveBefore {
            timestamp: ts.saturating_sub(1),
            key: w.key.clone(),
        },
    )
    .await;
    assert_eq!(hear(&mut c).await, Message::Failure);
    assert!(content(&w, 0).is_some());
    say(
        &mut c,
        Message::RemoveBefore {
            timestamp: ts + 600,
            key: w.key.clone(),
        },
    )
    .await;
    assert_eq!(
        hear(&mut c).await,
        Message::SuccessPlus(w.uuids(&[0, 1, 2]))
    );
    hang_up(c, task).await;
    assert!(w.present_in_log().is_empty());
}

#[tokio::test]
async fn version_one_client_gets_plain_answers_and_no_lock() {
    let w = world();
    let (mut c, task) = session(&w, 1).await;
    assert_eq!(put_whole(&mut c, &w, &w.data).await, Message::Success);
    say(&mut c, Message::LockContent(w.key.clone())).await;
    assert_eq!(hear(&mut c).await, Message::Failure);
    say(&mut c, Message::Remove(w.key.clone())).await;
    assert_eq!(hear(&mut c).await, Message::Success);
    hang_up(c, task).await;
    assert!(w.present_in_log().is_empty());
}

/// Only node 1 wants anything.
struct OnlySecond(String);

impl Placement for OnlySecond {
    fn wanted(
        &mut self,
        _nodes: &[&str],
        _key: &Key,
        _file: Option<&str>,
        _holders: &BTreeSet<String>,
    ) -> BTreeSet<String> {
        [self.0.clone()].into_iter().collect()
    }

    fn gateway_wants(&mut self, _: &Key, _: Option<&str>, _: &BTreeSet<String>) -> bool {
        false
    }

    fn placed(&mut self, _: &Key, _: &BTreeSet<String>) {}
}

#[tokio::test]
async fn put_goes_only_where_it_is_wanted() {
    let w = world();
    let (mut c, task) = start_with(&w, Box::new(OnlySecond(w.nodes[1].uuid.clone())));
    greet(&mut c, 4).await;
    assert_eq!(
        put_whole(&mut c, &w, &w.data).await,
        Message::SuccessPlus(w.uuids(&[1]))
    );
    hang_up(c, task).await;
    assert_eq!(content(&w, 0), None);
    assert_eq!(content(&w, 2), None);
    assert_eq!(w.present_in_log(), w.uuids(&[1]));
}

/// Two nodes written in-process (one resuming from its own partial file,
/// so it hashes for itself; the other covered by the one shared hash), one
/// through the real git-annex-shell: all end with verified content, and
/// the in-process nodes log themselves in their own branches, as a node's
/// server does.
#[tokio::test]
async fn in_process_nodes_share_one_hash_and_log_themselves() {
    let w = world();
    partial(&w, 1, 50_000);
    let (mut c, task) = start_full(&w, Box::new(EveryNode), &[0, 1]);
    greet(&mut c, 4).await;
    assert_eq!(
        put_whole(&mut c, &w, &w.data).await,
        Message::SuccessPlus(w.uuids(&[0, 1, 2]))
    );
    // GET is served in-process too.
    say(&mut c, get(&w, 150_000)).await;
    assert_eq!(hear(&mut c).await, Message::Data(50_000));
    let mut body = Vec::new();
    c.recv_data(50_000, &mut body).await.expect("body");
    assert!(body[..] == w.data[150_000..]);
    assert_eq!(hear(&mut c).await, Message::Valid);
    say(&mut c, Message::Success).await;
    hang_up(c, task).await;
    for i in 0..3 {
        assert!(content(&w, i) == Some(w.data.clone()), "node {i} content");
        let own = Repo::open(w.dir(i)).expect("node").branch();
        let path = annex::branch::location_log_path_for(&w.key);
        let log = LocationLog::parse(&own.read_committed(&path).expect("read").unwrap_or_default());
        assert_eq!(
            log.present(),
            vec![w.nodes[i].uuid.as_str()],
            "node {i} log"
        );
    }
}

/// A stream that does not hash to the key stores nothing in-process.
#[tokio::test]
async fn in_process_nodes_refuse_corrupt_content() {
    let w = world();
    let (mut c, task) = start_full(&w, Box::new(EveryNode), &[0, 1, 2]);
    greet(&mut c, 4).await;
    let mut bad = w.data.clone();
    bad[1000] ^= 1;
    assert_eq!(put_whole(&mut c, &w, &bad).await, Message::Failure);
    hang_up(c, task).await;
    for i in 0..3 {
        assert_eq!(content(&w, i), None);
        assert!(!w.store(i).tmp_path(&w.key).expect("tmp").exists());
    }
    assert!(w.present_in_log().is_empty());
}

/// A client that hangs up after the whole body instead of sending VALID:
/// what the in-process nodes received verifies in full, so it is kept and
/// logged, as git-annex keeps content that arrived whole (the session
/// loop's rule, which the gateway once broke off with an error).
#[tokio::test]
async fn in_process_nodes_keep_a_whole_body_when_the_client_hangs_up() {
    let w = world();
    let (mut c, task) = start_full(&w, Box::new(EveryNode), &[0, 1, 2]);
    greet(&mut c, 4).await;
    say(&mut c, put(&w)).await;
    assert_eq!(hear(&mut c).await, Message::PutFrom(0));
    c.send_data(w.data.len() as u64, &mut &w.data[..])
        .await
        .expect("data");
    hang_up(c, task).await;
    for i in 0..3 {
        assert!(content(&w, i) == Some(w.data.clone()), "node {i} content");
    }
    assert_eq!(w.present_in_log(), w.uuids(&[0, 1, 2]));
}

/// REMOVE-BEFORE on in-process nodes keeps the deadline in this machine's
/// clock, and each removal is logged in the node's own branch.
#[tokio::test]
async fn in_process_nodes_remove_before_the_deadline_only() {
    let w = world();
    upload(&w).await;
    let (mut c, task) = start_full(&w, Box::new(EveryNode), &[0, 1]);
    greet(&mut c, 4).await;
    say(&mut c, Message::GetTimestamp).await;
    let Message::Timestamp(ts) = hear(&mut c).await else {
        panic!("expected TIMESTAMP")
    };
    let key = w.key.clone();
    say(
        &mut c,
        Message::RemoveBefore {
            timestamp: ts.saturating_sub(1),
            key: key.clone(),
        },
    )
    .await;
    assert_eq!(hear(&mut c).await, Message::Failure);
    assert!(content(&w, 0).is_some() && content(&w, 1).is_some());
    say(
        &mut c,
        Message::RemoveBefore {
            timestamp: ts + 600,
            key,
        },
    )
    .await;
    assert_eq!(
        hear(&mut c).await,
        Message::SuccessPlus(w.uuids(&[0, 1, 2]))
    );
    hang_up(c, task).await;
    for i in 0..3 {
        assert_eq!(content(&w, i), None, "node {i}");
    }
    let own = Repo::open(w.dir(0)).expect("node").branch();
    let path = annex::branch::location_log_path_for(&w.key);
    let log = LocationLog::parse(&own.read_committed(&path).expect("read").unwrap_or_default());
    assert!(log.present().is_empty(), "node 0 still logs itself");
    assert!(w.present_in_log().is_empty());
}

/// No node has room for anything.
struct Full;

impl Placement for Full {
    fn wanted(
        &mut self,
        _: &[&str],
        _: &Key,
        _: Option<&str>,
        _: &BTreeSet<String>,
    ) -> BTreeSet<String> {
        BTreeSet::new()
    }

    fn gateway_wants(&mut self, _: &Key, _: Option<&str>, _: &BTreeSet<String>) -> bool {
        false
    }

    fn placed(&mut self, _: &Key, _: &BTreeSet<String>) {}

    fn no_room(&mut self, _: &str, _: &Key) -> Option<String> {
        Some("full".into())
    }
}

/// A key no node has room for fails alone, as git-annex's client needs it
/// to go on: PUT-FROM the key's end (no content sent), then FAILURE. A key
/// without a size has its body read and dropped. The session carries on.
#[tokio::test]
async fn put_no_node_takes_fails_that_key_alone() {
    let w = world();
    let (mut c, task) = start_with(&w, Box::new(Full));
    greet(&mut c, 1).await;
    say(&mut c, put(&w)).await;
    assert_eq!(hear(&mut c).await, Message::PutFrom(w.data.len() as u64));
    c.send_data(0, &mut &b""[..]).await.expect("data");
    say(&mut c, Message::Valid).await;
    assert_eq!(hear(&mut c).await, Message::Failure);

    let digest = w
        .key
        .to_string()
        .rsplit("--")
        .next()
        .unwrap_or_default()
        .to_owned();
    let sizeless = Key::parse(&format!("SHA256E--{digest}")).expect("key");
    say(
        &mut c,
        Message::Put {
            file: None,
            key: sizeless,
        },
    )
    .await;
    assert_eq!(hear(&mut c).await, Message::PutFrom(0));
    c.send_data(w.data.len() as u64, &mut &w.data[..])
        .await
        .expect("data");
    say(&mut c, Message::Valid).await;
    assert_eq!(hear(&mut c).await, Message::Failure);

    say(&mut c, Message::CheckPresent(w.key.clone())).await;
    assert_eq!(hear(&mut c).await, Message::Failure);
    hang_up(c, task).await;
    for i in 0..3 {
        assert_eq!(content(&w, i), None);
    }
}

/// In a session that owes its location lines to its commit (ssh), the
/// gateway's CHECKPRESENT still sees its own answers, nothing waits in a
/// journal file meanwhile, and the end commits the last state.
#[tokio::test]
async fn owed_lines_are_seen_in_the_session_and_committed_at_its_end() {
    let w = world();
    let journal = Repo::open(&w.gateway)
        .expect("gateway")
        .git_dir()
        .join("annex/journal");
    let journal_files = || {
        std::fs::read_dir(&journal)
            .map(|d| d.flatten().count())
            .unwrap_or(0)
    };
    let (mut c, task) = start_full(&w, Box::new(EveryNode), &[0, 1, 2]);
    greet(&mut c, 4).await;
    assert_eq!(
        put_whole(&mut c, &w, &w.data).await,
        Message::SuccessPlus(w.uuids(&[0, 1, 2]))
    );
    say(&mut c, Message::CheckPresent(w.key.clone())).await;
    assert_eq!(hear(&mut c).await, Message::Success);
    say(&mut c, Message::Remove(w.key.clone())).await;
    assert!(matches!(
        hear(&mut c).await,
        Message::Success | Message::SuccessPlus(_)
    ));
    say(&mut c, Message::CheckPresent(w.key.clone())).await;
    assert_eq!(hear(&mut c).await, Message::Failure);
    assert_eq!(journal_files(), 0, "no journal file per key");
    hang_up(c, task).await;
    assert_eq!(w.present_in_log(), Vec::<String>::new());
    for i in 0..3 {
        assert_eq!(content(&w, i), None, "node {i} content");
    }
}
