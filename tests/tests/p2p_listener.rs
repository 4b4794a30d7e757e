//! `annexproxy serve-p2p`, reached at P2P addresses: over a SOCKS5 stand-in
//! for tor (`tor-annex::`) and through a `git-annex-p2p-NET` program
//! (`p2p-annex::`), by our remote helper from plain git, by the real
//! git-remote-tor-annex, and by the real git-annex moving content.

use std::path::{Path, PathBuf};

use annexproxy_tests::run::run;
use annexproxy_tests::serve_p2p::{
    add_token, real_tor_helper_dir, with_path_first, write_unixsock_program, Listener,
};
use annexproxy_tests::socks::SocksServer;
use annexproxy_tests::{Out, ServerKind, TestEnv};

/// A v3-sized onion name; the stand-in proxy takes any `.onion` to us.
const ONION: &str = "annexproxytestsannexproxytestsannexproxytestsannexproxy.onion";

/// A bare server repository with one commit on `main`, initialised by
/// `annexproxy init`, accepting one new token (returned).
fn setup(env: &TestEnv) -> (PathBuf, String) {
    let server = env.server_bare("server.git");
    let seed = env.srv.join("seed");
    env.oracle(&env.srv, &["init", "-q", &seed.to_string_lossy()])
        .ok();
    std::fs::write(seed.join("plain.txt"), "plain content\n").expect("write");
    env.oracle(&seed, &["add", "plain.txt"]).ok();
    env.oracle(&seed, &["commit", "-q", "-m", "seed"]).ok();
    env.oracle(&seed, &["push", "-q", &server.to_string_lossy(), "main"])
        .ok();
    env.annexproxy(&server, &["init", "server"]).ok();
    let token = add_token(env, &server);
    (server, token)
}

fn rev(env: &TestEnv, repo: &Path, what: &str) -> String {
    env.oracle(repo, &["rev-parse", "--verify", what])
        .ok()
        .stdout
        .trim()
        .to_owned()
}

fn helper_lines(out: &Out) -> Vec<&str> {
    out.stderr
        .lines()
        .filter(|l| l.starts_with("git-remote-annexproxy:"))
        .collect()
}

fn tor_url(port: u16) -> String {
    format!("tor-annex::{ONION}:{port}")
}

/// A server listening on loopback TCP behind a SOCKS stand-in on a free
/// port (for our helper, which can be told where it is).
struct Tor {
    env: TestEnv,
    server: PathBuf,
    token: String,
    listener: Listener,
    socks: SocksServer,
}

impl Tor {
    fn start() -> Tor {
        Tor::with(SocksServer::start)
    }

    /// With the stand-in where the real git-annex looks for tor.
    fn on_tor_port() -> Tor {
        Tor::with(SocksServer::on_tor_port)
    }

    fn with(socks: impl FnOnce(u16) -> SocksServer) -> Tor {
        let env = TestEnv::new(ServerKind::Ours);
        let (server, token) = setup(&env);
        let listener = Listener::start(&env, &server, &["--listen", "127.0.0.1:0"]);
        let socks = socks(listener.port());
        Tor {
            env,
            server,
            token,
            listener,
            socks,
        }
    }
}

