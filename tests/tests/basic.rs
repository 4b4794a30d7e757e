//! Everyday client flows against a server that starts as a plain
//! `git init --bare` (no git-annex on the server until the client's first
//! sync autoinitialises it): init + sync, copy, get, drop (with and without
//! enough copies, and the LOCKCONTENT drop proof), move, fsck, whereis.
//!
//! Expectations were taken from the real git-annex-shell 10.20261026; the
//! `_ours` variants hold our server to the same, and `compare_*` tests
//! require identical normalised observations.

use std::fs;

use annexproxy_tests::observe::{action_results, fsck_from, whereis};
use annexproxy_tests::on_both_servers;
use annexproxy_tests::{ServerKind, TestEnv, Transcript};

use annexproxy_tests::observe::{expected_whereis as w, worktree_bytes as read};

/// A bare server (plain git) and a client that cloned it, added `files`
/// and synced.
fn setup(
    kind: ServerKind,
    files: &[(&str, &[u8])],
) -> (TestEnv, std::path::PathBuf, std::path::PathBuf) {
    let env = TestEnv::new(kind);
    let server = env.server_bare("server.git");
    let client = env.clone_client(&server, "client");
    for (f, c) in files {
        env.add_file(&client, f, c);
    }
    env.annex(&client, &["sync"]).ok();
    (env, server, client)
}

// ----- init + sync ----------------------------------------------------------

fn init_sync(kind: ServerKind) -> Transcript {
    let mut t = Transcript::default();
    let env = TestEnv::new(kind);
    let server = env.server_bare("server.git");
    let client = env.clone_client(&server, "client");
    assert_eq!(
        env.server_uuid(&server),
        "",
        "git annex init in the client must not initialise the server"
    );
    env.add_file(&client, "a.txt", b"hello\n");
    let mark = env.ssh_mark();
    let sync = env.annex(&client, &["sync"]).ok();

    let uuid = env.server_uuid(&server);
    assert!(
        !uuid.is_empty(),
        "sync should have autoinitialised the server (annex.uuid unset)\n{sync}\n--- ssh log ---\n{}",
        env.ssh_log_text()
    );
    let version = env
        .oracle(&server, &["config", "--get", "annex.version"])
        .stdout
        .trim()
        .to_string();
    assert_eq!(version, "10", "annex.version of the autoinitialised server");
    env.oracle(
        &server,
        &["rev-parse", "--verify", "-q", "refs/heads/git-annex"],
    )
    .ok();
    let cached = env
        .git(&client, &["config", "--get", "remote.origin.annex-uuid"])
        .ok();
    assert_eq!(
        cached.stdout.trim(),
        uuid,
        "client caches the server's UUID"
    );
    let ignore = env.git(&client, &["config", "--get", "remote.origin.annex-ignore"]);
    assert_ne!(
        ignore.stdout.trim(),
        "true",
        "client gave up on the server:\n{ignore}"
    );

    let calls = env.ssh_calls_since(mark);
    let autoinit = format!(
        "git-annex-shell 'configlist' '{}' '--' 'autoinit=1' '--'",
        server.display()
    );
    assert!(
        calls.iter().any(|c| c.command == autoinit),
        "sync should ask for autoinit with {autoinit:?}; sessions were:\n{}",
        env.ssh_log_text()
    );
    for c in &calls {
        assert_eq!(
            c.exit,
            Some(0),
            "server session failed: {c:?}\n{}",
            env.ssh_log_text()
        );
        assert_eq!(c.host, "localhost");
    }
    t.note(
        "sync sessions",
        calls
            .iter()
            .map(|c| (env.unroot(&c.command), c.exit))
            .collect::<Vec<_>>(),
    );

    let heads = env
        .oracle(
            &server,
            &["for-each-ref", "--format=%(refname)", "refs/heads"],
        )
        .ok();
    t.note(
        "server refs after sync",
        heads.stdout.lines().collect::<Vec<_>>(),
    );
    t.note("whereis after sync", whereis(&env, &client));
    assert_eq!(whereis(&env, &client), w(&[("a.txt", &["client [here]"])]));

    // A second sync is a no-op for the server: no new autoinit, same UUID.
    env.annex(&client, &["sync"]).ok();
    assert_eq!(env.server_uuid(&server), uuid);
    env.assert_server_fsck_clean(&server);
    t
}

