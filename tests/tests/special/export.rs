//! An `exporttree=yes annexobjects=yes` S3 remote `d` (moto) behind our
//! proxy, with `remote.d.annex-tracking-branch=main` there: the real
//! client's `git annex push` sends content to `origin-d` (kept by key)
//! and pushes `main`, and the proxy's post-receive hook (ours, installed
//! by `updateproxy`) changes the export to the pushed tree, as
//! git-annex's `post-receive` does: files land under their tree paths in
//! the bucket, byte for byte; copy, get, drop and `fsck --from` work
//! through the proxy; real git-annex in the proxy's repository takes the
//! export for its own (`fsck --from d`), and an export real git-annex
//! made is read through ours.

use annexproxy_tests::observe::{fsck_from, worktree_bytes};
use annexproxy_tests::TestEnv;
use testkit::moto;

use super::world::*;

const EXPORT: [&str; 2] = ["exporttree=yes", "annexobjects=yes"];

/// `d` made an export of `main` in `repo` (the proxy, or a cluster's
/// gateway), and `cmd` (`updateproxy` or `updatecluster`) run again so it
/// installs the hook.
pub(super) fn track_main(env: &TestEnv, repo: &std::path::Path, cmd: &str) {
    env.oracle(repo, &["config", "remote.d.annex-tracking-branch", "main"])
        .ok();
    env.annexproxy(repo, &[cmd]).ok();
}

/// A directory remote `d` with `params`, an export tracking `main`.
pub(super) fn directory_export_with(params: &[&str]) -> World {
    let wd = world_by(Setup::Ours, params);
    track_main(&wd.env, &wd.proxy, "updateproxy");
    wd
}

/// The S3 world with `d` an export remote tracking `main`, set up by
/// `setup`; `updateproxy` run again once the tracking branch is set, so
/// it installs the hook.
pub(super) fn export_world(setup: Setup) -> World {
    let wd = super::s3::s3_world_at(setup, moto::shared().port(), &EXPORT);
    track_main(&wd.env, &wd.proxy, "updateproxy");
    let hook = std::fs::read_to_string(wd.proxy.join("hooks/post-receive")).expect("hook");
    assert!(hook.contains("annexproxy"), "{hook}");
    wd
}

fn bucket(wd: &World) -> &str {
    wd.bucket.as_deref().expect("an S3 world")
}

/// The object's content, read from the bucket directly (moto refuses
/// anonymous reads of what a signed request wrote: this names the tests'
/// key, and moto checks no signature).
pub(super) fn object(wd: &World, name: &str) -> String {
    object_in(bucket(wd), name)
}

fn object_in(bucket: &str, name: &str) -> String {
    let auth = format!(
        "Authorization: AWS4-HMAC-SHA256 Credential={}/20261206/us-east-1/s3/aws4_request, \
         SignedHeaders=host, Signature=00\r\n",
        moto::ACCESS_KEY_ID
    );
    let path = format!("/{bucket}/{name}");
    let (status, body) = moto::shared().request_with("GET", &path, &auth);
    assert_eq!(status, 200, "{name}: {body}");
    body
}

/// The bucket's objects outside git-annex's `.git/annex/objects/`.
pub(super) fn tree_objects(wd: &World) -> Vec<String> {
    held(wd)
        .into_iter()
        .filter(|n| !n.starts_with(".git/"))
        .collect()
}

fn kept_by_key(wd: &World) -> Vec<String> {
    held(wd)
        .into_iter()
        .filter(|n| n.starts_with(".git/annex/objects/"))
        .collect()
}

/// Whether the client's `whereis` lists `origin-d` for `file`: among the
/// untrusted locations, where git-annex puts an export remote.
fn on_d(wd: &World, file: &str) -> bool {
    let out = wd.env.annex(&wd.client, &["whereis", file]);
    out.stdout.contains("[origin-d]")
}

/// A client's file that git itself holds (not annexed).
pub(super) fn add_git_file(env: &TestEnv, client: &std::path::Path, file: &str, content: &str) {
    std::fs::write(client.join(file), content).expect("write");
    env.git(client, &["-c", "annex.largefiles=nothing", "add", file])
        .ok();
    env.git(client, &["commit", "-q", "-m", file]).ok();
}

