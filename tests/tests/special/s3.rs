//! The real client through our proxy to an S3 remote `d` in moto, made
//! by real `git annex initremote` in the proxy's repository: copy, get,
//! fsck --from, drop and move, chunked and not; the bucket's objects are
//! git-annex's names, real git-annex in the proxy reads what we stored;
//! corrupted uploads never appear under the key; an interrupted chunked
//! upload resumes after the chunks the bucket holds.

use annexproxy_tests::observe::{fsck_from, worktree_bytes};
use annexproxy_tests::p2p_driver::sha256e_key;
use annexproxy_tests::pseudo_random_bytes;
use annexproxy_tests::{ServerKind, TestEnv};
use testkit::moto;

use super::world::*;

/// A proxy made by `annexproxy init`, an S3 remote `d` (path-style, v4,
/// on moto) made by real git-annex with the credentials in its
/// environment (it caches them in `annex/creds/<uuid>`, where our
/// git-annex-shell finds them), proxied and `updateproxy`'d by us.
fn s3_world(extra: &[&str]) -> World {
    let env = TestEnv::new(ServerKind::Ours);
    let proxy = env.server_bare("proxy.git");
    env.annexproxy(&proxy, &["init", "the proxy"]).ok();
    // git-annex refuses loopback addresses for S3 unless allowed.
    env.oracle(
        &proxy,
        &["config", "annex.security.allowed-ip-addresses", "127.0.0.1"],
    )
    .ok();
    let server = moto::shared();
    let bucket = moto::unique_bucket("proxied");
    server.create_bucket(&bucket);
    let port = format!("port={}", server.port());
    let bucket_param = format!("bucket={bucket}");
    let mut args = vec![
        "initremote",
        "d",
        "type=S3",
        "host=127.0.0.1",
        &port,
        "protocol=http",
        "requeststyle=path",
        "signature=v4",
        "encryption=none",
        &bucket_param,
    ];
    args.extend_from_slice(extra);
    let creds = [
        ("AWS_ACCESS_KEY_ID", moto::ACCESS_KEY_ID),
        ("AWS_SECRET_ACCESS_KEY", moto::SECRET_ACCESS_KEY),
    ];
    env.oracle_annex_with(&proxy, &args, &creds).ok();
    env.oracle(&proxy, &["config", "remote.d.annex-proxy", "true"])
        .ok();
    env.annexproxy(&proxy, &["updateproxy"])
        .ok()
        .says("Started proxying for d");
    let client = env.clone_client(&proxy, "client");
    env.annex(&client, &["sync"]).ok();
    World {
        store: env.srv.join("no-store"),
        env,
        proxy,
        client,
        bucket: Some(bucket),
    }
}

/// The bucket's objects but the one git-annex keeps the UUID in, sorted.
fn objects(wd: &World) -> Vec<String> {
    let bucket = wd.bucket.as_deref().expect("an S3 world");
    let mut names = moto::shared().list_objects(bucket);
    names.retain(|n| n != "annex-uuid");
    names.sort();
    names
}

/// Multipart uploads begun and neither completed nor aborted.
fn pending_uploads(wd: &World) -> Vec<String> {
    moto::shared().list_uploads(wd.bucket.as_deref().expect("an S3 world"))
}

fn copy_get_fsck_drop_move(extra: &[&str], chunked: bool) {
    let wd = s3_world(extra);
    let (env, client) = (&wd.env, &wd.client);
    let big = pseudo_random_bytes(17, 300_000);
    env.add_file(client, "big.bin", &big);
    env.add_file(client, "small.txt", b"hello S3 remote\n");
    env.annex(
        client,
        &["copy", "--to", "origin-d", "big.bin", "small.txt"],
    )
    .ok();
    assert!(is_on_d(&wd, "big.bin") && is_on_d(&wd, "small.txt"));
    let key = env.key_of(client, "big.bin");
    let small = env.key_of(client, "small.txt");
    // The bucket holds git-annex's object names: the keys, or chunk keys.
    // Chunked, even a key smaller than a chunk is stored as chunk 1.
    let chunk = |key: &str, n: u32| {
        let (head, name) = key.split_once("--").expect("key");
        format!("{head}-S100000-C{n}--{name}")
    };
    let small_object = if chunked {
        chunk(&small, 1)
    } else {
        small.clone()
    };
    let mut want = vec![small_object.clone()];
    if chunked {
        want.extend((1..=3).map(|n| chunk(&key, n)));
    } else {
        want.push(key.clone());
    }
    want.sort();
    assert_eq!(objects(&wd), want);
    assert_eq!(pending_uploads(&wd), Vec::<String>::new());
    let (ok, results) = fsck_from(env, client, "origin-d");
    assert!(ok, "{results:?}");
    env.annex(client, &["drop", "--force", "big.bin"]).ok();
    env.annex(client, &["get", "--from", "origin-d", "big.bin"])
        .ok();
    assert_eq!(worktree_bytes(client, "big.bin"), big);
    // Real git-annex in the proxy reads what we stored in the bucket.
    env.git(client, &["annex", "sync", "--no-content"]).ok();
    server_fsck_from_d(&wd);
    env.annex(client, &["drop", "--from", "origin-d", "small.txt"])
        .ok();
    assert!(!is_on_d(&wd, "small.txt"));
    assert!(!objects(&wd).contains(&small_object));
    env.annex(client, &["move", "--to", "origin-d", "small.txt"])
        .ok();
    assert!(is_on_d(&wd, "small.txt"));
    env.annex(client, &["drop", "--from", "origin-d", "big.bin"])
        .ok();
    assert_eq!(objects(&wd), vec![small_object]);
}

