//! The S3 scenarios against Garage, a real S3-compatible object store
//! that checks every request's SigV4 signature (moto checks none): the
//! real client copies, gets, `fsck --from`'s and drops through our proxy
//! to an S3 remote `d` in a single-node Garage, chunked and not; an
//! upload larger than a part goes as a multipart upload, and one cut off
//! resumes after the part Garage holds. The bucket is checked with
//! another S3 client (boto3).
//!
//! The remote is made by our `annexproxy initremote` with `host=127.0.0.1`
//! and no `region=`: the region signed is the host name, as git-annex
//! derives it, which is the region this Garage is configured with. (Real
//! git-annex signs the Host without its port, which Garage refuses on any
//! port but 80: see the README's compatibility table.)
//!
//! Garage takes minutes to build, so these run only when asked:
//! `scripts/install-garage.sh`, then `ANNEXPROXY_GARAGE=1
//! scripts/test.sh`, or `cargo test -p annexproxy-tests --test garage --
//! --ignored`. Asked, they fail (never skip) without Garage.

#[allow(dead_code)]
#[path = "special/world.rs"]
mod world;

use annexproxy_tests::observe::{fsck_from, worktree_bytes};
use annexproxy_tests::p2p_driver::sha256e_key;
use annexproxy_tests::pseudo_random_bytes;
use annexproxy_tests::{ServerKind, TestEnv};
use testkit::garage::{self, Garage};

use world::*;

/// A proxy made by `annexproxy init`, an S3 remote `d` in a bucket of
/// its own in Garage made by `annexproxy initremote` (path-style, v4, the
/// region derived from the host), proxied and `updateproxy`'d; a client.
fn garage_world(extra: &[&str]) -> World {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let env = TestEnv::new(ServerKind::Ours);
    let proxy = env.server_bare("proxy.git");
    env.annexproxy(&proxy, &["init", "the proxy"]).ok();
    let g = garage::shared();
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let bucket = format!("proxied-{}-{n}", std::process::id());
    g.create_bucket(&bucket);
    let port = format!("port={}", g.port());
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
    let mut cmd = env.server_command("annexproxy");
    cmd.envs(creds(g)).args(&args);
    annexproxy_tests::run::run(cmd, &proxy).ok();
    let store = env.srv.join("no-store");
    World {
        bucket: Some(bucket),
        ..proxied_world(env, proxy, store)
    }
}

