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
    s3_world_by(Setup::Real, extra)
}

/// [`s3_world`], the remote made by `setup`.
fn s3_world_by(setup: Setup, extra: &[&str]) -> World {
    s3_world_at(setup, moto::shared().port(), extra)
}

/// [`s3_world_by`], requests sent to `port` on the loopback (moto, or a
/// forwarder to it).
pub(super) fn s3_world_at(setup: Setup, port: u16, extra: &[&str]) -> World {
    s3_world_with(TestEnv::new(ServerKind::Ours), setup, port, extra)
}

/// [`s3_world_by`] in `env` (whose server user may have a gpg key made).
pub(super) fn s3_world_in(env: TestEnv, setup: Setup, extra: &[&str]) -> World {
    s3_world_with(env, setup, moto::shared().port(), extra)
}

fn s3_world_with(env: TestEnv, setup: Setup, port: u16, extra: &[&str]) -> World {
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
    let port = format!("port={port}");
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
        &bucket_param,
    ];
    args.extend(default_encryption(extra));
    args.extend_from_slice(extra);
    let creds = [
        ("AWS_ACCESS_KEY_ID", moto::ACCESS_KEY_ID),
        ("AWS_SECRET_ACCESS_KEY", moto::SECRET_ACCESS_KEY),
    ];
    match setup {
        Setup::Real => env.oracle_annex_with(&proxy, &args, &creds).ok(),
        Setup::Ours => {
            let mut cmd = env.server_command("annexproxy");
            cmd.envs(creds).args(&args);
            annexproxy_tests::run::run(cmd, &proxy).ok()
        }
    };
    let store = env.srv.join("no-store");
    World {
        bucket: Some(bucket),
        ..proxied_world(env, proxy, store)
    }
}

/// Multipart uploads begun and neither completed nor aborted.
pub(super) fn pending_uploads(wd: &World) -> Vec<String> {
    moto::shared().list_uploads(wd.bucket.as_deref().expect("an S3 world"))
}

fn copy_get_fsck_drop_move(setup: Setup, extra: &[&str], chunked: bool) {
    let wd = s3_world_by(setup, extra);
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
    assert_eq!(held(&wd), want);
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
    assert!(!held(&wd).contains(&small_object));
    env.annex(client, &["move", "--to", "origin-d", "small.txt"])
        .ok();
    assert!(is_on_d(&wd, "small.txt"));
    env.annex(client, &["drop", "--from", "origin-d", "big.bin"])
        .ok();
    assert_eq!(held(&wd), vec![small_object]);
}

#[test]
fn unchunked_s3_remote_through_the_proxy() {
    copy_get_fsck_drop_move(Setup::Real, &[], false);
}

/// A remote our `initremote` made (credentials cached, bucket claimed):
/// served by our proxy, and real git-annex in the proxy takes it over.
#[test]
fn s3_remote_set_up_by_us_through_the_proxy() {
    copy_get_fsck_drop_move(Setup::Ours, &["chunk=100000"], true);
}

#[test]
fn chunked_s3_remote_through_the_proxy() {
    copy_get_fsck_drop_move(Setup::Real, &["chunk=100000"], true);
}

/// See [`corrupted_upload_never_appears_in`]; no multipart upload is
/// left behind either.
fn corrupted_upload_never_appears(extra: &[&str]) {
    let wd = s3_world(extra);
    corrupted_upload_never_appears_in(&wd);
    assert_eq!(pending_uploads(&wd), Vec::<String>::new());
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
    let mut shell = cut_off_then_resumed(&wd, &key, &content, 250_000, 200_000);
    // GET from inside the second chunk: the rest only.
    get_rest(&mut shell, &key, &content, 150_000);
    shell.finish().assert_exit(0);
    assert_eq!(held(&wd).len(), 4);
    server_fsck_from_d(&wd);
}

