//! A cluster served at a P2P address: `annexproxy serve-p2p --for CLUSTER`
//! behind a tor hidden service (a SOCKS5 stand-in here). git-annex's P2P
//! protocol cannot pick a proxied remote after AUTH, so the listener
//! itself stands for the cluster: the real git-annex client links it with
//! `git annex p2p --link`, copies to it, gets from it and drops from it,
//! and the content lands on and leaves the nodes.

use std::path::PathBuf;

use annexproxy_tests::run::run;
use annexproxy_tests::serve_p2p::{real_tor_helper_dir, with_path_first, Listener};
use annexproxy_tests::socks::SocksServer;
use annexproxy_tests::{ServerKind, TestEnv};

const ONION: &str = "annexproxyclusterannexproxyclusterannexproxyclusterannexpro.onion";

/// A gateway with nodes n1, n2 in cluster `mycl`, all set up by our
/// operator CLI; returns (gateway, nodes).
fn cluster(env: &TestEnv) -> (PathBuf, Vec<PathBuf>) {
    let nodes: Vec<PathBuf> = ["n1", "n2"]
        .iter()
        .map(|n| {
            let dir = env.server_bare(&format!("{n}.git"));
            env.annexproxy(&dir, &["init", n]).ok();
            dir
        })
        .collect();
    let gw = env.server_bare("gw.git");
    env.annexproxy(&gw, &["init", "gateway"]).ok();
    env.annexproxy(&gw, &["initcluster", "mycl"]).ok();
    for (i, n) in nodes.iter().enumerate() {
        let name = format!("n{}", i + 1);
        env.oracle(&gw, &["remote", "add", &name, &n.display().to_string()])
            .ok();
        env.oracle(
            &gw,
            &[
                "config",
                &format!("remote.{name}.annex-cluster-node"),
                "mycl",
            ],
        )
        .ok();
    }
    env.annexproxy(&gw, &["updatecluster"]).ok();
    (gw, nodes)
}

#[test]
fn real_client_uses_a_cluster_over_tor() {
    let env = TestEnv::new(ServerKind::Ours);
    let (gw, nodes) = cluster(&env);
    let token = env
        .annexproxy(&gw, &["p2p-token", "add"])
        .ok()
        .stdout
        .trim()
        .to_owned();

    // A typo fails at once, naming what is served.
    env.annexproxy(
        &gw,
        &["serve-p2p", "--listen", "127.0.0.1:0", "--for", "nope"],
    )
    .fails()
    .says("serves no proxied remote or cluster named \"nope\" (it serves: mycl, n1, n2)");

    let listener = Listener::start(&env, &gw, &["--listen", "127.0.0.1:0", "--for", "mycl"]);
    let _socks = SocksServer::on_tor_port(listener.port());
    let client = env.root().join("client");
    env.git(env.root(), &["init", "-q", "client"]).ok();
    env.annex(&client, &["init", "client"]).ok();
    env.add_file(
        &client,
        "f.bin",
        &annexproxy_tests::pseudo_random_bytes(3, 500_000),
    );
    let key = env.key_of(&client, "f.bin");

    let line = format!("tor-annex::{ONION}:{}:{token}", listener.port());
    let mut link = env.client_command("sh");
    link.args([
        "-c",
        "echo \"$1\" | git annex p2p --link --name cl",
        "sh",
        &line,
    ]);
    run(link, &client).ok();
    let cluster_uuid = env
        .oracle(&gw, &["config", "annex.cluster.mycl"])
        .ok()
        .stdout;
    let linked = env
        .git(&client, &["config", "remote.cl.annex-uuid"])
        .ok()
        .stdout;
    assert_eq!(
        linked.trim(),
        cluster_uuid.trim(),
        "the listener answers as the cluster"
    );

    env.annex(&client, &["copy", "--to", "cl", "f.bin"]).ok();
    listener.wait_idle();
    for n in &nodes {
        assert!(env.server_has_content(n, &key), "{} lacks it", n.display());
    }
    // The client learnt which nodes hold it (SUCCESS-PLUS).
    let whereis = env.annex(&client, &["whereis", "f.bin"]).ok().stdout;
    for n in &nodes {
        assert!(whereis.contains(&env.server_uuid(n)), "{whereis}");
    }

    // git through the same listener (CONNECT, served by the gateway) brings
    // the gateway's git-annex branch: its cluster.log tells the client the
    // nodes make up `cl`.
    let mut sync = env.client_command("git");
    with_path_first(&mut sync, &real_tor_helper_dir(&env));
    sync.args(["annex", "sync", "cl"]);
    run(sync, &client).ok();
    listener.wait_idle();
    env.annex(&client, &["whereis", "f.bin"]).ok().says("[cl]");
    env.annex(&client, &["drop", "--force", "f.bin"]).ok();
    env.annex(&client, &["get", "--from", "cl", "f.bin"]).ok();
    assert_eq!(
        std::fs::read(client.join("f.bin")).expect("read back"),
        annexproxy_tests::pseudo_random_bytes(3, 500_000)
    );
    env.annex(&client, &["drop", "--from", "cl", "f.bin"]).ok();
    listener.wait_idle();
    for n in &nodes {
        assert!(
            !env.server_has_content(n, &key),
            "{} still has it",
            n.display()
        );
    }
}
