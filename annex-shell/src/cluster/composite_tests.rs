//! The gateway as a composite of nodes, each an in-memory [`Node`] (no
//! process, no node repository): raw protocol bytes in, the exact reply
//! bytes out, through the one session loop.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use annex::branch::LogStatus;
use annex::key::Key;
use annex::p2p::ConnError;
use annex::repo::Repo;
use annex::store::{Verifier, VerifyMode};
use annex::transport::ConnectOptions;

use super::gateway::{Gateway, Setup};
use super::node::{failure, Answer, Deadline, Ending, Fut, Node, Offer, Source};
use super::pool::{Pool, Reach};
use super::EveryNode;
use crate::backend::{Failure, Outcome};
use crate::restrict::Rules;

pub(super) const CLUSTER: &str = "ac0732ba-38cb-808b-9958-79c27a72784e";
/// The content "hello".
pub(super) const KEY: &str =
    "SHA256E-s5--2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";

pub(super) fn key() -> Key {
    Key::parse(KEY).expect("key")
}

/// What an in-memory node holds and was asked, shared with the test.
#[derive(Default)]
pub(super) struct State {
    objects: BTreeMap<Key, Vec<u8>>,
    /// Its writes fail once it would hold more than this many bytes of
    /// an upload.
    room: Option<usize>,
    /// It cannot remove.
    stuck: bool,
    calls: Vec<String>,
}

/// An in-memory cluster node.
pub(super) struct Mem {
    name: String,
    uuid: String,
    state: Arc<Mutex<State>>,
    /// The upload under way: its bytes, or why it failed.
    receiving: Option<(Key, Result<Vec<u8>, String>)>,
}

impl Mem {
    pub(super) fn new(name: &str) -> (Mem, Arc<Mutex<State>>) {
        let state = Arc::new(Mutex::new(State::default()));
        let node = Mem {
            name: name.into(),
            uuid: uuid(name),
            state: Arc::clone(&state),
            receiving: None,
        };
        (node, state)
    }

    fn st(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("state")
    }

    fn call(&self, c: impl Into<String>) {
        self.st().calls.push(c.into());
    }
}

fn uuid(name: &str) -> String {
    format!("{name}-uuid")
}

impl Node for Mem {
    fn name(&self) -> &str {
        &self.name
    }

    fn uuid(&self) -> &str {
        &self.uuid
    }

    fn ready(&self) -> bool {
        true
    }

    fn in_process(&self) -> bool {
        true
    }

    fn check_present<'a>(&'a mut self, key: &'a Key) -> Fut<'a, Result<bool, Failure>> {
        Box::pin(async move { Ok(self.st().objects.contains_key(key)) })
    }

    fn remove<'a>(&'a mut self, key: &'a Key, _deadline: Option<Deadline>) -> Fut<'a, Answer> {
        Box::pin(async move {
            self.call("remove");
            if self.st().stuck {
                let why = format!("{}: cannot remove", self.name);
                return Err(failure(&self.name, "REMOVE")(why));
            }
            self.st().objects.remove(key);
            Ok(Outcome::plain(true))
        })
    }

    fn retrieve<'a>(
        &'a mut self,
        key: &'a Key,
        offset: u64,
        _file: Option<&'a str>,
        _to: &'a str,
    ) -> Fut<'a, Result<Source<'a>, Failure>> {
        Box::pin(async move {
            self.call(format!("retrieve {offset}"));
            let Some(content) = self.st().objects.get(key).cloned() else {
                let why = format!("{}: does not have it", self.name);
                return Err(failure(&self.name, "GET")(why));
            };
            let rest = content[(offset as usize).min(content.len())..].to_vec();
            let len = rest.len() as u64;
            Ok(Source::Reader(Box::new(std::io::Cursor::new(rest)), len))
        })
    }

    fn sent(&mut self) -> Fut<'_, bool> {
        Box::pin(async { true })
    }

    fn retrieved(&mut self, verdict: Option<bool>) -> Fut<'_, ()> {
        Box::pin(async move { self.call(format!("retrieved {verdict:?}")) })
    }

    fn offer<'a>(
        &'a mut self,
        key: &'a Key,
        _file: Option<&'a str>,
        _to: &'a str,
    ) -> Fut<'a, Offer> {
        Box::pin(async move {
            self.call("offer");
            if self.st().objects.contains_key(key) {
                return Offer::Has(Vec::new());
            }
            self.receiving = Some((key.clone(), Ok(Vec::new())));
            Offer::From(0)
        })
    }

    fn begin_body(&mut self, end: u64) -> Fut<'_, ()> {
        Box::pin(async move { self.call(format!("begin_body {end}")) })
    }

    fn receive<'a>(&'a mut self, _at: u64, chunk: &'a [u8], _hashed: bool) -> Fut<'a, ()> {
        Box::pin(async move {
            let room = self.st().room;
            let name = self.name.clone();
            let Some((_, Ok(bytes))) = &mut self.receiving else {
                return;
            };
            if room.is_some_and(|r| bytes.len() + chunk.len() > r) {
                self.receiving.as_mut().expect("receiving").1 = Err(format!("{name}: disk full"));
                return;
            }
            bytes.extend_from_slice(chunk);
        })
    }

    fn conclude<'a>(&'a mut self, ending: &'a Ending<'a>) -> Fut<'a, Option<Answer>> {
        Box::pin(async move {
            let (key, got) = self.receiving.take()?;
            let bytes = match got {
                Ok(bytes) => bytes,
                Err(why) => return Some(Err(failure(&self.name, "PUT")(why))),
            };
            let Ending::Body { mode, .. } = ending else {
                return None;
            };
            let mut v = Verifier::new(&key);
            v.update(&bytes);
            if *mode == VerifyMode::Invalid || v.check().is_err() {
                return Some(Ok(Outcome::plain(false)));
            }
            self.st().objects.insert(key, bytes);
            Some(Ok(Outcome::plain(true)))
        })
    }

    fn abandon(&mut self) {
        self.receiving = None;
    }

    fn fail(&mut self, what: &'static str, e: ConnError) -> Fut<'_, Failure> {
        Box::pin(async move { failure(&self.name, what)(format!("{}: {e}", self.name)) })
    }

    fn close(&mut self) -> Fut<'_, ()> {
        Box::pin(async move { self.call("close") })
    }
}

