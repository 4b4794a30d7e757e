//! A proxy repository with two nodes (spec §6): the client, which only
//! has ssh access to the proxy, copies to, gets from, drops from, moves
//! and fscks on `origin-node1` / `origin-node2` through it.
//!
//! The nodes and the proxy are set up either with our `annexproxy init` /
//! `annexproxy updateproxy` (no git-annex on the server) or with the real
//! git-annex; `flow_real` is the reference, `compare_flow` requires our
//! server to give the client the same observations.

use std::path::{Path, PathBuf};

use annexproxy_tests::observe::{action_results, fsck_from, whereis, whereis_uuids};
use annexproxy_tests::{ServerKind, TestEnv, Transcript, Whereis};

/// Who set the server repositories up.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Setup {
    /// `annexproxy init` / `annexproxy updateproxy`.
    Ours,
    /// `git annex init` / `git annex updateproxy`, run on the server.
    Real,
}

struct World {
    env: TestEnv,
    proxy: PathBuf,
    nodes: Vec<PathBuf>,
    client: PathBuf,
}

use annexproxy_tests::observe::{expected_whereis as w, worktree_bytes as read};

fn init(env: &TestEnv, setup: Setup, dir: &Path, desc: &str) {
    match setup {
        Setup::Ours => {
            env.annexproxy(dir, &["init", desc])
                .ok()
                .says(&format!("init {desc} ok"));
        }
        Setup::Real => env.server_annex_init(dir, desc),
    }
}

fn updateproxy(env: &TestEnv, setup: Setup, proxy: &Path) -> String {
    match setup {
        Setup::Ours => env.annexproxy(proxy, &["updateproxy"]).ok().stdout,
        Setup::Real => env.oracle_annex(proxy, &["updateproxy"]).ok().stdout,
    }
}

/// Nodes `node1`, `node2` (bare), a proxy for both, `tune` run on the
/// proxy before updateproxy, and a client that cloned the proxy and synced.
fn world(kind: ServerKind, setup: Setup, tune: impl Fn(&TestEnv, &Path)) -> World {
    let env = TestEnv::new(kind);
    let mut nodes = Vec::new();
    for (name, desc) in [("node1", "first node"), ("node2", "second node")] {
        let dir = env.server_bare(&format!("{name}.git"));
        init(&env, setup, &dir, desc);
        nodes.push(dir);
    }
    let proxy = env.server_bare("proxy.git");
    init(&env, setup, &proxy, "the proxy");
    for (i, node) in nodes.iter().enumerate() {
        env.add_proxied_remote(
            &proxy,
            &format!("node{}", i + 1),
            &node.display().to_string(),
        );
    }
    tune(&env, &proxy);
    let said = updateproxy(&env, setup, &proxy);
    for name in ["node1", "node2"] {
        assert!(
            said.contains(&format!("Started proxying for {name}\n")),
            "{said}"
        );
    }
    let client = env.clone_client(&proxy, "client");
    env.annex(&client, &["sync"]).ok();
    // The client read proxy.log from the proxy's branch and made remotes
    // for both nodes.
    env.annex(&client, &["info", "origin"])
        .ok()
        .says("origin-node1")
        .says("origin-node2");
    World {
        env,
        proxy,
        nodes,
        client,
    }
}

/// What each node really holds, by file: `origin-nodeN` for each node the
/// real git-annex finds the content in.
fn node_contents(wd: &World, files: &[&str]) -> Whereis {
    files
        .iter()
        .map(|f| {
            let key = wd.env.key_of(&wd.client, f);
            let held = wd
                .nodes
                .iter()
                .enumerate()
                .filter(|(_, n)| wd.env.server_has_content(n, &key))
                .map(|(i, _)| format!("origin-node{}", i + 1))
                .collect();
            (f.to_string(), held)
        })
        .collect()
}

/// The client's whereis restricted to the proxied remotes: `origin-nodeN`
/// alone when the client knows no description, else `desc [origin-nodeN]`.
fn client_node_view(wd: &World) -> Whereis {
    whereis(&wd.env, &wd.client)
        .into_iter()
        .map(|(f, locs)| {
            let nodes = locs
                .iter()
                .filter_map(|l| {
                    if l.starts_with("origin-node") {
                        return Some(l.clone());
                    }
                    let at = l.rfind("[origin-node")?;
                    Some(l[at + 1..l.len() - 1].to_string())
                })
                .collect();
            (f, nodes)
        })
        .collect()
}