#[test]
fn unchunked_s3_remote_through_the_proxy() {
    copy_get_fsck_drop_move(&[], false);
}

#[test]
fn chunked_s3_remote_through_the_proxy() {
    copy_get_fsck_drop_move(&["chunk=100000"], true);
}

/// Wrong bytes with VALID, or the right ones with INVALID: FAILURE, and
/// no object under the key (nor a multipart upload left behind).
fn corrupted_upload_never_appears(extra: &[&str]) {
    let wd = s3_world(extra);
    let content = pseudo_random_bytes(13, 250_000);
    let key = sha256e_key(&content, ".bin");
    let mut wrong = content.clone();
    wrong[200_000] ^= 1;
    let mut shell = shell_to_d(&wd);
    for (body, verdict) in [(&wrong, "VALID"), (&content, "INVALID")] {
        shell.send(&format!("PUT f.bin {key}"));
        shell.expect("PUT-FROM 0");
        shell.send_raw(&data(body, body.len()));
        shell.send(verdict);
        shell.expect("FAILURE");
        assert_eq!(objects(&wd), Vec::<String>::new());
        shell.send(&format!("CHECKPRESENT {key}"));
        shell.expect("FAILURE");
    }
    shell.send(&format!("PUT f.bin {key}"));
    shell.expect("PUT-FROM 0");
    shell.send_raw(&data(&content, content.len()));
    shell.send("VALID");
    shell.expect("SUCCESS");
    shell.finish().assert_exit(0);
    assert!(!objects(&wd).is_empty());
    assert_eq!(pending_uploads(&wd), Vec::<String>::new());
    server_fsck_from_d(&wd);
}

#[test]
fn corrupted_s3_upload_never_appears_unchunked() {
    corrupted_upload_never_appears(&[]);
}

#[test]
fn corrupted_s3_upload_never_appears_chunked() {
    corrupted_upload_never_appears(&["chunk=100000"]);
}

/// Cut off after two and a half chunks: the two chunks are in the bucket,
/// the resumed PUT starts after them, and the key is whole in the end.
#[test]
fn interrupted_chunked_s3_upload_resumes_after_stored_chunks() {
    let wd = s3_world(&["chunk=100000"]);
    let content = pseudo_random_bytes(15, 350_000);
    let key = sha256e_key(&content, ".bin");
    let mut shell = shell_to_d(&wd);
    shell.send(&format!("PUT f.bin {key}"));
    shell.expect("PUT-FROM 0");
    shell.send_raw(&data(&content[..250_000], content.len()));
    shell.finish().assert_exit(0);
    assert_eq!(objects(&wd).len(), 2, "{:?}", objects(&wd));
    let mut shell = shell_to_d(&wd);
    shell.send(&format!("CHECKPRESENT {key}"));
    shell.expect("FAILURE");
    shell.send(&format!("PUT f.bin {key}"));
    shell.expect("PUT-FROM 200000");
    shell.send_raw(&data(&content[200_000..], 150_000));
    shell.send("VALID");
    shell.expect("SUCCESS");
    // GET from inside the second chunk: the rest only.
    shell.send(&format!("GET 150000 f.bin {key}"));
    shell.expect("DATA 200000");
    assert!(shell.body(200_000) == content[150_000..], "wrong bytes");
    shell.expect("VALID");
    shell.send("SUCCESS");
    shell.finish().assert_exit(0);
    assert_eq!(objects(&wd).len(), 4);
    server_fsck_from_d(&wd);
}
