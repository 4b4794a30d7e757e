//! Plain git (no git-annex on the client) through `git-remote-annexproxy`:
//! clone, fetch and push over `annexproxy::` URLs, tunnelled in a P2P
//! `CONNECT` to our git-annex-shell, over the ssh stand-in and over a
//! local path; and the ways that fails.
//!
//! The server repos are made the ordinary way: a git-annex client clones a
//! bare repo over ssh and `git annex sync`s, which initialises it (our
//! server refuses p2pstdio in a repo without git-annex).

use std::path::{Path, PathBuf};

use annexproxy_tests::{Out, ServerKind, TestEnv};

/// A bare server that a git-annex client ("seed") has synced to: one
/// annexed file and one plain file on `main`.
fn setup() -> (TestEnv, PathBuf, PathBuf) {
    let env = TestEnv::new(ServerKind::Ours);
    let server = env.server_bare("server.git");
    let seed = env.clone_client(&server, "seed");
    env.add_file(&seed, "annexed.txt", b"annexed content\n");
    commit_file(&env, &seed, "plain.txt", "plain content\n");
    env.annex(&seed, &["sync"]).ok();
    assert!(
        !env.server_uuid(&server).is_empty(),
        "sync should have initialised the server"
    );
    assert_eq!(server_main(&env, &server), head(&env, &seed));
    (env, server, seed)
}

fn commit_file(env: &TestEnv, repo: &Path, file: &str, content: &str) {
    std::fs::write(repo.join(file), content).expect("write work tree file");
    env.git(repo, &["add", file]).ok();
    env.git(repo, &["commit", "-q", "-m", &format!("change {file}")])
        .ok();
}

/// Same, for a plain client (its hooks, if any, must not need git-annex).
fn plain_commit(env: &TestEnv, repo: &Path, file: &str, content: &str) {
    std::fs::write(repo.join(file), content).expect("write work tree file");
    env.plain_git(repo, &["add", file]).ok();
    env.plain_git(repo, &["commit", "-q", "-m", &format!("change {file}")])
        .ok();
}

fn head(env: &TestEnv, repo: &Path) -> String {
    rev(env, repo, "HEAD")
}

fn rev(env: &TestEnv, repo: &Path, what: &str) -> String {
    env.oracle(repo, &["rev-parse", "--verify", what])
        .ok()
        .stdout
        .trim()
        .to_string()
}

/// The server's `main`, read with git on the server side.
fn server_main(env: &TestEnv, server: &Path) -> String {
    rev(env, server, "refs/heads/main")
}

/// Every object reachable from `what` in `repo` is there: a pushed pack
/// arrived whole. (Not `git fsck`: the server's autoinit commit names the
/// empty tree without writing it, which fsck reports for the whole repo.)
fn assert_complete(env: &TestEnv, repo: &Path, what: &str) {
    let out = env
        .oracle(repo, &["rev-list", "--objects", "--missing=print", what])
        .ok();
    let missing: Vec<&str> = out.stdout.lines().filter(|l| l.starts_with('?')).collect();
    assert!(
        missing.is_empty(),
        "objects missing under {what}: {missing:?}"
    );
}

fn read(repo: &Path, file: &str) -> String {
    std::fs::read_to_string(repo.join(file)).unwrap_or_default()
}

/// Lines our helper wrote to stderr.
fn helper_lines(out: &Out) -> Vec<&str> {
    out.stderr
        .lines()
        .filter(|l| l.starts_with("git-remote-annexproxy:"))
        .collect()
}

