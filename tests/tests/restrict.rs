//! GIT_ANNEX_SHELL_READONLY / _APPENDONLY / _LIMITED / _DIRECTORY, set in
//! the environment of a forced `git-annex-shell -c "$SSH_ORIGINAL_COMMAND"`
//! as an authorized_keys line would, and what the client sees.
//!
//! Real behaviour worth knowing (10.20261026):
//! - READONLY and APPENDONLY only restrict git-annex's own commands; plain
//!   `git push` through the forced command still works under both.
//! - LIMITED blocks plain git (fetch, push, clone) and nothing of git-annex.
//! - A refused PUT reaches the user only as "Transfer failed"; a refused
//!   REMOVE shows the server's reason.

use std::path::PathBuf;

use annexproxy_tests::observe::whereis;
use annexproxy_tests::on_both_servers;
use annexproxy_tests::{Out, ServerKind, TestEnv, Transcript};

/// A server (bare, autoinitialised by the client's sync) holding `a.txt`,
/// and a client that also has `b.txt`, which the server lacks. Forced
/// command on, no restriction yet.
fn setup(kind: ServerKind) -> (TestEnv, PathBuf, PathBuf) {
    let env = TestEnv::new(kind);
    let server = env.server_bare("server.git");
    env.set_forced_command(true);
    let client = env.clone_client(&server, "client");
    env.add_file(&client, "a.txt", b"on the server\n");
    env.add_file(&client, "b.txt", b"only on the client\n");
    env.annex(&client, &["sync"]).ok();
    env.annex(&client, &["copy", "--to", "origin", "a.txt"])
        .ok();
    (env, server, client)
}

/// stderr lines that are about the situation rather than ssh caching noise.
fn gist(out: &Out) -> Vec<String> {
    out.stderr
        .lines()
        .map(str::trim)
        .filter(|l| {
            !l.is_empty() && !l.contains("sshcaching") && !l.contains("enabled concurrency")
        })
        .map(str::to_string)
        .collect()
}

fn commit_something(env: &TestEnv, client: &std::path::Path, name: &str) {
    std::fs::write(client.join(name), name).expect("write plain file");
    env.git(client, &["add", name]).ok();
    env.git(client, &["commit", "-q", "-m", name]).ok();
}

fn readonly(kind: ServerKind) -> Transcript {
    let mut t = Transcript::default();
    let (env, server, client) = setup(kind);
    let kb = env.key_of(&client, "b.txt");
    env.set_server_env(&[("GIT_ANNEX_SHELL_READONLY", "1")]);

    let out = env
        .annex(&client, &["copy", "--to", "origin", "b.txt"])
        .fails()
        .says("Transfer failed");
    t.note("copy --to refused", gist(&out));
    assert!(!env.server_has_content(&server, &kb));

    let out = env
        .annex(&client, &["drop", "--from", "origin", "a.txt"])
        .fails();
    let out = out.says("this repository is read-only; write access denied");
    t.note("drop --from refused", gist(&out));

    // reading works: lock the server's copy to drop ours, then get it back
    env.annex(&client, &["drop", "a.txt"]).ok();
    env.annex(&client, &["get", "--from", "origin", "a.txt"])
        .ok();
    let (ok, _) = annexproxy_tests::observe::fsck_from(&env, &client, "origin");
    assert!(ok, "fsck --from works read-only");

    // READONLY does not cover plain git: a push through the forced command
    // still goes to git-shell.
    commit_something(&env, &client, "ro-push.txt");
    env.git(&client, &["push", "-q", "origin", "main"]).ok();
    env.annex(&client, &["sync"]).ok();
    t.note("whereis", whereis(&env, &client));

    // A fresh server cannot be autoinitialised read-only.
    let fresh = env.server_bare("fresh.git");
    let other = env.clone_client(&fresh, "other");
    let mark = env.ssh_mark();
    let out = env.annex(&other, &["sync"]);
    t.note("autoinit refused: sync status", out.code());
    assert!(
        env.server_uuid(&fresh).is_empty(),
        "READONLY must block autoinit"
    );
    let calls = env.ssh_calls_since(mark);
    let autoinit = calls
        .iter()
        .find(|c| c.command.contains("autoinit=1"))
        .expect("sync asked for autoinit");
    assert_eq!(autoinit.exit, Some(1), "{autoinit:?}");
    // The client never shows the server's reason: it reports a config it
    // could not parse, gives up on the remote's annex and the sync succeeds.
    let out = out.ok().says("Unable to parse git config from origin");
    t.note("autoinit refused", gist(&out));
    let ignore = env.git(&other, &["config", "--get", "remote.origin.annex-ignore"]);
    assert_eq!(ignore.stdout.trim(), "true", "{ignore}");

    env.set_server_env(&[]);
    env.assert_server_fsck_clean(&server);
    t
}