on_both_servers!(init_sync, compare);

/// Same flow with a non-bare server repo that already has a commit.
fn init_sync_nonbare(kind: ServerKind) -> Transcript {
    let mut t = Transcript::default();
    let env = TestEnv::new(kind);
    let server = env.server_nonbare("work");
    let client = env.clone_client(&server, "client");
    env.add_file(&client, "a.txt", b"non-bare\n");
    env.annex(&client, &["sync"]).ok();
    assert!(
        !env.server_uuid(&server).is_empty(),
        "sync should have autoinitialised the server"
    );
    env.annex(&client, &["copy", "--to", "origin", "a.txt"])
        .ok();
    let key = env.key_of(&client, "a.txt");
    assert!(
        env.server_has_content(&server, &key),
        "non-bare server should hold {key}"
    );
    assert!(
        env.server_log_says_present(&server, &key),
        "server should log its own copy of {key}"
    );
    let seen = whereis(&env, &client);
    assert_eq!(seen, w(&[("a.txt", &["client [here]", "origin"])]));
    t.note("whereis", seen);
    env.assert_server_fsck_clean(&server);
    t
}

on_both_servers!(init_sync_nonbare);

/// A server repo that real git-annex initialised on the server itself
/// (`git annex init "described server"`), before any client came along.
fn preinitialised_server(kind: ServerKind) -> Transcript {
    let mut t = Transcript::default();
    let env = TestEnv::new(kind);
    let server = env.server_bare("server.git");
    env.server_annex_init(&server, "described server");
    let uuid = env.server_uuid(&server);
    let client = env.clone_client(&server, "client");
    let cached = env
        .git(&client, &["config", "--get", "remote.origin.annex-uuid"])
        .ok();
    assert_eq!(
        cached.stdout.trim(),
        uuid,
        "git annex init in the client learns the server's UUID"
    );
    env.add_file(&client, "p.txt", b"pre\n");
    env.annex(&client, &["copy", "--to", "origin", "p.txt"])
        .ok();
    env.annex(&client, &["sync"]).ok();
    let seen = whereis(&env, &client);
    assert_eq!(
        seen,
        w(&[("p.txt", &["client [here]", "described server [origin]"])])
    );
    t.note("whereis", &seen);
    assert_eq!(env.server_uuid(&server), uuid, "the server keeps its UUID");
    env.assert_server_fsck_clean(&server);
    t
}

on_both_servers!(preinitialised_server);

// ----- copy / get / drop ----------------------------------------------------