fn push_updates_the_export(setup: Setup) {
    let wd = export_world(setup);
    let (env, client) = (&wd.env, &wd.client);
    // git-annex leaves an export's bucket without `annex-uuid`.
    assert_eq!(held(&wd), Vec::<String>::new());
    env.add_file(client, "a.txt", b"alpha through the proxy\n");
    env.add_file(client, "dir/b.txt", b"bravo in a directory\n");
    add_git_file(env, client, "README", "a file git holds\n");
    let pushed = env.annex(client, &["push"]).ok();
    assert!(pushed.all().contains("export d: 3 placed"), "{pushed}");
    env.wait_server_idle();
    assert_eq!(tree_objects(&wd), ["README", "a.txt", "dir/b.txt"]);
    assert_eq!(object(&wd, "a.txt"), "alpha through the proxy\n");
    assert_eq!(object(&wd, "dir/b.txt"), "bravo in a directory\n");
    assert_eq!(object(&wd, "README"), "a file git holds\n");
    // Moved from where the client's PUT left them, as git-annex moves them.
    assert_eq!(kept_by_key(&wd), Vec::<String>::new());
    // The proxy's tracking branch says the export is complete.
    let main = env.git(client, &["rev-parse", "main"]).ok().stdout;
    let tracking = env
        .oracle(&wd.proxy, &["rev-parse", "refs/remotes/d/main"])
        .ok()
        .stdout;
    assert_eq!(tracking, main);
    // Through the proxy: found under their paths.
    env.annex(client, &["sync", "--no-content"]).ok();
    assert!(on_d(&wd, "a.txt") && on_d(&wd, "dir/b.txt"));
    env.annex(client, &["drop", "--force", "a.txt"]).ok();
    env.annex(client, &["get", "--from", "origin-d", "a.txt"])
        .ok();
    assert_eq!(
        worktree_bytes(client, "a.txt"),
        b"alpha through the proxy\n"
    );
    let (ok, results) = fsck_from(env, client, "origin-d");
    assert!(ok, "{results:?}");
    // Real git-annex in the proxy takes the export for its own.
    server_fsck_from_d(&wd);
    let tree = env.git(client, &["rev-parse", "main^{tree}"]).ok().stdout;
    let info = env.oracle_annex(&wd.proxy, &["info", "d"]).ok();
    assert!(
        info.stdout
            .contains(&format!("exportedtree: {}", tree.trim())),
        "{info}"
    );
    // The tree is grafted into the git-annex branch, as git-annex keeps
    // it there for clones.
    let graft = env
        .oracle(
            &wd.proxy,
            &["log", "--format=%H", "--grep=^graft$", "-1", "git-annex"],
        )
        .ok()
        .stdout;
    let grafted = env
        .oracle(
            &wd.proxy,
            &["rev-parse", &format!("{}:export.tree", graft.trim())],
        )
        .ok()
        .stdout;
    assert_eq!(grafted.trim(), tree.trim());
    // Its own `export` of the same tree succeeds and leaves the same
    // files (it has no database record of our uploads, so it checks each
    // file and, 10.20261026, writes it again with a warning), and its
    // whereis names d for the key.
    let again = env.oracle_annex(&wd.proxy, &["export", "main", "--to", "d"]);
    assert!(again.success(), "{again}");
    assert_eq!(tree_objects(&wd), ["README", "a.txt", "dir/b.txt"]);
    assert_eq!(kept_by_key(&wd), Vec::<String>::new());
    let key = env.key_of(client, "dir/b.txt");
    let whereis = env.oracle_annex(&wd.proxy, &["whereis", "--key", &key]);
    assert!(whereis.stdout.contains("[d]"), "{whereis}");
    // A key of the exported tree cannot be dropped by its key.
    let drop = env.annex(client, &["drop", "--from", "origin-d", "dir/b.txt"]);
    assert!(!drop.success(), "{drop}");
    assert!(on_d(&wd, "dir/b.txt"));
    let b_key = env.key_of(client, "dir/b.txt");
    // The tree changes: a rename, a removal; the removed file's content
    // stays in the remote, by key.
    std::fs::create_dir_all(client.join("c")).expect("mkdir");
    env.git(client, &["mv", "a.txt", "c/a2.txt"]).ok();
    env.git(client, &["rm", "-q", "dir/b.txt"]).ok();
    env.git(client, &["commit", "-q", "-m", "change"]).ok();
    env.annex(client, &["push"]).ok();
    env.wait_server_idle();
    assert_eq!(tree_objects(&wd), ["README", "c/a2.txt"]);
    assert_eq!(object(&wd, "c/a2.txt"), "alpha through the proxy\n");
    assert_eq!(kept_by_key(&wd).len(), 1, "{:?}", held(&wd));
    server_fsck_from_d(&wd);
    // Not in the tree any more: now it can be dropped, from by-key.
    env.annex(client, &["sync", "--no-content"]).ok();
    env.annex(client, &["drop", "--from", "origin-d", "--key", &b_key])
        .ok();
    assert_eq!(kept_by_key(&wd), Vec::<String>::new());
}