fn creds(g: &Garage) -> [(&'static str, String); 2] {
    [
        ("AWS_ACCESS_KEY_ID", g.key_id.clone()),
        ("AWS_SECRET_ACCESS_KEY", g.secret.clone()),
    ]
}

/// The bucket's objects but `annex-uuid`, as boto3 lists them.
fn in_bucket(wd: &World) -> Vec<String> {
    let mut names = garage::shared().list_objects(wd.bucket.as_deref().expect("S3"));
    names.retain(|n| n != "annex-uuid");
    names
}

fn pending(wd: &World) -> Vec<String> {
    garage::shared().list_uploads(wd.bucket.as_deref().expect("S3"))
}

fn copy_get_fsck_drop(extra: &[&str], chunked: bool) {
    let wd = garage_world(extra);
    let (env, client) = (&wd.env, &wd.client);
    let big = pseudo_random_bytes(41, 300_000);
    env.add_file(client, "big.bin", &big);
    env.add_file(client, "small.txt", b"hello Garage\n");
    env.annex(
        client,
        &["copy", "--to", "origin-d", "big.bin", "small.txt"],
    )
    .ok();
    let key = env.key_of(client, "big.bin");
    let small = env.key_of(client, "small.txt");
    let chunk = |key: &str, n: u32| {
        let (head, name) = key.split_once("--").expect("key");
        format!("{head}-S100000-C{n}--{name}")
    };
    let mut want = if chunked {
        let mut w: Vec<String> = (1..=3).map(|n| chunk(&key, n)).collect();
        w.push(chunk(&small, 1));
        w
    } else {
        vec![key.clone(), small.clone()]
    };
    want.sort();
    assert_eq!(in_bucket(&wd), want);
    assert_eq!(pending(&wd), Vec::<String>::new());
    let (ok, results) = fsck_from(env, client, "origin-d");
    assert!(ok, "{results:?}");
    env.annex(client, &["drop", "--force", "big.bin"]).ok();
    env.annex(client, &["get", "--from", "origin-d", "big.bin"])
        .ok();
    assert!(worktree_bytes(client, "big.bin") == big, "wrong bytes");
    env.annex(client, &["drop", "--from", "origin-d", "big.bin"])
        .ok();
    assert!(!is_on_d(&wd, "big.bin"));
    assert_eq!(in_bucket(&wd).len(), 1, "{:?}", in_bucket(&wd));
}

#[test]
#[ignore = "needs Garage: scripts/install-garage.sh, then ANNEXPROXY_GARAGE=1 scripts/test.sh"]
fn garage_unchunked_through_the_proxy() {
    copy_get_fsck_drop(&[], false);
}

#[test]
#[ignore = "needs Garage: scripts/install-garage.sh, then ANNEXPROXY_GARAGE=1 scripts/test.sh"]
fn garage_chunked_through_the_proxy() {
    copy_get_fsck_drop(&["chunk=100000"], true);
}

/// An object of two 5 MiB parts cut off after the first: the resumed PUT
/// starts after the part Garage holds (ListMultipartUploads, ListParts),
/// and the completed object is whole; `status` calls the bucket reachable.
#[test]
#[ignore = "needs Garage: scripts/install-garage.sh, then ANNEXPROXY_GARAGE=1 scripts/test.sh"]
fn garage_multipart_upload_resumes_after_its_parts() {
    const PART: usize = 5 << 20;
    let wd = garage_world(&["partsize=5MiB"]);
    let content = pseudo_random_bytes(43, PART + (1 << 20));
    let key = sha256e_key(&content, ".bin");
    let mut shell = shell_to_d(&wd);
    shell.send(&format!("PUT f.bin {key}"));
    shell.expect("PUT-FROM 0");
    shell.send_raw(&data(&content[..PART + 1000], content.len()));
    std::thread::sleep(std::time::Duration::from_secs(3));
    shell.finish().assert_exit(0);
    assert_eq!(in_bucket(&wd), Vec::<String>::new());
    assert_eq!(pending(&wd), vec![key.clone()]);
    let mut shell = shell_to_d(&wd);
    shell.send(&format!("PUT f.bin {key}"));
    shell.expect(&format!("PUT-FROM {PART}"));
    shell.send_raw(&data(&content[PART..], content.len() - PART));
    shell.send("VALID");
    shell.expect("SUCCESS");
    shell.send(&format!("GET 0 f.bin {key}"));
    shell.expect(&format!("DATA {}", content.len()));
    assert!(shell.body(content.len()) == content, "wrong bytes");
    shell.expect("VALID");
    shell.send("SUCCESS");
    shell.finish().assert_exit(0);
    assert_eq!(in_bucket(&wd), vec![key]);
    assert_eq!(pending(&wd), Vec::<String>::new());
    let out = wd.env.annexproxy(&wd.proxy, &["status", "--json"]).ok();
    assert!(
        out.stdout.contains("\"name\":\"d\",\"kind\":\"special\""),
        "{out}"
    );
    let d = out
        .stdout
        .split("\"name\":\"d\"")
        .nth(1)
        .unwrap_or_default();
    assert!(d.contains("\"reachable\":true"), "{out}");
}

/// Garage checks what moto does not: with a wrong secret cached for the
/// remote, every request is refused, and `status` says so.
#[test]
#[ignore = "needs Garage: scripts/install-garage.sh, then ANNEXPROXY_GARAGE=1 scripts/test.sh"]
fn garage_refuses_a_wrong_signature() {
    let wd = garage_world(&[]);
    let uuid = d_uuid(&wd);
    let cached = wd.proxy.join("annex/creds").join(&uuid);
    let text = std::fs::read_to_string(&cached).expect("cached credentials");
    let key_id = text.lines().next().expect("the key id line").to_string();
    std::fs::write(&cached, format!("{key_id}\nnot-the-secret\n")).expect("rewrite creds");
    let out = wd.env.annexproxy(&wd.proxy, &["status", "--json"]).ok();
    let d = out
        .stdout
        .split("\"name\":\"d\"")
        .nth(1)
        .unwrap_or_default();
    assert!(d.contains("\"reachable\":false"), "{out}");
    assert!(d.contains("HTTP 403"), "{out}");
}
