//! External special remotes (`type=external`) behind our proxy: real
//! programs no one here wrote, installed by the test command
//! (scripts/install-external-remotes.sh): `git-annex-remote-rclone` on an
//! rclone remote of the `local` type, datalad's `git-annex-remote-ora`
//! on a local RIA store; and a program of ours that misbehaves. The real
//! client copies, fscks, gets and drops through the proxy; real
//! git-annex in the proxy's repository then reads what we stored through
//! the same program (`fsck --from d`), and the stores hold the objects
//! where each program lays them out.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use annexproxy_tests::observe::{fsck_from, worktree_bytes};
use annexproxy_tests::pseudo_random_bytes;
use annexproxy_tests::{ServerKind, TestEnv};

use super::world::*;

/// The RIA store's dataset ID (`archive-id=`).
pub const ARCHIVE_ID: &str = "0123456789abcdef";

/// Which program the remote `d` runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Program {
    Rclone,
    Ora,
    /// Ours, misbehaving on some keys (see [`WOBBLY`]).
    Wobbly,
    /// Ours, taking ASYNC ([`super::external_async::ASYNC_STORE`]).
    Async,
    /// Ours, keeping where it put a key with SETSTATE (see [`STATEFUL`]).
    Stateful,
    /// Ours, noting each CHECKPRESENT with SETSTATE (see [`NOTING`]).
    Noting,
}

fn installed(dir: &str, name: &str) -> PathBuf {
    let p = testkit::venv_dir().join(dir).join(name);
    assert!(
        p.is_file(),
        "{} is missing: run scripts/install-external-remotes.sh",
        p.display()
    );
    p
}

/// A directory store of ours, run by `sh`: VERSION, EXTENSIONS (none),
/// INITREMOTE, PREPARE (its `directory=` as `$store`), `FUNCTIONS`
/// defined, the requests' `CASES`, UNSUPPORTED-REQUEST to any other.
fn sh_store(functions: &str, cases: &str) -> String {
    format!(
        r#"#!/bin/sh
echo VERSION 1
store=
{functions}
while read -r line; do
  set -- $line
  case "$1" in
    EXTENSIONS) echo EXTENSIONS ;;
    INITREMOTE) echo INITREMOTE-SUCCESS ;;
    PREPARE) echo GETCONFIG directory; read -r v; store=${{v#VALUE }}; echo PREPARE-SUCCESS ;;
{cases}
    *) echo UNSUPPORTED-REQUEST ;;
  esac
done
"#
    )
}

/// CHECKPRESENT looks for the key's file; a TRANSFER of a key whose name
/// ends in `.boom` exits (of `.gone`, a RETRIEVE exits), `.hang` sleeps,
/// `.junk` answers garbage; any other is copied, after noting in
/// `STORE.files` how many files the proxy's `annex/tmp/external/` holds
/// (it runs in the bare proxy's git directory).
const WOBBLY: &str = r#"
    CHECKPRESENT) if [ -e "$store/$2" ]; then echo CHECKPRESENT-SUCCESS "$2"; else echo CHECKPRESENT-FAILURE "$2"; fi ;;
    TRANSFER)
      case "$3" in
        *.boom) echo "wobbly: crashing on $3" >&2; exit 7 ;;
        *.gone) if [ "$2" = RETRIEVE ]; then echo "wobbly: lost $3" >&2; exit 9; fi
           cp "$4" "$store/$3"; echo TRANSFER-SUCCESS "$2" "$3" ;;
        *.hang) sleep 600 ;;
        *.junk) echo "HELLO I AM NOT A PROTOCOL LINE" ;;
        *) echo "$2 $(find annex/tmp/external -type f | wc -l)" >> "$store.files"
           if [ "$2" = STORE ]; then cp "$4" "$store/$3"; else cp "$store/$3" "$4"; fi
           echo TRANSFER-SUCCESS "$2" "$3" ;;
      esac ;;
    REMOVE) rm -f "$store/$2"; echo REMOVE-SUCCESS "$2" ;;"#;

