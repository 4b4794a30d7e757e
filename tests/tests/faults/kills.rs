//! Processes killed part-way: the client during an upload to the cluster,
//! the gateway during one, a node while a REMOVE fans out.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use annexproxy_tests::pseudo_random_bytes;
use annexproxy_tests::run::{self, Out, COMMAND_TIMEOUT};

use crate::world::{self, arm, disarm, wrap_node, Fault, World, REMOTE};

/// At about 2 MB/s through the slow node, several seconds of upload.
const BIG: usize = 12 << 20;
/// Partial bytes the slow node must hold before the kill.
const SOME: u64 = 256 << 10;

/// A 3-node cluster whose n1 passes its input on slowly while armed, with
/// `big.bin` added in the client; the fault file and the key.
fn slow_world() -> (World, std::path::PathBuf, String) {
    let fault = std::cell::RefCell::new(None);
    let w = world::world(3, |env, gw| {
        *fault.borrow_mut() = Some(wrap_node(env, gw, "n1", Fault::Slow));
    });
    let fault = fault.into_inner().expect("tune ran");
    w.env
        .add_file(&w.client, "big.bin", &pseudo_random_bytes(3, BIG));
    let key = w.env.key_of(&w.client, "big.bin");
    (w, fault, key)
}

fn partial_len(node: &Path, key: &str) -> u64 {
    std::fs::metadata(node.join("annex/tmp").join(key)).map_or(0, |m| m.len())
}

