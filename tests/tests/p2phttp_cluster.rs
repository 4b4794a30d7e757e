//! A cluster served over HTTP: the client reaches the gateway's cluster
//! by its UUID with `annex+http://`, through the same gateway back-end
//! as over ssh.

use annexproxy_tests::p2phttp::HttpServer;
use annexproxy_tests::{pseudo_random_bytes, ServerKind, TestEnv};

#[test]
fn a_three_node_cluster_over_http() {
    let env = TestEnv::new(ServerKind::Ours);
    let nodes: Vec<_> = ["n1", "n2", "n3"]
        .iter()
        .map(|n| {
            let dir = env.server_bare(&format!("{n}.git"));
            env.annexproxy(&dir, &["init", n]).ok();
            dir
        })
        .collect();
    let gw = env.server_bare("gateway.git");
    env.annexproxy(&gw, &["init", "gateway"]).ok();
    env.annexproxy(&gw, &["initcluster", "c"]).ok();
    for (n, dir) in ["n1", "n2", "n3"].iter().zip(&nodes) {
        env.oracle(&gw, &["remote", "add", n, &dir.display().to_string()])
            .ok();
        env.oracle(
            &gw,
            &["config", &format!("remote.{n}.annex-cluster-node"), "c"],
        )
        .ok();
    }
    env.annexproxy(&gw, &["updatecluster"]).ok();
    let cli = env.clone_url(&gw.display().to_string(), "cli");
    env.annex(&cli, &["sync", "-q"]).ok();
    let s = HttpServer::serve(env, gw, &["--wideopen"], &[]);
    let env = &s.env;
    s.point_at_http(&cli, "origin");

    let content = pseudo_random_bytes(40, 150_000);
    env.add_file(&cli, "c.bin", &content);
    let key = env.key_of(&cli, "c.bin");
    env.annex(&cli, &["copy", "--to", "origin-c", "c.bin"]).ok();
    let holding = nodes
        .iter()
        .filter(|n| env.server_has_content(n, &key))
        .count();
    assert_eq!(holding, 3, "every node wants it (no preferred content)");

    env.annex(&cli, &["drop", "--force", "c.bin"]).ok();
    env.annex(&cli, &["get", "--from", "origin-c", "c.bin"])
        .ok();
    assert_eq!(std::fs::read(cli.join("c.bin")).expect("read"), content);
    env.annex(&cli, &["fsck", "--fast", "--from", "origin-c"])
        .ok();
    env.annex(&cli, &["drop", "--from", "origin-c", "c.bin"])
        .ok();
    for n in &nodes {
        assert!(
            !env.server_has_content(n, &key),
            "{} still has it",
            n.display()
        );
    }
    annexproxy_tests::p2phttp::assert_children_reaped(s.http.pid());
}

/// `--clusterjobs 3`: a cluster request opens its three nodes at once,
/// though the gateway's `annex.jobs` (what ssh clients get) is 1. Each
/// node's shell is a wrapper that notes when it starts and takes 0.5 s
/// to answer, so nodes opened one after another start 0.5 s apart.
#[test]
fn clusterjobs_opens_that_many_nodes_at_once() {
    let env = TestEnv::new(ServerKind::Ours);
    let starts = env.root().join("node-starts");
    let wrapper = env.root().join("slow-shell");
    let shell = annexproxy_tests::tools::ours_bin_dir().join("git-annex-shell");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\ndate +%s%N >> '{}'\nsleep 0.5\nexec '{}' \"$@\"\n",
            starts.display(),
            shell.display()
        ),
    )
    .expect("write wrapper");
    let mode = std::os::unix::fs::PermissionsExt::from_mode(0o755);
    std::fs::set_permissions(&wrapper, mode).expect("chmod wrapper");
    let gw = env.server_bare("gateway.git");
    env.annexproxy(&gw, &["init", "gateway"]).ok();
    env.annexproxy(&gw, &["initcluster", "c"]).ok();
    for n in ["n1", "n2", "n3"] {
        let dir = env.server_bare(&format!("{n}.git"));
        env.annexproxy(&dir, &["init", n]).ok();
        env.oracle(&gw, &["remote", "add", n, &dir.display().to_string()])
            .ok();
        let wrapper = wrapper.to_str().expect("utf-8 path");
        for (k, v) in [("annex-cluster-node", "c"), ("annex-shell", wrapper)] {
            env.oracle(&gw, &["config", &format!("remote.{n}.{k}"), v])
                .ok();
        }
    }
    env.annexproxy(&gw, &["updatecluster"]).ok();
    let cli = env.clone_url(&gw.display().to_string(), "cli");
    env.annex(&cli, &["sync", "-q"]).ok();
    let s = HttpServer::serve(env, gw, &["--wideopen", "--clusterjobs", "3"], &[]);
    let env = &s.env;
    s.point_at_http(&cli, "origin");
    env.add_file(&cli, "c.bin", &pseudo_random_bytes(41, 10_000));
    env.annex(&cli, &["copy", "--to", "origin-c", "c.bin"]).ok();

    let text = std::fs::read_to_string(&starts).expect("node starts");
    let mut at: Vec<u64> = text.lines().filter_map(|l| l.parse().ok()).collect();
    at.sort_unstable();
    assert!(at.len() >= 3, "{text}");
    let spread_ms = (at[2] - at[0]) / 1_000_000;
    assert!(
        spread_ms < 400,
        "the first three node starts spread over {spread_ms} ms: {at:?}"
    );
    annexproxy_tests::p2phttp::assert_children_reaped(s.http.pid());
}
