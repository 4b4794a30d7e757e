//! The store's refusals (`annex.securehashesonly`, DATA longer than the
//! key, keys too long to log) as the real git-annex client meets them, and
//! on the paths that do not store in the server's own repository: a
//! proxied node, whose own server checks its own config and whose answer
//! the proxy passes on, and a cluster's in-process nodes, each checked
//! against its own repository. Every refusal fails the key alone; the
//! session goes on. Apart from the client test, raw protocol lines to our
//! git-annex-shell; `protocol/store_limits.rs` has the plain server.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::Duration;

use annexproxy_tests::p2p_driver::{ABSENT_KEY, CLIENT_UUID, NEW, NEW_KEY};
use annexproxy_tests::{ServerKind, TestEnv};

/// A WORM key of `NEW`: no hash, so nothing but the config refuses it.
const WORM_KEY: &str = "WORM-s24-m1700000000--c.txt";

/// Our git-annex-shell serving `--uuid uuid` of `repo`, line by line.
struct Session {
    child: Child,
    to: Option<ChildStdin>,
    lines: Receiver<String>,
}

impl Session {
    fn start(env: &TestEnv, repo: &Path, uuid: &str) -> Session {
        let mut child = env
            .server_command("git-annex-shell")
            .args(["p2pstdio", &repo.display().to_string(), CLIENT_UUID])
            .args(["--uuid", uuid])
            .current_dir(repo)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start our git-annex-shell");
        let from = BufReader::new(child.stdout.take().expect("stdout"));
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in from.lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let to = child.stdin.take();
        let mut s = Session { child, to, lines };
        assert!(s.next().starts_with("AUTH-SUCCESS "));
        s.send(b"VERSION 4\n");
        assert_eq!(s.next(), "VERSION 4");
        s
    }

    fn send(&mut self, bytes: &[u8]) {
        let to = self.to.as_mut().expect("open");
        to.write_all(bytes).and_then(|()| to.flush()).expect("send");
    }

    fn next(&mut self) -> String {
        self.lines
            .recv_timeout(Duration::from_secs(30))
            .expect("the server did not answer")
    }

    /// PUT of `key` with `body` (after whatever PUT-FROM asks), VALID;
    /// the server's answer, or its answer to the PUT if no PUT-FROM.
    fn put(&mut self, key: &str, body: &[u8]) -> String {
        self.send(format!("PUT c.txt {key}\n").as_bytes());
        let reply = self.next();
        let Some(from) = reply.strip_prefix("PUT-FROM ") else {
            return reply;
        };
        let from: usize = from.parse().expect("offset");
        let rest = &body[from.min(body.len())..];
        let mut data = format!("DATA {}\n", rest.len()).into_bytes();
        data.extend_from_slice(rest);
        data.extend_from_slice(b"VALID\n");
        self.send(&data);
        self.next()
    }

    /// Announces 10 MB for `ABSENT_KEY` (5 bytes), sends half, hangs up.
    fn hang_up_in_too_long_data(mut self) {
        self.send(format!("PUT c.txt {ABSENT_KEY}\n").as_bytes());
        assert_eq!(self.next(), "PUT-FROM 0");
        self.send(b"DATA 10000000\n");
        self.send(&vec![b'!'; 5_000_000]);
        self.to = None;
        let _ = self.child.wait();
    }

    /// The session still answers, then ends cleanly.
    fn finish(mut self, present: &str) {
        self.send(format!("CHECKPRESENT {present}\n").as_bytes());
        assert_eq!(self.next(), "SUCCESS", "the session goes on");
        self.to = None;
        assert!(self.child.wait().expect("wait").success());
    }
}

fn secure_hashes_only(env: &TestEnv, repo: &Path) {
    env.oracle(repo, &["config", "annex.securehashesonly", "true"])
        .ok();
}

/// Files under the repository's annex/tmp.
fn partials(repo: &Path) -> usize {
    std::fs::read_dir(repo.join("annex/tmp")).map_or(0, |d| d.count())
}

/// `NEW_KEY`'s content with junk after it: more than the key can be.
fn too_long() -> Vec<u8> {
    let mut body = NEW.to_vec();
    body.extend_from_slice(&[b'!'; 100_000]);
    body
}

