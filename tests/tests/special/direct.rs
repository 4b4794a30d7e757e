//! Direct uploads: the client (a browser, say) puts the content into the
//! special remote itself and announces it with protocol 4's DATA-PRESENT
//! after PUT. The proxy answers SUCCESS only for content the remote holds
//! and that hashes to the key (a directory remote is read back), and only
//! then records the remote in the location log; the bytes never pass
//! through the proxy.

use std::fs;

use annexproxy_tests::http_raw;
use annexproxy_tests::p2p_driver::{sha256e_key, Shell};
use annexproxy_tests::p2phttp::HttpServer;
use annexproxy_tests::pseudo_random_bytes;

use super::world::*;

/// Put `body` where git-annex's directory remote keeps `key`, as a
/// client that uploads directly does.
fn upload_directly(wd: &World, key: &str, body: &[u8]) {
    let path = object_path(&wd.store, key, &hashdir(&wd.env, &wd.client, key));
    fs::create_dir_all(path.parent().expect("object dir")).expect("object dir");
    fs::write(&path, body).expect("object");
}

/// [`upload_directly`] in chunks of `chunk` bytes, named as git-annex
/// names chunk keys (`-S<chunk>-C<n>` after the key's size).
fn upload_chunks_directly(wd: &World, key: &str, body: &[u8], chunk: usize) {
    let (head, tail) = key.split_once("--").expect("a key");
    for (i, piece) in body.chunks(chunk).enumerate() {
        let chunk_key = format!("{head}-S{chunk}-C{}--{tail}", i + 1);
        upload_directly(wd, &chunk_key, piece);
    }
}

/// PUT `key`, then DATA-PRESENT instead of DATA; the proxy's answer.
fn announce(shell: &mut Shell, key: &str) -> String {
    shell.send(&format!("PUT f.bin {key}"));
    // complete chunks already there may make it a resume: no matter
    let from = shell.recv().unwrap_or_default();
    assert!(from.starts_with("PUT-FROM "), "{from}");
    shell.send("DATA-PRESENT");
    shell.recv().unwrap_or_default()
}

/// Where the real client, after a sync, sees `key`.
fn client_whereis(wd: &World, key: &str) -> String {
    wd.env.annex(&wd.client, &["sync"]).ok();
    wd.env.annex(&wd.client, &["whereis", "--key", key]).stdout
}

#[test]
fn direct_upload_is_verified_and_recorded() {
    let wd = world(&[]);
    let content = pseudo_random_bytes(21, 150_000);
    let key = sha256e_key(&content, ".bin");
    upload_directly(&wd, &key, &content);
    let mut shell = shell_to_d_speaking(&wd, 4);
    assert_eq!(announce(&mut shell, &key), "SUCCESS");
    shell.finish().assert_exit(0);
    // The proxy's git-annex branch says d has it: the client learns it,
    // and real git-annex in the proxy finds it whole on d.
    let whereis = client_whereis(&wd, &key);
    assert!(whereis.contains("origin-d"), "{whereis}");
    server_fsck_from_d(&wd);
}

/// Chunked, every chunk is read back: the right ones are accepted (and
/// real git-annex finds them), a forged last chunk is refused.
#[test]
fn direct_upload_in_chunks_is_verified_across_them() {
    let wd = world(&["chunk=100000"]);
    let content = pseudo_random_bytes(25, 250_000);
    let key = sha256e_key(&content, ".bin");
    upload_chunks_directly(&wd, &key, &content, 100_000);
    let other = pseudo_random_bytes(26, 250_000);
    let other_key = sha256e_key(&other, ".bin");
    let mut forged = other.clone();
    forged[249_999] ^= 0xff;
    upload_chunks_directly(&wd, &other_key, &forged, 100_000);
    let mut shell = shell_to_d_speaking(&wd, 4);
    assert_eq!(announce(&mut shell, &key), "SUCCESS");
    assert_eq!(announce(&mut shell, &other_key), "FAILURE");
    shell.finish().assert_exit(0);
    assert!(client_whereis(&wd, &key).contains("origin-d"));
    assert!(!client_whereis(&wd, &other_key).contains("origin-d"));
    server_fsck_from_d(&wd);
}

/// The attack: announcing content the remote does not hold, or holds
/// with the key's size but other bytes, is refused with the reason, and
/// nothing is recorded, so no client is sent to d for it.
#[test]
fn direct_upload_of_absent_or_corrupt_content_is_refused() {
    let wd = world(&[]);
    let content = pseudo_random_bytes(22, 150_000);
    let key = sha256e_key(&content, ".bin");
    let mut shell = shell_to_d_speaking(&wd, 4);
    assert_eq!(announce(&mut shell, &key), "FAILURE");
    let mut forged = content.clone();
    forged[75_000] ^= 0xff;
    upload_directly(&wd, &key, &forged);
    assert_eq!(announce(&mut shell, &key), "FAILURE");
    let out = shell.finish();
    out.assert_exit(0);
    assert!(out.stderr.contains("does not have"), "{}", out.show());
    assert!(out.stderr.contains("checksum mismatch"), "{}", out.show());
    let whereis = client_whereis(&wd, &key);
    assert!(!whereis.contains("origin-d"), "{whereis}");
    // The forged object is not vouched for: the next PUT asks for the
    // content and replaces it.
    let mut shell = shell_to_d_speaking(&wd, 4);
    put_whole(&mut shell, &key, &content);
    shell.finish().assert_exit(0);
    assert!(client_whereis(&wd, &key).contains("origin-d"));
    server_fsck_from_d(&wd);
}

/// git-annex's tip "client side upload to a special remote": a browser
/// puts the file into the remote, then POSTs `v4/put` with
/// `data-present=true` to the remote's UUID on `p2phttp`. The real
/// object is stored and recorded; a forged one is not.
#[test]
fn direct_upload_announced_over_http() {
    let wd = world(&[]);
    let d = d_uuid(&wd);
    let good = pseudo_random_bytes(23, 120_000);
    let good_key = sha256e_key(&good, ".bin");
    upload_directly(&wd, &good_key, &good);
    let bad = pseudo_random_bytes(24, 120_000);
    let bad_key = sha256e_key(&bad, ".bin");
    upload_directly(&wd, &bad_key, &good);
    let World { env, proxy, .. } = wd;
    let s = HttpServer::serve(env, proxy, &["--wideopen"], &[]);
    let announce = |key: &str| {
        let put = format!("/git-annex/{d}/v4/put?key={key}&clientuuid=c1&data-present=true");
        // git-annex's API wants the length even with no body
        let len = [("X-git-annex-data-length", "120000")];
        http_raw::request(s.addr, "POST", &put, &len, b"").json()["stored"].clone()
    };
    assert_eq!(announce(&good_key), true);
    assert_eq!(announce(&bad_key), false);
    // The pooled session has it in the journal, which real git-annex
    // in the proxy reads.
    let whereis = |key: &str| {
        let out = s.env.oracle_annex(&s.repo, &["whereis", "--key", key]);
        out.stdout
    };
    assert!(whereis(&good_key).contains(&d), "{}", whereis(&good_key));
    assert!(!whereis(&bad_key).contains(&d), "{}", whereis(&bad_key));
}