#[test]
fn clone_fetch_push_over_ssh() {
    let (env, server, seed) = setup();
    let url = format!("annexproxy::localhost:{}", server.display());
    let mark = env.ssh_mark();
    env.plain_git(env.root(), &["clone", "-q", &url, "plain"])
        .ok();
    let plain = env.root().join("plain");
    assert_eq!(head(&env, &plain), server_main(&env, &server));
    assert_eq!(read(&plain, "plain.txt"), "plain content\n");
    // the annexed file arrives as git-annex's symlink; its content stays behind
    let link = std::fs::read_link(plain.join("annexed.txt")).expect("annexed file is a symlink");
    assert!(
        link.to_string_lossy().contains(".git/annex/objects/"),
        "{}",
        link.display()
    );

    // one p2pstdio session per git service, with an empty client UUID since
    // the fresh clone has no annex.uuid
    let calls = env.ssh_calls_since(mark);
    assert_eq!(calls.len(), 1, "{}", env.ssh_log_text());
    assert_eq!(
        calls[0].command,
        format!("git-annex-shell 'p2pstdio' '{}' ''", server.display())
    );
    assert_eq!(calls[0].exit, Some(0));

    // fetch what someone else pushed
    commit_file(&env, &seed, "plain.txt", "seed's second version\n");
    env.git(&seed, &["push", "-q", "origin", "main"]).ok();
    env.plain_git(
        &plain,
        &[
            "config",
            "annex.uuid",
            "c0ffee00-0000-4000-8000-00000000abcd",
        ],
    )
    .ok();
    let mark = env.ssh_mark();
    env.plain_git(&plain, &["fetch", "-q", "origin"]).ok();
    assert_eq!(
        rev(&env, &plain, "refs/remotes/origin/main"),
        head(&env, &seed)
    );
    // a repository with an annex.uuid introduces itself with it
    let calls = env.ssh_calls_since(mark);
    assert_eq!(calls.len(), 1, "{}", env.ssh_log_text());
    assert!(
        calls[0]
            .command
            .ends_with("'c0ffee00-0000-4000-8000-00000000abcd'"),
        "{}",
        calls[0].command
    );

    // push back
    env.plain_git(&plain, &["merge", "-q", "--ff-only", "origin/main"])
        .ok();
    plain_commit(
        &env,
        &plain,
        "from-plain.txt",
        "pushed through annexproxy\n",
    );
    let mark = env.ssh_mark();
    env.plain_git(&plain, &["push", "-q", "origin", "main"])
        .ok();
    assert_eq!(server_main(&env, &server), head(&env, &plain));
    let calls = env.ssh_calls_since(mark);
    assert!(
        calls.iter().all(|c| c.exit == Some(0)),
        "{}",
        env.ssh_log_text()
    );
    assert_complete(&env, &server, "main");

    // and the git-annex client sees it like any other push
    env.git(&seed, &["pull", "-q", "--ff-only", "origin", "main"])
        .ok();
    assert_eq!(read(&seed, "from-plain.txt"), "pushed through annexproxy\n");
    env.assert_server_fsck_clean(&server);
}

#[test]
fn clone_and_push_over_a_local_path() {
    let (env, server, _seed) = setup();
    let mark = env.ssh_mark();
    for (name, url) in [
        ("by-path", format!("annexproxy::{}", server.display())),
        (
            "by-file-url",
            format!("annexproxy::file://{}", server.display()),
        ),
    ] {
        env.plain_git(env.root(), &["clone", "-q", &url, name]).ok();
        let plain = env.root().join(name);
        assert_eq!(head(&env, &plain), server_main(&env, &server), "{name}");
        plain_commit(&env, &plain, &format!("{name}.txt"), "local push\n");
        env.plain_git(&plain, &["pull", "-q", "--no-rebase", "origin", "main"])
            .ok();
        env.plain_git(&plain, &["push", "-q", "origin", "main"])
            .ok();
        assert_eq!(server_main(&env, &server), head(&env, &plain), "{name}");
        assert_complete(&env, &server, "main");
        // the server repository itself has the commit, read by git there
        assert_eq!(
            env.oracle(&server, &["show", "main:by-path.txt"])
                .ok()
                .stdout,
            "local push\n"
        );
    }
    assert!(
        env.ssh_calls_since(mark).is_empty(),
        "a local path must not go through ssh:\n{}",
        env.ssh_log_text()
    );
    env.assert_server_fsck_clean(&server);
}

#[test]
fn non_fast_forward_push_is_rejected_as_git_rejects_it() {
    let (env, server, _seed) = setup();
    let url = format!("annexproxy::ssh://localhost{}", server.display());
    env.plain_git(env.root(), &["clone", "-q", &url, "a"]).ok();
    env.plain_git(env.root(), &["clone", "-q", &url, "b"]).ok();
    let (a, b) = (env.root().join("a"), env.root().join("b"));
    plain_commit(&env, &a, "x.txt", "a's\n");
    env.plain_git(&a, &["push", "-q", "origin", "main"]).ok();
    plain_commit(&env, &b, "x.txt", "b's\n");
    env.plain_git(&b, &["fetch", "-q", "origin"]).ok();

    let out = env.plain_git(&b, &["push", "origin", "main"]).fails();
    let out = out
        .says("! [rejected]")
        .says("main -> main (non-fast-forward)");
    assert_eq!(out.code(), 1, "{out}");
    assert!(
        helper_lines(&out).is_empty(),
        "the helper has nothing to add:\n{out}"
    );
    assert_eq!(server_main(&env, &server), head(&env, &a));
    // the server side finished cleanly all the same
    assert!(
        env.ssh_calls().iter().all(|c| c.exit == Some(0)),
        "{}",
        env.ssh_log_text()
    );
}