/// Names what it stores itself (as remotes that store by an ID of theirs
/// do) and remembers the name with SETSTATE: CHECKPRESENT, RETRIEVE and
/// REMOVE find it with GETSTATE (the function `state`). It says the
/// object can be downloaded from a URL (SETURLPRESENT), until removed.
const STATEFUL_STATE: &str =
    r#"state() { echo GETSTATE "$1"; read -r v; v=${v#VALUE}; id=${v# }; }"#;
const STATEFUL: &str = r#"
    CHECKPRESENT) state "$2"
      if [ -n "$id" ] && [ -e "$store/$id" ]; then echo CHECKPRESENT-SUCCESS "$2"; else echo CHECKPRESENT-FAILURE "$2"; fi ;;
    TRANSFER)
      if [ "$2" = STORE ]; then
        id="obj-$(date +%s%N)-$$"; cp "$4" "$store/$id" && echo SETSTATE "$3" "$id" &&
          echo SETURLPRESENT "$3" "http://objects.example/$id" && echo TRANSFER-SUCCESS STORE "$3"
      else
        state "$3"
        if [ -n "$id" ] && cp "$store/$id" "$4"; then echo TRANSFER-SUCCESS RETRIEVE "$3"; else echo TRANSFER-FAILURE RETRIEVE "$3" "no state for $3"; fi
      fi ;;
    REMOVE) state "$2"; [ -n "$id" ] && rm -f "$store/$id"
      echo SETURLMISSING "$2" "http://objects.example/$id"; echo SETSTATE "$2" ""; echo REMOVE-SUCCESS "$2" ;;"#;

/// Has nothing; notes with SETSTATE that a key was asked about, so a
/// session that only checks presence journals nothing of its own.
const NOTING: &str = r#"
    CHECKPRESENT) echo SETSTATE "$2" asked; echo CHECKPRESENT-FAILURE "$2" ;;"#;

/// git-annex-remote-rclone on the server's (and the oracle's) PATH, an
/// rclone remote `loc` of the `local` type in the server user's rclone
/// config, and `initremote`'s parameters for a remote storing under
/// `store`.
pub fn install_rclone(env: &TestEnv, store: &Path) -> Vec<String> {
    fs::create_dir_all(store).expect("store");
    let name = "git-annex-remote-rclone";
    env.add_server_program(name, &installed("external-remotes", name));
    let conf = env.server_home.join(".config/rclone");
    fs::create_dir_all(&conf).expect("rclone config dir");
    fs::write(conf.join("rclone.conf"), "[loc]\ntype = local\n").expect("rclone.conf");
    vec![
        "type=external".into(),
        "externaltype=rclone".into(),
        "target=loc".into(),
        format!("prefix={}", store.display()),
    ]
}

/// git-annex-remote-ora on the server's (and the oracle's) PATH, a RIA
/// store at `store` with the dataset [`ARCHIVE_ID`], and `initremote`'s
/// parameters (but `type=external`) for a remote storing there.
pub fn install_ora(env: &TestEnv, store: &Path) -> Vec<String> {
    fs::create_dir_all(store).expect("store");
    let name = "git-annex-remote-ora";
    env.add_server_program(name, &installed("bin", name));
    // What datalad's create-sibling-ria writes.
    fs::write(store.join("ria-layout-version"), "1\n").expect("store version");
    let ds = store.join(&ARCHIVE_ID[..3]).join(&ARCHIVE_ID[3..]);
    fs::create_dir_all(&ds).expect("dataset dir");
    fs::write(ds.join("ria-layout-version"), "2\n").expect("dataset version");
    vec![
        "externaltype=ora".into(),
        format!("url=ria+file://{}", store.display()),
        format!("archive-id={ARCHIVE_ID}"),
    ]
}

