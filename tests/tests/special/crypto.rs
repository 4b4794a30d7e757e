//! Encrypted special remotes (issue 14) through our proxy: a directory
//! remote with `encryption=shared chunk=1MiB` and an S3 remote (moto)
//! with `encryption=hybrid`, to a gpg key the test makes in the server
//! user's home. The remote holds only HMAC names and gpg's output; real
//! git-annex in the proxy reads what we stored, and we read what it
//! stored.

use std::path::Path;

use annexproxy_tests::observe::{fsck_from, worktree_bytes};
use annexproxy_tests::p2p_driver::sha256e_key;
use annexproxy_tests::pseudo_random_bytes;

use super::gpg::{env_with_key, KEYID};
use super::world::*;

/// Every object `d` holds is named by an HMAC, and none holds `plain`.
pub(super) fn only_ciphertext(wd: &World, plain: &[u8]) {
    let names = held(wd);
    assert!(!names.is_empty());
    for n in &names {
        assert!(n.contains("GPGHMACSHA1--"), "{names:?}");
    }
    if wd.bucket.is_none() {
        for n in &names {
            let bytes = std::fs::read(wd.store.join(n)).expect("object");
            assert!(
                !bytes.windows(plain.len()).any(|w| w == plain),
                "{n} holds plaintext"
            );
        }
    }
}

/// The client's copy (a 2.5 MB file in three chunks of 1 MiB, and a small
/// one), fsck --from, get, drop --from through our proxy; real git-annex
/// in the proxy fscks what we stored.
fn copy_fsck_get_drop(wd: &World, chunks: usize) {
    let (env, client) = (&wd.env, &wd.client);
    let big = pseudo_random_bytes(41, 2_500_000);
    let small = b"hello encrypted special remote\n";
    env.add_file(client, "big.bin", &big);
    env.add_file(client, "small.txt", small);
    env.annex(
        client,
        &["copy", "--to", "origin-d", "big.bin", "small.txt"],
    )
    .ok();
    assert!(is_on_d(wd, "big.bin") && is_on_d(wd, "small.txt"));
    assert_eq!(held(wd).len(), chunks + 1, "{:?}", held(wd));
    only_ciphertext(wd, &small[..20]);
    let (ok, results) = fsck_from(env, client, "origin-d");
    assert!(ok, "{results:?}");
    env.annex(client, &["drop", "--force", "big.bin"]).ok();
    env.annex(client, &["get", "--from", "origin-d", "big.bin"])
        .ok();
    assert_eq!(worktree_bytes(client, "big.bin"), big);
    env.git(client, &["annex", "sync", "--no-content"]).ok();
    server_fsck_from_d(wd);
    env.annex(
        client,
        &["drop", "--from", "origin-d", "big.bin", "small.txt"],
    )
    .ok();
    assert_eq!(held(wd), Vec::<String>::new());
}

#[test]
fn shared_encrypted_chunked_directory_through_the_proxy() {
    let wd = world(&["encryption=shared", "chunk=1MiB"]);
    copy_fsck_get_drop(&wd, 3);
}

/// Encrypted chunks real git-annex stored are read through ours.
#[test]
fn real_stored_encrypted_content_is_read_through_ours() {
    super::flow::real_stored_is_read_through_ours(&["encryption=shared", "chunk=1MiB"]);
}

/// Our `initremote` of a hybrid remote (the cipher encrypted to the
/// server's key) records what git-annex records, and real git-annex uses
/// it: it decrypts the cipher, and fscks what we stored.
#[test]
fn hybrid_directory_set_up_by_us() {
    let (env, _key) = env_with_key();
    let wd = world_in(
        env,
        Setup::Ours,
        &["encryption=hybrid", KEYID, "mac=HMACSHA256"],
    );
    let said = super::setup::records(&wd.env, &wd.proxy);
    assert!(said[1].contains(" cipherkeys="), "{said:?}");
    assert!(
        said[1].contains(" encryption=hybrid mac=HMACSHA256 "),
        "{said:?}"
    );
    let (env, client) = (&wd.env, &wd.client);
    env.add_file(client, "f.bin", &pseudo_random_bytes(43, 200_000));
    env.annex(client, &["copy", "--to", "origin-d", "f.bin"])
        .ok();
    assert!(held(&wd)[0].contains("GPGHMACSHA256--"), "{:?}", held(&wd));
    env.git(client, &["annex", "sync", "--no-content"]).ok();
    server_fsck_from_d(&wd);
}