fn copy_get_drop(kind: ServerKind) -> Transcript {
    let mut t = Transcript::default();
    let (env, server, client) = setup(kind, &[("a.txt", b"alpha\n"), ("sub/b.txt", b"bravo\n")]);
    let ka = env.key_of(&client, "a.txt");
    let kb = env.key_of(&client, "sub/b.txt");

    let out = env
        .annex(&client, &["copy", "--to", "origin", "--json"])
        .ok();
    t.note("copy --to results", action_results(&out.stdout));
    for k in [&ka, &kb] {
        assert!(
            env.server_has_content(&server, k),
            "server should hold {k} after copy --to"
        );
        assert!(
            env.server_log_says_present(&server, k),
            "server's own location log should list itself for {k}"
        );
    }
    let both = w(&[
        ("a.txt", &["client [here]", "origin"]),
        ("sub/b.txt", &["client [here]", "origin"]),
    ]);
    assert_eq!(whereis(&env, &client), both);
    t.note("whereis after copy", whereis(&env, &client));

    // copying again finds the content already there
    env.annex(&client, &["copy", "--to", "origin", "a.txt"])
        .ok();

    // Dropping the only local copy relies on the server: the client proves
    // the copy by locking it there (LOCKCONTENT) while it drops.
    let out = env
        .annex(
            &client,
            &["drop", "a.txt", "--debug", "--debugfilter=P2P.IO"],
        )
        .ok();
    assert!(
        out.stderr.contains(&format!("P2P > LOCKCONTENT {ka}")),
        "local drop should lock the server's copy:\n{out}"
    );
    assert!(
        read(&client, "a.txt").is_empty(),
        "a.txt content should be gone locally"
    );
    t.note("whereis after local drop", whereis(&env, &client));
    assert_eq!(
        whereis(&env, &client),
        w(&[
            ("a.txt", &["origin"]),
            ("sub/b.txt", &["client [here]", "origin"])
        ])
    );

    env.annex(&client, &["get", "--from", "origin", "a.txt"])
        .ok();
    assert_eq!(read(&client, "a.txt"), b"alpha\n");
    assert_eq!(whereis(&env, &client), both);

    // numcopies 1 (the default): the local copy is enough to drop the server's
    env.annex(&client, &["drop", "--from", "origin", "a.txt"])
        .ok();
    assert!(
        !env.server_has_content(&server, &ka),
        "server should no longer hold {ka}"
    );
    assert!(
        !env.server_log_says_present(&server, &ka),
        "server's log should record the removal of {ka}"
    );
    t.note("whereis after drop --from", whereis(&env, &client));
    assert_eq!(
        whereis(&env, &client),
        w(&[
            ("a.txt", &["client [here]"]),
            ("sub/b.txt", &["client [here]", "origin"])
        ])
    );

    // numcopies 2: neither the server's copy nor the local one may go
    env.annex(&client, &["numcopies", "2"]).ok();
    let out = env
        .annex(&client, &["drop", "--from", "origin", "sub/b.txt"])
        .fails();
    let out = out.says("Could only verify the existence of 1 out of 2 necessary copies");
    t.note(
        "drop --from refused",
        out.stderr
            .lines()
            .filter(|l| !l.contains("sshcaching") && !l.contains("concurrency"))
            .collect::<Vec<_>>(),
    );
    assert!(
        env.server_has_content(&server, &kb),
        "a refused drop must leave {kb} on the server"
    );
    env.annex(&client, &["drop", "sub/b.txt"]).fails();
    assert_eq!(read(&client, "sub/b.txt"), b"bravo\n");
    env.annex(&client, &["numcopies", "1"]).ok();

    env.annex(&client, &["sync"]).ok();
    env.assert_server_fsck_clean(&server);
    t
}

on_both_servers!(copy_get_drop, compare);