/// Real `git annex fsck` in the proxy and in every node still there. A
/// node knows nothing of the client's copies, so it first learns them
/// from the branch the client synced to the proxy; then its fsck checks
/// that its own location log matches its content.
fn fsck_servers(wd: &World) {
    let env = &wd.env;
    let proxy = wd.proxy.display().to_string();
    for n in wd.nodes.iter().filter(|n| n.exists()) {
        env.oracle(
            n,
            &[
                "fetch",
                "-q",
                &proxy,
                "+refs/heads/synced/git-annex:refs/remotes/proxy/git-annex",
            ],
        )
        .ok();
        env.assert_server_fsck_clean(n);
    }
    env.assert_server_fsck_clean(&wd.proxy);
}

fn flow(kind: ServerKind, setup: Setup) -> Transcript {
    let mut t = Transcript::default();
    let wd = world(kind, setup, |_, _| {});
    let (env, client) = (&wd.env, &wd.client);
    for (f, c) in [
        ("a.txt", &b"alpha\n"[..]),
        ("b.txt", b"bravo\n"),
        ("c.txt", b"charlie\n"),
        ("m.bin", b"moving content\n"),
    ] {
        env.add_file(client, f, c);
    }
    let out = env
        .annex(
            client,
            &["copy", "--to", "origin-node1", "--json", "a.txt", "b.txt"],
        )
        .ok();
    t.note("copy --to origin-node1", action_results(&out.stdout));
    env.annex(client, &["copy", "--to", "origin-node2", "b.txt", "c.txt"])
        .ok();
    let kb = env.key_of(client, "b.txt");
    assert!(env.server_has_content(&wd.nodes[0], &kb));
    assert!(env.server_has_content(&wd.nodes[1], &kb));
    assert!(
        !env.server_has_content(&wd.proxy, &kb),
        "the proxy itself stores nothing"
    );
    // The proxy recorded where the content went in its own branch.
    let peek = env.oracle_peek(&wd.proxy, &["whereis", "--json", "--key", &kb]);
    let seen = whereis_uuids(&peek.stdout);
    for n in &wd.nodes {
        let u = env.server_uuid(n);
        assert!(
            seen.contains(&u),
            "proxy's branch should list {u} for {kb}: {peek}"
        );
    }

    // Dropping the only local copy: the client proves node2's copy by
    // locking it there, through the proxy.
    let out = env
        .annex(
            client,
            &["drop", "c.txt", "--debug", "--debugfilter=P2P.IO"],
        )
        .ok();
    let kc = env.key_of(client, "c.txt");
    assert!(
        out.stderr.contains(&format!("P2P > LOCKCONTENT {kc}")),
        "{out}"
    );
    assert!(read(client, "c.txt").is_empty());
    env.annex(client, &["get", "--from", "origin-node2", "c.txt"])
        .ok();
    assert_eq!(read(client, "c.txt"), b"charlie\n");

    env.annex(client, &["drop", "--from", "origin-node1", "a.txt"])
        .ok();
    let ka = env.key_of(client, "a.txt");
    assert!(!env.server_has_content(&wd.nodes[0], &ka));
    // The proxy's branch has the removal once the session is over (ours
    // puts it into the session's one commit, not a journal file).
    let peek = env.oracle_peek(&wd.proxy, &["whereis", "--json", "--key", &ka]);
    let node1 = env.server_uuid(&wd.nodes[0]);
    assert!(
        !whereis_uuids(&peek.stdout).contains(&node1),
        "proxy's branch should no longer list {node1} for {ka}: {peek}"
    );
    if kind == ServerKind::Ours {
        let journal = wd.proxy.join("annex/journal");
        let left: Vec<_> = std::fs::read_dir(&journal)
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "journal files left in the proxy: {left:?}");
    }

    env.annex(client, &["move", "--to", "origin-node2", "m.bin"])
        .ok();
    assert!(read(client, "m.bin").is_empty());
    env.annex(client, &["move", "--from", "origin-node2", "m.bin"])
        .ok();
    assert_eq!(read(client, "m.bin"), b"moving content\n");
    env.annex(client, &["move", "--to", "origin-node1", "m.bin"])
        .ok();

    let (ok, results) = fsck_from(env, client, "origin-node1");
    assert!(ok, "fsck --from origin-node1: {results:?}");
    t.note("fsck --from origin-node1", &results);

    env.annex(client, &["sync"]).ok();
    let files = ["a.txt", "b.txt", "c.txt", "m.bin"];
    let truth = node_contents(&wd, &files);
    assert_eq!(
        truth,
        w(&[
            ("a.txt", &[]),
            ("b.txt", &["origin-node1", "origin-node2"]),
            ("c.txt", &["origin-node2"]),
            ("m.bin", &["origin-node1"]),
        ])
    );
    assert_eq!(
        client_node_view(&wd),
        truth,
        "client's whereis vs the nodes"
    );
    t.note("whereis", whereis(env, client));
    fsck_servers(&wd);
    t
}

