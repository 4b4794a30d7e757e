//! Proxies of proxies (issue #3): the client only has ssh access to A; A
//! proxies B (over ssh), and B proxies C. After A has fetched B's
//! git-annex branch, one `annexproxy updateproxy` on A records the route
//! `B-C`, and the real client copies to, gets from and drops from
//! `origin-B-C`, its session relayed A → B → C. With B proxying A as well
//! (a cycle), neither side records routes back to itself or longer routes
//! to repositories it already reaches.

use std::path::{Path, PathBuf};

use annexproxy_tests::observe::worktree_bytes as read;
use annexproxy_tests::{ServerKind, TestEnv};

struct Chain {
    env: TestEnv,
    a: PathBuf,
    b: PathBuf,
    c: PathBuf,
}

fn proxied_names(env: &TestEnv, dir: &Path) -> Vec<String> {
    let uuid = env.server_uuid(dir);
    let log = env
        .oracle(dir, &["show", "git-annex:proxy.log"])
        .ok()
        .stdout;
    let line = log
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some(uuid.as_str()))
        .unwrap_or_else(|| panic!("no proxy.log line for {uuid}:\n{log}"));
    let mut names: Vec<String> = line
        .split_whitespace()
        .skip(2)
        .filter_map(|p| p.split_once(':').map(|(_, n)| n.to_string()))
        .collect();
    names.sort();
    names
}

fn chain(cycle: bool) -> Chain {
    let env = TestEnv::new(ServerKind::Ours);
    env.server_can_ssh();
    env.oracle_can_ssh();
    let [c, b, a] = ["C.git", "B.git", "A.git"].map(|n| {
        let dir = env.server_bare(n);
        env.annexproxy(&dir, &["init", &format!("repo {}", &n[..1])])
            .ok();
        dir
    });
    env.add_proxied_remote(&b, "C", &c.display().to_string());
    env.annexproxy(&b, &["updateproxy"])
        .ok()
        .says("Started proxying for C");
    env.add_proxied_remote(&a, "B", &env.url(&b));
    env.oracle(&a, &["fetch", "-q", "B"]).ok();
    let said = env.annexproxy(&a, &["updateproxy"]).ok().stdout;
    assert!(said.contains("Started proxying for B\n"), "{said}");
    assert!(said.contains("Started proxying for B-C\n"), "{said}");
    if cycle {
        env.add_proxied_remote(&b, "A", &env.url(&a));
        env.oracle(&b, &["fetch", "-q", "A"]).ok();
        env.annexproxy(&b, &["updateproxy"]).ok();
        env.oracle(&a, &["fetch", "-q", "B"]).ok();
        env.annexproxy(&a, &["updateproxy"]).ok();
    }
    Chain { env, a, b, c }
}

fn client_flow(ch: &Chain) {
    let env = &ch.env;
    let client = env.clone_client(&ch.a, "client");
    env.add_file(&client, "deep.txt", b"three hops away\n");
    env.annex(&client, &["sync"]).ok();
    env.annex(&client, &["info", "origin"])
        .ok()
        .says("origin-B-C");

    let mark = env.ssh_mark();
    env.annex(&client, &["copy", "--to", "origin-B-C", "deep.txt"])
        .ok();
    let key = env.key_of(&client, "deep.txt");
    assert!(env.server_has_content(&ch.c, &key));
    assert!(!env.server_has_content(&ch.b, &key));
    assert!(!env.server_has_content(&ch.a, &key));
    // The second hop: A's relay reached B over ssh, asking for C.
    let c_uuid = env.server_uuid(&ch.c);
    let b_path = ch.b.display().to_string();
    let hop = env
        .ssh_calls_since(mark)
        .into_iter()
        .find(|call| call.command.contains(&format!("'p2pstdio' '{b_path}'")))
        .unwrap_or_else(|| panic!("no ssh session A -> B:\n{}", env.ssh_log_text()));
    assert!(
        hop.command.ends_with(&format!("--uuid {c_uuid}")),
        "{hop:?}"
    );

    env.annex(&client, &["drop", "deep.txt"]).ok();
    env.annex(&client, &["get", "--from", "origin-B-C", "deep.txt"])
        .ok();
    assert_eq!(read(&client, "deep.txt"), b"three hops away\n");
    // While C holds the key, every repository's log is true of it. (Once
    // it is dropped everywhere but the client, fsck in each rightly says
    // no known copy is left.)
    env.wait_server_idle();
    for dir in [&ch.a, &ch.b, &ch.c] {
        env.assert_server_fsck_clean(dir);
    }
    env.annex(&client, &["drop", "--from", "origin-B-C", "deep.txt"])
        .ok();
    assert!(!env.server_has_content(&ch.c, &key));
    env.annex(&client, &["whereis", "deep.txt"])
        .ok()
        .says("(1 copy)");
}

#[test]
fn chain_of_three() {
    let ch = chain(false);
    assert_eq!(proxied_names(&ch.env, &ch.a), ["B", "B-C"]);
    client_flow(&ch);
}

/// git-annex's own updateproxy records `B-A` (itself), `B-A-B` and
/// `B-A-B-C` here; we keep one route per repository.
#[test]
fn cycle_is_broken() {
    let ch = chain(true);
    assert_eq!(proxied_names(&ch.env, &ch.a), ["B", "B-C"]);
    assert_eq!(proxied_names(&ch.env, &ch.b), ["A", "C"]);
    client_flow(&ch);
}
