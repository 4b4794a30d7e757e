//! A special remote served at a P2P address: `annexproxy serve-p2p --for
//! d` behind a tor hidden service (a SOCKS5 stand-in), the listener
//! standing for the directory remote, as it can for a proxied repository.

use annexproxy_tests::run::run;
use annexproxy_tests::serve_p2p::Listener;
use annexproxy_tests::socks::SocksServer;
use annexproxy_tests::{pseudo_random_bytes, TestEnv};

use super::world::*;

const ONION: &str = "annexproxyspecialannexproxyspecialannexproxyspecialannexpro.onion";

#[test]
fn real_client_uses_a_directory_remote_over_tor() {
    let wd = world(&[]);
    let env: &TestEnv = &wd.env;
    let token = env
        .annexproxy(&wd.proxy, &["p2p-token", "add"])
        .ok()
        .stdout
        .trim()
        .to_owned();
    let listener = Listener::start(env, &wd.proxy, &["--listen", "127.0.0.1:0", "--for", "d"]);
    let _socks = SocksServer::on_tor_port(listener.port());
    let client = env.root().join("tor-client");
    env.git(env.root(), &["init", "-q", "tor-client"]).ok();
    env.annex(&client, &["init", "tor-client"]).ok();
    let content = pseudo_random_bytes(4, 200_000);
    env.add_file(&client, "f.bin", &content);
    let line = format!("tor-annex::{ONION}:{}:{token}", listener.port());
    let mut link = env.client_command("sh");
    link.args([
        "-c",
        "echo \"$1\" | git annex p2p --link --name dd",
        "sh",
        &line,
    ]);
    run(link, &client).ok();
    let linked = env
        .git(&client, &["config", "remote.dd.annex-uuid"])
        .ok()
        .stdout;
    assert_eq!(linked.trim(), d_uuid(&wd), "the listener answers as d");
    env.annex(&client, &["copy", "--to", "dd", "f.bin"]).ok();
    listener.wait_idle();
    assert_eq!(stored_files(&wd.store).len(), 1);
    env.annex(&client, &["drop", "--force", "f.bin"]).ok();
    env.annex(&client, &["get", "--from", "dd", "f.bin"]).ok();
    assert_eq!(std::fs::read(client.join("f.bin")).expect("read"), content);
}