/// Starts `git annex copy --to` the cluster of `big.bin`, and returns it
/// once n1 holds `SOME` bytes of it.
fn upload_under_way(w: &World, key: &str) -> run::Running {
    let mut cmd = w.env.client_command("git");
    cmd.args(["annex", "copy", "--to", REMOTE, "big.bin"]);
    let mut copy = run::start(cmd, &w.client);
    let start = Instant::now();
    while partial_len(&w.nodes[0], key) < SOME {
        if copy.has_exited() || start.elapsed() > Duration::from_secs(60) {
            let out = copy.finish(COMMAND_TIMEOUT);
            panic!("the upload ended or stalled before n1 got {SOME} bytes:\n{out}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    copy
}

/// The offsets the client was asked to send from, from its
/// `--debug --debugfilter=P2P.IO` output.
fn put_from_offsets(out: &Out) -> Vec<u64> {
    out.stderr
        .lines()
        .filter_map(|l| l.split_once("P2P < PUT-FROM ").map(|(_, n)| n))
        .filter_map(|n| n.trim().parse().ok())
        .collect()
}

/// After an interrupted upload of `key`: no node holds it, nobody claims
/// it is anywhere but the client, and the servers are clean.
#[track_caller]
fn nothing_stored(w: &World, key: &str) {
    assert_eq!(w.holding_nodes(key), BTreeSet::new());
    let claims = w.assert_claims_true(&w.client);
    assert_eq!(
        w.claimed_nodes(&claims, key),
        BTreeSet::new(),
        "{claims:#?}"
    );
    w.assert_servers_fsck_clean();
}

/// Copies `big.bin` again, and checks it resumed from what the nodes kept
/// (`kept`: each node's partial length) and that every node now has it.
#[track_caller]
fn retry_resumes(w: &World, key: &str, kept: &[u64]) {
    let out = w
        .env
        .annex(
            &w.client,
            &[
                "copy",
                "--to",
                REMOTE,
                "big.bin",
                "--debug",
                "--debugfilter=P2P.IO",
            ],
        )
        .ok();
    // The client is asked for what the node with the least lacks.
    let least = kept.iter().copied().min().unwrap_or(0);
    assert_eq!(put_from_offsets(&out), vec![least], "{out}");
    assert_eq!(w.holding_nodes(key), BTreeSet::from([0, 1, 2]));
    for n in &w.nodes {
        assert_eq!(partial_len(n, key), 0, "a partial file outlived the upload");
    }
    let claims = w.assert_claims_true(&w.client);
    assert_eq!(w.claimed_nodes(&claims, key), BTreeSet::from([0, 1, 2]));
    w.assert_servers_fsck_clean();
}

#[test]
fn client_killed_mid_upload() {
    let (w, fault, key) = slow_world();
    arm(&fault);
    let copy = upload_under_way(&w, &key);
    copy.kill_group();
    let out = copy.finish(COMMAND_TIMEOUT);
    assert!(!out.success() && !out.timed_out, "{out}");
    // The stand-in died with its client, unable to log its exit.
    w.env.close_dead_sessions();
    disarm(&fault);
    let kept: Vec<u64> = w.nodes.iter().map(|n| partial_len(n, &key)).collect();
    assert!(kept[0] >= SOME, "n1 kept {kept:?}");
    assert!(
        kept.iter().all(|&k| k > 0 && k < BIG as u64),
        "partials {kept:?}"
    );
    nothing_stored(&w, &key);
    retry_resumes(&w, &key, &kept);
}

/// Processes of this world's p2pstdio sessions, as (pid, arguments).
fn sessions(w: &World) -> Vec<(u32, Vec<String>)> {
    let root = w.env.root().display().to_string();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = raw
            .split(|&b| b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if args.iter().any(|a| a == "p2pstdio") && args.iter().any(|a| a.starts_with(&root)) {
            found.push((pid, args));
        }
    }
    found
}

/// Our gateway's process serving the cluster to a client: the server
/// the git-annex-shell front exec'd (`annexproxy git-annex-shell …`)
/// whose command line has the cluster's UUID (the sessions it opens with
/// its nodes name only the gateway's UUID).
fn gateway_pids(w: &World) -> Vec<u32> {
    let cluster = w.cluster_uuid();
    let named = |a: &str, name: &str| a == name || a.ends_with(&format!("/{name}"));
    sessions(w)
        .into_iter()
        .filter(|(_, args)| {
            let server = match args.as_slice() {
                [a0, a1, ..] => named(a0, "annexproxy") && a1 == "git-annex-shell",
                _ => false,
            };
            server && args.contains(&cluster)
        })
        .map(|(pid, _)| pid)
        .collect()
}

/// Waits until no session of this world is left: node sessions a killed
/// gateway orphaned end once they see their input close.
#[track_caller]
fn wait_sessions_gone(w: &World) {
    let start = Instant::now();
    while !sessions(w).is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "sessions outlived their gateway: {:?}",
            sessions(w)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The gateway dies mid-upload. git-annex retries at once a transfer that
/// made progress, on a new session; n1's session from the killed gateway
/// may then still hold the key's transfer lock, and n1 refuses. Whatever
/// the retry achieved, the client must be told exactly what is stored.
#[test]
fn gateway_killed_mid_upload() {
    let (w, fault, key) = slow_world();
    arm(&fault);
    let copy = upload_under_way(&w, &key);
    let pids = gateway_pids(&w);
    assert_eq!(
        pids.len(),
        1,
        "one gateway process expected: {:?}",
        sessions(&w)
    );
    run::kill(pids[0]);
    let out = copy.finish(COMMAND_TIMEOUT);
    assert!(
        !out.timed_out,
        "the client hung once the gateway died:\n{out}"
    );
    assert!(!out.all().contains("panicked"), "{out}");
    out.clone().says("Lost connection");
    w.env.wait_server_idle();
    wait_sessions_gone(&w);
    disarm(&fault);
    let kept: Vec<u64> = w.nodes.iter().map(|n| partial_len(n, &key)).collect();
    let claims = w.assert_claims_true(&w.client);
    let holding = w.holding_nodes(&key);
    assert_eq!(
        w.claimed_nodes(&claims, &key),
        holding,
        "{claims:#?}\n{out}"
    );
    assert_eq!(out.success(), !holding.is_empty(), "{out}");
    w.assert_servers_fsck_clean();

    // Retry: to the cluster (skipped when the client knows it has the
    // key), then to each node still lacking it, resuming its partial.
    w.env
        .annex(&w.client, &["copy", "--to", REMOTE, "big.bin"])
        .ok();
    for (i, &offset) in kept.iter().enumerate() {
        if w.holding_nodes(&key).contains(&i) {
            continue;
        }
        let remote = format!("origin-{}", world::node_name(i));
        let out = w
            .env
            .annex(
                &w.client,
                &[
                    "copy",
                    "--to",
                    &remote,
                    "big.bin",
                    "--debug",
                    "--debugfilter=P2P.IO",
                ],
            )
            .ok();
        assert_eq!(put_from_offsets(&out), vec![offset], "{out}");
    }
    assert!(kept[0] >= SOME || holding.contains(&0), "n1 kept {kept:?}");
    assert_eq!(w.holding_nodes(&key), BTreeSet::from([0, 1, 2]));
    let claims = w.assert_claims_true(&w.client);
    assert_eq!(w.claimed_nodes(&claims, &key), BTreeSet::from([0, 1, 2]));
    w.assert_servers_fsck_clean();
}

/// n2 dies as the REMOVE reaches it: the client is told the key went from
/// n1 and n3 (FAILURE-PLUS), so it believes exactly n2 still has it.
#[test]
fn node_killed_mid_remove() {
    let fault = std::cell::RefCell::new(None);
    let w = world::world(3, |env, gw| {
        *fault.borrow_mut() = Some(wrap_node(env, gw, "n2", Fault::DieAtRemove));
    });
    let fault = fault.into_inner().expect("tune ran");
    let (env, client) = (&w.env, &w.client);
    env.add_file(client, "a.txt", b"removed from two of three\n");
    env.add_file(client, "b.txt", b"left alone\n");
    let (a, b) = (env.key_of(client, "a.txt"), env.key_of(client, "b.txt"));
    env.annex(client, &["copy", "--to", REMOTE, "a.txt", "b.txt"])
        .ok();
    let all = BTreeSet::from([0, 1, 2]);
    assert_eq!(w.holding_nodes(&a), all);

    arm(&fault);
    let out = env
        .annex(client, &["drop", "--from", REMOTE, "a.txt"])
        .fails();
    assert!(!out.timed_out, "{out}");
    assert!(!out.all().contains("panicked"), "{out}");
    assert_eq!(w.holding_nodes(&a), BTreeSet::from([1]));
    let claims = w.assert_claims_true(client);
    assert_eq!(
        w.claimed_nodes(&claims, &a),
        BTreeSet::from([1]),
        "{claims:#?}"
    );
    assert_eq!(w.claimed_nodes(&claims, &b), all, "{claims:#?}");
    disarm(&fault);
    w.assert_servers_fsck_clean();

    env.annex(client, &["drop", "--from", REMOTE, "a.txt"]).ok();
    assert_eq!(w.holding_nodes(&a), BTreeSet::new());
    let claims = w.assert_claims_true(client);
    assert_eq!(w.claimed_nodes(&claims, &a), BTreeSet::new(), "{claims:#?}");
    assert!(
        !claims[&a].contains(&w.cluster_uuid()),
        "the cluster is still said to have a.txt: {claims:#?}"
    );
    assert_eq!(w.holding_nodes(&b), all);
    w.assert_servers_fsck_clean();
}
