//! Many clients at once against one cluster gateway (issue 6): each of 8
//! real git-annex clients copies its own files and 5 files all of them
//! share (same content, so the same keys) to a 3-node cluster, then
//! syncs, all at the same time. Afterwards real `git annex fsck` is clean
//! in every server repository, and for every key the nodes the clients
//! say have it are exactly the nodes whose object directories hold it.
//! A deadlock fails the test at a deadline instead of hanging it.

#[path = "faults/world.rs"]
mod world;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use annexproxy_tests::pseudo_random_bytes;
use annexproxy_tests::run::{run_with_timeout, Out};

use world::{keys_held, World, REMOTE};

const CLIENTS: usize = 8;
const SHARED: usize = 5;
const OWN: usize = 3;
/// The whole concurrent phase must end by then.
const DEADLINE: Duration = Duration::from_secs(180);

/// Writes the shared and own files in `client`, annexes and commits them.
fn add_files(w: &World, client: &std::path::Path, c: usize) {
    for s in 0..SHARED {
        let bytes = pseudo_random_bytes(1000 + s as u64, 150_000 + s * 10_000);
        std::fs::write(client.join(format!("shared{s}.bin")), bytes).expect("write shared file");
    }
    for o in 0..OWN {
        let bytes = pseudo_random_bytes((c * 100 + o) as u64, 40_000 + o * 1000);
        std::fs::write(client.join(format!("own{c}-{o}.bin")), bytes).expect("write own file");
    }
    w.env.annex(client, &["add", "."]).ok();
    w.env.git(client, &["commit", "-q", "-m", "files"]).ok();
}

/// One client's concurrent work: copy everything to the cluster, then
/// sync. Commands are run without waiting for the server to be idle
/// (other clients keep it busy); each is killed past the deadline.
fn work(w: &World, client: &std::path::Path) -> (Out, Out) {
    let annex = |args: &[&str]| {
        let mut cmd = w.env.client_command("git");
        cmd.arg("annex").args(args);
        run_with_timeout(cmd, client, DEADLINE)
    };
    let copy = annex(&["copy", "--to", REMOTE, "."]);
    let sync = annex(&["sync"]);
    (copy, sync)
}

#[test]
fn eight_clients_at_once() {
    let w = world::world(3, |_, _| ());
    let mut clients: Vec<PathBuf> = vec![w.client.clone()];
    for c in 1..CLIENTS {
        clients.push(world::new_client(&w.env, &w.gateway, &format!("client{c}")));
    }
    for (c, client) in clients.iter().enumerate() {
        add_files(&w, client, c);
    }
    let own_key = |c: usize, o: usize| w.env.key_of(&clients[c], &format!("own{c}-{o}.bin"));
    let own_keys: Vec<Vec<String>> = (0..CLIENTS)
        .map(|c| (0..OWN).map(|o| own_key(c, o)).collect())
        .collect();

    let started = Instant::now();
    let results: BTreeMap<usize, (Out, Out)> = std::thread::scope(|scope| {
        let (tx, rx) = mpsc::channel();
        for (c, client) in clients.iter().enumerate() {
            let tx = tx.clone();
            let w = &w;
            scope.spawn(move || {
                let _ = tx.send((c, work(w, client)));
            });
        }
        drop(tx);
        let mut results = BTreeMap::new();
        while results.len() < CLIENTS {
            let left = DEADLINE
                .checked_sub(started.elapsed())
                .unwrap_or(Duration::ZERO);
            match rx.recv_timeout(left) {
                Ok((c, outs)) => {
                    results.insert(c, outs);
                }
                Err(_) => {
                    let done: BTreeSet<usize> = results.keys().copied().collect();
                    // The commands kill themselves at the deadline, so
                    // the scope's join does end.
                    panic!("deadlock: after {DEADLINE:?} only clients {done:?} finished");
                }
            }
        }
        results
    });
    eprintln!("concurrent phase: {:?}", started.elapsed());
    w.env.wait_server_idle();

    for (c, (copy, sync)) in &results {
        for out in [copy, sync] {
            assert!(!out.timed_out, "client {c} hung:\n{out}");
            assert!(!out.all().contains("panicked"), "client {c}:\n{out}");
        }
        // Its own keys nobody else sends: nothing stands in their way.
        for k in &own_keys[*c] {
            for (i, n) in w.nodes.iter().enumerate() {
                assert!(
                    keys_held(n).contains(k),
                    "n{} lacks {k} of client {c}:\n{copy}",
                    i + 1
                );
            }
        }
    }

    // Everyone learns what everyone else recorded.
    for _ in 0..2 {
        for client in &clients {
            w.env.annex(client, &["sync"]).ok();
        }
    }
    let node_uuids: Vec<String> = (0..w.nodes.len()).map(|i| w.node_uuid(i)).collect();
    let mut said: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let all: Vec<&std::path::Path> = clients.iter().map(PathBuf::as_path).collect();
    for client in &clients {
        let claims = w.assert_claims_true_among(client, &all);
        for (key, uuids) in claims {
            let nodes = uuids.into_iter().filter(|u| node_uuids.contains(u));
            said.entry(key).or_default().extend(nodes);
        }
    }
    let mut held: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (i, n) in w.nodes.iter().enumerate() {
        for k in keys_held(n) {
            held.entry(k).or_default().insert(node_uuids[i].clone());
        }
    }
    said.retain(|_, us| !us.is_empty());
    assert_eq!(
        said, held,
        "what the clients say (left) and what the nodes hold (right)"
    );
    assert_eq!(held.len(), CLIENTS * OWN + SHARED, "keys on the nodes");
    w.assert_servers_fsck_clean();
}