#[test]
fn flow_real() {
    flow(ServerKind::Real, Setup::Real);
}

#[test]
fn flow_ours() {
    flow(ServerKind::Ours, Setup::Ours);
}

/// A proxy configured by the real `git annex updateproxy`, served by ours.
#[test]
fn flow_ours_configured_by_real_git_annex() {
    flow(ServerKind::Ours, Setup::Real);
}

#[test]
fn compare_flow() {
    flow(ServerKind::Real, Setup::Real).assert_same_as(&flow(ServerKind::Ours, Setup::Ours));
}

/// node2 is served by the real git-annex-shell behind our proxy.
#[test]
fn real_node_shell_behind_our_proxy() {
    let wd = world(ServerKind::Ours, Setup::Ours, |env, proxy| {
        let shell = env.real_annex_shell();
        env.oracle(
            proxy,
            &[
                "config",
                "remote.node2.annex-shell",
                &shell.display().to_string(),
            ],
        )
        .ok();
    });
    let (env, client) = (&wd.env, &wd.client);
    env.add_file(client, "r.txt", b"to the real node\n");
    env.annex(client, &["copy", "--to", "origin-node2", "r.txt"])
        .ok();
    let k = env.key_of(client, "r.txt");
    assert!(env.server_has_content(&wd.nodes[1], &k));
    assert!(
        env.server_log_says_present(&wd.nodes[1], &k),
        "the real node logs itself"
    );
    env.annex(client, &["drop", "r.txt"]).ok();
    env.annex(client, &["get", "--from", "origin-node2", "r.txt"])
        .ok();
    assert_eq!(read(client, "r.txt"), b"to the real node\n");
    let (ok, results) = fsck_from(env, client, "origin-node2");
    assert!(ok, "{results:?}");
    env.annex(client, &["drop", "--from", "origin-node2", "r.txt"])
        .ok();
    assert!(!env.server_has_content(&wd.nodes[1], &k));
    env.annex(client, &["sync"]).ok();
    assert_eq!(client_node_view(&wd), node_contents(&wd, &["r.txt"]));
    fsck_servers(&wd);
}

/// A node whose repository is gone: the client's copy fails naming it,
/// the other node keeps working, and nothing false is recorded.
#[test]
fn gone_node_fails_alone() {
    let wd = world(ServerKind::Ours, Setup::Ours, |_, _| {});
    let (env, client) = (&wd.env, &wd.client);
    env.add_file(client, "g.txt", b"nowhere to go\n");
    std::fs::remove_dir_all(&wd.nodes[0]).expect("remove node1");
    let out = env
        .annex(client, &["copy", "--to", "origin-node1", "g.txt"])
        .fails();
    out.says("node1: no repository at");
    env.annex(client, &["copy", "--to", "origin-node2", "g.txt"])
        .ok();
    let k = env.key_of(client, "g.txt");
    assert!(env.server_has_content(&wd.nodes[1], &k));
    env.annex(client, &["sync"]).ok();
    let seen = whereis(env, client);
    let g = &seen["g.txt"];
    assert!(g.iter().any(|l| l.contains("origin-node2")), "{seen:?}");
    assert!(!g.iter().any(|l| l.contains("origin-node1")), "{seen:?}");
    let peek = env.oracle_peek(&wd.proxy, &["whereis", "--json", "--key", &k]);
    let recorded = whereis_uuids(&peek.stdout);
    assert!(recorded.contains(&env.server_uuid(&wd.nodes[1])), "{peek}");
    let node1 = env
        .oracle(&wd.proxy, &["config", "remote.node1.annex-uuid"])
        .ok();
    assert!(
        !recorded.contains(&node1.stdout.trim().to_string()),
        "{peek}"
    );
    fsck_servers(&wd);
}

