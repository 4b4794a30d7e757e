//! Which nodes get what: preferred content of nodes, balanced groups
//! (scenario 3), and a drop reaching a copy the gateway never heard of
//! (scenario 4).

use std::collections::BTreeSet;

use annexproxy_tests::observe::expected_whereis;
use annexproxy_tests::{on_both_servers, ServerKind};

use crate::world::{cluster, keys_held, node_name};

/// Per-node `wanted` set by the client and synced to the gateway: the
/// gateway sends each key only to the nodes that want it, and to every
/// node when none does (spec §7.3, `nonempty [wanted, all]`).
fn wanted_per_node(kind: ServerKind) {
    let c = cluster(kind, crate::world::Setup::matching(kind), 3, |_, _| {});
    let (env, client) = (&c.env, &c.client);
    env.annex(client, &["wanted", "origin-node1", "include=*.txt"])
        .ok();
    env.annex(client, &["wanted", "origin-node2", "include=*.bin"])
        .ok();
    env.annex(
        client,
        &["wanted", "origin-node3", "include=*.txt or include=*.bin"],
    )
    .ok();
    env.annex(client, &["sync"]).ok();
    let files: Vec<(String, Vec<u8>)> = [
        ("a.txt", "text\n"),
        ("b.bin", "binary\n"),
        ("c.dat", "data\n"),
    ]
    .iter()
    .map(|(f, s)| (f.to_string(), s.as_bytes().to_vec()))
    .collect();
    env.add_files(client, &files);
    env.annex(client, &["copy", "--to", &c.remote(), "."]).ok();
    env.annex(client, &["sync"]).ok();
    assert_eq!(
        c.client_view(client),
        expected_whereis(&[
            ("a.txt", &["cluster", "node1", "node3", "here"]),
            ("b.bin", &["cluster", "node2", "node3", "here"]),
            // wanted by no node: every node gets it
            ("c.dat", &["cluster", "node1", "node2", "node3", "here"]),
        ])
    );
    c.assert_whereis_true(client);
    c.fsck_nodes();
}

on_both_servers!(wanted_per_node);

/// Nodes in group `cl`, each wanting `balanced=cl:1`: every key lands on
/// exactly one node, and the keys spread over the nodes (real git-annex
/// 10.20261026 does just that: each node's expression is evaluated alone,
/// and exactly one of them is true for a key).
fn balanced_group(kind: ServerKind) {
    let c = cluster(kind, crate::world::Setup::matching(kind), 3, |_, _| {});
    let (env, client) = (&c.env, &c.client);
    for i in 0..3 {
        let remote = format!("origin-{}", node_name(i));
        env.annex(client, &["group", &remote, "cl"]).ok();
        env.annex(client, &["wanted", &remote, "balanced=cl:1"])
            .ok();
    }
    env.annex(client, &["sync"]).ok();
    let files: Vec<(String, Vec<u8>)> = (0..30)
        .map(|i| {
            (
                format!("b{i:02}.txt"),
                format!("balanced {i}\n").into_bytes(),
            )
        })
        .collect();
    env.add_files(client, &files);
    env.annex(client, &["copy", "--to", &c.remote(), "."]).ok();
    env.annex(client, &["sync"]).ok();
    let seen = c.client_view(client);
    let mut used = BTreeSet::new();
    for (f, places) in &seen {
        let nodes: Vec<&String> = places.iter().filter(|p| p.starts_with("node")).collect();
        assert_eq!(nodes.len(), 1, "{f} should be on one node: {places:?}");
        used.insert(nodes[0].clone());
    }
    // 30 keys over 3 nodes all landing on one: odds about 1e-14
    assert!(used.len() >= 2, "keys did not spread: {used:?}");
    c.assert_whereis_true(client);
    c.fsck_nodes();
}

on_both_servers!(balanced_group);