on_both_servers!(readonly, compare);

fn appendonly(kind: ServerKind) -> Transcript {
    let mut t = Transcript::default();
    let (env, server, client) = setup(kind);
    let ka = env.key_of(&client, "a.txt");
    let kb = env.key_of(&client, "b.txt");
    env.set_server_env(&[("GIT_ANNEX_SHELL_APPENDONLY", "1")]);

    env.annex(&client, &["copy", "--to", "origin", "b.txt"])
        .ok();
    assert!(env.server_has_content(&server, &kb));

    let out = env
        .annex(&client, &["drop", "--from", "origin", "a.txt"])
        .fails();
    let out = out.says("this repository is append-only; removal denied");
    t.note("drop --from refused", gist(&out));
    assert!(env.server_has_content(&server, &ka));
    let out = env
        .annex(&client, &["move", "--from", "origin", "a.txt"])
        .fails();
    t.note("move --from refused", gist(&out));
    assert!(env.server_has_content(&server, &ka));

    // move --to only removes the local copy
    env.annex(&client, &["move", "--to", "origin", "b.txt"])
        .ok();
    env.annex(&client, &["get", "--from", "origin", "b.txt"])
        .ok();

    commit_something(&env, &client, "ao-push.txt");
    env.git(&client, &["push", "-q", "origin", "main"]).ok();

    // autoinit is not a removal: allowed
    let fresh = env.server_bare("fresh.git");
    let other = env.clone_client(&fresh, "other");
    env.annex(&other, &["sync"]).ok();
    assert!(
        !env.server_uuid(&fresh).is_empty(),
        "APPENDONLY allows autoinit"
    );

    env.annex(&client, &["sync"]).ok();
    t.note("whereis", whereis(&env, &client));
    env.set_server_env(&[]);
    env.assert_server_fsck_clean(&server);
    env.assert_server_fsck_clean(&fresh);
    t
}

on_both_servers!(appendonly, compare);

fn limited(kind: ServerKind) -> Transcript {
    let mut t = Transcript::default();
    let (env, server, client) = setup(kind);
    env.set_server_env(&[("GIT_ANNEX_SHELL_LIMITED", "1")]);

    let out = env
        .git(&client, &["fetch", "origin"])
        .fails()
        .says("Action blocked by GIT_ANNEX_SHELL_LIMITED");
    t.note("fetch refused", gist(&out));
    commit_something(&env, &client, "limited.txt");
    let out = env
        .git(&client, &["push", "origin", "main"])
        .fails()
        .says("Action blocked by GIT_ANNEX_SHELL_LIMITED");
    t.note("push refused", gist(&out));
    let out = env
        .git(
            env.root(),
            &["clone", "-q", &env.url(&server), "refused-clone"],
        )
        .fails();
    let out = out.says("Action blocked by GIT_ANNEX_SHELL_LIMITED");
    t.note("clone refused", gist(&out));

    // git-annex's own commands are untouched
    env.annex(&client, &["copy", "--to", "origin", "b.txt"])
        .ok();
    env.annex(&client, &["drop", "--from", "origin", "a.txt"])
        .ok();
    env.annex(&client, &["get", "--from", "origin", "b.txt"])
        .ok();
    let out = env.annex(&client, &["sync"]);
    t.note("sync status under LIMITED", out.code());
    t.note("whereis", whereis(&env, &client));

    env.set_server_env(&[]);
    env.annex(&client, &["sync"]).ok();
    env.assert_server_fsck_clean(&server);
    t
}

on_both_servers!(limited, compare);