/// node2 reached over ssh (`localhost:/abs/node2.git`), through the
/// stand-in, with its `annex-ssh-options` handed to ssh.
#[test]
fn node_over_ssh() {
    let wd = world(ServerKind::Ours, Setup::Ours, |env, proxy| {
        env.server_can_ssh();
        let url = env.url(&env.srv.join("node2.git"));
        env.oracle(proxy, &["config", "remote.node2.url", &url])
            .ok();
        env.oracle(
            proxy,
            &[
                "config",
                "remote.node2.annex-ssh-options",
                "-o BatchMode=yes",
            ],
        )
        .ok();
    });
    let (env, client) = (&wd.env, &wd.client);
    env.add_file(client, "s.txt", b"over ssh\n");
    let mark = env.ssh_mark();
    env.annex(client, &["copy", "--to", "origin-node2", "s.txt"])
        .ok();
    let node2 = wd.nodes[1].display().to_string();
    let hop = env
        .ssh_calls_since(mark)
        .into_iter()
        .find(|c| c.command.contains(&format!("'p2pstdio' '{node2}'")))
        .unwrap_or_else(|| panic!("no ssh session to node2:\n{}", env.ssh_log_text()));
    assert_eq!(hop.exit, Some(0), "{hop:?}");
    assert!(
        hop.command
            .ends_with(&format!("--uuid {}", env.server_uuid(&wd.nodes[1]))),
        "{hop:?}"
    );
    node2_holds_and_gives_back(&wd, "s.txt", b"over ssh\n");
}

/// `file` (with `content`), copied to node2, is there; dropped, it comes
/// back from node2, and every record agrees.
fn node2_holds_and_gives_back(wd: &World, file: &str, content: &[u8]) {
    let (env, client) = (&wd.env, &wd.client);
    let k = env.key_of(client, file);
    assert!(env.server_has_content(&wd.nodes[1], &k));
    env.annex(client, &["drop", file]).ok();
    env.annex(client, &["get", "--from", "origin-node2", file])
        .ok();
    assert_eq!(read(client, file), content);
    env.annex(client, &["sync"]).ok();
    assert_eq!(client_node_view(wd), node_contents(wd, &[file]));
    fsck_servers(wd);
}

/// node2 configured as `file://localhost/abs/node2.git`, a URL git itself
/// reads as that path: the proxy reads remote URLs with the same parser
/// as the remote helper, which once took `localhost/abs/...` for a path
/// relative to the proxy and left the node unreachable.
#[test]
fn node_at_a_file_localhost_url() {
    let wd = world(ServerKind::Ours, Setup::Ours, |env, proxy| {
        let url = format!("file://localhost{}", env.srv.join("node2.git").display());
        env.oracle(proxy, &["config", "remote.node2.url", &url])
            .ok();
    });
    let (env, client) = (&wd.env, &wd.client);
    env.add_file(client, "f.txt", b"by file URL\n");
    env.annex(client, &["copy", "--to", "origin-node2", "f.txt"])
        .ok();
    node2_holds_and_gives_back(&wd, "f.txt", b"by file URL\n");
}