/// node3 got a copy straight from another client, so the gateway's
/// location log does not list it. `drop --from` the cluster must still
/// remove it: a cluster REMOVE goes to every node (spec §7.3).
fn drop_reaches_unlogged_copy(kind: ServerKind) {
    let c = cluster(kind, crate::world::Setup::matching(kind), 3, |_, _| {});
    let (env, client) = (&c.env, &c.client);
    env.add_file(client, "x.txt", b"behind the back\n");
    env.annex(client, &["copy", "--to", "origin-node1", "x.txt"])
        .ok();
    let key = env.key_of(client, "x.txt");

    // Another user, with direct ssh access to node3 only.
    let other = env.root().join("other");
    env.oracle(env.root(), &["init", "-q", &other.display().to_string()])
        .ok();
    env.annex(&other, &["init", "other"]).ok();
    env.git(&other, &["remote", "add", "n3", &env.url(&c.nodes[2])])
        .ok();
    env.add_file(&other, "x.txt", b"behind the back\n");
    env.annex(&other, &["copy", "--to", "n3", "x.txt"]).ok();
    assert!(keys_held(&c.nodes[2]).contains(&key));
    let peek = env.oracle_peek(&c.gateway, &["whereis", "--json", "--key", &key]);
    assert!(
        !peek.stdout.contains(&c.node_uuid(2)),
        "the gateway should not know of node3's copy: {peek}"
    );

    env.annex(client, &["drop", "--from", &c.remote(), "x.txt"])
        .ok();
    for (i, n) in c.nodes.iter().enumerate() {
        assert!(
            !keys_held(n).contains(&key),
            "{} still has x.txt",
            node_name(i)
        );
    }
    env.annex(client, &["sync"]).ok();
    assert_eq!(
        c.client_view(client),
        expected_whereis(&[("x.txt", &["here"])])
    );
    c.fsck_nodes();
}

on_both_servers!(drop_reaches_unlogged_copy);

/// The gateway's own preferred content: with an expression of its own it
/// keeps the copies that expression wants, besides the nodes (with none,
/// it is a gateway, not one more node); a GET is then served from its
/// copy, and a drop from the cluster removes that copy too. git-annex's
/// gateway never stores, so this runs against ours only.
#[test]
fn gateway_keeps_the_copies_it_wants() {
    let c = cluster(ServerKind::Ours, crate::world::Setup::Ours, 2, |_, _| {});
    let (env, client) = (&c.env, &c.client);
    env.annex(client, &["wanted", "origin", "include=*.keep"])
        .ok();
    env.annex(client, &["sync"]).ok();
    let files: Vec<(String, Vec<u8>)> = [("a.keep", "kept\n"), ("b.txt", "passed on\n")]
        .iter()
        .map(|(f, s)| (f.to_string(), s.as_bytes().to_vec()))
        .collect();
    env.add_files(client, &files);
    env.annex(client, &["copy", "--to", &c.remote(), "."]).ok();
    let kept = env.key_of(client, "a.keep");
    let passed = env.key_of(client, "b.txt");
    let at_gateway = keys_held(&c.gateway);
    assert!(at_gateway.contains(&kept), "{at_gateway:?}");
    assert!(!at_gateway.contains(&passed), "{at_gateway:?}");
    env.annex(client, &["sync"]).ok();
    assert_eq!(
        c.client_view(client),
        expected_whereis(&[
            ("a.keep", &["cluster", "gateway", "node1", "node2", "here"]),
            ("b.txt", &["cluster", "node1", "node2", "here"]),
        ])
    );

    // The nodes lose their copies behind the gateway's back: the GET must
    // be served from the gateway's own.
    for n in &c.nodes {
        env.oracle_annex(n, &["drop", "--force", "--key", &kept])
            .ok();
    }
    env.annex(client, &["drop", "a.keep"]).ok();
    env.annex(client, &["get", "--from", &c.remote(), "a.keep"])
        .ok();
    assert_eq!(
        annexproxy_tests::observe::worktree_bytes(client, "a.keep"),
        b"kept\n"
    );

    env.annex(client, &["drop", "--from", &c.remote(), "a.keep"])
        .ok();
    assert!(!keys_held(&c.gateway).contains(&kept));
}
