//! Plain git (no git-annex on the client) to repositories *behind* an
//! annexproxy server: `annexproxy::URL#NAME` names a proxied remote or a
//! cluster, resolved with the server's configlist (whose extra lines the
//! real git-annex client must not mind), and `--list`/`--add` show and add
//! what a server offers.
//!
//! Servers are set up with our `annexproxy` CLI; nodes are local paths of
//! the proxy, the client reaches the proxy over the ssh stand-in or a
//! local path.

use std::path::{Path, PathBuf};

use annexproxy_tests::{Out, ServerKind, TestEnv};

/// A proxy with proxied remotes `node1`, `node2` (bare, `annex-proxy`).
struct Proxy {
    env: TestEnv,
    proxy: PathBuf,
    nodes: Vec<PathBuf>,
}

fn proxy_world() -> Proxy {
    let env = TestEnv::new(ServerKind::Ours);
    let (proxy, nodes) = env.ours_proxy_with_nodes(&[("node1", "node1"), ("node2", "node2")]);
    env.annexproxy(&proxy, &["updateproxy"])
        .ok()
        .says("Started proxying for node1");
    Proxy { env, proxy, nodes }
}

/// A gateway with cluster `mycl` over `n` bare nodes `nodeN`.
fn cluster_world(n: usize) -> Proxy {
    let env = TestEnv::new(ServerKind::Ours);
    let gateway = env.server_bare("gateway.git");
    env.annexproxy(&gateway, &["init", "gateway"]).ok();
    env.annexproxy(&gateway, &["initcluster", "mycl"]).ok();
    let mut nodes = Vec::new();
    for i in 1..=n {
        let name = format!("node{i}");
        let dir = env.server_bare(&format!("{name}.git"));
        env.annexproxy(&dir, &["init", &name]).ok();
        env.oracle(
            &gateway,
            &["remote", "add", &name, &dir.display().to_string()],
        )
        .ok();
        env.oracle(
            &gateway,
            &[
                "config",
                &format!("remote.{name}.annex-cluster-node"),
                "mycl",
            ],
        )
        .ok();
        nodes.push(dir);
    }
    env.annexproxy(&gateway, &["updatecluster"])
        .ok()
        .says("Added node node1 to cluster: mycl");
    Proxy {
        env,
        proxy: gateway,
        nodes,
    }
}

/// `git --git-dir REPO rev-parse --verify WHAT`, on the server side;
/// empty when there is no such ref.
fn rev_in(env: &TestEnv, repo: &Path, what: &str) -> String {
    let git_dir = repo.display().to_string();
    env.oracle(
        env.root(),
        &["--git-dir", &git_dir, "rev-parse", "-q", "--verify", what],
    )
    .stdout
    .trim()
    .to_owned()
}

/// A plain repository with one commit on `main`.
fn plain_repo(env: &TestEnv, name: &str, file: &str) -> PathBuf {
    let dir = env.root().join(name);
    env.plain_git(env.root(), &["init", "-q", "-b", "main", name])
        .ok();
    plain_commit(env, &dir, file);
    dir
}

fn plain_commit(env: &TestEnv, repo: &Path, file: &str) {
    std::fs::write(repo.join(file), format!("{file}\n")).expect("write work tree file");
    env.plain_git(repo, &["add", file]).ok();
    env.plain_git(repo, &["commit", "-q", "-m", file]).ok();
}

fn head(env: &TestEnv, repo: &Path) -> String {
    let git_dir = repo.join(".git").display().to_string();
    rev_in(env, Path::new(&git_dir), "HEAD")
}

/// Lines our helper wrote to stderr.
fn helper_lines(out: &Out) -> Vec<&str> {
    lines_of(out, "git-remote-annexproxy:")
}

/// Lines the server's git-annex-shell wrote to stderr.
fn shell_lines(out: &Out) -> Vec<&str> {
    lines_of(out, "git-annex-shell:")
}

fn lines_of<'a>(out: &'a Out, prefix: &str) -> Vec<&'a str> {
    out.stderr
        .lines()
        .filter(|l| l.starts_with(prefix))
        .collect()
}