#[test]
fn push_updates_the_export_of_a_remote_git_annex_set_up() {
    push_updates_the_export(Setup::Real);
}

#[test]
fn push_updates_the_export_of_a_remote_we_set_up() {
    push_updates_the_export(Setup::Ours);
}

/// git-annex's client refuses `export --to` a proxied remote itself.
#[test]
fn export_to_a_proxied_remote_is_refused() {
    let wd = export_world(Setup::Real);
    let (env, client) = (&wd.env, &wd.client);
    env.add_file(client, "a.txt", b"alpha\n");
    let out = env.annex(client, &["export", "main", "--to", "origin-d"]);
    assert!(!out.success(), "{out}");
    assert!(out.all().contains("does not support exports"), "{out}");
    assert_eq!(held(&wd), Vec::<String>::new());
}

/// An export real git-annex made (from a repository of its own beside
/// the proxy) is read through ours: get and fsck from `origin-d`.
#[test]
fn an_export_real_git_annex_made_is_read_through_the_proxy() {
    let wd = export_world(Setup::Real);
    let env = &wd.env;
    let side = server_clone(&wd, "side");
    env.oracle(
        &side,
        &["config", "annex.security.allowed-ip-addresses", "127.0.0.1"],
    )
    .ok();
    let creds = [
        ("AWS_ACCESS_KEY_ID", moto::ACCESS_KEY_ID),
        ("AWS_SECRET_ACCESS_KEY", moto::SECRET_ACCESS_KEY),
    ];
    env.oracle_annex_with(&side, &["enableremote", "d"], &creds)
        .ok();
    verify_remote(env, &side, "d");
    std::fs::write(side.join("theirs.txt"), "exported by git-annex\n").expect("write");
    env.oracle_annex(&side, &["add", "theirs.txt"]).ok();
    env.oracle(&side, &["commit", "-q", "-m", "theirs"]).ok();
    env.oracle_annex_with(&side, &["export", "main", "--to", "d"], &creds)
        .ok();
    assert_eq!(tree_objects(&wd), ["theirs.txt"]);
    env.oracle(&side, &["push", "-q", "origin", "main", "git-annex"])
        .ok();
    let client = &wd.client;
    env.git(client, &["pull", "-q", "origin", "main"]).ok();
    env.annex(client, &["sync", "--no-content"]).ok();
    env.annex(client, &["get", "--from", "origin-d", "theirs.txt"])
        .ok();
    assert_eq!(
        worktree_bytes(client, "theirs.txt"),
        b"exported by git-annex\n"
    );
    let (ok, results) = fsck_from(env, client, "origin-d");
    assert!(ok, "{results:?}");
    // Our hook saw the push of main: nothing to change, nothing moved.
    assert_eq!(tree_objects(&wd), ["theirs.txt"]);
}