#[test]
fn our_helper_clones_and_pushes_over_tor() {
    let Tor {
        env,
        server,
        token,
        listener,
        socks,
    } = Tor::start();
    let url = format!("annexproxy::{}", tor_url(listener.port()));

    // The proxy from `git -c`, the token from the environment.
    let mut clone = env.plain_client_command("git");
    clone.env("GIT_ANNEX_P2P_AUTHTOKEN", &token).args([
        "-c",
        &format!("annexproxy.torsocks={}", socks.addr),
        "clone",
        "-q",
        &url,
        "plain",
    ]);
    run(clone, env.root()).ok();
    let plain = env.root().join("plain");
    assert_eq!(
        rev(&env, &plain, "HEAD"),
        rev(&env, &server, "refs/heads/main")
    );
    assert_eq!(
        socks.requests(),
        vec![format!("{ONION}:{}", listener.port())],
        "CONNECT by onion name"
    );

    // The proxy from the repository's config, the token from its creds.
    env.plain_git(
        &plain,
        &["config", "annexproxy.torsocks", &socks.addr.to_string()],
    )
    .ok();
    let creds = plain.join(".git/annex/creds");
    std::fs::create_dir_all(&creds).expect("mkdir creds");
    std::fs::write(creds.join(ONION.replace('.', "%2E")), format!("{token}\n"))
        .expect("write creds");
    std::fs::write(plain.join("new.txt"), "pushed over tor\n").expect("write");
    env.plain_git(&plain, &["add", "new.txt"]).ok();
    env.plain_git(&plain, &["commit", "-q", "-m", "over tor"])
        .ok();
    env.plain_git(&plain, &["push", "-q", "origin", "main"])
        .ok();
    listener.wait_idle();
    assert_eq!(
        rev(&env, &server, "refs/heads/main"),
        rev(&env, &plain, "HEAD")
    );
    let tree = env
        .oracle(&server, &["ls-tree", "--name-only", "main"])
        .ok()
        .stdout;
    assert!(tree.lines().any(|l| l == "new.txt"), "{tree}");
}

#[test]
fn refusals_are_one_line_and_fail() {
    let Tor {
        env,
        server: _,
        token,
        listener,
        socks,
    } = Tor::start();
    let url = format!("annexproxy::{}", tor_url(listener.port()));
    let attempt = |name: &str, url: &str, vars: &[(&str, String)]| {
        let mut cmd = env.plain_client_command("git");
        cmd.env("ANNEXPROXY_TOR_SOCKS", socks.addr.to_string());
        for (k, v) in vars {
            cmd.env(k, v);
        }
        cmd.args(["clone", "-q", url, name]);
        let out = run(cmd, env.root()).fails();
        let lines: Vec<String> = helper_lines(&out).into_iter().map(str::to_owned).collect();
        assert_eq!(lines.len(), 1, "one line from the helper:\n{out}");
        lines[0].clone()
    };

    let wrong = attempt(
        "a",
        &url,
        &[("GIT_ANNEX_P2P_AUTHTOKEN", "0123wrong".into())],
    );
    assert!(
        wrong.ends_with("refused our auth token (AUTH-FAILURE)"),
        "{wrong}"
    );

    let none = attempt("b", &url, &[]);
    assert!(none.contains("no auth token for"), "{none}");

    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead_addr = dead.local_addr().expect("addr").to_string();
    drop(dead);
    let unreachable = attempt(
        "c",
        &url,
        &[
            ("GIT_ANNEX_P2P_AUTHTOKEN", token.clone()),
            ("ANNEXPROXY_TOR_SOCKS", dead_addr.clone()),
        ],
    );
    assert!(
        unreachable.contains(&format!("cannot reach the tor SOCKS proxy at {dead_addr}")),
        "{unreachable}"
    );

    let bad = attempt("d", &format!("annexproxy::tor-annex::{ONION}"), &[]);
    assert!(
        bad.contains("onion address must include a port number"),
        "{bad}"
    );
}

/// A bin dir holding the real git-annex as `git-remote-tor-annex`, for the
/// front of a client's PATH.
#[test]
fn real_git_remote_tor_annex_clones_from_our_listener() {
    let Tor {
        env,
        server,
        token,
        listener,
        socks,
    } = Tor::on_tor_port();
    let bin = real_tor_helper_dir(&env);
    let mut clone = env.client_command("git");
    with_path_first(&mut clone, &bin);
    clone.env("GIT_ANNEX_P2P_AUTHTOKEN", &token).args([
        "clone",
        "-q",
        &tor_url(listener.port()),
        "viator",
    ]);
    run(clone, env.root()).ok();
    let cloned = env.root().join("viator");
    assert_eq!(
        rev(&env, &cloned, "HEAD"),
        rev(&env, &server, "refs/heads/main")
    );
    assert!(!socks.requests().is_empty());
}

