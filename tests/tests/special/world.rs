//! Shared set-up of the special-remote scenarios: a proxy made by our
//! `annexproxy`, a directory special remote `d` behind it, a client.

use std::fs;
use std::path::{Path, PathBuf};

use annexproxy_tests::observe::whereis;
use annexproxy_tests::p2p_driver::{Shell, CLIENT_UUID};
use annexproxy_tests::{ServerKind, TestEnv};

pub struct World {
    pub env: TestEnv,
    pub proxy: PathBuf,
    pub store: PathBuf,
    pub client: PathBuf,
    /// For an S3 remote `d`: its bucket (`store` then holds nothing).
    pub bucket: Option<String>,
}

/// Who ran `initremote` on the proxy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Setup {
    /// Real `git annex initremote`, as an operator with git-annex would.
    Real,
    /// Our `annexproxy initremote`.
    Ours,
}

/// A proxy set up by `annexproxy init`, a directory special remote `d`
/// made by real `git annex initremote` (with `extra` parameters), proxied
/// with `annex-proxy=true` and our `updateproxy`; a client that cloned
/// the proxy and synced.
pub fn world(extra: &[&str]) -> World {
    world_by(Setup::Real, extra)
}

/// [`world`], the remote made by `setup`.
pub fn world_by(setup: Setup, extra: &[&str]) -> World {
    world_in(TestEnv::new(ServerKind::Ours), setup, extra)
}

/// [`world_by`] in `env` (whose server user may have a gpg key made).
pub fn world_in(env: TestEnv, setup: Setup, extra: &[&str]) -> World {
    let proxy = env.server_bare("proxy.git");
    env.annexproxy(&proxy, &["init", "the proxy"]).ok();
    let store = env.srv.join("dstore");
    fs::create_dir_all(&store).expect("store dir");
    let dir_param = format!("directory={}", store.display());
    let mut args = vec!["initremote", "d", "type=directory", &dir_param];
    args.extend(default_encryption(extra));
    args.extend_from_slice(extra);
    match setup {
        Setup::Real => env.oracle_annex(&proxy, &args).ok(),
        Setup::Ours => env.annexproxy(&proxy, &args).ok(),
    }
    .says("initremote d ")
    .says(" ok\n");
    proxied_world(env, proxy, store)
}

/// The world once `d` is set up in `proxy`: proxied with `annex-proxy=true`
/// and our `updateproxy`, and a client that cloned the proxy and synced.
pub fn proxied_world(env: TestEnv, proxy: PathBuf, store: PathBuf) -> World {
    env.oracle(&proxy, &["config", "remote.d.annex-proxy", "true"])
        .ok();
    env.annexproxy(&proxy, &["updateproxy"])
        .ok()
        .says("Started proxying for d");
    let client = env.clone_client(&proxy, "client");
    env.annex(&client, &["sync"]).ok();
    World {
        env,
        proxy,
        store,
        client,
        bucket: None,
    }
}

/// A second repository on the server, `NAME` beside the proxy: real
/// git-annex's clone of it, initialised.
pub fn server_clone(wd: &World, name: &str) -> PathBuf {
    let env = &wd.env;
    let path = env.srv.join(name);
    let proxy = wd.proxy.display().to_string();
    env.oracle(&env.srv, &["clone", "-q", &proxy, name]).ok();
    env.oracle_annex(&path, &["init", name]).ok();
    path
}

/// `encryption=none`, unless `extra` says otherwise.
pub fn default_encryption(extra: &[&str]) -> Option<&'static str> {
    let given = extra.iter().any(|p| p.starts_with("encryption="));
    (!given).then_some("encryption=none")
}

