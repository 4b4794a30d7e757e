//! `annexproxy status` on a gateway whose cluster a real git-annex client
//! used: the key counts come from what the gateway logged while serving
//! it, reachability from a real handshake with each node, and a node
//! whose repository went away is shown unreachable with the reason.

use std::path::Path;

use annexproxy_tests::{ServerKind, TestEnv};
use serde_json::Value;

const SMALL: &[u8] = b"small file\n";
const BIG_LEN: usize = 300_000;

fn set_up_gateway(env: &TestEnv) -> (std::path::PathBuf, Vec<std::path::PathBuf>) {
    let mut nodes = Vec::new();
    for n in ["n1", "n2", "spare"] {
        let dir = env.server_bare(&format!("{n}.git"));
        env.annexproxy(&dir, &["init", &format!("node {n}")]).ok();
        nodes.push(dir);
    }
    let gw = env.server_bare("gw.git");
    env.annexproxy(&gw, &["init", "gateway"]).ok();
    env.annexproxy(&gw, &["initcluster", "c"]).ok();
    for (name, dir) in ["n1", "n2", "spare"].iter().zip(&nodes) {
        env.oracle(&gw, &["remote", "add", name, &dir.display().to_string()])
            .ok();
    }
    for n in ["n1", "n2"] {
        let key = format!("remote.{n}.annex-cluster-node");
        env.oracle(&gw, &["config", &key, "c"]).ok();
    }
    env.oracle(&gw, &["config", "remote.spare.annex-proxy", "true"])
        .ok();
    env.annexproxy(&gw, &["updatecluster"])
        .ok()
        .says("Added node n1 to cluster: c")
        .says("Started proxying for spare");
    (gw, nodes)
}

/// The table's line for `name` (as printed, indentation included), split
/// on runs of spaces.
fn line<'a>(table: &'a str, name: &str) -> Vec<&'a str> {
    let l = table
        .lines()
        .find(|l| l.starts_with(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no line for {name:?} in:\n{table}"));
    l.split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect()
}

fn node<'a>(json: &'a Value, name: &str) -> &'a Value {
    json["clusters"][0]["nodes"]
        .as_array()
        .and_then(|ns| ns.iter().find(|n| n["name"] == name))
        .unwrap_or_else(|| panic!("no node {name} in {json}"))
}

#[test]
fn status_shows_unreachable_node_and_key_counts() {
    let env = TestEnv::new(ServerKind::Ours);
    let (gw, nodes) = set_up_gateway(&env);
    let client = env.clone_client(&gw, "client");
    env.annex(&client, &["sync"]).ok();
    env.add_file(&client, "small.txt", SMALL);
    let big = annexproxy_tests::pseudo_random_bytes(7, BIG_LEN);
    env.add_file(&client, "big.bin", &big);
    env.annex(&client, &["copy", "--to", "origin-c"]).ok();
    let total = (SMALL.len() + BIG_LEN) as u64;
    let n2_uuid = env.server_uuid(&nodes[1]);

    let moved = nodes[1].with_extension("moved");
    std::fs::rename(&nodes[1], &moved).expect("moving n2 away");
    let table = env.annexproxy(&gw, &["status"]).ok().stdout;

    assert_eq!(
        line(&table, "NAME").join(" "),
        "NAME KIND UUID REACHABLE KEYS SIZE FREE DETAIL"
    );
    let here = line(&table, "here");
    assert_eq!(here[1..5], ["gateway", &env.server_uuid(&gw), "yes", "0"]);
    let cluster = line(&table, "c");
    assert_eq!(cluster[1], "cluster");
    assert_eq!(cluster[3..5], ["1/2", "2"]);
    let n1 = line(&table, "  n1");
    assert_eq!(
        n1[1..5],
        ["node", &env.server_uuid(&nodes[0]), "yes", "2"],
        "{table}"
    );
    assert_eq!(n1.len(), 7, "a reachable node has no DETAIL: {table}");
    let n2 = line(&table, "  n2");
    assert_eq!(n2[1..5], ["node", &n2_uuid, "no", "2"], "{table}");
    let why = format!("n2: no repository at {}", nodes[1].display());
    assert_eq!(n2.last(), Some(&why.as_str()), "{table}");
    let spare = line(&table, "spare");
    assert_eq!(
        spare[1..5],
        ["proxied", &env.server_uuid(&nodes[2]), "yes", "0"]
    );
    // Columns line up: every UUID starts where the header's does.
    let at = table.find("UUID").expect("header");
    for l in table.lines().skip(1) {
        let c = l.chars().nth(at).expect("long enough");
        assert!(c.is_ascii_hexdigit(), "misaligned line {l:?} in:\n{table}");
    }

    let json: Value = serde_json::from_str(&env.annexproxy(&gw, &["status", "--json"]).ok().stdout)
        .expect("status --json prints JSON");
    let c = &json["clusters"][0];
    assert_eq!(c["name"], "c");
    assert_eq!(
        (c["keys"].as_u64(), c["bytes"].as_u64()),
        (Some(2), Some(total))
    );
    assert_eq!(
        (c["nodes_reachable"].as_u64(), c["node_count"].as_u64()),
        (Some(1), Some(2))
    );
    let n1 = node(&json, "n1");
    assert_eq!(n1["reachable"], true);
    assert_eq!(
        (n1["keys"].as_u64(), n1["bytes"].as_u64()),
        (Some(2), Some(total))
    );
    assert!(n1["free"].as_u64().is_some_and(|f| f > 0), "{n1}");
    let n2 = node(&json, "n2");
    assert_eq!(n2["reachable"], false);
    assert_eq!(n2["error"], why.as_str());
    assert_eq!(n2["free"], Value::Null);
    assert_eq!(json["proxied"][0]["name"], "spare");

    // Back in place, it answers again.
    std::fs::rename(&moved, &nodes[1]).expect("moving n2 back");
    let table = env.annexproxy(&gw, &["status"]).ok().stdout;
    assert_eq!(line(&table, "c")[3], "2/2", "{table}");
}

#[test]
fn status_needs_an_initialised_repository() {
    let env = TestEnv::new(ServerKind::Ours);
    let bare = env.server_bare("plain.git");
    env.annexproxy(&bare, &["status"])
        .fails()
        .says("First run: annexproxy init");
    env.annexproxy(Path::new(env.root()), &["-C", "/nonexistent", "status"])
        .fails()
        .says("not a git repository");
}