/// The remote's program on the server's (and the oracle's) PATH, what it
/// needs set up, and `initremote`'s parameters for it.
fn install(env: &TestEnv, program: Program, store: &Path) -> Vec<String> {
    fs::create_dir_all(store).expect("store");
    match program {
        Program::Rclone => install_rclone(env, store),
        Program::Ora => install_ora(env, store),
        Program::Wobbly => ours(env, "wobbly", &sh_store("", WOBBLY), store),
        Program::Async => ours(env, "async", super::external_async::ASYNC_STORE, store),
        Program::Stateful => ours(env, "stateful", &sh_store(STATEFUL_STATE, STATEFUL), store),
        Program::Noting => ours(env, "noting", &sh_store("", NOTING), store),
    }
}

/// [`super::external_async::ASYNC_STORE`] as `git-annex-remote-async` on
/// the server's PATH, and `initremote`'s parameters for it.
pub(super) fn install_async(env: &TestEnv, store: &Path) -> Vec<String> {
    fs::create_dir_all(store).expect("store");
    ours(env, "async", super::external_async::ASYNC_STORE, store)
}

/// A program of ours, `git-annex-remote-NAME`, storing in `store`.
fn ours(env: &TestEnv, name: &str, text: &str, store: &Path) -> Vec<String> {
    let program = format!("git-annex-remote-{name}");
    let path = env.srv.join(&program);
    fs::write(&path, text).expect("program");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod");
    env.add_server_program(&program, &path);
    vec![
        format!("externaltype={name}"),
        format!("directory={}", store.display()),
    ]
}

/// A proxy made by `annexproxy init`, an external remote `d` running
/// `program` made by `setup` (with `extra` parameters), proxied by our
/// `updateproxy`; a client that cloned the proxy and synced.
pub(super) fn external_world(setup: Setup, program: Program, extra: &[&str]) -> World {
    let env = TestEnv::new(ServerKind::Ours);
    let proxy = env.server_bare("proxy.git");
    env.annexproxy(&proxy, &["init", "the proxy"]).ok();
    let store = env.srv.join("estore");
    let params = install(&env, program, &store);
    let mut args = vec!["initremote", "d", "encryption=none"];
    if program != Program::Rclone {
        args.push("type=external");
    }
    args.extend(params.iter().map(String::as_str));
    args.extend_from_slice(extra);
    match setup {
        Setup::Real => env.oracle_annex(&proxy, &args).ok(),
        Setup::Ours => env.annexproxy(&proxy, &args).ok(),
    }
    .says("initremote d");
    proxied_world(env, proxy, store)
}

/// `name` with `content`, added by the client and copied to `origin-d`;
/// its key.
fn copied_to_d(wd: &World, name: &str, content: &[u8]) -> String {
    let (env, client) = (&wd.env, &wd.client);
    env.add_file(client, name, content);
    env.annex(client, &["copy", "--to", "origin-d", name]).ok();
    env.key_of(client, name)
}

/// No transfer file is left in the proxy's `annex/tmp/external/`.
fn no_transfer_files(wd: &World) {
    no_transfer_files_in(&wd.proxy);
}

/// No transfer file is left in `proxy`'s `annex/tmp/external/`.
pub(super) fn no_transfer_files_in(proxy: &Path) {
    let dir = proxy.join("annex/tmp/external");
    let left: Vec<_> = fs::read_dir(&dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "transfer files left: {left:?}");
}

/// The client's copy, fsck, drop, get and drop through the proxy; real
/// git-annex in the proxy reads what we stored; `stored_at` says where
/// the program keeps a key in the store.
fn copy_fsck_get_drop(wd: &World, stored_at: impl Fn(&str) -> PathBuf) {
    let (env, client) = (&wd.env, &wd.client);
    let big = pseudo_random_bytes(23, 300_000);
    env.add_file(client, "big.bin", &big);
    env.add_file(client, "small.txt", b"hello external remote\n");
    env.annex(
        client,
        &["copy", "--to", "origin-d", "big.bin", "small.txt"],
    )
    .ok();
    assert!(is_on_d(wd, "big.bin") && is_on_d(wd, "small.txt"));
    let key = env.key_of(client, "big.bin");
    let small = env.key_of(client, "small.txt");
    assert_eq!(fs::read(stored_at(&key)).expect("stored object"), big);
    let (ok, results) = fsck_from(env, client, "origin-d");
    assert!(ok, "{results:?}");
    env.annex(client, &["drop", "--force", "big.bin"]).ok();
    env.annex(client, &["get", "--from", "origin-d", "big.bin"])
        .ok();
    assert_eq!(worktree_bytes(client, "big.bin"), big);
    env.git(client, &["annex", "sync", "--no-content"]).ok();
    server_fsck_from_d(wd);
    env.annex(client, &["drop", "--from", "origin-d", "small.txt"])
        .ok();
    assert!(!is_on_d(wd, "small.txt"));
    assert!(!stored_at(&small).exists());
    no_transfer_files(wd);
}

