//! The operator commands against real repositories, checked with the real
//! git-annex: it must read what we record, and record the same bytes.

use std::path::{Path, PathBuf};

use super::*;

use testkit::real_git_annex as git_annex;

fn run(dir: &Path, prog: &Path, args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let out = testkit::command(prog, dir)
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .envs(env.iter().copied())
        .output()
        .expect("spawn");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[track_caller]
fn ok(dir: &Path, prog: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let (good, out, err) = run(dir, prog, args, env);
    assert!(good, "{prog:?} {args:?} failed:\n{out}{err}");
    out
}

fn git(dir: &Path, args: &[&str]) -> String {
    ok(dir, Path::new("git"), args, &[])
}

fn annex(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    ok(dir, &git_annex(), args, env)
}

fn bare(root: &Path, name: &str) -> PathBuf {
    let p = root.join(name);
    git(root, &["init", "-q", "--bare", name]);
    git(&p, &["config", "user.name", "Tester"]);
    git(&p, &["config", "user.email", "tester@example.org"]);
    p
}

fn our_init(dir: &Path, desc: Option<&str>) -> String {
    let mut out = Vec::new();
    init(dir, desc, &mut out).expect("init");
    String::from_utf8(out).expect("utf8")
}

fn our_updateproxy(dir: &Path) -> (String, String) {
    let (mut out, mut warn) = (Vec::new(), Vec::new());
    updateproxy(dir, &mut out, &mut warn).expect("updateproxy");
    (
        String::from_utf8(out).expect("utf8"),
        String::from_utf8(warn).expect("utf8"),
    )
}

fn uuid_of(dir: &Path) -> String {
    git(dir, &["config", "annex.uuid"]).trim().to_owned()
}

#[test]
fn init_output_and_real_git_annex_agrees() {
    let t = tempfile::tempdir().expect("tempdir");
    let r = bare(t.path(), "n1");
    assert_eq!(
        our_init(&r, Some("first node")),
        "init first node ok\n(recording state in git...)\n"
    );
    let u = uuid_of(&r);
    let info = annex(&r, &["info", "--fast"], &[]);
    assert!(
        info.contains(&format!("{u} -- first node [here]")),
        "{info}"
    );
    // Again without a description: nothing to record, UUID kept.
    assert_eq!(our_init(&r, None), "init  ok\n");
    assert_eq!(uuid_of(&r), u);
}

/// Two nodes made by our init, a proxy with both configured; `which`
/// decides who runs updateproxy there.
fn proxy_world(t: &Path, clock: &str) -> (PathBuf, [PathBuf; 2]) {
    let n1 = bare(t, "node1");
    let n2 = bare(t, "node2");
    our_init(&n1, Some("node one"));
    our_init(&n2, Some("node two"));
    let p = bare(t, "proxy");
    git(
        &p,
        &[
            "config",
            "annex.uuid",
            "8539dd90-0000-4000-8000-000000000491",
        ],
    );
    for (name, dir) in [("node1", &n1), ("node2", &n2)] {
        git(&p, &["remote", "add", name, &dir.display().to_string()]);
        git(
            &p,
            &["config", &format!("remote.{name}.annex-proxy"), "true"],
        );
    }
    annex(
        &p,
        &["init", "-q", "the proxy"],
        &[("GIT_ANNEX_VECTOR_CLOCK", clock)],
    );
    (p, [n1, n2])
}

#[test]
fn updateproxy_output_and_log_match_real_git_annex() {
    let t = tempfile::tempdir().expect("tempdir");
    let ours = t.path().join("ours");
    let real = t.path().join("real");
    std::fs::create_dir_all(&ours).expect("mkdir");
    std::fs::create_dir_all(&real).expect("mkdir");
    let (p_ours, nodes) = proxy_world(&ours, "1000");
    let (p_real, real_nodes) = proxy_world(&real, "1000");
    // Give the real world's nodes the same UUIDs, so the logs can be equal.
    for (a, b) in nodes.iter().zip(real_nodes.iter()) {
        git(b, &["config", "annex.uuid", &uuid_of(a)]);
    }
    let u1 = uuid_of(&nodes[0]);
    let u2 = uuid_of(&nodes[1]);
    let mut started = [(u1.clone(), "node1"), (u2.clone(), "node2")];
    started.sort();
    let expected: String = started
        .iter()
        .map(|(_, n)| format!("Started proxying for {n}\n"))
        .collect();

    std::env::set_var("GIT_ANNEX_VECTOR_CLOCK", "2000");
    let (out, warn) = our_updateproxy(&p_ours);
    let real_out = annex(
        &p_real,
        &["updateproxy"],
        &[("GIT_ANNEX_VECTOR_CLOCK", "2000")],
    );
    assert_eq!(out, expected, "{warn}");
    assert_eq!(real_out, expected);
    // The UUIDs were learnt from the nodes and cached, as git-annex does.
    assert_eq!(
        git(&p_ours, &["config", "remote.node1.annex-uuid"]).trim(),
        u1
    );
    let log = git(&p_ours, &["show", "git-annex:proxy.log"]);
    assert_eq!(log, git(&p_real, &["show", "git-annex:proxy.log"]));
    let mut entries = [format!("{u1}:node1"), format!("{u2}:node2")];
    entries.sort();
    assert_eq!(
        log,
        format!(
            "2000s 8539dd90-0000-4000-8000-000000000491 {}\n",
            entries.join(" ")
        )
    );

    // Real git-annex reads ours as its own, and we read its.
    assert_eq!(
        annex(&p_ours, &["updateproxy"], &[]),
        "No proxy changes to record.\n"
    );
    assert_eq!(our_updateproxy(&p_real).0, "No proxy changes to record.\n");

    git(&p_ours, &["config", "--unset", "remote.node2.annex-proxy"]);
    git(&p_real, &["config", "--unset", "remote.node2.annex-proxy"]);
    std::env::set_var("GIT_ANNEX_VECTOR_CLOCK", "3000");
    assert_eq!(our_updateproxy(&p_ours).0, "Stopped proxying for node2\n");
    std::env::remove_var("GIT_ANNEX_VECTOR_CLOCK");
    assert_eq!(
        annex(
            &p_real,
            &["updateproxy"],
            &[("GIT_ANNEX_VECTOR_CLOCK", "3000")]
        ),
        "Stopped proxying for node2\n"
    );
    assert_eq!(
        git(&p_ours, &["show", "git-annex:proxy.log"]),
        git(&p_real, &["show", "git-annex:proxy.log"])
    );
    assert_eq!(
        git(&p_ours, &["log", "--format=%s", "-1", "git-annex"]).trim(),
        "update"
    );
}

#[test]
fn remotes_that_cannot_be_proxied_are_warned_about() {
    let t = tempfile::tempdir().expect("tempdir");
    let p = bare(t.path(), "proxy");
    let mut out = Vec::new();
    let err = updateproxy(&p, &mut out, &mut Vec::new()).expect_err("uninitialised");
    assert_eq!(err.to_string(), "First run: annexproxy init");
    our_init(&p, Some("proxy"));
    let plain = bare(t.path(), "plain");
    for (name, url) in [
        ("gone", t.path().join("gone").display().to_string()),
        ("plain", plain.display().to_string()),
        ("web", "https://example.org/r.git".to_owned()),
    ] {
        git(&p, &["remote", "add", name, &url]);
        git(
            &p,
            &["config", &format!("remote.{name}.annex-proxy"), "true"],
        );
    }
    let (out, warn) = our_updateproxy(&p);
    assert_eq!(out, "No proxy changes to record.\n");
    assert!(
        warn.contains("Remote gone cannot currently be accessed."),
        "{warn}"
    );
    assert!(
        warn.contains(
            "gone is a git remote without a known annex-uuid. Cannot proxy to this remote."
        ),
        "{warn}"
    );
    assert!(
        warn.contains(
            "plain is a git remote without a known annex-uuid. Cannot proxy to this remote."
        ),
        "{warn}"
    );
    assert!(
        warn.contains("web: cannot reach https://example.org/r.git"),
        "{warn}"
    );
    let (found, cached, _) = run(
        &p,
        Path::new("git"),
        &["config", "--get-regexp", "annex-uuid"],
        &[],
    );
    assert!(!found, "nothing learnt, nothing cached: {cached}");
}

/// Each remote that cannot be proxied is warned about once, with the
/// lines real git-annex prints (ours add the reason in parentheses).
#[test]
fn each_unreachable_remote_is_warned_about_once_as_git_annex_does() {
    let t = tempfile::tempdir().expect("tempdir");
    let p = bare(t.path(), "proxy");
    annex(&p, &["init", "proxy"], &[]);
    let plain = bare(t.path(), "plain");
    for (name, url) in [
        ("gone", t.path().join("gone").display().to_string()),
        ("plain", plain.display().to_string()),
    ] {
        git(&p, &["remote", "add", name, &url]);
        git(
            &p,
            &["config", &format!("remote.{name}.annex-proxy"), "true"],
        );
    }
    let without_reason = |l: &str| match l.find(" (") {
        Some(i) => l[..i].to_owned(),
        None => l.to_owned(),
    };
    let same = |ours: &[u8], real: &str| {
        let ours: Vec<String> = String::from_utf8_lossy(ours)
            .lines()
            .map(without_reason)
            .collect();
        let real: Vec<&str> = real.lines().collect();
        assert_eq!(ours, real);
    };
    let (_, _, real) = run(&p, &git_annex(), &["updateproxy"], &[]);
    let (_, ours) = our_updateproxy(&p);
    same(ours.as_bytes(), &real);

    // updatecluster asks once too, though both the cluster and the proxy
    // steps want the node's UUID.
    git(&p, &["config", "--unset", "remote.gone.annex-proxy"]);
    git(&p, &["config", "remote.gone.annex-cluster-node", "c1"]);
    annex(&p, &["initcluster", "c1"], &[]);
    let (_, _, real) = run(&p, &git_annex(), &["updatecluster"], &[]);
    let mut warn = Vec::new();
    updatecluster(&p, &mut Vec::new(), &mut warn).expect("updatecluster");
    same(&warn, &real);
}