/// The gateway wrote exactly one line to the client's stderr, and it
/// contains `needle`.
#[track_caller]
fn gateway_says_once(out: &Out, needle: &str) {
    let said: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("git-annex-shell:"))
        .collect();
    assert_eq!(said.len(), 1, "{out}");
    assert!(said[0].contains(needle), "{out}");
}

#[test]
fn push_to_and_clone_from_a_node_behind_the_proxy() {
    let w = proxy_world();
    let env = &w.env;
    let node1_uuid = env.server_uuid(&w.nodes[0]);
    let work = plain_repo(env, "work", "first.txt");
    let url = format!("annexproxy::localhost:{}#node1", w.proxy.display());
    let mark = env.ssh_mark();
    env.plain_git(&work, &["push", "-q", &url, "main"]).ok();
    // the refs landed on node1, not on the proxy or node2
    assert_eq!(
        rev_in(env, &w.nodes[0], "refs/heads/main"),
        head(env, &work)
    );
    assert_eq!(rev_in(env, &w.proxy, "refs/heads/main"), "");
    assert_eq!(rev_in(env, &w.nodes[1], "refs/heads/main"), "");
    // the name was looked up with configlist, then node1 asked for by UUID
    let calls = env.ssh_calls_since(mark);
    let commands: Vec<&str> = calls.iter().map(|c| c.command.as_str()).collect();
    assert_eq!(
        commands,
        [
            format!("git-annex-shell 'configlist' '{}'", w.proxy.display()),
            format!(
                "git-annex-shell 'p2pstdio' '{}' '' '--uuid' '{node1_uuid}'",
                w.proxy.display()
            ),
        ],
        "{}",
        env.ssh_log_text()
    );
    assert!(
        calls.iter().all(|c| c.exit == Some(0)),
        "{}",
        env.ssh_log_text()
    );

    // clone node1 over ssh by name and over a local path by UUID
    env.plain_git(env.root(), &["clone", "-q", &url, "by-name"])
        .ok();
    let by_name = env.root().join("by-name");
    assert_eq!(head(env, &by_name), head(env, &work));
    let local = format!("annexproxy::{}#{node1_uuid}", w.proxy.display());
    env.plain_git(env.root(), &["clone", "-q", &local, "by-uuid"])
        .ok();
    let by_uuid = env.root().join("by-uuid");
    assert_eq!(head(env, &by_uuid), head(env, &work));

    // a push from the clone goes back to node1
    plain_commit(env, &by_uuid, "second.txt");
    env.plain_git(&by_uuid, &["push", "-q", "origin", "main"])
        .ok();
    assert_eq!(
        rev_in(env, &w.nodes[0], "refs/heads/main"),
        head(env, &by_uuid)
    );
    env.plain_git(&by_name, &["pull", "-q", "--ff-only"]).ok();
    assert_eq!(head(env, &by_name), head(env, &by_uuid));
    assert_eq!(rev_in(env, &w.proxy, "refs/heads/main"), "");
}

#[test]
fn unknown_name_is_one_line_and_no_clone() {
    let w = proxy_world();
    let env = &w.env;
    let url = format!("annexproxy::localhost:{}#node3", w.proxy.display());
    let out = env.plain_git(env.root(), &["clone", &url, "nope"]).fails();
    let lines = helper_lines(&out);
    assert_eq!(
        lines,
        ["git-remote-annexproxy: no proxied remote or cluster named \"node3\" on this server (it offers: node1, node2)"],
        "{out}"
    );
    assert!(
        !env.root().join("nope").exists(),
        "a failed clone leaves nothing behind"
    );
    // and no session was opened for it
    assert!(
        env.ssh_calls()
            .iter()
            .all(|c| !c.command.contains("p2pstdio")),
        "{}",
        env.ssh_log_text()
    );
    // a push by an unknown name changes nothing either
    let work = plain_repo(env, "work", "x.txt");
    let local = format!("annexproxy::{}#node3", w.proxy.display());
    let out = env.plain_git(&work, &["push", &local, "main"]).fails();
    assert_eq!(helper_lines(&out).len(), 1, "{out}");
    for repo in [&w.proxy, &w.nodes[0], &w.nodes[1]] {
        assert_eq!(rev_in(env, repo, "refs/heads/main"), "");
    }
}