/// `initremote d type=S3 …` by us and by real git-annex, each on a bucket
/// of its own, credentials in the environment: the same records (bucket
/// and UUID aside), the credentials cached the same way, and the
/// bucket's `annex-uuid` object written.
#[test]
fn initremote_s3_writes_what_git_annex_writes() {
    let env = TestEnv::new(ServerKind::Ours);
    let server = moto::shared();
    let port = format!("port={}", server.port());
    let creds = [
        ("AWS_ACCESS_KEY_ID", moto::ACCESS_KEY_ID),
        ("AWS_SECRET_ACCESS_KEY", moto::SECRET_ACCESS_KEY),
    ];
    let mut seen = Vec::new();
    for ours in [true, false] {
        let bucket = moto::unique_bucket("setup");
        server.create_bucket(&bucket);
        let bucket_param = format!("bucket={bucket}");
        let args = [
            "initremote",
            "d",
            "type=S3",
            "host=127.0.0.1",
            &port,
            "protocol=http",
            "requeststyle=path",
            "signature=v4",
            "encryption=none",
            "chunk=1MiB",
            &bucket_param,
        ];
        let repo = env.server_bare(if ours { "ours.git" } else { "real.git" });
        env.annexproxy(&repo, &["init", "r"]).ok();
        env.oracle(
            &repo,
            &["config", "annex.security.allowed-ip-addresses", "127.0.0.1"],
        )
        .ok();
        let said = if ours {
            let mut cmd = env.server_command("annexproxy");
            cmd.envs(creds).args(args);
            annexproxy_tests::run::run(cmd, &repo).ok().stdout
        } else {
            env.oracle_annex_with(&repo, &args, &creds).ok().stdout
        };
        assert!(
            said.ends_with("ok\n(recording state in git...)\n"),
            "{said}"
        );
        let uuid = d_uuid_in(&env, &repo);
        let cached = std::fs::read_to_string(repo.join("annex/creds").join(&uuid))
            .expect("credentials cached in annex/creds/<uuid>");
        let records: Vec<String> = super::setup::records(&env, &repo)
            .into_iter()
            .map(|r| r.replace(&bucket, "BUCKET"))
            .collect();
        assert!(server
            .list_objects(&bucket)
            .contains(&"annex-uuid".to_owned()));
        seen.push((records, cached, said));
    }
    assert_eq!(seen[0], seen[1]);
    assert!(
        !seen[0].0[1].contains(moto::SECRET_ACCESS_KEY),
        "{:?}",
        seen[0]
    );
}

fn d_uuid_in(env: &TestEnv, repo: &std::path::Path) -> String {
    env.oracle(repo, &["config", "remote.d.annex-uuid"])
        .ok()
        .stdout
        .trim()
        .to_string()
}

/// `annexproxy status` shows the S3 remote: a special remote whose bucket
/// answers, with the keys the location log says it holds.
#[test]
fn status_shows_the_s3_remote() {
    status_row_of_d_after_a_copy(&s3_world(&[]));
}

/// An unchunked upload larger than a part, cut off after its first part
/// reached the bucket: the resumed PUT starts after that part (the hash
/// state saved at the part's end restored, the part not sent again), and
/// the object is whole and verified in the end.
#[test]
fn interrupted_unchunked_s3_upload_resumes_after_its_parts() {
    const PART: usize = 8 << 20;
    let wd = s3_world(&[]);
    let content = pseudo_random_bytes(19, PART + (4 << 20));
    let key = sha256e_key(&content, ".bin");
    let mut shell = shell_to_d(&wd);
    shell.send(&format!("PUT f.bin {key}"));
    shell.expect("PUT-FROM 0");
    shell.send_raw(&data(&content[..PART + (2 << 20)], content.len()));
    // The first part goes to the bucket while the rest is buffered.
    std::thread::sleep(std::time::Duration::from_secs(3));
    shell.finish().assert_exit(0);
    assert_eq!(held(&wd), Vec::<String>::new());
    assert_eq!(pending_uploads(&wd).len(), 1);
    let mut shell = shell_to_d(&wd);
    shell.send(&format!("PUT f.bin {key}"));
    shell.expect(&format!("PUT-FROM {PART}"));
    shell.send_raw(&data(&content[PART..], content.len() - PART));
    shell.send("VALID");
    shell.expect("SUCCESS");
    shell.finish().assert_exit(0);
    assert_eq!(held(&wd), vec![key.clone()]);
    assert_eq!(pending_uploads(&wd), Vec::<String>::new());
    server_fsck_from_d(&wd);
}

/// The same cut, then wrong bytes after the resume point: FAILURE, and
/// nothing under the key.
#[test]
fn resumed_unchunked_s3_upload_with_wrong_bytes_never_appears() {
    const PART: usize = 8 << 20;
    let wd = s3_world(&[]);
    let content = pseudo_random_bytes(21, PART + (1 << 20));
    let key = sha256e_key(&content, ".bin");
    let mut shell = shell_to_d(&wd);
    shell.send(&format!("PUT f.bin {key}"));
    shell.expect("PUT-FROM 0");
    shell.send_raw(&data(&content[..PART + 1000], content.len()));
    std::thread::sleep(std::time::Duration::from_secs(3));
    shell.finish().assert_exit(0);
    let mut wrong = content[PART..].to_vec();
    wrong[10] ^= 1;
    let mut shell = shell_to_d(&wd);
    shell.send(&format!("PUT f.bin {key}"));
    shell.expect(&format!("PUT-FROM {PART}"));
    shell.send_raw(&data(&wrong, wrong.len()));
    shell.send("VALID");
    shell.expect("FAILURE");
    shell.send(&format!("CHECKPRESENT {key}"));
    shell.expect("FAILURE");
    shell.finish().assert_exit(0);
    assert_eq!(held(&wd), Vec::<String>::new());
    assert_eq!(pending_uploads(&wd), Vec::<String>::new());
}