/// What real git-annex's `initremote` of the same remote records, with
/// the cipher (random) left out.
#[test]
fn initremote_encryption_writes_what_git_annex_writes() {
    let (env, _key) = env_with_key();
    let store = env.srv.join("store");
    std::fs::create_dir_all(&store).expect("mkdir");
    let dir_param = format!("directory={}", store.display());
    for (i, enc) in [
        "encryption=shared",
        "encryption=hybrid",
        "encryption=pubkey",
        "encryption=sharedpubkey",
    ]
    .into_iter()
    .enumerate()
    {
        let args = ["initremote", "d", "type=directory", &dir_param, enc, KEYID];
        let ours = env.server_bare(&format!("ours{i}.git"));
        env.annexproxy(&ours, &["init", "ours"]).ok();
        let said = env.annexproxy(&ours, &args).ok().stdout;
        let real = env.server_bare(&format!("real{i}.git"));
        env.annexproxy(&real, &["init", "real"]).ok();
        let real_said = env.oracle_annex(&real, &args).ok().stdout;
        assert_eq!(said, real_said);
        let masked = |repo: &Path| {
            let mut r = super::setup::records(&env, repo);
            r.iter_mut().for_each(|l| *l = mask_cipher(l));
            r
        };
        assert_eq!(masked(&ours), masked(&real));
    }
}