#[test]
fn rclone_remote_through_the_proxy() {
    let wd = external_world(Setup::Real, Program::Rclone, &[]);
    // Our status finds the program for the remote real git-annex made.
    let out = wd.env.annexproxy(&wd.proxy, &["status", "--json"]).ok();
    let status = &annexproxy_tests::observe::json_lines(&out.stdout)[0];
    let d = status["proxied"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["name"] == "d"))
        .unwrap_or_else(|| panic!("no d in {out}"));
    assert_eq!(d["kind"], "special", "{out}");
    assert_eq!(d["reachable"], true, "{out}");
    // The script's default layout: the lower-case hash directories.
    let store = wd.store.clone();
    let (env, client) = (&wd.env, &wd.client);
    let at = |key: &str| store.join(hashdir(env, client, key)).join(key);
    copy_fsck_get_drop(&wd, at);
}

#[test]
fn ora_remote_set_up_by_us_through_the_proxy() {
    let wd = external_world(Setup::Ours, Program::Ora, &[]);
    // INITREMOTE's SETCONFIGs reached remote.log, as git-annex keeps them.
    let log = wd
        .env
        .oracle(&wd.proxy, &["show", "git-annex:remote.log"])
        .ok()
        .stdout;
    assert!(
        log.contains("externaltype=ora") && log.contains(&format!("archive-id={ARCHIVE_ID}")),
        "{log}"
    );
    assert!(log.contains("url=ria+file://"), "{log}");
    // enableremote runs INITREMOTE again, and the remote stays served.
    wd.env
        .annexproxy(&wd.proxy, &["enableremote", "d"])
        .ok()
        .says("enableremote d");
    // The RIA layout: annex/objects with the mixed-case hash directories.
    let objects = wd
        .store
        .join(&ARCHIVE_ID[..3])
        .join(&ARCHIVE_ID[3..])
        .join("annex/objects");
    let (env, client) = (&wd.env, &wd.client);
    let at = |key: &str| {
        let mixed = env
            .annex(client, &["examinekey", "--format=${hashdirmixed}", key])
            .ok()
            .stdout;
        objects
            .join(mixed.trim().trim_end_matches('/'))
            .join(key)
            .join(key)
    };
    copy_fsck_get_drop(&wd, at);
}

#[test]
fn rclone_chunked_remote_read_by_real_git_annex() {
    let wd = external_world(Setup::Ours, Program::Rclone, &["chunk=100KiB"]);
    let (env, client) = (&wd.env, &wd.client);
    let key = copied_to_d(&wd, "big.bin", &pseudo_random_bytes(29, 250_000));
    // Three chunk keys, where the script puts keys.
    let dir = wd.store.join(hashdir(env, client, &key));
    let (head, tail) = key.split_once("--").expect("key");
    for n in 1..=3 {
        let chunk = dir.join(format!("{head}-S102400-C{n}--{tail}"));
        assert!(chunk.is_file(), "{} missing", chunk.display());
    }
    env.git(client, &["annex", "sync", "--no-content"]).ok();
    server_fsck_from_d(&wd);
    no_transfer_files(&wd);
}

