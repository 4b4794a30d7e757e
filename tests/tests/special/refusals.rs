//! What we do not serve is named as such: a special remote type we do not
//! serve yet (at `updateproxy` and in the session, where before it was
//! "remote has no url"), a special remote of that type as a cluster node, and a
//! remote.log configuration the operator has not verified.

use annexproxy_tests::p2p_driver::{Shell, CLIENT_UUID};
use annexproxy_tests::{ServerKind, TestEnv};

use super::world::*;

const UNSERVED: &str = "h: special remote type hook is not served by annexproxy yet";

/// A proxy with a `hook` special remote `h` (a type we do not serve),
/// made by real `initremote`, marked `annex-proxy=true`.
fn proxy_with_hook_remote(env: &TestEnv) -> std::path::PathBuf {
    let proxy = env.server_bare("proxy.git");
    env.annexproxy(&proxy, &["init", "the proxy"]).ok();
    env.oracle_annex(
        &proxy,
        &[
            "initremote",
            "h",
            "type=hook",
            "hooktype=demo",
            "encryption=none",
        ],
    )
    .ok();
    env.oracle(&proxy, &["config", "remote.h.annex-proxy", "true"])
        .ok();
    proxy
}

#[test]
fn unserved_type_is_named_at_updateproxy() {
    let env = TestEnv::new(ServerKind::Ours);
    let proxy = proxy_with_hook_remote(&env);
    let out = env.annexproxy(&proxy, &["updateproxy"]).ok();
    assert!(out.stderr.contains(UNSERVED), "{out}");
    assert!(!out.all().contains("no url"), "{out}");
    assert!(!out.stdout.contains("Started proxying for h"), "{out}");
}

/// Real git-annex's updateproxy records the hook remote; a client asking
/// for it then hears which type we do not serve.
#[test]
fn unserved_type_is_named_in_the_session() {
    let env = TestEnv::new(ServerKind::Ours);
    let proxy = proxy_with_hook_remote(&env);
    env.oracle_annex(&proxy, &["updateproxy"])
        .ok()
        .says("Started proxying for h");
    let uuid = env
        .oracle(&proxy, &["config", "remote.h.annex-uuid"])
        .ok()
        .stdout
        .trim()
        .to_string();
    let mut cmd = env.server_command("git-annex-shell");
    cmd.args(["p2pstdio", &proxy.display().to_string(), CLIENT_UUID])
        .args(["--uuid", &uuid])
        .current_dir(&proxy);
    let out = Shell::start(cmd, ServerKind::Ours).finish();
    assert!(out.stderr.contains(UNSERVED), "{}", out.show());
    assert!(!out.stderr.contains("no url"), "{}", out.show());
    assert_ne!(out.code, Some(0));
}

/// A special remote of a type we do not serve is refused as a cluster
/// node by name (a directory remote is served: `special/cluster.rs`).
#[test]
fn unserved_type_is_refused_as_a_cluster_node() {
    let env = TestEnv::new(ServerKind::Ours);
    let proxy = proxy_with_hook_remote(&env);
    env.annexproxy(&proxy, &["initcluster", "cl"]).ok();
    env.oracle(&proxy, &["config", "remote.h.annex-cluster-node", "cl"])
        .ok();
    let out = env.annexproxy(&proxy, &["updatecluster"]).ok();
    assert!(out.stderr.contains(UNSERVED), "{out}");
    assert!(
        out.stderr
            .contains("Cannot use this remote as a cluster node."),
        "{out}"
    );
    assert!(!out.stdout.contains("Added node h"), "{out}");
}

/// The remote.log configuration changed by a push to the proxy's
/// git-annex branch (from a repository of its own that enabled the remote
/// with `chunk=5000`): until the operator verifies it, the proxy goes on
/// with the configuration verified before, as git-annex 10.20261026 does
/// ("the previously verified configuration of the remote will continue
/// to be used"; real git-annex in the proxy says so); then the new one.
#[test]
fn pushed_configuration_waits_for_verification() {
    let wd = world(&[]);
    let env = &wd.env;
    let other = server_clone(&wd, "other");
    let elsewhere = env.srv.join("elsewhere");
    std::fs::create_dir_all(&elsewhere).expect("mkdir");
    let dir_param = format!("directory={}", elsewhere.display());
    env.oracle_annex(&other, &["enableremote", "d", &dir_param, "chunk=5000"])
        .ok();
    // Past git-annex's own pre-push check, as anyone can push.
    env.oracle(
        &other,
        &["push", "-q", "--no-verify", "origin", "git-annex"],
    )
    .ok();
    env.oracle_annex(&wd.proxy, &["verifyremote", "d"])
        .ok()
        .says("previously\nverified configuration of the remote will continue to\nbe used");
    let client = &wd.client;
    env.add_file(client, "f.txt", b"content\n");
    env.annex(client, &["copy", "--to", "origin-d", "f.txt"])
        .ok();
    let chunked = |files: &[String]| files.iter().filter(|f| f.contains("-S5000-C1--")).count();
    let files = stored_files(&wd.store);
    assert_eq!((files.len(), chunked(&files)), (1, 0), "{files:?}");
    verify_remote(env, &wd.proxy, "d");
    env.add_file(client, "g.txt", b"other content\n");
    env.annex(client, &["copy", "--to", "origin-d", "g.txt"])
        .ok();
    let files = stored_files(&wd.store);
    assert_eq!((files.len(), chunked(&files)), (2, 1), "{files:?}");
}