#[test]
fn list_and_add_what_the_server_offers() {
    let w = cluster_world(2);
    let env = &w.env;
    let cluster_uuid = env
        .oracle(&w.proxy, &["config", "annex.cluster.mycl"])
        .ok()
        .stdout
        .trim()
        .to_owned();
    let server = format!("localhost:{}", w.proxy.display());
    let work = plain_repo(env, "work", "x.txt");
    let list = |extra: &[&str]| {
        let mut cmd = env.plain_client_command("git-remote-annexproxy");
        cmd.arg("--list")
            .arg(format!("annexproxy::{server}"))
            .args(extra);
        annexproxy_tests::run::run(cmd, &work)
    };
    let out = list(&[]).ok();
    let mut lines: Vec<&str> = out.stdout.lines().collect();
    lines.sort();
    let mut want = vec![
        format!("cluster\tmycl\t{cluster_uuid}"),
        format!("proxied\tnode1\t{}", env.server_uuid(&w.nodes[0])),
        format!("proxied\tnode2\t{}", env.server_uuid(&w.nodes[1])),
    ];
    want.sort();
    assert_eq!(lines, want, "{out}");

    list(&["--add", "gw"]).ok().says("added remote gw-mycl");
    let remotes = env.plain_git(&work, &["remote", "-v"]).ok().stdout;
    for name in ["mycl", "node1", "node2"] {
        assert!(
            remotes.contains(&format!("gw-{name}\tannexproxy::{server}#{name} (push)")),
            "{remotes}"
        );
    }
    // the remotes it added work
    env.plain_git(&work, &["push", "-q", "gw-node2", "main"])
        .ok();
    assert_eq!(
        rev_in(env, &w.nodes[1], "refs/heads/main"),
        head(env, &work)
    );
    // adding again changes nothing and is no error
    list(&["--add", "gw"]).ok().says("already");
    // a URL with '#' is no server's
    let out = list(&[]).ok();
    assert!(!out.stdout.is_empty());
    let mut cmd = env.plain_client_command("git-remote-annexproxy");
    cmd.arg("--list").arg(format!("annexproxy::{server}#mycl"));
    annexproxy_tests::run::run(cmd, &work)
        .fails()
        .says("without '#REMOTE'");
}

#[test]
fn push_to_a_cluster_reaches_every_node_and_fetch_reads_one() {
    let w = cluster_world(3);
    let env = &w.env;
    let work = plain_repo(env, "work", "first.txt");
    let url = format!("annexproxy::localhost:{}#mycl", w.proxy.display());
    env.plain_git(&work, &["push", "-q", &url, "main", "main:refs/heads/side"])
        .ok();
    let want = head(env, &work);
    for repo in std::iter::once(&w.proxy).chain(&w.nodes) {
        assert_eq!(
            rev_in(env, repo, "refs/heads/main"),
            want,
            "{}",
            repo.display()
        );
        assert_eq!(
            rev_in(env, repo, "refs/heads/side"),
            want,
            "{}",
            repo.display()
        );
    }
    env.plain_git(env.root(), &["clone", "-q", &url, "from-cluster"])
        .ok();
    assert_eq!(head(env, &env.root().join("from-cluster")), want);

    // a forced push and a deletion reach every node too
    env.plain_git(&work, &["commit", "-q", "--amend", "-m", "amended"])
        .ok();
    env.plain_git(
        &work,
        &["push", "-q", "-f", &url, "main", ":refs/heads/side"],
    )
    .ok();
    let amended = head(env, &work);
    for repo in std::iter::once(&w.proxy).chain(&w.nodes) {
        assert_eq!(
            rev_in(env, repo, "refs/heads/main"),
            amended,
            "{}",
            repo.display()
        );
        assert_eq!(
            rev_in(env, repo, "refs/heads/side"),
            "",
            "{}",
            repo.display()
        );
    }
}

