//! Cluster set-up without git-annex (spec §7.1, §7.5): `annexproxy
//! initcluster / updatecluster / extendcluster` against the real
//! `git annex` ones.
//!
//! The same world is set up twice, once by each; repository UUIDs are
//! fixed so that the records can be compared as bytes, save for vector
//! clocks and the (random) cluster UUID. Then each tool takes over a
//! cluster the other made.

use std::path::{Path, PathBuf};

use annexproxy_tests::{ServerKind, TestEnv};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Setup {
    Ours,
    Real,
}

impl Setup {
    fn other(self) -> Setup {
        match self {
            Setup::Ours => Setup::Real,
            Setup::Real => Setup::Ours,
        }
    }
}

/// `annexproxy ARGS` or `git annex ARGS` in `dir`: the commands share
/// their arguments. Returns stdout; panics on failure.
#[track_caller]
fn cmd(env: &TestEnv, setup: Setup, dir: &Path, args: &[&str]) -> String {
    match setup {
        Setup::Ours => env.annexproxy(dir, args).ok().stdout,
        Setup::Real => env.oracle_annex(dir, args).ok().stdout,
    }
}

const NODES: [(&str, &str); 3] = [
    ("n1", "11111111-0000-4000-8000-000000000001"),
    ("n2", "22222222-0000-4000-8000-000000000002"),
    ("n3", "33333333-0000-4000-8000-000000000003"),
];
const GW_A: &str = "9aaaaaaa-0000-4000-8000-00000000000a";
const GW_B: &str = "9bbbbbbb-0000-4000-8000-00000000000b";

/// A bare repository with a fixed UUID, initialised by `setup`.
fn repo(env: &TestEnv, setup: Setup, name: &str, uuid: &str, desc: &str) -> PathBuf {
    let dir = env.server_bare(&format!("{name}.git"));
    env.oracle(&dir, &["config", "annex.uuid", uuid]).ok();
    cmd(env, setup, &dir, &["init", desc]);
    dir
}

/// Nodes n1..n3 and gateway A with a remote for each.
fn world(env: &TestEnv, setup: Setup) -> PathBuf {
    let gw = repo(env, setup, "gwA", GW_A, "gateway A");
    for (name, uuid) in NODES {
        let node = repo(env, setup, name, uuid, &format!("node {name}"));
        env.oracle(&gw, &["remote", "add", name, &node.display().to_string()])
            .ok();
    }
    gw
}

fn git_config(env: &TestEnv, dir: &Path, args: &[&str]) {
    let mut all = vec!["config"];
    all.extend_from_slice(args);
    env.oracle(dir, &all).ok();
}

fn cluster_uuid(env: &TestEnv, gw: &Path) -> String {
    let out = env.oracle(gw, &["config", "annex.cluster.c"]);
    out.stdout.trim().to_owned()
}

/// cluster.log, proxy.log and uuid.log without their clocks, cluster
/// UUIDs shown as `<cluster NAME>`.
fn records(env: &TestEnv, gw: &Path) -> String {
    let clusters = env.oracle(gw, &["config", "--get-regexp", "^annex\\.cluster\\."]);
    let clusters: Vec<(String, String)> = clusters
        .stdout
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(k, u)| {
            (
                u.to_owned(),
                format!("<cluster {}>", &k["annex.cluster.".len()..]),
            )
        })
        .collect();
    let mut out = String::new();
    for f in ["cluster.log", "proxy.log", "uuid.log"] {
        let o = env.oracle(gw, &["show", &format!("git-annex:{f}")]);
        out.push_str(&format!("{f}:\n"));
        // Sorted again: the logs are sorted by the UUIDs replaced.
        let mut lines = Vec::new();
        for line in o.stdout.lines() {
            let line = match line.split_once(' ') {
                Some((clock, rest)) if is_clock(clock) => rest,
                _ => line,
            };
            let line = match line.rsplit_once(" timestamp=") {
                Some((rest, clock)) if is_clock(clock) => rest,
                _ => line,
            };
            let line = clusters
                .iter()
                .fold(line.to_owned(), |l, (u, name)| l.replace(u.as_str(), name));
            lines.push(line);
        }
        lines.sort();
        for line in lines {
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}

fn is_clock(s: &str) -> bool {
    s.strip_suffix('s')
        .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit() || b == b'.'))
}