/// Every regular file under the store, relative, except git-annex's
/// `tmp/`.
pub fn stored_files(store: &Path) -> Vec<String> {
    fn walk(dir: &Path, base: &Path, out: &mut Vec<String>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, base, out);
            } else {
                let rel = p.strip_prefix(base).expect("under base");
                out.push(rel.display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(store, store, &mut out);
    out.retain(|f| !f.starts_with("tmp/"));
    out.sort();
    out
}

/// The path git-annex stores `key` at in a directory remote.
pub fn object_path(store: &Path, key: &str, hashdir: &str) -> PathBuf {
    store.join(hashdir).join(key).join(key)
}

/// `git annex examinekey --format='${hashdirlower}'` of the real client.
pub fn hashdir(env: &TestEnv, client: &Path, key: &str) -> String {
    env.annex(client, &["examinekey", "--format=${hashdirlower}", key])
        .ok()
        .stdout
        .trim()
        .trim_end_matches('/')
        .to_string()
}

/// The special remote's UUID, as initremote recorded it.
pub fn d_uuid(wd: &World) -> String {
    wd.env
        .oracle(&wd.proxy, &["config", "remote.d.annex-uuid"])
        .ok()
        .stdout
        .trim()
        .to_string()
}

/// The client's view of where `file` is.
pub fn is_on_d(wd: &World, file: &str) -> bool {
    whereis(&wd.env, &wd.client)
        .get(file)
        .is_some_and(|locs| locs.iter().any(|l| l.contains("origin-d")))
}

/// Real `git annex fsck --from d` inside the proxy's repository, after
/// learning what the client synced: it reads the directory itself.
pub fn server_fsck_from_d(wd: &World) {
    wd.env.wait_server_idle();
    let out = wd
        .env
        .oracle_annex(&wd.proxy, &["fsck", "--from", "d", "--all"]);
    assert!(
        out.success() && !out.all().contains("failed"),
        "real fsck --from d in the proxy:\n{out}"
    );
}

/// Our git-annex-shell on the proxy, addressed at the special remote, as
/// a client's ssh session starts it.
pub fn shell_to_d(wd: &World) -> Shell {
    shell_to_d_speaking(wd, 3)
}

/// [`shell_to_d`], the client offering protocol `version`.
pub fn shell_to_d_speaking(wd: &World, version: u32) -> Shell {
    let mut cmd = wd.env.server_command("git-annex-shell");
    cmd.args(["p2pstdio", &wd.proxy.display().to_string(), CLIENT_UUID])
        .args(["--uuid", &d_uuid(wd)])
        .current_dir(&wd.proxy);
    let mut shell = Shell::start(cmd, ServerKind::Ours);
    shell.hello(Some(version));
    shell
}

/// `DATA len` and the body, as one write.
pub fn data(body: &[u8], len: usize) -> Vec<u8> {
    let mut out = format!("DATA {len}\n").into_bytes();
    out.extend_from_slice(body);
    out
}

/// PUT `key` with all of `content` from offset 0; it is stored.
pub fn put_whole(shell: &mut Shell, key: &str, content: &[u8]) {
    shell.send(&format!("PUT f.bin {key}"));
    shell.expect("PUT-FROM 0");
    shell.send_raw(&data(content, content.len()));
    shell.send("VALID");
    shell.expect("SUCCESS");
}

/// Real `git annex verifyremote NAME`, then `--safe` with the ID it asks
/// for: the operator accepts the remote's configuration.
pub fn verify_remote(env: &TestEnv, repo: &Path, name: &str) {
    let asked = env.oracle_annex(repo, &["verifyremote", name]);
    let id = asked
        .all()
        .split("--safe ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("no --safe ID in {asked}"));
    env.oracle_annex(repo, &["verifyremote", name, "--safe", &id])
        .ok();
}

/// What `d` holds: the files under its directory, or its bucket's
/// objects but the one git-annex keeps the UUID in, sorted.
pub fn held(wd: &World) -> Vec<String> {
    let Some(bucket) = &wd.bucket else {
        return stored_files(&wd.store);
    };
    let mut names = testkit::moto::shared().list_objects(bucket);
    names.retain(|n| n != "annex-uuid");
    names.sort();
    names
}

/// A corrupted upload (wrong bytes with VALID, or the right bytes with
/// INVALID) is answered FAILURE and leaves nothing under the key: no
/// object, no chunk, and CHECKPRESENT says so. The right bytes with
/// VALID are then stored, and real `git annex fsck --from d` agrees.
pub fn corrupted_upload_never_appears_in(wd: &World) {
    let content = annexproxy_tests::pseudo_random_bytes(3, 250_000);
    let key = annexproxy_tests::p2p_driver::sha256e_key(&content, ".bin");
    let mut wrong = content.clone();
    wrong[200_000] ^= 1;
    let mut shell = shell_to_d(wd);
    for (body, verdict) in [(&wrong, "VALID"), (&content, "INVALID")] {
        shell.send(&format!("PUT f.bin {key}"));
        shell.expect("PUT-FROM 0");
        shell.send_raw(&data(body, body.len()));
        shell.send(verdict);
        shell.expect("FAILURE");
        assert_eq!(held(wd), Vec::<String>::new());
        shell.send(&format!("CHECKPRESENT {key}"));
        shell.expect("FAILURE");
    }
    put_whole(&mut shell, &key, &content);
    shell.finish().assert_exit(0);
    assert!(!held(wd).is_empty());
    server_fsck_from_d(wd);
}

/// `d`'s row in `annexproxy status --json` after the client copied a
/// 12-byte file to it: a special remote that answers, with that key.
pub fn status_row_of_d_after_a_copy(wd: &World) -> serde_json::Value {
    let (env, client) = (&wd.env, &wd.client);
    env.add_file(client, "f.txt", b"twelve bytes");
    env.annex(client, &["copy", "--to", "origin-d", "f.txt"])
        .ok();
    env.wait_server_idle();
    let out = env.annexproxy(&wd.proxy, &["status", "--json"]).ok();
    let status = &annexproxy_tests::observe::json_lines(&out.stdout)[0];
    let remotes = status["proxied"].as_array().expect("proxied");
    let d = remotes
        .iter()
        .find(|r| r["name"] == "d")
        .unwrap_or_else(|| panic!("no d in {out}"))
        .clone();
    assert_eq!(d["kind"], "special", "{out}");
    assert_eq!(d["reachable"], true, "{out}");
    assert_eq!(d["keys"], 1, "{out}");
    assert_eq!(d["bytes"], 12, "{out}");
    d
}

/// Content real git-annex stored in `d` (from a repository of its own on
/// the server, `side`, that enabled the same remote with `enable`
/// parameters) is read through our proxy: the client gets it and fscks
/// it, and drops it from there.
pub fn real_stored_is_read_through(wd: &World, enable: &[&str]) {
    real_stored_read_via(&wd.env, &wd.proxy, &wd.client, "origin-d", enable);
    assert!(!is_on_d(wd, "theirs.bin"));
}

/// Real git-annex in `side`, a clone of `server` on the server that
/// enabled its remote `d` (with `enable` parameters), stores a file in
/// `d` and pushes; `client` (a clone of `server`) gets it from `via`, our
/// server's name for `d` or a cluster holding it, fscks it there and
/// drops it from there.
pub fn real_stored_read_via(
    env: &TestEnv,
    server: &Path,
    client: &Path,
    via: &str,
    enable: &[&str],
) {
    let side = env.srv.join("side");
    env.oracle(
        &env.srv,
        &["clone", "-q", &server.display().to_string(), "side"],
    )
    .ok();
    env.oracle_annex(&side, &["init", "side"]).ok();
    // git-annex refuses loopback addresses for S3 unless allowed.
    let allow = ["config", "annex.security.allowed-ip-addresses", "127.0.0.1"];
    env.oracle(&side, &allow).ok();
    let mut args = vec!["enableremote", "d"];
    args.extend_from_slice(enable);
    env.oracle_annex(&side, &args).ok();
    // git-annex 10.20261026 uses an enabled remote once its user checked
    // the configuration.
    verify_remote(env, &side, "d");
    let content = annexproxy_tests::pseudo_random_bytes(9, 230_000);
    fs::write(side.join("theirs.bin"), &content).expect("write");
    env.oracle_annex(&side, &["add", "theirs.bin"]).ok();
    env.oracle(&side, &["commit", "-q", "-m", "theirs"]).ok();
    env.oracle_annex(&side, &["copy", "--to", "d", "theirs.bin"])
        .ok();
    env.oracle(&side, &["push", "-q", "origin", "main", "git-annex"])
        .ok();
    env.git(client, &["pull", "-q", "origin", "main"]).ok();
    env.annex(client, &["sync", "--no-content"]).ok();
    env.annex(client, &["get", "--from", via, "theirs.bin"])
        .ok();
    assert_eq!(
        annexproxy_tests::observe::worktree_bytes(client, "theirs.bin"),
        content
    );
    let (ok, results) = annexproxy_tests::observe::fsck_from(env, client, via);
    assert!(ok, "{results:?}");
    env.annex(client, &["drop", "--from", via, "theirs.bin"])
        .ok();
}

/// A GET of `key` from `offset`: exactly the rest of `content`, valid.
pub fn get_rest(shell: &mut Shell, key: &str, content: &[u8], offset: usize) {
    let rest = content.len() - offset;
    shell.send(&format!("GET {offset} f.bin {key}"));
    shell.expect(&format!("DATA {rest}"));
    assert!(shell.body(rest) == content[offset..], "wrong bytes");
    shell.expect("VALID");
    shell.send("SUCCESS");
}

/// An upload of `content` as `key` cut off after `sent` bytes, with the
/// two complete chunks kept; a second session finds the key absent and
/// resumes the PUT at `resume_at`, stored. That session, for more.
pub fn cut_off_then_resumed(
    wd: &World,
    key: &str,
    content: &[u8],
    sent: usize,
    resume_at: usize,
) -> Shell {
    let mut shell = shell_to_d(wd);
    shell.send(&format!("PUT f.bin {key}"));
    shell.expect("PUT-FROM 0");
    shell.send_raw(&data(&content[..sent], content.len()));
    shell.finish().assert_exit(0);
    assert_eq!(held(wd).len(), 2, "{:?}", held(wd));
    let mut shell = shell_to_d(wd);
    shell.send(&format!("CHECKPRESENT {key}"));
    shell.expect("FAILURE");
    shell.send(&format!("PUT f.bin {key}"));
    shell.expect(&format!("PUT-FROM {resume_at}"));
    shell.send_raw(&data(&content[resume_at..], content.len() - resume_at));
    shell.send("VALID");
    shell.expect("SUCCESS");
    shell
}