/// A program that crashes, hangs or answers garbage on a transfer fails
/// that key with the reason, and the session goes on: the next key is
/// stored by the program started again.
#[test]
fn misbehaving_program_fails_the_key_and_the_session_goes_on() {
    let wd = external_world(Setup::Ours, Program::Wobbly, &[]);
    let (env, client) = (&wd.env, &wd.client);
    env.oracle(&wd.proxy, &["config", "annexproxy.externaltimeout", "3"])
        .ok();
    for name in ["a.boom", "b.hang", "c.junk", "d.txt"] {
        env.add_file(client, name, format!("content of {name}\n").as_bytes());
    }
    let started = std::time::Instant::now();
    let out = env.annex(
        client,
        &[
            "copy", "--to", "origin-d", "a.boom", "b.hang", "c.junk", "d.txt",
        ],
    );
    assert!(!out.success(), "{out}");
    let said = out.all();
    assert!(
        said.contains("git-annex-remote-wobbly exited") && said.contains("crashing on"),
        "{said}"
    );
    assert!(
        said.contains("did not answer TRANSFER within 3 s"),
        "{said}"
    );
    assert!(said.contains("HELLO I AM NOT A PROTOCOL LINE"), "{said}");
    assert!(started.elapsed().as_secs() < 60, "{:?}", started.elapsed());
    for name in ["a.boom", "b.hang", "c.junk"] {
        assert!(!is_on_d(&wd, name), "{name} is not on d");
    }
    assert!(is_on_d(&wd, "d.txt"));
    let key = env.key_of(client, "d.txt");
    assert_eq!(
        fs::read(wd.store.join(&key)).expect("d.txt stored"),
        b"content of d.txt\n"
    );
    no_transfer_files(&wd);
    // A GET whose RETRIEVE fails: that key fails with the reason, the
    // next one is retrieved by the program started again.
    env.add_file(client, "e.gone", b"content of e.gone\n");
    env.annex(client, &["copy", "--to", "origin-d", "e.gone"])
        .ok();
    env.annex(client, &["drop", "--force", "e.gone", "d.txt"])
        .ok();
    let out = env.annex(client, &["get", "--from", "origin-d", "e.gone", "d.txt"]);
    assert!(!out.success(), "{out}");
    assert!(out.all().contains("wobbly: lost"), "{out}");
    assert_eq!(worktree_bytes(client, "d.txt"), b"content of d.txt\n");
    assert!(worktree_bytes(client, "e.gone").is_empty());
    no_transfer_files(&wd);
    // While each transfer ran (one at a time, over ssh), the proxy held
    // its one file for a STORE and none yet for a RETRIEVE (the program
    // writes it), so nothing left by the transfers that failed before.
    let counts = fs::read_to_string(format!("{}.files", wd.store.display())).expect("counts");
    let counts: Vec<_> = counts
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .collect();
    assert!(counts.len() >= 2, "{counts:?}");
    for c in &counts {
        let held = if c[0] == "STORE" { "1" } else { "0" };
        assert_eq!(c[1], held, "{counts:?}");
    }
}

/// Content real git-annex stored through datalad's program (from a
/// repository of its own on the server that enabled the same remote) is
/// read through our proxy: the client gets and fscks it, and drops it.
#[test]
fn ora_content_stored_by_real_git_annex_is_read_through_ours() {
    let wd = external_world(Setup::Real, Program::Ora, &[]);
    real_stored_is_read_through(&wd, &[]);
    no_transfer_files(&wd);
}

/// The same for content real git-annex stored through rclone's script.
#[test]
fn rclone_content_stored_by_real_git_annex_is_read_through_ours() {
    let wd = external_world(Setup::Real, Program::Rclone, &[]);
    real_stored_is_read_through(&wd, &[]);
    no_transfer_files(&wd);
}