#[test]
fn real_git_annex_copies_and_gets_over_tor() {
    let Tor {
        env,
        server,
        token,
        listener,
        socks: _socks,
    } = Tor::on_tor_port();
    let client = env.root().join("client");
    env.git(env.root(), &["init", "-q", "client"]).ok();
    env.annex(&client, &["init", "client"]).ok();
    env.add_file(
        &client,
        "big.bin",
        &annexproxy_tests::pseudo_random_bytes(7, 3_000_000),
    );
    let key = env.key_of(&client, "big.bin");

    // What a user does with the line `p2p-token add` printed.
    let line = format!("{}:{token}", tor_url(listener.port()));
    let mut link = env.client_command("sh");
    link.args([
        "-c",
        "echo \"$1\" | git annex p2p --link --name peer",
        "sh",
        &line,
    ]);
    run(link, &client).ok();
    let uuid = env
        .git(&client, &["config", "remote.peer.annex-uuid"])
        .ok()
        .stdout
        .trim()
        .to_owned();
    assert_eq!(uuid, env.server_uuid(&server));
    // Where git-annex keeps the token is where our helper looks for it.
    let stored = std::fs::read_to_string(
        client
            .join(".git/annex/creds")
            .join(ONION.replace('.', "%2E")),
    );
    assert_eq!(
        stored
            .expect("creds file named as our helper names it")
            .lines()
            .next(),
        Some(token.as_str())
    );

    env.annex(&client, &["copy", "--to", "peer", "big.bin"])
        .ok();
    listener.wait_idle();
    assert!(env.server_has_content(&server, &key));
    assert!(env.server_log_says_present(&server, &key));

    env.annex(&client, &["drop", "big.bin"]).ok();
    env.annex(&client, &["get", "--from", "peer", "big.bin"])
        .ok();
    listener.wait_idle();
    let got = std::fs::read(client.join("big.bin")).expect("read back");
    assert_eq!(got, annexproxy_tests::pseudo_random_bytes(7, 3_000_000));
    env.assert_server_fsck_clean(&server);
}

/// A directory holding `git-annex-p2p-unixsock`, for the client's PATH.
fn unixsock_program(env: &TestEnv) -> PathBuf {
    let bin = env.root().join("p2p-net-bin");
    write_unixsock_program(&bin);
    bin
}

#[test]
fn our_helper_clones_over_a_p2p_annex_network() {
    let env = TestEnv::new(ServerKind::Ours);
    let (server, _tor_token) = setup(&env);
    let socket = env.root().join("p2p.sock");
    let address = format!("p2p-annex::unixsock:{}", socket.display());
    // A token for this network only; the listener for it takes no other.
    let line = env
        .annexproxy(&server, &["p2p-token", "add", "--address", &address])
        .ok()
        .stdout;
    let (_, token) = line.trim().rsplit_once(':').expect("ADDRESS:TOKEN");
    let _listener = Listener::start(
        &env,
        &server,
        &["--socket", &socket.to_string_lossy(), "--address", &address],
    );
    let bin = unixsock_program(&env);

    let mut clone = env.plain_client_command("git");
    with_path_first(&mut clone, &bin);
    clone.env("GIT_ANNEX_P2P_AUTHTOKEN", token).args([
        "clone",
        "-q",
        &format!("annexproxy::{address}"),
        "viap2p",
    ]);
    run(clone, env.root()).ok();
    assert_eq!(
        rev(&env, &env.root().join("viap2p"), "HEAD"),
        rev(&env, &server, "refs/heads/main")
    );

    let mut refused = env.plain_client_command("git");
    with_path_first(&mut refused, &bin);
    refused.env("GIT_ANNEX_P2P_AUTHTOKEN", &_tor_token).args([
        "clone",
        "-q",
        &format!("annexproxy::{address}"),
        "no",
    ]);
    let out = run(refused, env.root()).fails();
    assert_eq!(helper_lines(&out).len(), 1, "{out}");
    assert!(out.stderr.contains("AUTH-FAILURE"), "{out}");
}
