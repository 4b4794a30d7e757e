//! Our git-annex-shell behind a REAL OpenSSH server, as users deploy it:
//! an authorized_keys line forcing
//! `git-annex-shell -c "$SSH_ORIGINAL_COMMAND"` with
//! `no-port-forwarding,no-X11-forwarding,no-agent-forwarding,no-pty`, and
//! the real git-annex client going through the real `ssh` to
//! `ssh://user@127.0.0.1:PORT/path`. The other scenarios use the stand-in;
//! this one shows that nothing of sshd's own (its login shell `-c`, its
//! environment, channel and exit-status handling, SSH_ORIGINAL_COMMAND as
//! sshd sets it) changes the picture.
//!
//! The restriction variables are set the way git-annex-shell's
//! documentation shows: as `NAME=value` words in front of git-annex-shell
//! in the forced command. That needs nothing from the sshd config, unlike
//! `environment="..."`, which only works with `PermitUserEnvironment`, a
//! setting OpenSSH turns off by default because it lets keys change the
//! environment (LD_PRELOAD and the like) of the account's shell.

use std::path::Path;

use annexproxy_tests::observe::{fsck_from, whereis};
use annexproxy_tests::run::run;
use annexproxy_tests::sshd::Sshd;
use annexproxy_tests::{tools, Out, ServerKind, TestEnv};

/// The scenario's world; its `git`/`annex` run a client command through the
/// real ssh, then wait until sshd has no session left (git-annex does not
/// wait for all its ssh children, and the server commits on the way out).
struct World {
    env: TestEnv,
    sshd: Sshd,
    user: String,
}

impl World {
    #[track_caller]
    fn git(&self, dir: &Path, args: &[&str]) -> Out {
        let out = self.env.git(dir, args);
        self.sshd.wait_idle();
        out
    }

    #[track_caller]
    fn annex(&self, dir: &Path, args: &[&str]) -> Out {
        let out = self.env.annex(dir, args);
        self.sshd.wait_idle();
        out
    }

    fn restrict(&self, env: &[(&str, &str)]) {
        self.sshd.authorize(&Sshd::forced_options(env));
    }

    fn url(&self, path: &Path) -> String {
        self.sshd.url(&self.user, path)
    }

    #[track_caller]
    fn has(&self, server: &Path, key: &str) -> bool {
        self.env.server_has_content(server, key)
    }
}

fn start() -> World {
    let env = TestEnv::new(ServerKind::Ours);
    let user = tools::user_name();
    let sshd = Sshd::start(
        &env.root().join("sshd"),
        &user,
        &env.server_path,
        &env.server_home,
    );
    env.replace_ssh(&sshd.client_ssh_script(&env.home));
    World { env, sshd, user }
}

/// What a forced command sees: PATH, HOME, which git-annex(-shell) a bare
/// name finds, and SSH_ORIGINAL_COMMAND. Proves the sessions run our
/// binary with no git-annex reachable, before any scenario relies on it.
fn check_session_environment(w: &World) {
    w.sshd.authorize(
        r#"command="printf 'PATH=%s\nHOME=%s\nshell=%s\nannex=%s\ncmd=%s\n' \"$PATH\" \"$HOME\" \"$(command -v git-annex-shell)\" \"$(command -v git-annex)\" \"$SSH_ORIGINAL_COMMAND\"",no-pty"#,
    );
    let mut cmd = w.env.client_command("ssh");
    cmd.args([
        "-p",
        &w.sshd.port.to_string(),
        &format!("{}@127.0.0.1", w.user),
        "git-annex-shell 'configlist' '/x'",
    ]);
    let out = run(cmd, w.env.root());
    w.sshd.wait_idle();
    if !out.success() {
        panic!(
            "ssh through the real sshd failed:\n{out}\n--- sshd log ---\n{}",
            w.sshd.log()
        );
    }
    let server_bin = Path::new(w.env.server_path.split(':').next().unwrap_or_default());
    let expected = format!(
        "PATH={}\nHOME={}\nshell={}\nannex=\ncmd=git-annex-shell 'configlist' '/x'\n",
        w.env.server_path,
        w.env.server_home.display(),
        server_bin.join("git-annex-shell").display()
    );
    assert_eq!(out.stdout, expected, "{out}");
    let ours = tools::ours_bin_dir().join("git-annex-shell");
    assert_eq!(
        std::fs::canonicalize(server_bin.join("git-annex-shell")).ok(),
        std::fs::canonicalize(ours).ok(),
        "the server's git-annex-shell must be ours"
    );
}