#[test]
fn a_node_that_refuses_the_push_is_named() {
    let w = cluster_world(2);
    let env = &w.env;
    let work = plain_repo(env, "work", "first.txt");
    let url = format!("annexproxy::{}#mycl", w.proxy.display());
    env.plain_git(&work, &["push", "-q", &url, "main"]).ok();
    // node2 goes its own way
    let other = plain_repo(env, "other", "other.txt");
    let node2 = w.nodes[1].display().to_string();
    env.plain_git(&other, &["push", "-q", "-f", &node2, "main"])
        .ok();
    let node2_main = rev_in(env, &w.nodes[1], "refs/heads/main");

    plain_commit(env, &work, "second.txt");
    let out = env.plain_git(&work, &["push", &url, "main"]).fails();
    gateway_says_once(&out, "not every node: node2 (refs/heads/main [rejected]");
    // the gateway and node1 have it; node2 kept its own
    assert_eq!(rev_in(env, &w.proxy, "refs/heads/main"), head(env, &work));
    assert_eq!(
        rev_in(env, &w.nodes[0], "refs/heads/main"),
        head(env, &work)
    );
    assert_eq!(rev_in(env, &w.nodes[1], "refs/heads/main"), node2_main);
}

#[test]
fn the_real_client_minds_no_extra_configlist_lines() {
    let w = proxy_world();
    let env = &w.env;
    // our configlist does print them
    let mut cmd = env.plain_client_command("git-annex-shell");
    cmd.arg("configlist").arg(&w.proxy);
    let out = annexproxy_tests::run::run(cmd, env.root()).ok();
    out.says("annexproxy.proxy.node1=")
        .says("annexproxy.proxy.node2=");
    // and the real git-annex reads it over ssh, syncs and copies through
    // the proxy as ever
    let client = env.clone_client(&w.proxy, "client");
    env.add_file(&client, "f.txt", b"through the proxy\n");
    env.annex(&client, &["sync"]).ok();
    env.annex(&client, &["copy", "--to", "origin-node1", "f.txt"])
        .ok();
    let key = env.key_of(&client, "f.txt");
    assert!(env.server_has_content(&w.nodes[0], &key));
    assert!(
        env.ssh_calls()
            .iter()
            .any(|c| c.command.contains("configlist")),
        "{}",
        env.ssh_log_text()
    );
}

