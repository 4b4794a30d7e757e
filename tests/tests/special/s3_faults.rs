//! An S3 remote's bucket in trouble, through our proxy with the real
//! client: transient failures (503 SlowDown, 500, a connection closed
//! before any answer) are retried, a bounded number of times; multipart
//! uploads that no attempt will resume are aborted; a bucket that is gone
//! is not reachable in `annexproxy status`.

use annexproxy_tests::observe::worktree_bytes;
use annexproxy_tests::p2p_driver::sha256e_key;
use annexproxy_tests::pseudo_random_bytes;
use testkit::http_proxy::{is_list_uploads, Fault, HttpProxy};
use testkit::moto;

use super::s3::{pending_uploads, s3_world_at};
use super::world::*;

/// A world whose proxy reaches moto through a forwarder that sees (and
/// can fail) each request.
fn world_behind(extra: &[&str]) -> (World, HttpProxy) {
    let forwarder = HttpProxy::start(moto::shared().port());
    let wd = s3_world_at(Setup::Real, forwarder.port(), extra);
    (wd, forwarder)
}

#[test]
fn transient_s3_failures_are_retried() {
    let (wd, forwarder) = world_behind(&[]);
    let (env, client) = (&wd.env, &wd.client);
    let content = pseudo_random_bytes(31, 200_000);
    env.add_file(client, "f.bin", &content);
    // The first requests of the copy's session (its CHECKPRESENT's HEAD,
    // the PUT) meet a busy, a broken and a dropped server.
    forwarder.fail_next(1, Fault::SlowDown, "");
    forwarder.fail_next(1, Fault::Reset, "");
    forwarder.fail_next(1, Fault::InternalError, "");
    env.annex(client, &["copy", "--to", "origin-d", "f.bin"])
        .ok();
    assert_eq!((forwarder.armed(), forwarder.failed()), (0, 3));
    assert_eq!(held(&wd), vec![env.key_of(client, "f.bin")]);
    env.annex(client, &["drop", "--force", "f.bin"]).ok();
    forwarder.fail_next(1, Fault::Reset, "GET ");
    forwarder.fail_next(1, Fault::SlowDown, "GET ");
    env.annex(client, &["get", "--from", "origin-d", "f.bin"])
        .ok();
    assert_eq!(forwarder.failed(), 5);
    assert!(worktree_bytes(client, "f.bin") == content, "wrong bytes");
    // A server that keeps failing: the transfer fails, in bounded time.
    env.annex(client, &["drop", "--force", "f.bin"]).ok();
    forwarder.fail_next(20, Fault::SlowDown, "");
    let started = std::time::Instant::now();
    env.annex(client, &["get", "--from", "origin-d", "f.bin"])
        .fails();
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    assert!(forwarder.failed() > 6, "{} failed", forwarder.failed());
}

/// Two uploads of the key begun by attempts that went away (another
/// program's, say): the new attempt resumes one and aborts the other, so
/// none is left in the bucket once the key is stored.
#[test]
fn uploads_of_the_key_not_resumed_are_aborted() {
    let (wd, _forwarder) = world_behind(&["partsize=5MiB"]);
    let bucket = wd.bucket.clone().expect("an S3 world");
    let content = pseudo_random_bytes(33, (5 << 20) + 100_000);
    let key = sha256e_key(&content, ".bin");
    moto::shared().begin_upload(&bucket, &key);
    moto::shared().begin_upload(&bucket, &key);
    assert_eq!(pending_uploads(&wd).len(), 2);
    let mut shell = shell_to_d(&wd);
    put_whole(&mut shell, &key, &content);
    shell.finish().assert_exit(0);
    assert_eq!(held(&wd), vec![key]);
    assert_eq!(pending_uploads(&wd), Vec::<String>::new());
}

/// Uploads of keys left older than the remote's stale-upload age (0 here)
/// are aborted by the next session that writes, with one
/// ListMultipartUploads for the session, not one a key; an upload of an
/// object that is not a key is not ours and stays.
#[test]
fn stale_uploads_of_keys_are_swept_once_a_session() {
    let (wd, forwarder) = world_behind(&[]);
    let bucket = wd.bucket.clone().expect("an S3 world");
    let (env, client) = (&wd.env, &wd.client);
    env.oracle(
        &wd.proxy,
        &["config", "remote.d.annexproxy-s3-stale-upload-age", "0"],
    )
    .ok();
    let left = sha256e_key(b"an upload nobody came back for", ".bin");
    moto::shared().begin_upload(&bucket, &left);
    moto::shared().begin_upload(&bucket, "notes/not-a-key");
    let files: Vec<(String, Vec<u8>)> = (0..3)
        .map(|i| (format!("s{i}.txt"), format!("small {i}\n").into_bytes()))
        .collect();
    env.add_files(client, &files);
    let before = forwarder.requests().len();
    env.annex(
        client,
        &["copy", "--to", "origin-d", "s0.txt", "s1.txt", "s2.txt"],
    )
    .ok();
    assert_eq!(held(&wd).len(), 3);
    assert_eq!(pending_uploads(&wd), vec!["notes/not-a-key".to_string()]);
    let lists = forwarder.requests()[before..]
        .iter()
        .filter(|r| is_list_uploads(r))
        .count();
    assert_eq!(lists, 1, "{:#?}", &forwarder.requests()[before..]);
}

/// `annexproxy status`: a bucket that answers NoSuchBucket is not a
/// reachable remote (a HEAD of `annex-uuid` gets 404 either way).
#[test]
fn status_calls_a_missing_bucket_unreachable() {
    let (wd, _forwarder) = world_behind(&[]);
    let bucket = wd.bucket.clone().expect("an S3 world");
    moto::shared().delete_bucket(&bucket);
    let out = wd.env.annexproxy(&wd.proxy, &["status", "--json"]).ok();
    let status = &annexproxy_tests::observe::json_lines(&out.stdout)[0];
    let d = status["proxied"]
        .as_array()
        .expect("proxied")
        .iter()
        .find(|r| r["name"] == "d")
        .unwrap_or_else(|| panic!("no d in {out}"))
        .clone();
    assert_eq!(d["reachable"], false, "{out}");
    assert!(
        d["error"]
            .as_str()
            .is_some_and(|e| e.contains("NoSuchBucket")),
        "{out}"
    );
}

/// Getting a small object costs one request to the bucket: the GET that
/// finds it brings its bytes (a HEAD, then a GET, was two).
#[test]
fn a_small_get_is_one_request() {
    let (wd, forwarder) = world_behind(&[]);
    let (env, client) = (&wd.env, &wd.client);
    let content = pseudo_random_bytes(35, 16 * 1024);
    env.add_file(client, "s.bin", &content);
    env.annex(client, &["copy", "--to", "origin-d", "s.bin"])
        .ok();
    env.annex(client, &["drop", "--force", "s.bin"]).ok();
    let key = env.key_of(client, "s.bin");
    let before = forwarder.requests().len();
    env.annex(client, &["get", "--from", "origin-d", "s.bin"])
        .ok();
    assert!(worktree_bytes(client, "s.bin") == content, "wrong bytes");
    let sent: Vec<String> = forwarder.requests()[before..].to_vec();
    let of_key: Vec<&String> = sent.iter().filter(|r| r.contains(&key)).collect();
    assert_eq!(of_key.len(), 1, "{sent:#?}");
    assert!(of_key[0].starts_with("GET "), "{sent:#?}");
}