/// The gateway's own repository (its location log), made without git:
/// the files of an empty bare repository, then annex-initialised; the
/// one already made in `root`, if there is one.
pub(super) fn gateway_repo(root: &Path) -> Repo {
    let dir = root.join("gateway.git");
    if dir.exists() {
        return Repo::open(&dir).expect("open");
    }
    for sub in ["objects/info", "objects/pack", "refs/heads", "refs/tags"] {
        std::fs::create_dir_all(dir.join(sub)).expect("mkdir");
    }
    std::fs::write(dir.join("HEAD"), "ref: refs/heads/main\n").expect("HEAD");
    std::fs::write(
        dir.join("config"),
        "[core]\n\trepositoryformatversion = 0\n\tbare = true\n[user]\n\tname = T\n\temail = t@example.org\n",
    )
    .expect("config");
    let mut repo = Repo::open(&dir).expect("open");
    repo.init(Some("gateway")).expect("init");
    Repo::open(&dir).expect("reopen")
}

/// A cluster of the in-memory `nodes` behind a gateway with its own
/// repository in `root`; runs one session with `input` from the client
/// (then EOF) and returns everything the gateway sent.
async fn session(root: &Path, nodes: Vec<Mem>, input: &[u8]) -> String {
    let nodes = nodes
        .into_iter()
        .map(|n| Box::new(n) as Box<dyn Node>)
        .collect();
    session_of(root, nodes, input).await
}

/// [`session`] over nodes of any kind.
pub(super) async fn session_of(root: &Path, nodes: Vec<Box<dyn Node>>, input: &[u8]) -> String {
    let repo = gateway_repo(root);
    let my_uuid = repo.uuid().expect("uuid");
    let setup = Setup {
        cluster_uuid: CLUSTER.into(),
        my_uuid: my_uuid.clone(),
        store: repo.store(),
        branch: repo.branch(),
        placement: Box::new(EveryNode),
        git_relay: Default::default(),
        jobs: 3,
        owing: true,
    };
    let make_pool = move |version, bypass| {
        let reach = Reach {
            my_uuid,
            version,
            bypass,
            opts: ConnectOptions::new(std::path::PathBuf::new()),
        };
        (Pool::new(nodes, reach), None)
    };
    let gateway = Gateway::new(setup, Box::new(make_pool));
    crate::testutil::run_session(gateway, Rules::OPEN, input).await
}

/// What the gateway's location log says of the key.
fn logged(root: &Path) -> Vec<String> {
    let repo = Repo::open(&root.join("gateway.git")).expect("open");
    let mut us = repo.branch().key_locations(&key()).expect("log");
    us.sort();
    us
}

fn holds(st: &Arc<Mutex<State>>) -> bool {
    st.lock().expect("state").objects.contains_key(&key())
}

fn calls(st: &Arc<Mutex<State>>) -> Vec<String> {
    st.lock().expect("state").calls.clone()
}

pub(super) fn greeting() -> String {
    format!("AUTH-SUCCESS {CLUSTER}\n")
}