#[test]
fn real_sshd_forced_command_and_restrictions() {
    let w = start();
    check_session_environment(&w);
    let env = &w.env;

    // ----- plain forced command: everything works ----------------------
    w.restrict(&[]);
    let server = env.server_bare("server.git");
    let url = w.url(&server);
    let root = env.root();
    w.git(root, &["clone", "-q", &url, "client"]).ok();
    let client = root.join("client");
    w.annex(&client, &["init", "client"]).ok();
    std::fs::write(client.join("a.txt"), "on the server\n").expect("write a.txt");
    std::fs::write(client.join("b.txt"), "only on the client\n").expect("write b.txt");
    w.annex(&client, &["add", "a.txt", "b.txt"]).ok();
    w.git(&client, &["commit", "-q", "-m", "two files"]).ok();
    w.annex(&client, &["sync"]).ok();
    assert!(
        !env.server_uuid(&server).is_empty(),
        "sync through sshd and the forced command should autoinit the server"
    );
    let ka = env.key_of(&client, "a.txt");
    let kb = env.key_of(&client, "b.txt");
    w.annex(&client, &["copy", "--to", "origin", "a.txt", "b.txt"])
        .ok();
    assert!(w.has(&server, &ka) && w.has(&server, &kb));
    w.annex(&client, &["drop", "--from", "origin", "b.txt"])
        .ok();
    assert!(!w.has(&server, &kb), "drop --from removed b.txt's content");

    w.git(root, &["clone", "-q", &url, "second"]).ok();
    let second = root.join("second");
    w.annex(&second, &["init", "second"]).ok();
    w.annex(&second, &["get", "a.txt"]).ok();
    assert_eq!(
        std::fs::read(second.join("a.txt")).unwrap_or_default(),
        b"on the server\n"
    );

    // ----- READONLY: reads only -----------------------------------------
    w.restrict(&[("GIT_ANNEX_SHELL_READONLY", "true")]);
    w.annex(&client, &["copy", "--to", "origin", "b.txt"])
        .fails()
        .says("Transfer failed");
    assert!(!w.has(&server, &kb), "READONLY let b.txt's content in");
    w.annex(&client, &["drop", "--from", "origin", "a.txt"])
        .fails()
        .says("this repository is read-only; write access denied");
    assert!(w.has(&server, &ka));
    // the local drop locks the server's copy as its proof; then get it back
    w.annex(&second, &["drop", "a.txt"]).ok();
    w.annex(&second, &["get", "a.txt"]).ok();
    let (ok, _) = fsck_from(env, &second, "origin");
    assert!(ok, "fsck --from origin works read-only");

    // ----- APPENDONLY: additions only -------------------------------------
    w.restrict(&[("GIT_ANNEX_SHELL_APPENDONLY", "true")]);
    w.annex(&client, &["copy", "--to", "origin", "b.txt"]).ok();
    assert!(w.has(&server, &kb), "APPENDONLY accepts new content");
    w.annex(&client, &["drop", "--from", "origin", "a.txt"])
        .fails()
        .says("this repository is append-only; removal denied");
    assert!(w.has(&server, &ka));

    // ----- LIMITED: git-annex only, no plain git --------------------------
    w.restrict(&[("GIT_ANNEX_SHELL_LIMITED", "true")]);
    w.git(&client, &["fetch", "origin"])
        .fails()
        .says("Action blocked by GIT_ANNEX_SHELL_LIMITED");
    std::fs::write(client.join("plain.txt"), "plain git\n").expect("write plain.txt");
    w.git(&client, &["add", "plain.txt"]).ok();
    w.git(&client, &["commit", "-q", "-m", "plain"]).ok();
    w.git(&client, &["push", "origin", "main"])
        .fails()
        .says("Action blocked by GIT_ANNEX_SHELL_LIMITED");
    w.annex(&client, &["drop", "--from", "origin", "b.txt"])
        .ok();
    assert!(!w.has(&server, &kb), "LIMITED allows git-annex's drop");
    w.annex(&client, &["copy", "--to", "origin", "b.txt"]).ok();
    assert!(w.has(&server, &kb), "LIMITED allows git-annex's copy");
    // the server locks its copy as the proof for this drop; DIRECTORY
    // below gets it back
    w.annex(&second, &["drop", "a.txt"]).ok();

    // ----- DIRECTORY: one repository only ---------------------------------
    let elsewhere = env.srv.join("other.git");
    w.restrict(&[(
        "GIT_ANNEX_SHELL_DIRECTORY",
        &elsewhere.display().to_string(),
    )]);
    let refusal = format!(
        "Only allowed to access {} not {}",
        elsewhere.display(),
        server.display()
    );
    w.git(&client, &["fetch", "origin"]).fails().says(&refusal);
    w.annex(&second, &["get", "a.txt"]).fails().says(&refusal);
    assert!(
        !second.join("a.txt").exists(),
        "get from a refused directory must not bring content"
    );
    w.git(root, &["clone", "-q", &url, "refused-clone"])
        .fails()
        .says(&refusal);
    w.restrict(&[("GIT_ANNEX_SHELL_DIRECTORY", &server.display().to_string())]);
    w.git(&client, &["fetch", "origin"]).ok();
    w.annex(&second, &["get", "a.txt"]).ok();

    // ----- back to the plain line: everything syncs, the repo is sound ----
    w.restrict(&[]);
    w.annex(&client, &["sync"]).ok();
    w.annex(&second, &["sync"]).ok();
    let seen = whereis(env, &second);
    assert_eq!(seen["a.txt"].len(), 3, "{seen:?}");
    assert_eq!(seen["b.txt"].len(), 2, "{seen:?}");
    assert!(second.join("plain.txt").exists(), "plain.txt synced");
    env.assert_server_fsck_clean(&server);
    let (ok, results) = fsck_from(env, &client, "origin");
    assert!(ok, "fsck --from origin: {results:?}");
}
