//! Four clients copying to the cluster at once (scenario 9): some files
//! their own, some shared by all (the same key arriving from several
//! clients at the same time). Once all are done and synced, every
//! client's whereis is true, and nothing is lost.

use std::collections::BTreeSet;
use std::path::PathBuf;

use annexproxy_tests::observe::action_results;
use annexproxy_tests::{on_both_servers, ServerKind};

use crate::world::{cluster, keys_held, Cluster, Setup};

const CLIENTS: usize = 4;

fn four_clients(kind: ServerKind) {
    let mut c = cluster(kind, Setup::matching(kind), 3, |_, _| {});
    for i in 1..CLIENTS {
        let dir = c.env.clone_client(&c.gateway, &format!("client{i}"));
        c.env.annex(&dir, &["sync"]).ok();
        c.others.push(dir);
    }
    let env = &c.env;
    let clients: Vec<_> = c.clients().cloned().collect();
    for (i, client) in clients.iter().enumerate() {
        let mut files: Vec<(String, Vec<u8>)> = (0..5)
            .map(|j| {
                (
                    format!("own{i}-{j}.txt"),
                    format!("client {i} file {j}\n").into_bytes(),
                )
            })
            .collect();
        // same names and bytes in every client: the same keys
        files.extend((0..5).map(|j| {
            (
                format!("shared{j}.txt"),
                format!("shared {j}\n").into_bytes(),
            )
        }));
        env.add_files(client, &files);
    }

    let remote = c.remote();
    let remote = remote.as_str();
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = clients
            .iter()
            .map(|client| {
                s.spawn(move || env.annex(client, &["copy", "--to", remote, "--json", "."]))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("copy thread"))
            .collect()
    });
    // Racing PUTs of one key may fail for the loser; a failure is fine,
    // a hang or a false success is not (whereis below).
    for out in &results {
        assert!(!out.timed_out, "{out}");
        assert_eq!(action_results(&out.stdout).len(), 10, "{out}");
    }

    sync_all(&c, &clients);
    // A full sync merged every client's files into every tree, so one
    // client's whereis covers every key; the first and the last to sync.
    c.assert_whereis_true(&clients[0]);
    c.assert_whereis_true(&clients[CLIENTS - 1]);

    // A retry completes whatever a race left undone.
    for client in &clients {
        env.annex(client, &["copy", "--to", remote, "."]).ok();
    }
    sync_all(&c, &clients);
    let all_keys: BTreeSet<String> = c.keys(&clients[0]).into_values().collect();
    assert_eq!(all_keys.len(), CLIENTS * 5 + 5);
    for (i, n) in c.nodes.iter().enumerate() {
        assert_eq!(keys_held(n), all_keys, "node{} is missing keys", i + 1);
    }
    c.assert_whereis_true(&clients[0]);
    c.assert_whereis_true(&clients[CLIENTS - 1]);
    c.fsck_nodes();
}

/// Syncs every client, then all but the last again, so that each has
/// seen what every other pushed.
fn sync_all(c: &Cluster, clients: &[PathBuf]) {
    for client in clients.iter().chain(&clients[..clients.len() - 1]) {
        c.env.annex(client, &["sync"]).ok();
    }
}

on_both_servers!(four_clients);