#[tokio::test]
async fn put_names_exactly_the_nodes_that_stored() {
    let t = tempfile::tempdir().expect("tempdir");
    let (a, sa) = Mem::new("a");
    let (b, sb) = Mem::new("b");
    let (c, sc) = Mem::new("c");
    let input = format!("VERSION 2\nPUT f {KEY}\nDATA 5\nhelloVALID\n");
    let out = session(t.path(), vec![a, b, c], input.as_bytes()).await;
    let replies = "VERSION 2\nPUT-FROM 0\nSUCCESS-PLUS a-uuid b-uuid c-uuid\n";
    assert_eq!(out, format!("{}{replies}", greeting()));
    for st in [&sa, &sb, &sc] {
        assert!(holds(st));
        // Each node was handed the one body, and closed at the end.
        assert_eq!(calls(st), ["offer", "begin_body 5", "close"]);
    }
    assert_eq!(logged(t.path()), ["a-uuid", "b-uuid", "c-uuid"]);
}

#[tokio::test]
async fn a_node_failing_mid_body_is_not_named_the_others_are() {
    let t = tempfile::tempdir().expect("tempdir");
    let (a, sa) = Mem::new("a");
    let (b, sb) = Mem::new("b");
    let (c, sc) = Mem::new("c");
    sb.lock().expect("state").room = Some(2);
    let input = format!("VERSION 2\nPUT f {KEY}\nDATA 5\nhelloVALID\n");
    let out = session(t.path(), vec![a, b, c], input.as_bytes()).await;
    let replies = "VERSION 2\nPUT-FROM 0\nSUCCESS-PLUS a-uuid c-uuid\n";
    assert_eq!(out, format!("{}{replies}", greeting()));
    assert!(holds(&sa) && holds(&sc));
    assert!(!holds(&sb));
    assert_eq!(logged(t.path()), ["a-uuid", "c-uuid"]);
}

#[tokio::test]
async fn get_falls_over_to_the_next_node() {
    let t = tempfile::tempdir().expect("tempdir");
    let (a, sa) = Mem::new("a");
    let (b, sb) = Mem::new("b");
    sb.lock()
        .expect("state")
        .objects
        .insert(key(), b"hello".to_vec());
    // The log names a (it is asked first), which lost its copy.
    let repo = gateway_repo(t.path());
    repo.branch()
        .log_key_location(&key(), &uuid("a"), LogStatus::Present)
        .expect("log");
    drop(repo);
    let input = format!("VERSION 2\nGET 1 f {KEY}\nSUCCESS\n");
    let out = session(t.path(), vec![a, b], input.as_bytes()).await;
    let replies = "VERSION 2\nDATA 4\nelloVALID\n";
    assert_eq!(out, format!("{}{replies}", greeting()));
    assert_eq!(calls(&sa), ["retrieve 1", "close"]);
    assert_eq!(calls(&sb), ["retrieve 1", "retrieved Some(true)", "close"]);
}

#[tokio::test]
async fn remove_with_a_failing_node_names_those_that_dropped() {
    let t = tempfile::tempdir().expect("tempdir");
    let (a, sa) = Mem::new("a");
    let (b, sb) = Mem::new("b");
    let (c, sc) = Mem::new("c");
    for st in [&sa, &sb, &sc] {
        st.lock()
            .expect("state")
            .objects
            .insert(key(), b"hello".to_vec());
    }
    sb.lock().expect("state").stuck = true;
    let input = format!("VERSION 2\nREMOVE {KEY}\n");
    let out = session(t.path(), vec![a, b, c], input.as_bytes()).await;
    let replies = "VERSION 2\nFAILURE-PLUS a-uuid c-uuid\n";
    assert_eq!(out, format!("{}{replies}", greeting()));
    assert!(!holds(&sa) && !holds(&sc));
    assert!(holds(&sb));
}

/// The one fan-out runs on the chosen nodes only (all with `None`), at
/// once, and answers in node order whatever order they finish in.
#[tokio::test]
async fn fan_out_reaches_the_chosen_nodes_at_once_in_node_order() {
    use super::pool::fan_out;
    let mut nodes: Vec<Box<dyn Node>> = (0..4)
        .map(|i| Box::new(Mem::new(&format!("n{i}")).0) as Box<dyn Node>)
        .collect();
    let started = std::time::Instant::now();
    let answers = fan_out(&mut nodes, Some(&[3, 1]), |i, slot| async move {
        // The later slot finishes first.
        let ms = if i == 1 { 250 } else { 200 };
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
        (i, slot.name().to_owned())
    })
    .await;
    assert_eq!(answers, [(1, "n1".to_owned()), (3, "n3".to_owned())]);
    assert!(
        started.elapsed() < std::time::Duration::from_millis(400),
        "the nodes were asked at once (one after the other takes 450 ms)"
    );
    let all = fan_out(&mut nodes, None, |i, _| async move { i }).await;
    assert_eq!(all, [0, 1, 2, 3]);
}