fn directory(kind: ServerKind) -> Transcript {
    let mut t = Transcript::default();
    let (env, server, client) = setup(kind);
    let elsewhere = env.srv.join("other.git");
    let elsewhere_s = elsewhere.display().to_string();
    env.set_server_env(&[("GIT_ANNEX_SHELL_DIRECTORY", &elsewhere_s)]);
    let refusal = format!(
        "Only allowed to access {} not {}",
        elsewhere.display(),
        server.display()
    );

    let out = env
        .git(&client, &["fetch", "origin"])
        .fails()
        .says(&refusal);
    t.note("fetch refused", env.unroot(&gist(&out).join("\n")));
    let out = env
        .annex(&client, &["copy", "--to", "origin", "b.txt"])
        .fails();
    t.note("copy refused", env.unroot(&gist(&out).join("\n")));
    let out = env
        .annex(&client, &["drop", "--from", "origin", "a.txt"])
        .fails();
    t.note("drop refused", env.unroot(&gist(&out).join("\n")));

    // the matching directory is served
    env.set_server_env(&[("GIT_ANNEX_SHELL_DIRECTORY", &server.display().to_string())]);
    env.git(&client, &["fetch", "origin"]).ok();
    env.annex(&client, &["copy", "--to", "origin", "b.txt"])
        .ok();

    // Home-relative URLs: git asks for `home.git`, git-annex for
    // `/~/home.git`; both match the absolute DIRECTORY, and `~/home.git`.
    let home_repo = env.server_home.join("home.git");
    env.oracle(&env.server_home, &["init", "-q", "--bare", "home.git"])
        .ok();
    let mark = env.ssh_mark();
    for allowed in [home_repo.display().to_string(), "~/home.git".to_string()] {
        env.set_server_env(&[("GIT_ANNEX_SHELL_DIRECTORY", &allowed)]);
        let name = if allowed.starts_with('~') {
            "tilde"
        } else {
            "abs"
        };
        let c = env.clone_url("localhost:home.git", name);
        env.add_file(&c, &format!("{name}.txt"), name.as_bytes());
        env.annex(&c, &["sync"]).ok();
        env.annex(&c, &["copy", "--to", "origin"]).ok();
        t.note(
            &format!("home-relative whereis ({name})"),
            whereis(&env, &c),
        );
    }
    let calls = env.ssh_calls_since(mark);
    assert!(
        calls.iter().any(|c| c.command.contains("'/~/home.git'")),
        "{calls:?}"
    );
    assert!(
        calls.iter().any(|c| c.command.contains("'home.git'")),
        "{calls:?}"
    );
    t.note(
        "home-relative argv",
        calls.iter().map(|c| c.command.clone()).collect::<Vec<_>>(),
    );
    assert!(calls.iter().all(|c| c.exit == Some(0)), "{calls:?}");

    env.set_server_env(&[]);
    env.assert_server_fsck_clean(&server);
    env.assert_server_fsck_clean(&home_repo);
    t
}

on_both_servers!(directory, compare);

/// An attacker confined to `server.git` by GIT_ANNEX_SHELL_DIRECTORY names
/// another repository in the command git-shell runs and puts the allowed
/// one last, where git-annex looks: `git-annex-shell "git-upload-pack
/// 'SECRET'" -- 'ALLOWED'`, which git sends as its `--upload-pack` and
/// `--receive-pack` programs. The secret's refs must not be served, nor a
/// push land in it. (Real git-annex-shell 10.20261026 serves both, so this
/// runs on ours only.)
#[test]
fn directory_escape_through_git_shell() {
    let (env, server, client) = setup(ServerKind::Ours);
    let secret = env.server_bare("secret.git");
    commit_something(&env, &client, "classified.txt");
    env.git(
        &client,
        &[
            "push",
            "-q",
            &env.url(&secret),
            "HEAD:refs/heads/classified",
        ],
    )
    .ok();
    let secret_refs = || {
        env.git(env.root(), &["ls-remote", &env.url(&secret)])
            .stdout
    };
    let before = secret_refs();
    assert!(before.contains("refs/heads/classified"), "{before}");
    env.set_server_env(&[("GIT_ANNEX_SHELL_DIRECTORY", &server.display().to_string())]);
    let forged = |service: &str| {
        format!(
            "git-annex-shell \"git-{service} '{}'\" --",
            secret.display()
        )
    };

    let refusal = format!("Only allowed to access {}", server.display());
    let out = env
        .git(
            &client,
            &[
                "ls-remote",
                "--upload-pack",
                &forged("upload-pack"),
                &env.url(&server),
            ],
        )
        .fails()
        .says(&refusal);
    assert!(!out.stdout.contains("classified"), "{out}");
    env.git(
        &client,
        &[
            "push",
            "--receive-pack",
            &forged("receive-pack"),
            &env.url(&server),
            "HEAD:refs/heads/stolen",
        ],
    )
    .fails()
    .says(&refusal);
    // The allowed repository is still served through the same forced command.
    env.git(&client, &["fetch", "origin"]).ok();

    env.set_server_env(&[]);
    let after = secret_refs();
    assert!(!after.contains("stolen"), "the push landed: {after}");
    assert_eq!(after, before);
}