/// The export remote as a node of a cluster beside a git-annex
/// repository, through our gateway: copy (kept by key in the bucket),
/// get, with node1 gone too (from d), `fsck --from`; then, once the
/// gateway tracks `main` for it, the client's `git annex push` to the
/// cluster puts the tree's files under their paths in the bucket, and
/// real git-annex in the gateway reads the export.
#[test]
fn export_node_in_a_cluster() {
    use super::cluster::{mixed_with, Store};
    let m = mixed_with(Store::S3, &EXPORT);
    let (env, client) = (&m.env, &m.client);
    let bucket = m.bucket.clone().expect("S3");
    let big = annexproxy_tests::pseudo_random_bytes(5, 300_000);
    env.add_file(client, "big.bin", &big);
    env.annex(client, &["copy", "--to", "origin-mycl", "."])
        .ok();
    assert!(m.holders("big.bin").contains(&m.d_uuid()));
    assert!(m
        .stored()
        .iter()
        .all(|n| n.starts_with(".git/annex/objects/")));
    m.real_fscks();
    let away = m.node.with_extension("away");
    std::fs::rename(&m.node, &away).expect("hide node1");
    env.annex(client, &["drop", "--force", "big.bin"]).ok();
    env.annex(client, &["get", "--from", "origin-mycl", "big.bin"])
        .ok();
    assert_eq!(worktree_bytes(client, "big.bin"), big);
    std::fs::rename(&away, &m.node).expect("node1 back");
    track_main(env, &m.gateway, "updatecluster");
    env.add_file(client, "site/index.txt", b"served from the cluster\n");
    let pushed = env.annex(client, &["push"]).ok();
    assert!(pushed.all().contains("export d:"), "{pushed}");
    env.wait_server_idle();
    let mut stored = m.stored();
    stored.sort();
    assert_eq!(stored, ["README", "big.bin", "site/index.txt"]);
    assert_eq!(
        object_in(&bucket, "site/index.txt"),
        "served from the cluster\n"
    );
    assert_eq!(object_in(&bucket, "README"), "client\n");
    m.real_fscks();
    env.annex(client, &["drop", "--force", "site/index.txt"])
        .ok();
    env.annex(client, &["get", "--from", "origin-mycl", "site/index.txt"])
        .ok();
    assert_eq!(
        worktree_bytes(client, "site/index.txt"),
        b"served from the cluster\n"
    );
}

/// The same through the proxy to a `directory` export remote (set up by
/// our `initremote`): the files land under their paths in the
/// directory, byte for byte, and real git-annex in the proxy reads them.
#[test]
fn push_updates_a_directory_export() {
    let wd = directory_export_with(&EXPORT);
    let (env, client) = (&wd.env, &wd.client);
    env.add_file(client, "a.txt", b"alpha in a directory\n");
    env.add_file(client, "deep/er/b.bin", &[7u8; 3000]);
    env.annex(client, &["push"]).ok();
    env.wait_server_idle();
    assert_eq!(held(&wd), ["a.txt", "deep/er/b.bin"]);
    assert_eq!(
        std::fs::read(wd.store.join("a.txt")).expect("a.txt"),
        b"alpha in a directory\n"
    );
    assert_eq!(
        std::fs::read(wd.store.join("deep/er/b.bin")).expect("b.bin"),
        vec![7u8; 3000]
    );
    server_fsck_from_d(&wd);
    // Two files swap places: each goes through a temporary name, as in
    // git-annex, so neither overwrites the other.
    env.git(client, &["mv", "a.txt", "swap"]).ok();
    env.git(client, &["mv", "deep/er/b.bin", "a.txt"]).ok();
    env.git(client, &["mv", "swap", "deep/er/b.bin"]).ok();
    env.git(client, &["commit", "-q", "-m", "swap"]).ok();
    env.annex(client, &["push"]).ok();
    env.wait_server_idle();
    assert_eq!(held(&wd), ["a.txt", "deep/er/b.bin"]);
    let read = |f: &str| std::fs::read(wd.store.join(f)).expect("read");
    assert_eq!(read("a.txt"), vec![7u8; 3000]);
    assert_eq!(read("deep/er/b.bin"), b"alpha in a directory\n");
    server_fsck_from_d(&wd);
    env.git(client, &["rm", "-q", "deep/er/b.bin"]).ok();
    env.git(client, &["commit", "-q", "-m", "rm"]).ok();
    env.annex(client, &["push"]).ok();
    env.wait_server_idle();
    let left = held(&wd);
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(left[0].starts_with(".git/annex/objects/"), "{left:?}");
    assert!(!wd.store.join("deep").exists(), "empty directories stay");
    let (ok, results) = fsck_from(env, client, "origin-d");
    assert!(ok, "{results:?}");
    // The export was complete (the tracking ref says so): the next push
    // looks at the files that changed only, as git-annex's database lets
    // it, so a file taken from the directory behind its back stays gone.
    std::fs::remove_file(wd.store.join("a.txt")).expect("rm a.txt");
    env.add_file(client, "c.txt", b"charlie\n");
    env.annex(client, &["push"]).ok();
    env.wait_server_idle();
    assert!(wd.store.join("c.txt").exists());
    assert!(!wd.store.join("a.txt").exists());
}

