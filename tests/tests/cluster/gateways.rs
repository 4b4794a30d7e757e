//! One cluster, two gateways (scenario 8, doc/tips/clusters.mdwn "adding
//! additional gateways"): gw1 serves node1 and node2, gw2 serves node3,
//! and each has the other's `<gw>-mycl` as a node. A client of gw2 copies
//! to the cluster; the content lands behind both gateways, and BYPASS
//! keeps gw1 from routing back to gw2.

use std::path::Path;

use annexproxy_tests::observe::expected_whereis;
use annexproxy_tests::{on_both_servers, ServerKind, TestEnv};

use crate::world::{
    add_node, first_commit, keys_held, make_nodes, operator, Cluster, Setup, CLUSTER,
};

/// Sessions of `git-annex-shell p2pstdio` on `repo` since `mark`.
fn p2p_sessions(env: &TestEnv, mark: usize, repo: &Path) -> usize {
    let needle = format!("'p2pstdio' '{}'", repo.display());
    env.ssh_calls_since(mark)
        .iter()
        .filter(|c| c.command.contains(&needle))
        .count()
}

/// `git remote add NAME <ssh url of other>` and a fetch, with plain git.
fn add_ssh_remote(env: &TestEnv, repo: &Path, name: &str, other: &Path) {
    env.oracle(repo, &["remote", "add", name, &env.url(other)])
        .ok();
    env.oracle(repo, &["fetch", "-q", name]).ok();
}

fn two_gateways(kind: ServerKind) {
    let setup = Setup::matching(kind);
    let env = TestEnv::new(kind);
    // gateways reach each other over ssh, at set-up and when serving
    env.server_can_ssh();
    env.oracle_can_ssh();
    let nodes = make_nodes(&env, setup, 3);

    let gw1 = env.server_bare("gw1.git");
    operator(&env, setup, &gw1, &["init", "gateway 1"]).ok();
    operator(&env, setup, &gw1, &["initcluster", CLUSTER]).ok();
    add_node(&env, &gw1, "node1", &nodes[0]);
    add_node(&env, &gw1, "node2", &nodes[1]);
    operator(&env, setup, &gw1, &["updatecluster"]).ok();

    // gw2 starts as a copy of gw1's repository, as the doc has it.
    let gw2 = env.server_bare("gw2.git");
    add_ssh_remote(&env, &gw2, "gw1", &gw1);
    operator(&env, setup, &gw2, &["init", "gateway 2"]).ok();
    operator(&env, setup, &gw2, &["extendcluster", "gw1", CLUSTER]).ok();
    add_node(&env, &gw2, "node3", &nodes[2]);
    operator(&env, setup, &gw2, &["updatecluster"])
        .ok()
        .says(&format!("Added node node3 to cluster: {CLUSTER}"));

    add_ssh_remote(&env, &gw1, "gw2", &gw2);
    if setup == Setup::Real {
        // what the doc runs; ours has no sync, the fetch above is its part
        env.oracle_annex(&gw1, &["sync", "gw2"]).ok();
    }
    operator(&env, setup, &gw1, &["extendcluster", "gw2", CLUSTER]).ok();

    let client = env.clone_client(&gw2, "client");
    first_commit(&env, &client);
    env.annex(&client, &["sync"]).ok();
    let c = Cluster {
        env,
        gateway: gw2.clone(),
        nodes,
        client,
        others: Vec::new(),
    };
    let (env, client) = (&c.env, &c.client);
    env.add_file(client, "far.txt", b"behind both gateways\n");
    let key = env.key_of(client, "far.txt");
    let mark = env.ssh_mark();
    env.annex(client, &["copy", "--to", &c.remote(), "far.txt"])
        .ok();
    for (i, n) in c.nodes.iter().enumerate() {
        assert!(keys_held(n).contains(&key), "node{} lacks far.txt", i + 1);
    }
    // One session from the client into gw2, one from gw2 into gw1, and
    // none from gw1 back into gw2.
    assert_eq!(p2p_sessions(env, mark, &gw2), 1, "{}", env.ssh_log_text());
    assert_eq!(p2p_sessions(env, mark, &gw1), 1, "{}", env.ssh_log_text());
    let all: &[&str] = &["cluster", "node1", "node2", "node3", "here"];
    assert_eq!(c.client_view(client), expected_whereis(&[("far.txt", all)]));

    env.annex(client, &["drop", "far.txt"]).ok();
    env.annex(client, &["get", "--from", &c.remote(), "far.txt"])
        .ok();
    assert_eq!(
        std::fs::read(client.join("far.txt")).ok(),
        Some(b"behind both gateways\n".to_vec())
    );
    env.annex(client, &["drop", "--from", &c.remote(), "far.txt"])
        .ok();
    for n in &c.nodes {
        assert!(!keys_held(n).contains(&key), "{} kept far.txt", n.display());
    }
    env.annex(client, &["sync"]).ok();
    assert_eq!(
        c.client_view(client),
        expected_whereis(&[("far.txt", &["here"])])
    );
    c.fsck_nodes();
}

on_both_servers!(two_gateways);
