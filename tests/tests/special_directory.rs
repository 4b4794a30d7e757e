//! A `directory` special remote behind our proxy (issue 13): the real
//! client copies, gets, fscks, drops and moves through the proxy to it,
//! unchunked and with `chunk=`; real git-annex inside the proxy's
//! repository reads what we stored, and we read what it stored.
//!
//! The proxy is served by our git-annex-shell alone; real git-annex is
//! used on the server only to set the remote up (`initremote`, as an
//! operator would) and as the oracle afterwards.

use std::fs;
use std::path::{Path, PathBuf};

use annexproxy_tests::observe::{fsck_from, whereis, worktree_bytes};
use annexproxy_tests::{pseudo_random_bytes, ServerKind, TestEnv};

struct World {
    env: TestEnv,
    proxy: PathBuf,
    store: PathBuf,
    client: PathBuf,
}

/// A proxy set up by `annexproxy init`, a directory special remote `d`
/// made by real `git annex initremote` (with `extra` parameters), proxied
/// with `annex-proxy=true` and our `updateproxy`; a client that cloned
/// the proxy and synced.
fn world(extra: &[&str]) -> World {
    let env = TestEnv::new(ServerKind::Ours);
    let proxy = env.server_bare("proxy.git");
    env.annexproxy(&proxy, &["init", "the proxy"]).ok();
    let store = env.srv.join("dstore");
    fs::create_dir_all(&store).expect("store dir");
    let dir_param = format!("directory={}", store.display());
    let mut args = vec![
        "initremote",
        "d",
        "type=directory",
        &dir_param,
        "encryption=none",
    ];
    args.extend_from_slice(extra);
    env.oracle_annex(&proxy, &args).ok();
    env.oracle(&proxy, &["config", "remote.d.annex-proxy", "true"])
        .ok();
    env.annexproxy(&proxy, &["updateproxy"])
        .ok()
        .says("Started proxying for d");
    let client = env.clone_client(&proxy, "client");
    env.annex(&client, &["sync"]).ok();
    World {
        env,
        proxy,
        store,
        client,
    }
}

/// Every regular file under the store, relative, except git-annex's
/// `tmp/`.
fn stored_files(store: &Path) -> Vec<String> {
    fn walk(dir: &Path, base: &Path, out: &mut Vec<String>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, base, out);
            } else {
                let rel = p.strip_prefix(base).expect("under base");
                out.push(rel.display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(store, store, &mut out);
    out.retain(|f| !f.starts_with("tmp/"));
    out.sort();
    out
}

/// The path git-annex stores `key` at in a directory remote.
fn object_path(store: &Path, key: &str, hashdir: &str) -> PathBuf {
    store.join(hashdir).join(key).join(key)
}

/// `git annex examinekey --format='${hashdirlower}'` of the real client.
fn hashdir(env: &TestEnv, client: &Path, key: &str) -> String {
    env.annex(client, &["examinekey", "--format=${hashdirlower}", key])
        .ok()
        .stdout
        .trim()
        .trim_end_matches('/')
        .to_string()
}

/// The special remote's UUID, as initremote recorded it.
fn d_uuid(wd: &World) -> String {
    wd.env
        .oracle(&wd.proxy, &["config", "remote.d.annex-uuid"])
        .ok()
        .stdout
        .trim()
        .to_string()
}

/// The client's view of where `file` is.
fn is_on_d(wd: &World, file: &str) -> bool {
    whereis(&wd.env, &wd.client)
        .get(file)
        .is_some_and(|locs| locs.iter().any(|l| l.contains("origin-d")))
}

/// Real `git annex fsck --from d` inside the proxy's repository, after
/// learning what the client synced: it reads the directory itself.
fn server_fsck_from_d(wd: &World) {
    wd.env.wait_server_idle();
    let out = wd
        .env
        .oracle_annex(&wd.proxy, &["fsck", "--from", "d", "--all"]);
    assert!(
        out.success() && !out.all().contains("failed"),
        "real fsck --from d in the proxy:\n{out}"
    );
}

fn copy_get_fsck_drop_move(extra: &[&str], chunked: bool) {
    let wd = world(extra);
    let (env, client) = (&wd.env, &wd.client);
    let big = pseudo_random_bytes(7, 300_000);
    env.add_file(client, "big.bin", &big);
    env.add_file(client, "small.txt", b"hello special remote\n");
    env.annex(
        client,
        &["copy", "--to", "origin-d", "big.bin", "small.txt"],
    )
    .ok();
    assert!(is_on_d(&wd, "big.bin") && is_on_d(&wd, "small.txt"));
    // What is in the directory is git-annex's layout.
    let key = env.key_of(client, "big.bin");
    let dir = hashdir(env, client, &key);
    let files = stored_files(&wd.store);
    if chunked {
        let chunk = format!("{}-S100000-C3--", key.split_once("--").expect("key").0);
        assert!(files.iter().any(|f| f.contains(&chunk)), "{files:?}");
        assert_eq!(files.len(), 3 + 1, "{files:?}");
        // The chunk log real git-annex reads, in the proxy's branch.
        wd.env.wait_server_idle();
        let uuid = d_uuid(&wd);
        let log = env
            .oracle(
                &wd.proxy,
                &["show", &format!("git-annex:{dir}/{key}.log.cnk")],
            )
            .ok()
            .stdout;
        assert!(log.ends_with(&format!("s {uuid}:100000 3\n")), "{log}");
    } else {
        let path = object_path(&wd.store, &key, &dir);
        assert_eq!(fs::read(&path).expect("stored object"), big);
        assert_eq!(files.len(), 2, "{files:?}");
    }
    // fsck --from reads it back through the proxy.
    let (ok, results) = fsck_from(env, client, "origin-d");
    assert!(ok, "{results:?}");
    // get after dropping the local copy.
    env.annex(client, &["drop", "--force", "big.bin"]).ok();
    env.annex(client, &["get", "--from", "origin-d", "big.bin"])
        .ok();
    assert_eq!(worktree_bytes(client, "big.bin"), big);
    // Real git-annex in the proxy reads what we stored.
    env.git(client, &["annex", "sync", "--no-content"]).ok();
    server_fsck_from_d(&wd);
    // drop --from, then move back to it.
    env.annex(client, &["drop", "--from", "origin-d", "small.txt"])
        .ok();
    assert!(!is_on_d(&wd, "small.txt"));
    env.annex(client, &["move", "--to", "origin-d", "small.txt"])
        .ok();
    assert!(is_on_d(&wd, "small.txt"));
    env.annex(client, &["drop", "--from", "origin-d", "big.bin"])
        .ok();
    assert_eq!(
        stored_files(&wd.store).len(),
        1,
        "{:?}",
        stored_files(&wd.store)
    );
}

#[test]
fn unchunked_directory_remote_through_the_proxy() {
    copy_get_fsck_drop_move(&[], false);
}

#[test]
fn chunked_directory_remote_through_the_proxy() {
    copy_get_fsck_drop_move(&["chunk=100000"], true);
}