#[test]
fn bad_urls_fail_with_one_clear_line() {
    let env = TestEnv::new(ServerKind::Ours);
    let cases = [
        (
            "annexproxy::ssh://-oProxyCommand=touch%20pwned/srv/r.git",
            "host \"-oProxyCommand=touch%20pwned\" starts with '-' and would be taken as an ssh option",
        ),
        (
            "annexproxy::-oProxyCommand=touch pwned:r.git",
            "host \"-oProxyCommand=touch pwned\" starts with '-'",
        ),
        ("annexproxy::relative/r.git", "local path \"relative/r.git\" is not absolute"),
        ("annexproxy::http://example.invalid/r.git", "unsupported URL scheme \"http\""),
        ("annexproxy::ssh://localhost:99999/r.git", "invalid port \"99999\""),
        ("annexproxy::/srv/r.git#-x", "remote name \"-x\" after '#' is not a git remote name or a UUID"),
        (
            "annexproxy::tor-annex::abc.onion:5555#node1",
            "'#node1': a P2P address serves only its own repository",
        ),
    ];
    for (i, (url, why)) in cases.iter().enumerate() {
        let name = format!("bad{i}");
        let out = env.plain_git(env.root(), &["clone", url, &name]).fails();
        let lines = helper_lines(&out);
        assert_eq!(lines.len(), 1, "{out}");
        assert!(
            lines[0].contains("bad URL") && lines[0].contains(why),
            "{out}"
        );
    }
    assert!(
        env.ssh_calls().is_empty(),
        "no bad URL may reach ssh:\n{}",
        env.ssh_log_text()
    );
    assert!(!env.server_home.join("pwned").exists() && !env.root().join("pwned").exists());
}

#[test]
fn server_errors_reach_git() {
    let (env, server, _seed) = setup();
    // stderr of the server side passes through: a repo without git-annex
    let not_annex = env.server_bare("not-annex.git");
    let url = format!("annexproxy::localhost:{}", not_annex.display());
    let out = env
        .plain_git(env.root(), &["clone", "-q", &url, "nope"])
        .fails();
    out.says("Not a git-annex or gcrypt repository")
        .says("git-remote-annexproxy: ssh ended (exit status: 1) before the P2P session started");

    // a read-only server refuses the push with the server's own words
    let url = format!("annexproxy::localhost:{}", server.display());
    env.plain_git(env.root(), &["clone", "-q", &url, "ro"]).ok();
    let ro = env.root().join("ro");
    plain_commit(&env, &ro, "ro.txt", "not accepted\n");
    let before = server_main(&env, &server);
    env.set_server_env(&[("GIT_ANNEX_SHELL_READONLY", "1")]);
    env.plain_git(&ro, &["fetch", "-q", "origin"]).ok();
    env.plain_git(&ro, &["push", "-q", "origin", "main"])
        .fails()
        .says("server said: this repository is read-only; write access denied");
    assert_eq!(server_main(&env, &server), before);
}

/// On a terminal, the progress the user sees is git's own: nothing of ours
/// is drawn into git's "Writing objects" / "Receiving objects" lines (the
/// helper's bar used to be drawn over them once a transfer ran a second,
/// with a rate a fraction of the real one). `script` gives git a terminal.
#[test]
fn progress_on_a_terminal_is_git_s_own() {
    let (env, server, _seed) = setup();
    let url = format!("annexproxy::{}", server.display());
    env.plain_git(env.root(), &["clone", "-q", &url, "pusher"])
        .ok();
    let pusher = env.root().join("pusher");
    // Incompressible, and large enough to take well over a second here.
    std::fs::write(pusher.join("big.bin"), noise(48 << 20)).expect("write big file");
    env.plain_git(&pusher, &["add", "big.bin"]).ok();
    env.plain_git(&pusher, &["commit", "-q", "-m", "big"]).ok();

    let on_terminal = |dir: &Path, git_args: &str| -> String {
        let mut cmd = env.plain_client_command("script");
        cmd.args(["-qec", &format!("git {git_args}"), "/dev/null"])
            .env("TERM", "xterm");
        let out = annexproxy_tests::run::run(cmd, dir).ok();
        env.wait_server_idle();
        out.stdout
    };
    let pushed = on_terminal(&pusher, "push --progress origin main");
    assert!(pushed.contains("Writing objects: 100%"), "{pushed}");
    assert_eq!(server_main(&env, &server), head(&env, &pusher));
    let cloned = on_terminal(env.root(), &format!("clone --progress {url} cloned"));
    assert!(cloned.contains("Receiving objects: 100%"), "{cloned}");
    for transcript in [&pushed, &cloned] {
        assert!(
            !transcript.contains("annexproxy: ") && !transcript.contains("relayed"),
            "the helper drew on git's terminal:\n{}",
            transcript.replace('\r', "\n")
        );
    }
    assert_eq!(head(&env, &env.root().join("cloned")), head(&env, &pusher));
}

/// `len` bytes that no compressor shrinks (xorshift).
fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}
