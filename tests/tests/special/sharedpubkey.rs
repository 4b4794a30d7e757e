//! `encryption=sharedpubkey` (git-annex's `SharedPubKeyCipher`): the
//! cipher that names objects is in remote.log as it is, and content is
//! encrypted to the keys of `pubkeys=`, so anyone who reaches the remote
//! can store into it and only a holder of a secret key can retrieve. A
//! proxy whose user holds the public key alone stores and drops, and
//! refuses a GET before any byte, saying why; given the secret key, it
//! reads, and real git-annex reads what it stored and the other way
//! round.

use annexproxy_tests::observe::{fsck_from, worktree_bytes};
use annexproxy_tests::{pseudo_random_bytes, ServerKind, TestEnv};

use super::gpg::{GpgKey, KEYID};
use super::world::*;

#[test]
fn sharedpubkey_stores_without_the_secret_key_and_reads_with_it() {
    let env = TestEnv::new(ServerKind::Ours);
    let key = GpgKey::held_elsewhere(&env);
    let args = ["encryption=sharedpubkey", KEYID, "chunk=1MiB"];
    // Set up by our initremote: real git-annex uses it below.
    let wd = world_in(env, Setup::Ours, &args);
    let said = super::setup::records(&wd.env, &wd.proxy);
    assert!(said[1].contains(" pubkeys="), "{said:?}");
    let (env, client) = (&wd.env, &wd.client);
    let big = pseudo_random_bytes(61, 2_500_000);
    env.add_file(client, "big.bin", &big);
    env.annex(client, &["copy", "--to", "origin-d", "big.bin"])
        .ok();
    assert!(is_on_d(&wd, "big.bin"));
    assert_eq!(held(&wd).len(), 3, "{:?}", held(&wd));
    super::crypto::only_ciphertext(&wd, &big[..20]);

    // The proxy cannot decrypt: the client hears why, gets nothing.
    env.annex(client, &["drop", "--force", "big.bin"]).ok();
    let out = env.annex(client, &["get", "--from", "origin-d", "big.bin"]);
    assert!(!out.success(), "{out}");
    assert!(
        out.all().contains("holds no secret key"),
        "the client hears why:\n{out}"
    );
    assert!(!client.join("big.bin").exists());
    let (ok, results) = fsck_from(env, client, "origin-d");
    assert!(!ok, "{results:?}");

    // With the secret key: read through ours, and by real git-annex.
    key.give_secret_to_server(env);
    env.annex(client, &["get", "--from", "origin-d", "big.bin"])
        .ok();
    assert_eq!(worktree_bytes(client, "big.bin"), big);
    env.git(client, &["annex", "sync", "--no-content"]).ok();
    server_fsck_from_d(&wd);
    let dir_param = format!("directory={}", wd.store.display());
    real_stored_is_read_through(&wd, &[&dir_param]);
    env.annex(client, &["drop", "--from", "origin-d", "big.bin"])
        .ok();
    assert_eq!(held(&wd), Vec::<String>::new());
}