/// `annexproxy initremote` of an external remote whose program refuses
/// the configuration (INITREMOTE-FAILURE), or is not on PATH, fails with
/// the program's reason and records nothing.
#[test]
fn initremote_refused_by_the_program_records_nothing() {
    let env = TestEnv::new(ServerKind::Ours);
    let proxy = env.server_bare("proxy.git");
    env.annexproxy(&proxy, &["init", "the proxy"]).ok();
    let mut args = vec!["initremote", "r", "encryption=none"];
    let params = install_rclone(&env, &env.srv.join("rstore"));
    // No target=: the script refuses.
    args.extend(
        params
            .iter()
            .map(String::as_str)
            .filter(|p| !p.starts_with("target=")),
    );
    env.annexproxy(&proxy, &args)
        .fails()
        .says("rclone remote target must be specified");
    env.annexproxy(
        &proxy,
        &[
            "initremote",
            "n",
            "type=external",
            "externaltype=nosuch",
            "encryption=none",
        ],
    )
    .fails()
    .says("cannot run git-annex-remote-nosuch");
    let log = env.oracle(&proxy, &["show", "git-annex:remote.log"]);
    assert!(
        !log.stdout.contains("name=r") && !log.stdout.contains("name=n"),
        "{log}"
    );
}

/// A program that keeps where it put each key with SETSTATE: the state
/// reaches the proxy's git-annex branch as git-annex keeps it, so real
/// git-annex in the proxy finds the objects through it (`fsck --from
/// d`), and the client's get and drop through the proxy find them too.
#[test]
fn program_state_and_urls_kept_in_the_branch_as_git_annex_keeps_them() {
    let wd = external_world(Setup::Ours, Program::Stateful, &[]);
    let (env, client) = (&wd.env, &wd.client);
    let content = pseudo_random_bytes(31, 100_000);
    let key = copied_to_d(&wd, "s.bin", &content);
    let names: Vec<_> = fs::read_dir(&wd.store)
        .expect("store")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.len() == 1 && names[0].starts_with("obj-"),
        "{names:?}"
    );
    let log = format!("git-annex:{}/{key}.log.rmt", hashdir(env, client, &key));
    let state = env.oracle(&wd.proxy, &["show", &log]).ok().stdout;
    assert!(state.contains(&names[0]), "{state}");
    env.git(client, &["annex", "sync", "--no-content"]).ok();
    // The client sees the URL the program announced, on the web, as
    // git-annex records it.
    let url = format!("http://objects.example/{}", names[0]);
    let whereis = env.annex(client, &["whereis", "s.bin"]).ok().stdout;
    assert!(
        whereis.contains("web") && whereis.contains(&url),
        "{whereis}"
    );
    server_fsck_from_d(&wd);
    env.annex(client, &["drop", "--force", "s.bin"]).ok();
    env.annex(client, &["get", "--from", "origin-d", "s.bin"])
        .ok();
    assert_eq!(worktree_bytes(client, "s.bin"), content);
    env.annex(client, &["drop", "--from", "origin-d", "s.bin"])
        .ok();
    assert!(!is_on_d(&wd, "s.bin"));
    assert!(fs::read_dir(&wd.store).expect("store").next().is_none());
    env.git(client, &["annex", "sync", "--no-content"]).ok();
    let whereis = env.annex(client, &["whereis", "s.bin"]).stdout;
    assert!(!whereis.contains(&url), "{whereis}");
    no_transfer_files(&wd);
}

/// What a program journals (SETSTATE) in a session that logs nothing of
/// its own (a presence check that finds nothing) is in the proxy's
/// git-annex branch once the session ends, as git-annex commits its
/// journal when its command ends.
#[test]
fn program_state_is_committed_when_the_session_logged_nothing() {
    let wd = external_world(Setup::Ours, Program::Noting, &[]);
    let (env, client) = (&wd.env, &wd.client);
    env.add_file(client, "n.txt", b"never stored\n");
    let key = env.key_of(client, "n.txt");
    let out = env.annex(client, &["checkpresentkey", &key, "origin-d"]);
    assert!(!out.success(), "d has nothing: {out}");
    wd.env.wait_server_idle();
    let log = format!("git-annex:{}/{key}.log.rmt", hashdir(env, client, &key));
    let state = env.oracle(&wd.proxy, &["show", &log]);
    assert!(state.success() && state.stdout.contains("asked"), "{state}");
}
