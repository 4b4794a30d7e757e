//! The everyday flow: copy many files and a big one to the cluster, get
//! them back, drop them from it (scenarios 1, 2 and 7 of issue 4).

use annexproxy_tests::observe::{action_results, expected_whereis};
use annexproxy_tests::{on_both_servers, pseudo_random_bytes, ServerKind, Transcript};

use crate::world::{cluster, keys_held, Setup};

const SMALL_FILES: usize = 50;
/// The issue asks for 100 MB; 20 MB already outgrows every buffer on the
/// way and keeps the suite short.
const BIG: usize = 20 << 20;

fn files() -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = (0..SMALL_FILES)
        .map(|i| {
            (
                format!("small/f{i:02}.txt"),
                format!("small file {i}\n").into_bytes(),
            )
        })
        .collect();
    files.push(("big.bin".into(), pseudo_random_bytes(4, BIG)));
    files
}

/// Copy to the cluster stores on every node (none has preferred content),
/// whereis says so and is true, the nodes' own fsck agrees, a dropped
/// local copy comes back from the cluster, and `drop --from` the cluster
/// removes every node's copy.
fn flow_with(kind: ServerKind, setup: Setup) {
    let c = cluster(kind, setup, 3, |_, _| {});
    let (env, client) = (&c.env, &c.client);
    let files = files();
    env.add_files(client, &files);
    let remote = c.remote();

    let out = env
        .annex(client, &["copy", "--to", &remote, "--json", "."])
        .ok();
    let results = action_results(&out.stdout);
    assert_eq!(results.len(), files.len(), "{out}");
    assert!(results.iter().all(|r| r.1 && r.2.is_empty()), "{out}");
    env.annex(client, &["sync"]).ok();
    let everywhere: &[&str] = &["cluster", "node1", "node2", "node3", "here"];
    let seen = c.client_view(client);
    assert_eq!(seen.len(), files.len());
    for (f, places) in &seen {
        assert_eq!(
            places,
            &everywhere.iter().map(|s| s.to_string()).collect(),
            "{f}"
        );
    }
    c.assert_whereis_true(client);
    assert!(
        keys_held(&c.gateway).is_empty(),
        "the gateway stores nothing"
    );
    c.fsck_nodes();

    env.annex(client, &["drop", "."]).ok();
    assert!(std::fs::read(client.join("big.bin")).is_err());
    env.annex(client, &["get", "--from", &remote, "."]).ok();
    for (f, content) in &files {
        assert!(
            std::fs::read(client.join(f)).ok().as_ref() == Some(content),
            "{f} came back wrong"
        );
    }

    env.annex(client, &["drop", "--from", &remote, "."]).ok();
    for n in &c.nodes {
        assert_eq!(
            keys_held(n),
            Default::default(),
            "{} still holds content",
            n.display()
        );
    }
    env.annex(client, &["sync"]).ok();
    for places in c.client_view(client).values() {
        assert_eq!(places, &["here".to_string()].into());
    }
    c.assert_whereis_true(client);
    c.fsck_nodes();
}

fn flow(kind: ServerKind) {
    flow_with(kind, Setup::matching(kind))
}

// No `compare` here: each arm already asserts the same observations, and
// running the biggest scenario a third time would double the suite's time.
on_both_servers!(flow);

/// A cluster our CLI set up, served by the real git-annex-shell: our
/// cluster.log and proxy.log must be what git-annex itself reads.
#[test]
fn flow_real_server_configured_by_ours() {
    flow_with(ServerKind::Real, Setup::Ours);
}

/// Our gateway serving a cluster the real git-annex set up.
#[test]
fn flow_ours_server_configured_by_real() {
    flow_with(ServerKind::Ours, Setup::Real);
}

/// A cluster of one node: the gateway still answers as a cluster
/// (spec §7.3: the multi-node path, PLUS replies), and copy, get, drop
/// and whereis work as with many.
fn single_node(kind: ServerKind) -> Transcript {
    let mut t = Transcript::default();
    let c = cluster(kind, Setup::matching(kind), 1, |_, _| {});
    let (env, client) = (&c.env, &c.client);
    env.add_file(client, "one.txt", b"only node\n");
    let remote = c.remote();
    let out = env
        .annex(client, &["copy", "--to", &remote, "--json", "one.txt"])
        .ok();
    t.note("copy", action_results(&out.stdout));
    assert_eq!(
        c.client_view(client),
        expected_whereis(&[("one.txt", &["cluster", "node1", "here"])])
    );
    c.assert_whereis_true(client);
    env.annex(client, &["drop", "one.txt"]).ok();
    env.annex(client, &["get", "--from", &remote, "one.txt"])
        .ok();
    assert_eq!(
        std::fs::read(client.join("one.txt")).ok(),
        Some(b"only node\n".to_vec())
    );
    let out = env
        .annex(client, &["drop", "--from", &remote, "--json", "one.txt"])
        .ok();
    t.note("drop --from", action_results(&out.stdout));
    assert!(keys_held(&c.nodes[0]).is_empty());
    env.annex(client, &["sync"]).ok();
    assert_eq!(
        c.client_view(client),
        expected_whereis(&[("one.txt", &["here"])])
    );
    c.fsck_nodes();
    t
}

on_both_servers!(single_node, compare);