/// Node2 refuses a push (a pre-receive hook that fails, removed later):
/// the gateway's ref moves, but until node2 has it every push names node2
/// and fails, also a push with nothing new, and `annexproxy status` shows
/// the lag; once the hook is gone, a push with no new commit brings node2
/// up to the gateway and the lag is gone.
#[test]
fn a_refused_node_is_retried_by_the_next_push() {
    let w = cluster_world(2);
    let env = &w.env;
    let work = plain_repo(env, "work", "first.txt");
    let url = format!("annexproxy::{}#mycl", w.proxy.display());
    let hook = w.nodes[1].join("hooks/pre-receive");
    std::fs::write(&hook, "#!/bin/sh\necho node2 says no >&2\nexit 1\n").expect("hook");
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod hook");
    let named = |out: &Out| gateway_says_once(out, "not every node: node2 (refs/heads/main");
    named(&env.plain_git(&work, &["push", &url, "main"]).fails());
    let want = head(env, &work);
    assert_eq!(rev_in(env, &w.proxy, "refs/heads/main"), want);
    assert_eq!(rev_in(env, &w.nodes[0], "refs/heads/main"), want);
    assert_eq!(rev_in(env, &w.nodes[1], "refs/heads/main"), "");

    // Nothing new to push: node2 still lags, and is still named.
    named(&env.plain_git(&work, &["push", &url, "main"]).fails());
    assert_eq!(rev_in(env, &w.nodes[1], "refs/heads/main"), "");
    let status = env.annexproxy(&w.proxy, &["status"]).ok().stdout;
    let node2_line = status
        .lines()
        .find(|l| l.trim_start().starts_with("node2"))
        .unwrap_or_default();
    assert!(
        node2_line.contains("lacks the gateway's refs/heads/main"),
        "{status}"
    );
    let node1_line = status
        .lines()
        .find(|l| l.trim_start().starts_with("node1"))
        .unwrap_or_default();
    assert!(!node1_line.contains("lacks"), "{status}");

    // The records are the gateway's own: no client sees them, through the
    // helper or over plain ssh, nor deletes them.
    let over_ssh = env.url(&w.proxy);
    for remote in [&url, &over_ssh] {
        let listed = env.plain_git(&work, &["ls-remote", remote]).ok().stdout;
        assert!(listed.contains("refs/heads/main"), "{listed}");
        assert!(!listed.contains("refs/annexproxy"), "{remote}: {listed}");
    }
    let records = || {
        env.oracle(
            &w.proxy,
            &["for-each-ref", "--format=%(refname)", "refs/annexproxy/"],
        )
        .ok()
        .stdout
    };
    let record = records().trim().to_owned();
    assert!(record.ends_with("/refs/heads/main"), "{record}");
    env.plain_git(&work, &["push", &over_ssh, &format!(":{record}")])
        .fails();
    assert_eq!(records().trim(), record);

    std::fs::remove_file(&hook).expect("remove hook");
    let out = env.plain_git(&work, &["push", &url, "main"]).ok();
    assert!(!out.stderr.contains("git-annex-shell:"), "{out}");
    assert_eq!(rev_in(env, &w.nodes[1], "refs/heads/main"), want);
    let status = env.annexproxy(&w.proxy, &["status"]).ok().stdout;
    assert!(!status.contains("lacks"), "{status}");
    // and a later push says nothing of node2
    let out = env.plain_git(&work, &["push", &url, "main"]).ok();
    assert!(!out.stderr.contains("git-annex-shell:"), "{out}");
}

/// Restriction variables in the environment of the forced command
/// `git-annex-shell -c "$SSH_ORIGINAL_COMMAND"`, as an authorized_keys
/// line sets them.
fn restrict(env: &TestEnv, vars: &[(&str, &str)]) {
    env.set_forced_command(true);
    env.set_server_env(vars);
}

/// GIT_ANNEX_SHELL_LIMITED keeps git out of CONNECT as it keeps it out of
/// git-shell: the proxy's own repository, a node behind it, a cluster.
#[test]
fn limited_blocks_git_through_connect() {
    let w = proxy_world();
    let env = &w.env;
    let work = plain_repo(env, "work", "first.txt");
    let proxy = format!("annexproxy::localhost:{}", w.proxy.display());
    let node1 = format!("{proxy}#node1");
    env.plain_git(&work, &["push", "-q", &proxy, "main"]).ok();
    env.plain_git(&work, &["push", "-q", &node1, "main"]).ok();
    let before = head(env, &work);
    plain_commit(env, &work, "second.txt");

    restrict(env, &[("GIT_ANNEX_SHELL_LIMITED", "1")]);
    let blocked = "Action blocked by GIT_ANNEX_SHELL_LIMITED";
    for url in [&proxy, &node1] {
        env.plain_git(env.root(), &["clone", "-q", url, "limited-clone"])
            .fails()
            .says(blocked);
        assert!(!env.root().join("limited-clone").exists());
        env.plain_git(&work, &["push", "-q", url, "main"])
            .fails()
            .says(blocked);
    }
    assert_eq!(rev_in(env, &w.proxy, "refs/heads/main"), before);
    assert_eq!(rev_in(env, &w.nodes[0], "refs/heads/main"), before);

    let c = cluster_world(1);
    let env = &c.env;
    let work = plain_repo(env, "work", "first.txt");
    restrict(env, &[("GIT_ANNEX_SHELL_LIMITED", "1")]);
    let cluster = format!("annexproxy::localhost:{}#mycl", c.proxy.display());
    env.plain_git(&work, &["push", "-q", &cluster, "main"])
        .fails()
        .says(blocked);
    for repo in std::iter::once(&c.proxy).chain(&c.nodes) {
        assert_eq!(rev_in(env, repo, "refs/heads/main"), "");
    }
}