/// The set-up sequence of spec §7.1 on gateway A; what each step printed
/// and recorded.
fn set_up_cluster(env: &TestEnv, setup: Setup) -> Vec<(String, String)> {
    let gw = world(env, setup);
    let mut seen = Vec::new();
    let mut step = |what: &str, stdout: String| {
        seen.push((format!("{what}: stdout"), stdout));
        seen.push((format!("{what}: records"), records(env, &gw)));
    };
    step(
        "updatecluster, no cluster",
        cmd(env, setup, &gw, &["updatecluster"]),
    );
    step("initcluster", cmd(env, setup, &gw, &["initcluster", "c"]));
    let cu = cluster_uuid(env, &gw);
    assert!(cu.starts_with("ac") && cu.as_bytes()[14] == b'8', "{cu}");
    step(
        "initcluster again",
        cmd(env, setup, &gw, &["initcluster", "c", "ignored"]),
    );
    assert_eq!(cluster_uuid(env, &gw), cu);
    step(
        "initcluster d",
        cmd(env, setup, &gw, &["initcluster", "d", "second cluster"]),
    );
    git_config(env, &gw, &["remote.n1.annex-cluster-node", "c"]);
    git_config(env, &gw, &["remote.n2.annex-cluster-node", "c d"]);
    step("updatecluster", cmd(env, setup, &gw, &["updatecluster"]));
    step(
        "updatecluster again",
        cmd(env, setup, &gw, &["updatecluster"]),
    );
    git_config(env, &gw, &["--unset", "remote.n2.annex-cluster-node"]);
    git_config(env, &gw, &["remote.n3.annex-cluster-node", "c"]);
    step("n2 out, n3 in", cmd(env, setup, &gw, &["updatecluster"]));
    // A node whose remote is gone is told of by its UUID.
    env.oracle(&gw, &["remote", "remove", "n1"]).ok();
    step("n1 removed", cmd(env, setup, &gw, &["updatecluster"]));
    step("updateproxy", cmd(env, setup, &gw, &["updateproxy"]));
    env.assert_server_fsck_clean(&gw);
    seen
}

#[test]
fn set_up_prints_and_records_what_git_annex_does() {
    let real = set_up_cluster(&TestEnv::new(ServerKind::Real), Setup::Real);
    let ours = set_up_cluster(&TestEnv::new(ServerKind::Ours), Setup::Ours);
    // Lines and log entries about the two clusters come in the order of
    // their UUIDs, which are random in each set-up: compare the words of
    // each line, and the lines, as sets.
    let sorted = |s: &str| {
        let mut lines: Vec<String> = s
            .lines()
            .map(|l| {
                let mut words: Vec<&str> = l.split(' ').collect();
                words.sort_unstable();
                words.join(" ")
            })
            .collect();
        lines.sort_unstable();
        lines.join("\n")
    };
    for (r, o) in real.iter().zip(ours.iter()) {
        assert_eq!(r.0, o.0);
        assert_eq!(
            sorted(&r.1),
            sorted(&o.1),
            "{}: real (left) and ours (right) differ",
            r.0
        );
    }
    assert_eq!(real.len(), ours.len());
    // Pin a few facts, so that both agreeing on nonsense still fails.
    let get = |what: &str| {
        real.iter()
            .find(|(k, _)| k == what)
            .map(|(_, v)| v.as_str())
            .expect("step")
    };
    assert_eq!(
        get("initcluster: stdout"),
        "initcluster c ok\n(recording state in git...)\n"
    );
    assert_eq!(get("initcluster again: stdout"), "initcluster c ok\n");
    assert!(get("updatecluster: stdout").starts_with(
        "Added node n1 to cluster: c\nAdded node n2 to cluster: c\n\
         Added node n2 to cluster: d\nStarted proxying for n1\n"
    ));
    assert!(get("n1 removed: stdout")
        .contains(&format!("Removed node {} from cluster: c\n", NODES[0].1)));
    assert_eq!(get("updatecluster again: stdout"),
        "No cluster node changes for cluster: c\nNo cluster node changes for cluster: d\nNo proxy changes to record.\n");
}

/// `first` makes the cluster, `second` carries on with it.
fn take_over(first: Setup) {
    let second = first.other();
    let env = TestEnv::new(ServerKind::Ours);
    let gw = world(&env, first);
    cmd(&env, first, &gw, &["initcluster", "c"]);
    git_config(&env, &gw, &["remote.n1.annex-cluster-node", "c"]);
    git_config(&env, &gw, &["remote.n2.annex-cluster-node", "c"]);
    cmd(&env, first, &gw, &["updatecluster"]);
    let cu = cluster_uuid(&env, &gw);
    let before = records(&env, &gw);
    assert_eq!(
        cmd(&env, second, &gw, &["updatecluster"]),
        "No cluster node changes for cluster: c\nNo proxy changes to record.\n",
        "{second:?} after {first:?}"
    );
    assert_eq!(
        cmd(&env, second, &gw, &["initcluster", "c"]),
        "initcluster c ok\n"
    );
    assert_eq!(cluster_uuid(&env, &gw), cu);
    assert_eq!(records(&env, &gw), before);
    git_config(&env, &gw, &["remote.n3.annex-cluster-node", "c"]);
    assert_eq!(
        cmd(&env, second, &gw, &["updatecluster"]),
        "Added node n3 to cluster: c\nStarted proxying for n3\n"
    );
    assert_eq!(
        cmd(&env, first, &gw, &["updatecluster"]),
        "No cluster node changes for cluster: c\nNo proxy changes to record.\n"
    );
    env.oracle_annex(&gw, &["info"])
        .ok()
        .says(&format!("{cu} -- cluster c"));
    env.assert_server_fsck_clean(&gw);
    // A client of the gateway sees the cluster behind it.
    let client = env.clone_client(&gw, "client");
    env.annex(&client, &["info", "origin"])
        .ok()
        .says("gateway to cluster: origin-c");
}