#[test]
fn proxied_node_refusals_are_passed_on() {
    let env = TestEnv::new(ServerKind::Ours);
    let (proxy, nodes) = env.ours_proxy_with_nodes(&[("node1", "first node")]);
    env.annexproxy(&proxy, &["updateproxy"]).ok();
    let node = &nodes[0];
    secure_hashes_only(&env, node);
    let uuid = env.server_uuid(node);
    let mut s = Session::start(&env, &proxy, &uuid);
    assert_eq!(s.put(WORM_KEY, NEW), "FAILURE");
    assert_eq!(s.put(NEW_KEY, &too_long()), "FAILURE");
    assert_eq!(s.put(NEW_KEY, NEW), "SUCCESS");
    s.finish(NEW_KEY);
    Session::start(&env, &proxy, &uuid).hang_up_in_too_long_data();
    assert!(!env.server_has_content(node, WORM_KEY));
    assert!(env.server_has_content(node, NEW_KEY));
    assert_eq!(partials(node), 0);
    env.assert_server_fsck_clean(node);
}

/// A cluster of two local nodes, only `n1` with `annex.securehashesonly`.
fn cluster(env: &TestEnv) -> (PathBuf, Vec<PathBuf>, String) {
    let (gw, nodes) = env.ours_proxy_with_nodes(&[("n1", "node one"), ("n2", "node two")]);
    env.annexproxy(&gw, &["initcluster", "c"]).ok();
    for n in ["n1", "n2"] {
        env.oracle(
            &gw,
            &["config", &format!("remote.{n}.annex-cluster-node"), "c"],
        )
        .ok();
    }
    env.annexproxy(&gw, &["updatecluster"]).ok();
    env.annexproxy(&gw, &["updateproxy"]).ok();
    secure_hashes_only(env, &nodes[0]);
    let cu = env.oracle(&gw, &["config", "annex.cluster.c"]);
    (gw, nodes, cu.stdout.trim().to_owned())
}

#[test]
fn in_process_cluster_nodes_check_their_own_repositories() {
    let env = TestEnv::new(ServerKind::Ours);
    let (gw, nodes, cu) = cluster(&env);
    let n2 = env.server_uuid(&nodes[1]);
    let mut s = Session::start(&env, &gw, &cu);
    // n1 refuses the insecure key, n2 takes it
    assert_eq!(s.put(WORM_KEY, NEW), format!("SUCCESS-PLUS {n2}"));
    // a body longer than the key: neither node writes it
    assert_eq!(s.put(NEW_KEY, &too_long()), "FAILURE");
    let long_key = format!("WORM-s1--{}", "k".repeat(240));
    // no node can log it: it fails alone (no content sent), the session goes on
    assert_eq!(s.put(&long_key, b"z"), "FAILURE");
    s.finish(WORM_KEY);
    Session::start(&env, &gw, &cu).hang_up_in_too_long_data();
    assert!(!env.server_has_content(&nodes[0], WORM_KEY));
    assert!(env.server_has_content(&nodes[1], WORM_KEY));
    for node in &nodes {
        assert!(!env.server_has_content(node, NEW_KEY));
        assert!(!env.server_has_content(node, &long_key));
        assert_eq!(partials(node), 0, "{}", node.display());
        env.assert_server_fsck_clean(node);
    }
}

/// `git annex copy --to origin` of a WORM-keyed and a SHA256E-keyed file
/// to a server with `annex.securehashesonly`: the WORM one fails and is
/// not stored, the other arrives, the client says why, and the
/// repositories stay consistent. Against both servers (the real one ends
/// its session at the refusal; the client carries on with a new one).
#[test]
fn real_client_copy_to_a_securehashesonly_server() {
    for kind in [ServerKind::Real, ServerKind::Ours] {
        let env = TestEnv::new(kind);
        let server = env.server_bare("server.git");
        let client = env.clone_client(&server, "client");
        env.annex(&client, &["sync"]).ok();
        secure_hashes_only(&env, &server);
        std::fs::write(client.join("a-worm.txt"), b"worm content\n").expect("write");
        env.annex(&client, &["add", "--backend", "WORM", "a-worm.txt"])
            .ok();
        env.add_file(&client, "b-secure.txt", b"secure content\n");
        let worm = env.key_of(&client, "a-worm.txt");
        let secure = env.key_of(&client, "b-secure.txt");
        assert!(worm.starts_with("WORM-"), "{worm}");
        let copy = env.annex(&client, &["copy", "--to", "origin"]);
        assert!(
            !copy.success(),
            "{kind:?}: the copy reports a failure\n{copy}"
        );
        assert!(
            copy.stderr.contains("securehashesonly"),
            "{kind:?}: the client is told why\n{copy}"
        );
        assert!(!env.server_has_content(&server, &worm), "{kind:?}");
        assert!(env.server_has_content(&server, &secure), "{kind:?}");
        env.assert_server_fsck_clean(&server);
    }
}