/// An object of 16 MiB or more leaves the store by a rename into
/// `annex/othertmp/` and is unlinked after the reply, by the session's
/// helper process once the session may have ended: the client sees it
/// gone at once, and nothing is left behind once the helper is done.
#[test]
fn large_drop_leaves_nothing_behind_ours() {
    let big: Vec<u8> = (0..17u32 << 20).map(|i| (i % 251) as u8).collect();
    let (env, server, client) = setup(ServerKind::Ours, &[("big.bin", &big)]);
    let key = env.key_of(&client, "big.bin");
    env.annex(&client, &["copy", "--to", "origin", "big.bin"])
        .ok();
    assert!(env.server_has_content(&server, &key));
    env.annex(&client, &["drop", "--from", "origin", "big.bin"])
        .ok();
    assert!(
        !env.server_has_content(&server, &key),
        "server should no longer hold {key}"
    );
    assert!(!env.server_log_says_present(&server, &key));
    let othertmp = server.join("annex/othertmp");
    // Nothing but the spare inodes of committed journal files; the big
    // object is not kept there.
    let left = || -> Vec<_> {
        std::fs::read_dir(&othertmp)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name())
                    .filter(|n| n != "spare")
                    .collect()
            })
            .unwrap_or_default()
    };
    // The key's directory goes with it, right after.
    let objects = server.join("annex/objects");
    let key_dirs = || -> Vec<_> {
        walkdir(&objects)
            .into_iter()
            .filter(|p| p.file_name().is_some_and(|n| n == key.as_str()))
            .collect()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while (!left().is_empty() || !key_dirs().is_empty()) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(
        left().is_empty(),
        "left in {}: {:?}",
        othertmp.display(),
        left()
    );
    assert!(key_dirs().is_empty(), "{:?}", key_dirs());
    for spare in std::fs::read_dir(othertmp.join("spare"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let len = spare.metadata().expect("spare").len();
        assert!(len < 4096, "{} has {len} bytes", spare.path().display());
    }
    assert_eq!(
        whereis(&env, &client),
        w(&[("big.bin", &["client [here]"])])
    );
    env.annex(&client, &["sync"]).ok();
    env.assert_server_fsck_clean(&server);
}

/// A key of 16 MiB or more is written by direct I/O and, not being in the
/// page cache, read so: the real client stores it, checks it and gets it
/// back whole, to an unaligned end.
#[test]
fn a_large_object_goes_both_ways_by_direct_io_ours() {
    let big: Vec<u8> = (0..(17u32 << 20) + 77)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let (env, server, client) = setup(ServerKind::Ours, &[("big.bin", &big)]);
    let key = env.key_of(&client, "big.bin");
    env.annex(&client, &["copy", "--to", "origin", "big.bin"])
        .ok();
    let object = content_path(&env, &server, &key);
    assert!(
        fs::read(&object).expect("object") == big,
        "stored bytes differ"
    );
    // Read above, so cached now: stored again, it is not.
    env.annex(&client, &["drop", "--from", "origin", "big.bin"])
        .ok();
    env.annex(&client, &["copy", "--to", "origin", "big.bin"])
        .ok();
    let object = content_path(&env, &server, &key);
    let file = fs::File::open(&object).expect("object");
    let len = big.len() as u64;
    assert!(
        !annex::direct_io::in_page_cache(&file, 0, len),
        "written by direct I/O, the object should not be in the page cache"
    );
    env.annex(&client, &["drop", "--force", "big.bin"]).ok();
    env.annex(&client, &["get", "--from", "origin", "big.bin"])
        .ok();
    assert!(
        read(&client, "big.bin") == big,
        "the client got other bytes"
    );
    assert!(
        !annex::direct_io::in_page_cache(&file, 0, len),
        "read by direct I/O, the object should not be in the page cache"
    );
    let (ok, results) = fsck_from(&env, &client, "origin");
    assert!(ok, "{results:?}");
    assert_eq!(
        results.get("big.bin").map(|r| r.0),
        Some(true),
        "{results:?}"
    );
    env.annex(&client, &["drop", "--from", "origin", "big.bin"])
        .ok();
    env.annex(&client, &["sync"]).ok();
    env.assert_server_fsck_clean(&server);
}

/// Where the real git-annex finds `key`'s content in `server`.
fn content_path(env: &TestEnv, server: &std::path::Path, key: &str) -> std::path::PathBuf {
    let out = env.oracle_peek(server, &["contentlocation", key]);
    assert!(out.success(), "the server should hold {key}");
    server.join(out.stdout.trim())
}

// ----- move -----------------------------------------------------------------

fn move_to_from(kind: ServerKind) -> Transcript {
    let mut t = Transcript::default();
    let (env, server, client) = setup(kind, &[("m.bin", b"moving content\n")]);
    let k = env.key_of(&client, "m.bin");

    env.annex(&client, &["move", "--to", "origin", "m.bin"])
        .ok();
    assert!(
        read(&client, "m.bin").is_empty(),
        "move --to should drop the local copy"
    );
    assert!(env.server_has_content(&server, &k));
    assert_eq!(whereis(&env, &client), w(&[("m.bin", &["origin"])]));
    t.note("after move --to", whereis(&env, &client));

    env.annex(&client, &["move", "--from", "origin", "m.bin"])
        .ok();
    assert_eq!(read(&client, "m.bin"), b"moving content\n");
    assert!(
        !env.server_has_content(&server, &k),
        "move --from should remove the server's copy"
    );
    assert!(!env.server_log_says_present(&server, &k));
    assert_eq!(whereis(&env, &client), w(&[("m.bin", &["client [here]"])]));
    t.note("after move --from", whereis(&env, &client));

    env.annex(&client, &["sync"]).ok();
    env.assert_server_fsck_clean(&server);
    t
}

on_both_servers!(move_to_from, compare);

// ----- fsck --from ----------------------------------------------------------

fn fsck_remote(kind: ServerKind) -> Transcript {
    let mut t = Transcript::default();
    let (env, server, client) = setup(
        kind,
        &[("good.txt", b"good\n"), ("bad.txt", b"will be corrupted\n")],
    );
    env.annex(&client, &["copy", "--to", "origin"]).ok();

    let (ok, results) = fsck_from(&env, &client, "origin");
    assert!(ok, "fsck --from origin should pass: {results:?}");
    assert_eq!(results.len(), 2);
    assert!(results.values().all(|(s, _)| *s), "{results:?}");
    t.note("fsck --from clean", &results);

    // Corrupt the server's copy of bad.txt (same size, different bytes).
    let kbad = env.key_of(&client, "bad.txt");
    let loc = env.oracle_peek(&server, &["contentlocation", &kbad]).ok();
    let obj = server.join(loc.stdout.trim());
    let dir = obj.parent().expect("object file has a key dir");
    std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("thaw key dir");
    std::fs::set_permissions(&obj, std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .expect("thaw object");
    std::fs::write(&obj, b"WILL BE CORRUPTED\n").expect("corrupt object");

    let (ok, results) = fsck_from(&env, &client, "origin");
    assert!(
        !ok,
        "fsck --from origin should fail on corrupted content: {results:?}"
    );
    assert_eq!(
        results.get("good.txt").map(|r| r.0),
        Some(true),
        "{results:?}"
    );
    assert_eq!(
        results.get("bad.txt").map(|r| r.0),
        Some(false),
        "{results:?}"
    );
    t.note("fsck --from with corruption", &results);
    // The real client only reports the failed download: the location log
    // still lists origin and the corrupted object stays on the server.
    let after = whereis(&env, &client);
    t.note("whereis after fsck found corruption", &after);
    assert_eq!(
        after,
        w(&[
            ("bad.txt", &["client [here]", "origin"]),
            ("good.txt", &["client [here]", "origin"])
        ])
    );
    assert!(env.server_has_content(&server, &kbad));
    let oracle = env.oracle_annex(&server, &["fsck", "--quiet"]);
    assert!(
        !oracle.success(),
        "the oracle fsck should catch the corruption:\n{oracle}"
    );

    // Repair: drop the bad copy from the server (removal does not verify)
    // and send a good one.
    env.annex(&client, &["drop", "--from", "origin", "bad.txt"])
        .ok();
    assert!(!env.server_has_content(&server, &kbad));
    env.annex(&client, &["copy", "--to", "origin", "bad.txt"])
        .ok();
    let (ok, results) = fsck_from(&env, &client, "origin");
    assert!(ok, "fsck --from origin after repair: {results:?}");
    env.annex(&client, &["sync"]).ok();
    env.assert_server_fsck_clean(&server);
    t
}

on_both_servers!(fsck_remote, compare);

// ----- whereis through the git-annex branch ---------------------------------

fn whereis_after_sync(kind: ServerKind) -> Transcript {
    let mut t = Transcript::default();
    let (env, server, first) = setup(kind, &[("w1.txt", b"one\n"), ("w2.txt", b"two\n")]);
    env.annex(&first, &["copy", "--to", "origin", "w1.txt"])
        .ok();
    env.annex(&first, &["sync"]).ok();

    let second = env.clone_client(&server, "second");
    env.annex(&second, &["sync"]).ok();
    // The server described itself when it was autoinitialised; a client
    // that learns of it through the git-annex branch shows that description.
    let origin = format!("{} [origin]", env.default_description(&server));
    let seen = whereis(&env, &second);
    assert_eq!(
        seen,
        w(&[("w1.txt", &["client", &origin]), ("w2.txt", &["client"])])
    );
    t.note("second client's whereis", &seen);

    env.annex(&second, &["get", "--from", "origin", "w1.txt"])
        .ok();
    assert_eq!(read(&second, "w1.txt"), b"one\n");
    env.annex(&second, &["sync"]).ok();
    env.annex(&first, &["sync"]).ok();
    let seen = whereis(&env, &first);
    assert_eq!(
        seen,
        w(&[
            ("w1.txt", &["client [here]", &origin, "second"]),
            ("w2.txt", &["client [here]"])
        ])
    );
    t.note("first client's whereis after both synced", &seen);
    env.assert_server_fsck_clean(&server);
    t
}

on_both_servers!(whereis_after_sync, compare);

// ----- many keys in one session ---------------------------------------------

/// One session storing, then one removing, enough keys that our server
/// commits the git-annex branch as a pack (`shared/src/branch/pack.rs`):
/// the server's own logs say so, and real `git annex fsck` and `git fsck`
/// in the server repository are clean.
fn many_keys_one_session(kind: ServerKind) -> Transcript {
    let mut t = Transcript::default();
    let names: Vec<String> = (0..12).map(|i| format!("m/{i:02}.txt")).collect();
    let files: Vec<(&str, Vec<u8>)> = names
        .iter()
        .map(|n| (n.as_str(), format!("content of {n}\n").into_bytes()))
        .collect();
    let files: Vec<(&str, &[u8])> = files.iter().map(|(n, c)| (*n, c.as_slice())).collect();
    let (env, server, client) = setup(kind, &files);
    let keys: Vec<String> = names.iter().map(|n| env.key_of(&client, n)).collect();
    let out = env
        .annex(&client, &["copy", "--to", "origin", "m", "--json"])
        .ok();
    t.note("copy --to results", action_results(&out.stdout));
    for k in &keys {
        assert!(
            env.server_log_says_present(&server, k),
            "server's log should list itself for {k}"
        );
    }
    env.assert_server_fsck_clean(&server);
    env.git(&server, &["fsck", "--strict", "--no-dangling"])
        .ok();

    let out = env
        .annex(&client, &["drop", "--from", "origin", "m", "--json"])
        .ok();
    t.note("drop --from results", action_results(&out.stdout));
    for k in &keys {
        assert!(
            !env.server_has_content(&server, k),
            "server should no longer hold {k}"
        );
        assert!(
            !env.server_log_says_present(&server, k),
            "server's log should record the removal of {k}"
        );
    }
    env.assert_server_fsck_clean(&server);
    env.git(&server, &["fsck", "--strict", "--no-dangling"])
        .ok();
    t
}

on_both_servers!(many_keys_one_session, compare);

/// Spare inodes (README, "Spare inodes"): the inodes of the objects a drop
/// removed (and of journal files a commit retired) wait, empty, in the
/// server's `annex/othertmp/spare/`, and the next copy makes its objects
/// of them instead of allocating new ones; the client
/// sees nothing of it, and real git-annex's fsck in the server finds the
/// repository clean.
#[test]
fn spare_inodes_are_reused() {
    use std::os::unix::fs::MetadataExt;
    let first: Vec<String> = (0..8).map(|i| format!("a/{i}.txt")).collect();
    let second: Vec<String> = (0..8).map(|i| format!("b/{i}.txt")).collect();
    let contents: Vec<(String, Vec<u8>)> = first
        .iter()
        .chain(&second)
        .map(|n| (n.clone(), format!("spare test {n}\n").into_bytes()))
        .collect();
    let files: Vec<(&str, &[u8])> = contents
        .iter()
        .map(|(n, c)| (n.as_str(), c.as_slice()))
        .collect();
    let (env, server, client) = setup(ServerKind::Ours, &files);
    let object_inode = |key: &str| {
        let loc = env.oracle_peek(&server, &["contentlocation", key]).ok();
        fs::metadata(server.join(loc.stdout.trim()))
            .expect("object")
            .ino()
    };
    let spares = || -> Vec<u64> {
        fs::read_dir(server.join("annex/othertmp/spare"))
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.metadata().expect("spare").ino())
                    .collect()
            })
            .unwrap_or_default()
    };

    env.annex(&client, &["copy", "--to", "origin", "a"]).ok();
    let dropped: Vec<u64> = first
        .iter()
        .map(|n| object_inode(&env.key_of(&client, n)))
        .collect();
    env.annex(&client, &["drop", "--from", "origin", "a"]).ok();
    let kept = spares();
    for ino in &dropped {
        assert!(
            kept.contains(ino),
            "dropped object's inode {ino} kept: {kept:?}"
        );
    }
    // The sessions' location log lines went straight into the branch, not
    // through a journal file per key, which a commit would have retired
    // here too.
    assert!(kept.len() < dropped.len() + first.len(), "{kept:?}");

    env.annex(&client, &["copy", "--to", "origin", "b"]).ok();
    let keys: Vec<String> = second.iter().map(|n| env.key_of(&client, n)).collect();
    let reused = keys
        .iter()
        .filter(|k| kept.contains(&object_inode(k)))
        .count();
    assert_eq!(reused, keys.len(), "every new object made of a spare");
    for k in &keys {
        assert!(env.server_log_says_present(&server, k), "{k} logged");
    }
    let (ok, _) = fsck_from(&env, &client, "origin");
    assert!(ok, "fsck --from origin");
    env.assert_server_fsck_clean(&server);
    for n in &second {
        env.annex(&client, &["drop", "--force", n]).ok();
        env.annex(&client, &["get", "--from", "origin", n]).ok();
        assert_eq!(read(&client, n), format!("spare test {n}\n").into_bytes());
    }
}

/// Every path under `dir`, depth first.
fn walkdir(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walkdir(&path));
        }
        out.push(path);
    }
    out
}
