//! A proxy whose nodes are reached at P2P addresses: each node is served
//! by `annexproxy serve-p2p`, one on a unix socket reached through a
//! `git-annex-p2p-unixsock` program (`p2p-annex::unixsock:PATH`), one on
//! loopback TCP behind a SOCKS5 stand-in for tor (`tor-annex::ONION:PORT`).
//! The proxy holds each node's token in its `annex/creds/`, as
//! `git annex p2p --link` would have stored it; `annexproxy updateproxy`
//! learns the nodes' UUIDs from their AUTH answers; the real git-annex
//! client, which reaches only the proxy (over ssh), copies to, gets from
//! and drops from `origin-NODE`.

use std::path::{Path, PathBuf};

use annexproxy_tests::serve_p2p::{write_unixsock_program, Listener};
use annexproxy_tests::socks::SocksServer;
use annexproxy_tests::{ServerKind, TestEnv};

/// The stand-in proxy takes any `.onion` to the tor node's listener.
const ONION: &str = "annexproxytestsnodeannexproxytestsnodeannexproxytestsnode.onion";

/// `git-annex-p2p-unixsock ADDRESS` on the server's PATH (where the
/// proxy's git-annex-shell looks for it).
fn install_unixsock_program(env: &TestEnv) {
    write_unixsock_program(&env.root().join("server-bin"));
}