/// `initremote … exporttree=yes annexobjects=yes` by us and by real
/// git-annex: the same output and records; both refuse encryption with
/// an export, and `enableremote` refuses to change `exporttree=`.
#[test]
fn initremote_of_an_export_writes_what_git_annex_writes() {
    let env = TestEnv::new(annexproxy_tests::ServerKind::Ours);
    let store = env.srv.join("store");
    std::fs::create_dir_all(&store).expect("mkdir");
    let dir_param = format!("directory={}", store.display());
    let mut args = vec![
        "initremote",
        "d",
        "type=directory",
        &dir_param,
        "encryption=none",
    ];
    args.extend(EXPORT);
    let mut seen = Vec::new();
    for ours in [true, false] {
        let repo = env.server_bare(if ours { "ours.git" } else { "real.git" });
        env.annexproxy(&repo, &["init", "r"]).ok();
        let run = |a: &[&str]| {
            if ours {
                env.annexproxy(&repo, a)
            } else {
                env.oracle_annex(&repo, a)
            }
        };
        let said = run(&args).ok().stdout;
        seen.push((said, super::setup::records(&env, &repo)));
        let encrypted = [
            "initremote",
            "e",
            "type=directory",
            &dir_param,
            "encryption=shared",
            "exporttree=yes",
        ];
        run(&encrypted)
            .fails()
            .says("cannot enable both encryption and exporttree");
        run(&["enableremote", "d", "exporttree=no"])
            .fails()
            .says("cannot change exporttree of existing special remote");
    }
    assert_eq!(seen[0], seen[1]);
}

/// A push that reaches the proxy through a P2P `CONNECT` (plain git with
/// `git-remote-annexproxy`) ends in the same hook: the export follows.
#[test]
fn push_through_a_p2p_connect_updates_the_export() {
    let wd = export_world(Setup::Real);
    let (env, client) = (&wd.env, &wd.client);
    add_git_file(env, client, "notes.txt", "tunnelled through CONNECT\n");
    let url = format!("annexproxy::localhost:{}", wd.proxy.display());
    env.plain_git(client, &["push", "-q", &url, "main"]).ok();
    env.wait_server_idle();
    assert_eq!(tree_objects(&wd), ["notes.txt"]);
    assert_eq!(object(&wd, "notes.txt"), "tunnelled through CONNECT\n");
}

/// A pushed tree with a `.git` directory (git's index refuses one, but
/// nothing checks a push unless `receive.fsckObjects` is set): its files
/// are not exported, so they cannot overwrite the by-key copies kept
/// under `.git/annex/objects/`.
#[test]
fn a_pushed_git_directory_is_not_exported() {
    let wd = export_world(Setup::Real);
    let (env, client) = (&wd.env, &wd.client);
    add_git_file(env, client, "ok.txt", "fine\n");
    // git's plumbing through a shell (the tests' commands get no stdin).
    let sh = |script: &str| -> String {
        let mut cmd = env.client_command("sh");
        cmd.args(["-c", script]);
        let out = annexproxy_tests::run::run(cmd, client).ok();
        out.stdout.trim().to_owned()
    };
    let blob = sh("echo planted | git hash-object -w --stdin");
    let inner = sh(&format!(
        "printf '100644 blob {blob}\\tplanted.txt\\n' | git mktree"
    ));
    let root = sh(&format!(
        "(git ls-tree HEAD; printf '040000 tree {inner}\\t.git\\n') | git mktree"
    ));
    let commit = sh(&format!("git commit-tree {root} -p HEAD -m planted"));
    env.git(client, &["update-ref", "refs/heads/main", &commit])
        .ok();
    env.git(client, &["push", "-q", "origin", "main"]).ok();
    env.wait_server_idle();
    assert_eq!(held(&wd), ["ok.txt"]);
}

/// One update of an export at a time: while another holds the lock on
/// the remote's export (git-annex's `annex/export/<uuid>/exportdb.lck`),
/// the hook waits for it, then updates.
#[test]
fn an_export_update_waits_for_the_one_under_way() {
    let wd = export_world(Setup::Real);
    let (env, client) = (&wd.env, &wd.client);
    let dir = wd.proxy.join("annex/export").join(d_uuid(&wd));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let lock = dir.join("exportdb.lck");
    // A POSIX record lock, as git-annex takes it, held for 3 s.
    let mut holder = std::process::Command::new("python3")
        .args([
            "-c",
            "import fcntl,sys,time; f=open(sys.argv[1],'a'); fcntl.lockf(f, fcntl.LOCK_EX); print('held', flush=True); time.sleep(3)",
        ])
        .arg(&lock)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(holder.stdout.as_mut().expect("piped")),
        &mut line,
    )
    .expect("held");
    let started = std::time::Instant::now();
    add_git_file(env, client, "later.txt", "after the lock\n");
    env.git(client, &["push", "-q", "origin", "main"]).ok();
    assert!(started.elapsed() >= std::time::Duration::from_secs(2));
    holder.wait().expect("holder");
    env.wait_server_idle();
    assert_eq!(tree_objects(&wd), ["later.txt"]);
}