/// A key confined to the proxy's repository (any restriction variable)
/// reaches no node with git, unless the proxy's operator turned git relay
/// on for that node; the proxy's own repository is served as before.
#[test]
fn restricted_keys_reach_a_node_with_git_only_where_allowed() {
    let w = proxy_world();
    let env = &w.env;
    let work = plain_repo(env, "work", "first.txt");
    let proxy = format!("annexproxy::localhost:{}", w.proxy.display());
    let node1 = format!("{proxy}#node1");
    let confined = w.proxy.display().to_string();
    restrict(env, &[("GIT_ANNEX_SHELL_DIRECTORY", &confined)]);
    let off = "git is not relayed to node1 under the restricted shell";

    env.plain_git(&work, &["push", "-q", &node1, "main"])
        .fails()
        .says(off);
    assert_eq!(rev_in(env, &w.nodes[0], "refs/heads/main"), "");
    env.plain_git(&work, &["push", "-q", &proxy, "main"]).ok();
    assert_eq!(rev_in(env, &w.proxy, "refs/heads/main"), head(env, &work));

    // Fetching is relaying git too, and READONLY is a restriction as well.
    let node1_dir = w.nodes[0].display().to_string();
    env.plain_git(&work, &["push", "-q", &node1_dir, "main"])
        .ok();
    restrict(env, &[("GIT_ANNEX_SHELL_READONLY", "1")]);
    env.plain_git(env.root(), &["clone", "-q", &node1, "ro-clone"])
        .fails()
        .says(off);

    // The operator allows node1.
    env.oracle(
        &w.proxy,
        &["config", "remote.node1.annexproxy-git-relay", "true"],
    )
    .ok();
    env.plain_git(env.root(), &["clone", "-q", &node1, "ro-clone"])
        .ok();
    restrict(env, &[("GIT_ANNEX_SHELL_DIRECTORY", &confined)]);
    plain_commit(env, &work, "second.txt");
    env.plain_git(&work, &["push", "-q", &node1, "main"]).ok();
    assert_eq!(
        rev_in(env, &w.nodes[0], "refs/heads/main"),
        head(env, &work)
    );
    // node2 stays off
    env.plain_git(&work, &["push", "-q", &format!("{proxy}#node2"), "main"])
        .fails()
        .says("git is not relayed to node2");
    assert_eq!(rev_in(env, &w.nodes[1], "refs/heads/main"), "");
}

/// Under a restriction, a push to a cluster lands on the gateway (the
/// repository the key is confined to) and goes on only to the nodes git
/// relay is on for; the others are named and the push fails.
#[test]
fn restricted_push_to_a_cluster_reaches_only_allowed_nodes() {
    let c = cluster_world(2);
    let env = &c.env;
    let work = plain_repo(env, "work", "first.txt");
    let cluster = format!("annexproxy::localhost:{}#mycl", c.proxy.display());
    let confined = c.proxy.display().to_string();
    restrict(env, &[("GIT_ANNEX_SHELL_DIRECTORY", &confined)]);
    env.oracle(
        &c.proxy,
        &["config", "remote.node1.annexproxy-git-relay", "true"],
    )
    .ok();

    let out = env.plain_git(&work, &["push", &cluster, "main"]).fails();
    let said = shell_lines(&out);
    assert_eq!(said.len(), 1, "{out}");
    assert!(
        said[0].contains("not every node: node2 (git is not relayed to node2"),
        "{out}"
    );
    let pushed = head(env, &work);
    assert_eq!(rev_in(env, &c.proxy, "refs/heads/main"), pushed);
    assert_eq!(rev_in(env, &c.nodes[0], "refs/heads/main"), pushed);
    assert_eq!(rev_in(env, &c.nodes[1], "refs/heads/main"), "");
    // fetching is served by the gateway's own repository
    env.plain_git(env.root(), &["clone", "-q", &cluster, "from-cluster"])
        .ok();
    assert_eq!(head(env, &env.root().join("from-cluster")), pushed);
}