/// The line with `cipher=`'s value replaced.
fn mask_cipher(line: &str) -> String {
    line.split(' ')
        .map(|w| match w.split_once('=') {
            Some(("cipher", _)) => "cipher=X".to_owned(),
            _ => w.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// An S3 remote with `encryption=hybrid chunk=1MiB` (made by real
/// git-annex, which decrypts the cipher with the server's key, as our
/// git-annex-shell does) through the proxy, its credentials found only
/// embedded in remote.log, encrypted with the cipher.
#[test]
fn hybrid_encrypted_s3_through_the_proxy() {
    let (env, _key) = env_with_key();
    let wd = super::s3::s3_world_in(
        env,
        Setup::Real,
        &["encryption=hybrid", KEYID, "chunk=1MiB"],
    );
    // Only the credentials git-annex embedded in remote.log, encrypted
    // with the cipher, are left to find.
    let log = wd.env.oracle(&wd.proxy, &["show", "git-annex:remote.log"]);
    assert!(log.ok().stdout.contains(" s3creds="));
    let cache = wd.proxy.join("annex/creds").join(d_uuid(&wd));
    std::fs::remove_file(&cache).expect("git-annex cached the credentials");
    copy_fsck_get_drop(&wd, 3);
}

/// Encrypted chunks real git-annex stored in the bucket of a hybrid S3
/// remote (from a repository of its own on the server, which decrypts
/// the cipher and the embedded credentials with the server's key) are
/// read through ours.
#[test]
fn real_stored_hybrid_s3_content_is_read_through_ours() {
    let (env, _key) = env_with_key();
    let args = ["encryption=hybrid", KEYID, "chunk=100KiB"];
    let wd = super::s3::s3_world_in(env, Setup::Real, &args);
    real_stored_is_read_through(&wd, &[]);
    assert_eq!(held(&wd), Vec::<String>::new());
}

/// `encryption=pubkey` (made by real git-annex): content encrypted to the
/// server's key, decrypted with its secret key, unchunked.
#[test]
fn pubkey_encrypted_directory_through_the_proxy() {
    let (env, _key) = env_with_key();
    let wd = world_in(env, Setup::Real, &["encryption=pubkey", KEYID]);
    copy_fsck_get_drop(&wd, 1);
}

/// Wrong bytes with VALID, or INVALID, leave no encrypted object behind.
#[test]
fn corrupted_encrypted_upload_never_appears() {
    corrupted_upload_never_appears_in(&world(&["encryption=shared", "chunk=100000"]));
}

/// Cut off after two and a half chunks: the two encrypted chunks stay,
/// and the PUT resumes after them (the half chunk staged is encrypted
/// again from its start); real git-annex finds the key whole.
#[test]
fn interrupted_encrypted_upload_resumes_after_complete_chunks() {
    let wd = world(&["encryption=shared", "chunk=100000"]);
    let content = pseudo_random_bytes(47, 350_000);
    let key = sha256e_key(&content, ".bin");
    let mut shell = cut_off_then_resumed(&wd, &key, &content, 250_000, 200_000);
    // A GET from an offset inside the third chunk.
    get_rest(&mut shell, &key, &content, 250_000);
    shell.finish().assert_exit(0);
    assert_eq!(held(&wd).len(), 4, "{:?}", held(&wd));
    let client = &wd.client;
    wd.env.annex(client, &["sync"]).ok();
    server_fsck_from_d(&wd);
}

/// `annexproxy enableremote` of an encrypted remote in another
/// repository of the server keeps its cipher and refuses to change its
/// encryption, as git-annex does; accepted with our `verifyremote
/// --safe`, real git-annex there stores into it.
#[test]
fn enableremote_of_an_encrypted_remote() {
    let wd = world(&["encryption=shared", "chunk=1MiB"]);
    let env = &wd.env;
    let side = env.srv.join("side");
    let proxy = wd.proxy.display().to_string();
    env.oracle(&env.srv, &["clone", "-q", &proxy, "side"]).ok();
    env.oracle_annex(&side, &["init", "side"]).ok();
    let dir_param = format!("directory={}", wd.store.display());
    let change = ["enableremote", "d", "encryption=none", &dir_param];
    let refused = "Cannot set encryption type of existing remotes.";
    env.oracle_annex(&side, &change).fails().says(refused);
    env.annexproxy(&side, &change).fails().says(refused);
    // The question shows where the data goes, not the cipher.
    env.annexproxy(&side, &["enableremote", "d", &dir_param])
        .ok()
        .says("\ttype=directory chunk=1MiB encryption=shared\n");
    env.annexproxy(&side, &["verifyremote", "d", "--safe"]).ok();
    let log = |repo: &Path| {
        let out = env.oracle(repo, &["show", "git-annex:remote.log"]).ok();
        out.stdout
    };
    assert_eq!(log(&side), log(&wd.proxy));
    std::fs::write(side.join("x.txt"), b"x\n").expect("write");
    env.oracle_annex(&side, &["add", "x.txt"]).ok();
    env.oracle_annex(&side, &["copy", "--to", "d", "x.txt"])
        .ok();
    assert!(held(&wd)[0].contains("GPGHMACSHA1--"), "{:?}", held(&wd));
}

/// Ciphertext altered where only gpg's integrity check (its MDC, at the
/// end) notices: all the plaintext comes out, then gpg fails; the GET
/// ends INVALID, not VALID (a key without a hash could not tell).
#[test]
fn altered_ciphertext_is_sent_invalid() {
    let wd = world(&["encryption=shared"]);
    let content = pseudo_random_bytes(53, 50_000);
    let key = sha256e_key(&content, ".bin");
    let mut shell = shell_to_d(&wd);
    put_whole(&mut shell, &key, &content);
    let [object] = held(&wd).try_into().expect("one object");
    let path = wd.store.join(object);
    let mut bytes = std::fs::read(&path).expect("object");
    *bytes.last_mut().expect("not empty") ^= 1;
    let dir = path.parent().expect("its directory");
    for p in [dir, &path] {
        let mode = if p == dir { 0o755 } else { 0o644 };
        let perms = std::os::unix::fs::PermissionsExt::from_mode(mode);
        std::fs::set_permissions(p, perms).expect("chmod");
    }
    std::fs::write(&path, bytes).expect("alter");
    shell.send(&format!("GET 0 f.bin {key}"));
    shell.expect("DATA 50000");
    shell.body(50_000);
    shell.expect("INVALID");
    shell.send("FAILURE");
    shell.finish().assert_exit(0);
}

/// Peak resident memory of process `pid`, while it runs.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("kB");
    kib * 1024
}

/// A 300 MiB upload to an unchunked encrypted remote (where git-annex
/// stages a whole encrypted copy) streams through gpg: the proxy's
/// git-annex-shell stays under 64 MiB.
#[test]
fn encrypted_upload_of_300_mib_in_bounded_memory() {
    use sha2::Digest;
    const PIECES: usize = 300;
    let wd = world(&["encryption=shared"]);
    let piece = pseudo_random_bytes(59, 1 << 20);
    let mut hash = sha2::Sha256::new();
    for _ in 0..PIECES {
        hash.update(&piece);
    }
    let len = PIECES << 20;
    let key = format!("SHA256E-s{len}--{}.bin", hex::encode(hash.finalize()));
    let mut shell = shell_to_d(&wd);
    shell.send(&format!("PUT f.bin {key}"));
    shell.expect("PUT-FROM 0");
    shell.send_raw(format!("DATA {len}\n").as_bytes());
    for _ in 0..PIECES {
        shell.send_quiet(&piece);
    }
    shell.send("VALID");
    shell.expect("SUCCESS");
    let peak = peak_rss(shell.pid());
    shell.finish().assert_exit(0);
    eprintln!("peak RSS of the proxy: {} KiB", peak >> 10);
    assert!(peak < 64 << 20, "peak RSS {peak} bytes");
    assert_eq!(held(&wd).len(), 1);
}