/// The remote's preferred content filters the exported tree, as
/// git-annex's `filterExport` does: an unwanted file is not exported,
/// `export.log` records the filtered tree, and real git-annex in the
/// proxy finds the export complete.
#[test]
fn preferred_content_filters_the_export() {
    let wd = directory_export_with(&EXPORT);
    let (env, client) = (&wd.env, &wd.client);
    env.oracle_annex(&wd.proxy, &["wanted", "d", "exclude=*.skip"])
        .ok();
    env.annex(client, &["sync", "--no-content"]).ok();
    env.add_file(client, "keep.txt", b"wanted\n");
    env.add_file(client, "left.skip", b"not wanted\n");
    env.annex(client, &["push"]).ok();
    env.wait_server_idle();
    let exported: Vec<String> = held(&wd)
        .into_iter()
        .filter(|n| !n.starts_with(".git/"))
        .collect();
    assert_eq!(exported, ["keep.txt"]);
    let tree = env.git(client, &["rev-parse", "main^{tree}"]).ok().stdout;
    let info = env.oracle_annex(&wd.proxy, &["info", "d"]).ok();
    assert!(info.stdout.contains("exportedtree: "), "{info}");
    assert!(!info.stdout.contains(tree.trim()), "{info}");
    server_fsck_from_d(&wd);
}

/// `exporttree=yes` without `annexobjects=yes`: the client sends no
/// content to the remote (git-annex's push leaves such a remote to
/// exports), so the proxy's hook uploads the tree's files from its own
/// copies; a key outside the tree cannot be stored by key, as git-annex
/// refuses it; get and fsck through the proxy.
#[test]
fn export_without_annexobjects_is_filled_from_the_proxy() {
    let wd = directory_export_with(&["exporttree=yes"]);
    let (env, client) = (&wd.env, &wd.client);
    env.add_file(client, "a.txt", b"uploaded by the proxy\n");
    env.annex(client, &["push"]).ok();
    env.wait_server_idle();
    assert_eq!(held(&wd), ["a.txt"]);
    assert_eq!(
        std::fs::read(wd.store.join("a.txt")).expect("a.txt"),
        b"uploaded by the proxy\n"
    );
    env.annex(client, &["sync", "--no-content"]).ok();
    env.annex(client, &["drop", "--force", "a.txt"]).ok();
    env.annex(client, &["get", "--from", "origin-d", "a.txt"])
        .ok();
    let (ok, results) = fsck_from(env, client, "origin-d");
    assert!(ok, "{results:?}");
    env.add_file(client, "b.txt", b"not in the exported tree\n");
    env.annex(client, &["copy", "--to", "origin-d", "b.txt"])
        .fails();
    assert_eq!(held(&wd), ["a.txt"]);
}

/// A push over git's HTTP protocol to `annexproxy p2phttp` (git
/// http-backend run by it) ends in the same hook: the export follows.
#[test]
fn push_over_p2phttp_updates_the_export() {
    let wd = export_world(Setup::Real);
    let bucket = wd.bucket.clone().expect("S3");
    let client = wd.client.clone();
    let s = annexproxy_tests::p2phttp::HttpServer::serve(
        wd.env,
        wd.proxy.clone(),
        &["--wideopen"],
        &[],
    );
    let env = &s.env;
    add_git_file(env, &client, "web.txt", "pushed over HTTP\n");
    let url = format!("http://{}/proxy.git", s.addr);
    env.git(&client, &["push", "-q", &url, "main"]).ok();
    env.wait_server_idle();
    let mut names = moto::shared().list_objects(&bucket);
    names.sort();
    assert_eq!(names, ["web.txt"]);
    assert_eq!(object_in(&bucket, "web.txt"), "pushed over HTTP\n");
}