/// `enableremote d` of an S3 remote in another clone of the proxy's
/// repository, by us and by real git-annex: the same git config, and the
/// credentials given in the environment cached in `annex/creds/<uuid>`.
#[test]
fn enableremote_s3_writes_what_git_annex_writes() {
    let wd = s3_world(&[]);
    let env = &wd.env;
    let creds = [
        ("AWS_ACCESS_KEY_ID", moto::ACCESS_KEY_ID),
        ("AWS_SECRET_ACCESS_KEY", moto::SECRET_ACCESS_KEY),
    ];
    let uuid = d_uuid(&wd);
    let mut seen = Vec::new();
    for side in ["side", "real-side"] {
        let origin = wd.proxy.display().to_string();
        env.oracle(&env.srv, &["clone", "-q", &origin, side]).ok();
        let dir = env.srv.join(side);
        env.oracle_annex(&dir, &["init", side]).ok();
        if side == "side" {
            let mut cmd = env.server_command("annexproxy");
            cmd.envs(creds).args(["enableremote", "d"]);
            annexproxy_tests::run::run(cmd, &dir)
                .ok()
                .says("enableremote d");
        } else {
            env.oracle_annex_with(&dir, &["enableremote", "d"], &creds)
                .ok();
        }
        let cached = std::fs::read_to_string(dir.join(".git/annex/creds").join(&uuid))
            .expect("credentials cached in annex/creds/<uuid>");
        seen.push((super::setup::remote_settings(env, &dir), cached));
    }
    assert_eq!(seen[0], seen[1]);
}

/// A GET at an offset of an unchunked object asks the bucket for the rest
/// only: the bytes coming back from the bucket (counted on the wire) are
/// about the range, not the object.
#[test]
fn get_at_an_offset_reads_the_range_only() {
    let forwarder = testkit::counting_proxy::CountingProxy::start(moto::shared().port());
    let wd = s3_world_at(Setup::Real, forwarder.port(), &[]);
    let content = pseudo_random_bytes(23, 3_000_000);
    let key = sha256e_key(&content, ".bin");
    let mut shell = shell_to_d(&wd);
    put_whole(&mut shell, &key, &content);
    let before = forwarder.received();
    get_rest(&mut shell, &key, &content, 2_800_000);
    shell.finish().assert_exit(0);
    let got = forwarder.received() - before;
    assert!(
        (200_000..300_000).contains(&got),
        "{got} bytes came from the bucket for a 200000-byte range"
    );
}

/// A direct upload to the bucket announced with DATA-PRESENT: its size is
/// what is checked (reading it back would download it all): the object
/// with the key's size is recorded, one of another size refused and not
/// recorded.
#[test]
fn direct_upload_to_s3_is_checked_by_size() {
    let wd = s3_world(&[]);
    let bucket = wd.bucket.as_deref().expect("an S3 world");
    let content = pseudo_random_bytes(27, 50_000);
    let key = sha256e_key(&content, ".bin");
    moto::shared().put_object(bucket, &key, &content);
    let other = pseudo_random_bytes(28, 50_000);
    let other_key = sha256e_key(&other, ".bin");
    moto::shared().put_object(bucket, &other_key, &other[1..]);
    let mut shell = shell_to_d_speaking(&wd, 4);
    for (k, answer) in [(&key, "SUCCESS"), (&other_key, "FAILURE")] {
        shell.send(&format!("PUT f.bin {k}"));
        shell.expect("PUT-FROM 0");
        shell.send("DATA-PRESENT");
        shell.expect(answer);
    }
    shell.finish().assert_exit(0);
    wd.env.annex(&wd.client, &["sync"]).ok();
    let whereis = |k: &str| wd.env.annex(&wd.client, &["whereis", "--key", k]).stdout;
    assert!(whereis(&key).contains("origin-d"), "{}", whereis(&key));
    assert!(!whereis(&other_key).contains("origin-d"));
    // Real git-annex in the proxy reads it from the bucket whole.
    let creds = [
        ("AWS_ACCESS_KEY_ID", moto::ACCESS_KEY_ID),
        ("AWS_SECRET_ACCESS_KEY", moto::SECRET_ACCESS_KEY),
    ];
    let fsck = ["fsck", "--from", "d", "--key", &key];
    wd.env.oracle_annex_with(&wd.proxy, &fsck, &creds).ok();
}