/// A client asking for a UUID the proxy does not proxy for gets
/// git-annex's refusal; configlist cannot be proxied.
#[test]
fn refusals_match_git_annex() {
    fn refusals(kind: ServerKind) -> Vec<String> {
        let wd = world(
            kind,
            if kind == ServerKind::Real {
                Setup::Real
            } else {
                Setup::Ours
            },
            |_, _| {},
        );
        let env = &wd.env;
        let n1 = env.server_uuid(&wd.nodes[0]);
        let proxy = wd.proxy.display().to_string();
        let me = env.server_uuid(&wd.proxy);
        // node1 listed in proxy.log but no longer allowed by git config.
        env.oracle(
            &wd.proxy,
            &["config", "--unset", "remote.node1.annex-proxy"],
        )
        .ok();
        let cases = [
            format!("git-annex-shell configlist '{proxy}' --uuid {}", env.server_uuid(&wd.nodes[1])),
            format!("git-annex-shell p2pstdio '{proxy}' {me} --uuid {n1}"),
            format!("git-annex-shell p2pstdio '{proxy}' {me} --uuid 0b0b0b0b-1111-4222-8333-444444444444"),
        ];
        cases
            .iter()
            .map(|c| {
                let mut cmd = env.client_command("ssh");
                cmd.args(["localhost", c]);
                let out = annexproxy_tests::run::run(cmd, &wd.client);
                annexproxy_tests::observe::normalise_uuids(&env.unroot(out.stderr.trim()))
            })
            .collect()
    }
    let real = refusals(ServerKind::Real);
    let ours = refusals(ServerKind::Ours);
    assert_eq!(real[0], "git-annex-shell: Cannot proxy configlist command.");
    assert_eq!(ours, real);
}

/// A file bigger than any buffer on the way streams through the proxy in
/// both directions, intact.
#[test]
fn large_file_streams_through() {
    let wd = world(ServerKind::Ours, Setup::Ours, |_, _| {});
    let (env, client) = (&wd.env, &wd.client);
    let content = annexproxy_tests::pseudo_random_bytes(7, 48 << 20);
    env.add_file(client, "big.bin", &content);
    env.annex(client, &["copy", "--to", "origin-node1", "big.bin"])
        .ok();
    env.annex(client, &["drop", "big.bin"]).ok();
    env.annex(client, &["get", "--from", "origin-node1", "big.bin"])
        .ok();
    assert!(
        read(client, "big.bin") == content,
        "big.bin changed on its way"
    );
    let (ok, results) = fsck_from(env, client, "origin-node1");
    assert!(ok, "{results:?}");
}

/// A protocol-0 client (no VERSION, nothing sent after a body until the
/// answer) uploads a body large enough to be spliced on by the proxy: the
/// answer comes without another byte from the client, and the node ends
/// up with the content. (The read-ahead race behind that rule is pinned
/// deterministically in shared's `connection/kernel_tests.rs`.)
#[test]
fn protocol_zero_put_through_the_proxy() {
    use std::io::{BufRead, BufReader, Write};
    use std::process::Stdio;
    use std::time::Duration;

    let env = TestEnv::new(ServerKind::Ours);
    let (proxy, nodes) = env.ours_proxy_with_nodes(&[("node1", "first node")]);
    env.annexproxy(&proxy, &["updateproxy"]).ok();
    let node_uuid = env.server_uuid(&nodes[0]);
    let content = annexproxy_tests::pseudo_random_bytes(11, 100_000);
    let key = annexproxy_tests::p2p_driver::sha256e_key(&content, ".bin");
    let mut shell = env
        .server_command("git-annex-shell")
        .args(["p2pstdio", &proxy.display().to_string()])
        .args([
            annexproxy_tests::p2p_driver::CLIENT_UUID,
            "--uuid",
            &node_uuid,
        ])
        .current_dir(&proxy)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start our git-annex-shell");
    let mut to_shell = shell.stdin.take().expect("stdin");
    let from_shell = BufReader::new(shell.stdout.take().expect("stdout"));
    let (lines_tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in from_shell.lines() {
            if lines_tx.send(line.expect("read")).is_err() {
                break;
            }
        }
    });
    let next = || {
        lines
            .recv_timeout(Duration::from_secs(20))
            .expect("the proxy did not answer")
    };
    assert_eq!(next(), format!("AUTH-SUCCESS {node_uuid}"));
    writeln!(to_shell, "PUT big.bin {key}").expect("send");
    assert_eq!(next(), "PUT-FROM 0");
    let mut data = format!("DATA {}\n", content.len()).into_bytes();
    data.extend_from_slice(&content);
    to_shell.write_all(&data).expect("send");
    to_shell.flush().expect("send");
    // Protocol 0 sends no VALID: the client waits, its input left open.
    assert_eq!(next(), "SUCCESS");
    drop(to_shell);
    assert!(shell.wait().expect("wait").success());
    assert!(env.server_has_content(&nodes[0], &key));
    env.assert_server_fsck_clean(&nodes[0]);
}