#[test]
fn real_git_annex_carries_on_with_our_cluster() {
    take_over(Setup::Ours);
}

#[test]
fn we_carry_on_with_a_git_annex_cluster() {
    take_over(Setup::Real);
}

/// Gateway A (set up by us) serves cluster c on n1, n2; gateway B, which
/// has fetched A's git-annex branch and knows A by an ssh URL, joins.
fn extend(setup: Setup) -> Vec<(String, String)> {
    let env = TestEnv::new(ServerKind::Ours);
    let a = world(&env, Setup::Ours);
    cmd(&env, Setup::Ours, &a, &["initcluster", "c"]);
    git_config(&env, &a, &["remote.n1.annex-cluster-node", "c"]);
    git_config(&env, &a, &["remote.n2.annex-cluster-node", "c"]);
    cmd(&env, Setup::Ours, &a, &["updatecluster"]);
    let b = repo(&env, setup, "gwB", GW_B, "gateway B");
    env.oracle(&b, &["remote", "add", "gwA", &env.url(&a)]).ok();
    git_config(&env, &b, &["remote.gwA.annex-uuid", GW_A]);
    env.oracle(
        &b,
        &[
            "fetch",
            "-q",
            &a.display().to_string(),
            "git-annex:refs/remotes/gwA/git-annex",
        ],
    )
    .ok();
    let mut seen = Vec::new();
    let out = cmd(&env, setup, &b, &["extendcluster", "gwA", "c"]);
    // git-annex first says it merges the fetched branch; we merge it
    // silently.
    let out = match out.find("extendcluster c ok") {
        Some(i) if setup == Setup::Real => out[i..].to_owned(),
        _ => out,
    };
    seen.push(("extendcluster".to_owned(), out));
    let cu = cluster_uuid(&env, &a);
    assert_eq!(cluster_uuid(&env, &b), cu);
    let gateway = env
        .oracle(&b, &["config", "remote.gwA.annex-cluster-gateway"])
        .ok();
    assert_eq!(gateway.stdout.trim(), cu);
    seen.push(("records".to_owned(), records(&env, &b)));
    let out = cmd(&env, setup.other(), &b, &["updatecluster"]);
    seen.push(("the other's updatecluster".to_owned(), out));
    env.assert_server_fsck_clean(&b);
    seen
}

#[test]
fn extendcluster_does_what_git_annex_does() {
    let real = extend(Setup::Real);
    let ours = extend(Setup::Ours);
    assert_eq!(real, ours);
    assert_eq!(
        real[0].1,
        "extendcluster c ok\nNo cluster node changes for cluster: c\n\
         Started proxying for gwA-n1\nStarted proxying for gwA-n2\nStarted proxying for c\n"
    );
}

#[test]
fn errors_are_one_line_and_fail() {
    let env = TestEnv::new(ServerKind::Ours);
    let bare = env.server_bare("uninit.git");
    let out = env.annexproxy(&bare, &["initcluster", "c"]);
    assert!(!out.success());
    assert_eq!(out.stderr, "annexproxy: First run: annexproxy init\n");
    let gw = world(&env, Setup::Ours);
    for (args, says) in [
        (
            &["initcluster", "bad name"][..],
            "annexproxy: That cluster name is not a valid git remote name.\n",
        ),
        (
            &["initcluster", "--", "-c"][..],
            "annexproxy: That cluster name is not a valid git remote name.\n",
        ),
        (
            &["extendcluster", "nosuch", "c"][..],
            "annexproxy: there is no available git remote named \"nosuch-c\"\n",
        ),
    ] {
        let out = env.annexproxy(&gw, args);
        assert!(!out.success(), "{args:?}");
        assert_eq!(out.stderr, says, "{args:?}");
        assert_eq!(out.stdout, "", "{args:?}");
    }
    // A remote of that name that is no cluster.
    env.oracle(&gw, &["remote", "add", "n1-c", "localhost:/nowhere"])
        .ok();
    git_config(&env, &gw, &["remote.n1-c.annex-uuid", NODES[1].1]);
    let out = env.annexproxy(&gw, &["extendcluster", "n1", "c"]);
    assert!(!out.success());
    assert_eq!(out.stderr, "annexproxy: n1-c is not a cluster remote.\n");
    assert!(env
        .oracle(&gw, &["config", "annex.cluster.c"])
        .stdout
        .is_empty());
}