/// The name git-annex gives the creds file for an address: every byte but
/// ASCII letters and digits as `%XX`.
fn creds_file_name(raw: &str) -> String {
    raw.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Stores `token` in the proxy's creds for the address named `raw`.
fn store_token(proxy: &Path, raw: &str, token: &str) {
    let creds = proxy.join("annex/creds");
    std::fs::create_dir_all(&creds).expect("mkdir creds");
    std::fs::write(creds.join(creds_file_name(raw)), format!("{token}\n")).expect("write creds");
}

/// `p2p-token add [--address A]` in a node: it prints `ADDRESS:TOKEN`, or
/// the token alone when given no address.
fn new_token(env: &TestEnv, node: &Path, address: Option<&str>) -> String {
    let mut args = vec!["p2p-token", "add"];
    args.extend(address.map(|a| ["--address", a]).into_iter().flatten());
    let line = env.annexproxy(node, &args).ok().stdout;
    let token = line.trim().rsplit(':').next().unwrap_or_default();
    assert_eq!(
        token.len(),
        128,
        "a token as git-annex makes them: {line:?}"
    );
    token.to_owned()
}

struct World {
    env: TestEnv,
    proxy: PathBuf,
    /// (name, repository, its listener)
    nodes: Vec<(&'static str, PathBuf, Listener)>,
    client: PathBuf,
    socks: SocksServer,
}

fn world() -> World {
    let env = TestEnv::new(ServerKind::Ours);
    install_unixsock_program(&env);
    let proxy = env.server_bare("proxy.git");
    env.annexproxy(&proxy, &["init", "the proxy"]).ok();

    let sock_node = env.server_bare("socknode.git");
    env.annexproxy(&sock_node, &["init", "node on a socket"])
        .ok();
    let socket = env.root().join("socknode.sock");
    let sock_address = format!("p2p-annex::unixsock:{}", socket.display());
    let token = new_token(&env, &sock_node, Some(&sock_address));
    let sock_listener = Listener::start(
        &env,
        &sock_node,
        &[
            "--socket",
            &socket.to_string_lossy(),
            "--address",
            &sock_address,
        ],
    );
    store_token(&proxy, &format!("unixsock:{}", socket.display()), &token);

    let tor_node = env.server_bare("tornode.git");
    env.annexproxy(&tor_node, &["init", "node over tor"]).ok();
    let token = new_token(&env, &tor_node, None);
    let tor_listener = Listener::start(&env, &tor_node, &["--listen", "127.0.0.1:0"]);
    let socks = SocksServer::start(tor_listener.port());
    let tor_address = format!("tor-annex::{ONION}:{}", tor_listener.port());
    store_token(&proxy, ONION, &token);
    env.oracle(
        &proxy,
        &["config", "annexproxy.torsocks", &socks.addr.to_string()],
    )
    .ok();

    for (name, url) in [("socknode", &sock_address), ("tornode", &tor_address)] {
        env.add_proxied_remote(&proxy, name, url);
    }
    let said = env.annexproxy(&proxy, &["updateproxy"]).ok().stdout;
    let nodes = vec![
        ("socknode", sock_node, sock_listener),
        ("tornode", tor_node, tor_listener),
    ];
    for (name, repo, _) in &nodes {
        assert!(
            said.contains(&format!("Started proxying for {name}\n")),
            "{said}"
        );
        // The UUID came from the node's AUTH answer.
        let cached = env
            .oracle(&proxy, &["config", &format!("remote.{name}.annex-uuid")])
            .ok()
            .stdout;
        assert_eq!(cached.trim(), env.server_uuid(repo), "{name}");
    }
    assert_eq!(
        socks.requests(),
        vec![format!("{ONION}:{}", nodes[1].2.port())],
        "updateproxy asked tor"
    );

    let client = env.clone_client(&proxy, "client");
    env.annex(&client, &["sync"]).ok();
    env.annex(&client, &["info", "origin"])
        .ok()
        .says("origin-socknode")
        .says("origin-tornode");
    World {
        env,
        proxy,
        nodes,
        client,
        socks,
    }
}

/// Real `git annex fsck` in each node, once it has learnt from the proxy's
/// branch what the client knows, and in the proxy.
fn fsck_servers(wd: &World) {
    let proxy = wd.proxy.display().to_string();
    for (_, repo, listener) in &wd.nodes {
        listener.wait_idle();
        wd.env
            .oracle(
                repo,
                &[
                    "fetch",
                    "-q",
                    &proxy,
                    "+refs/heads/synced/git-annex:refs/remotes/proxy/git-annex",
                ],
            )
            .ok();
        wd.env.assert_server_fsck_clean(repo);
    }
    wd.env.assert_server_fsck_clean(&wd.proxy);
}

#[test]
fn real_client_copies_gets_and_drops_through_p2p_nodes() {
    let wd = world();
    let (env, client) = (&wd.env, &wd.client);
    let big = annexproxy_tests::pseudo_random_bytes(11, 2_000_000);
    env.add_file(client, "big.bin", &big);
    env.add_file(client, "small.txt", b"small\n");
    let (kbig, ksmall) = (
        env.key_of(client, "big.bin"),
        env.key_of(client, "small.txt"),
    );

    for (name, repo, listener) in &wd.nodes {
        let remote = format!("origin-{name}");
        env.annex(client, &["copy", "--to", &remote, "big.bin", "small.txt"])
            .ok();
        listener.wait_idle();
        assert!(env.server_has_content(repo, &kbig), "{name} holds big.bin");
        assert!(
            env.server_log_says_present(repo, &kbig),
            "{name} logged big.bin itself"
        );
        assert!(
            !env.server_has_content(&wd.proxy, &kbig),
            "the proxy stores nothing"
        );
    }

    // The client's only copy goes; each node's copy is proved by locking
    // it there, through the proxy.
    env.annex(client, &["drop", "big.bin"]).ok();
    env.annex(client, &["get", "--from", "origin-tornode", "big.bin"])
        .ok();
    assert_eq!(
        std::fs::read(client.join("big.bin")).expect("read back"),
        big
    );
    env.annex(client, &["drop", "big.bin"]).ok();
    env.annex(client, &["get", "--from", "origin-socknode", "big.bin"])
        .ok();
    assert_eq!(
        std::fs::read(client.join("big.bin")).expect("read back"),
        big
    );

    for (name, repo, listener) in &wd.nodes {
        env.annex(
            client,
            &["drop", "--from", &format!("origin-{name}"), "small.txt"],
        )
        .ok();
        listener.wait_idle();
        assert!(
            !env.server_has_content(repo, &ksmall),
            "{name} dropped small.txt"
        );
    }
    env.annex(client, &["sync"]).ok();
    let whereis = env.annex(client, &["whereis", "big.bin"]).ok().stdout;
    assert!(
        whereis.contains("origin-socknode") && whereis.contains("origin-tornode"),
        "{whereis}"
    );
    assert!(
        wd.socks.requests().len() > 1,
        "the tor node was reached through the SOCKS proxy"
    );
    fsck_servers(&wd);
}

#[test]
fn a_refused_token_reaches_the_client_as_an_error() {
    let wd = world();
    let (env, client) = (&wd.env, &wd.client);
    env.add_file(client, "a.txt", b"alpha\n");
    store_token(&wd.proxy, ONION, "0123wrong");
    let out = env.annex(client, &["copy", "--to", "origin-tornode", "a.txt"]);
    assert!(!out.success(), "copy should fail: {out}");
    assert!(out.stderr.contains("AUTH-FAILURE"), "says why: {out}");
    // The other node is unaffected.
    env.annex(client, &["copy", "--to", "origin-socknode", "a.txt"])
        .ok();
}
