//! The real client through our proxy to a directory remote, and real
//! git-annex's own copies read through ours.

use std::fs;

use annexproxy_tests::observe::{fsck_from, worktree_bytes};
use annexproxy_tests::pseudo_random_bytes;

use super::world::*;

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

/// Content real git-annex stored in the directory (from a repository of
/// its own on the server that enabled the same remote) is read through
/// our proxy: the client gets it and fsck's it, and drops it from there.
pub(super) fn real_stored_is_read_through_ours(extra: &[&str]) {
    let wd = world(extra);
    let dir_param = format!("directory={}", wd.store.display());
    real_stored_is_read_through(&wd, &[&dir_param]);
    assert_eq!(stored_files(&wd.store), Vec::<String>::new());
}

#[test]
fn real_stored_content_is_read_through_ours_unchunked() {
    real_stored_is_read_through_ours(&[]);
}

#[test]
fn real_stored_content_is_read_through_ours_chunked() {
    real_stored_is_read_through_ours(&["chunk=100000"]);
}
