//! Real git-annex as the proxy of a directory remote against ours, in raw
//! protocol: what a client hears for each verb is the same, except where
//! the README's compatibility table says we differ (NOTIFYCHANGE).

use std::fs;
use std::process::Command;

use annexproxy_tests::p2p_driver::{sha256e_key, Outcome, Shell, CLIENT_UUID};
use annexproxy_tests::{tools, ServerKind, TestEnv};

/// Set up by real git-annex alike for both: a proxy and directory remote
/// `d` behind it; then one session of raw requests to `d`.
/// What a session does after the greeting.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Script {
    Verbs,
    Connect,
    /// CHECKPRESENT twice with the directory gone.
    Unavailable,
}

fn session(kind: ServerKind, script: Script) -> Outcome {
    let env = TestEnv::new(kind);
    let proxy = env.server_bare("proxy.git");
    env.server_annex_init(&proxy, "the proxy");
    let store = env.srv.join("dstore");
    fs::create_dir_all(&store).expect("mkdir");
    let dir_param = format!("directory={}", store.display());
    env.oracle_annex(
        &proxy,
        &[
            "initremote",
            "d",
            "type=directory",
            &dir_param,
            "encryption=none",
        ],
    )
    .ok();
    env.oracle(&proxy, &["config", "remote.d.annex-proxy", "true"])
        .ok();
    env.oracle_annex(&proxy, &["updateproxy"]).ok();
    let uuid = env
        .oracle(&proxy, &["config", "remote.d.annex-uuid"])
        .ok()
        .stdout
        .trim()
        .to_string();
    let program = match kind {
        ServerKind::Ours => tools::ours_bin_dir().join("git-annex-shell"),
        ServerKind::Real => env.real_annex_shell(),
    };
    let mut cmd = Command::new(program);
    cmd.env_clear()
        .env("HOME", &env.server_home)
        .env("PATH", &env.server_path)
        .env("USER", tools::user_name())
        .env("GIT_CONFIG_NOSYSTEM", "1");
    cmd.args(["p2pstdio", &proxy.display().to_string(), CLIENT_UUID])
        .args(["--uuid", &uuid])
        .current_dir(&proxy);
    let mut shell = Shell::start(cmd, kind);
    shell.hello(Some(3));
    let content = b"special remote content\n";
    let key = sha256e_key(content, ".txt");
    match script {
        Script::Verbs => {}
        Script::Connect => {
            shell.send("CONNECT git-upload-pack");
            shell.recv();
            return shell.finish();
        }
        Script::Unavailable => {
            fs::rename(&store, store.with_extension("gone")).expect("rename");
            for _ in 0..2 {
                shell.send(&format!("CHECKPRESENT {key}"));
                shell.recv();
            }
            return shell.finish();
        }
    }
    for line in [format!("CHECKPRESENT {key}"), format!("LOCKCONTENT {key}")] {
        shell.send(&line);
        shell.recv();
    }
    shell.send(&format!("PUT f.txt {key}"));
    shell.expect("PUT-FROM 0");
    let mut body = format!("DATA {}\n", content.len()).into_bytes();
    body.extend_from_slice(content);
    shell.send_raw(&body);
    shell.send("VALID");
    shell.recv();
    for line in [format!("CHECKPRESENT {key}"), format!("LOCKCONTENT {key}")] {
        shell.send(&line);
        shell.recv();
    }
    shell.send(&format!("GET 5 f.txt {key}"));
    shell.recv();
    shell.body(content.len() - 5);
    shell.recv();
    shell.send("SUCCESS");
    shell.send(&format!("REMOVE {key}"));
    shell.recv();
    shell.send(&format!("CHECKPRESENT {key}"));
    shell.recv();
    // Refused, and the session goes on.
    shell.send("NOTIFYCHANGE");
    shell.recv();
    shell.send(&format!("CHECKPRESENT {key}"));
    shell.recv();
    let mut out = shell.finish();
    out.transcript = out
        .transcript
        .iter()
        .map(|l| l.replace(&uuid, "<d>"))
        .collect();
    out
}

#[test]
fn verbs_answered_as_git_annex_answers_them() {
    let real = session(ServerKind::Real, Script::Verbs);
    let ours = session(ServerKind::Ours, Script::Verbs);
    let shown = format!("\n{}\n{}", real.show(), ours.show());
    let cut = |o: &Outcome| {
        let at = o
            .transcript
            .iter()
            .position(|l| l == ">> NOTIFYCHANGE")
            .expect("NOTIFYCHANGE sent");
        (o.transcript[..at].to_vec(), o.transcript[at + 1..].to_vec())
    };
    let ((real_before, real_after), (ours_before, ours_after)) = (cut(&real), cut(&ours));
    assert_eq!(real_before, ours_before, "{shown}");
    // Where we differ, as the README says: git-annex's proxy ends the
    // session with a protocol error; ours refuses NOTIFYCHANGE with the
    // words git-annex's special-remote handler has, and goes on.
    assert_eq!(real_after[0], "<< ERROR protocol error", "{shown}");
    assert_eq!(
        ours_after[0], "<< ERROR NOTIFYCHANGE unsupported for a special remote",
        "{shown}"
    );
    assert_eq!(ours_after[2], "<< FAILURE", "{shown}");
}

/// CONNECT: a special remote has no git repository. git-annex-shell
/// ends the session without a word to the client (relaying to git is not
/// supported there); ours answers CONNECTDONE 1, which ends it too.
#[test]
fn connect_ends_the_session() {
    let real = session(ServerKind::Real, Script::Connect);
    let ours = session(ServerKind::Ours, Script::Connect);
    let shown = format!("\n{}\n{}", real.show(), ours.show());
    let after = |o: &Outcome| {
        let at = o
            .transcript
            .iter()
            .position(|l| l == ">> CONNECT git-upload-pack")
            .expect("CONNECT sent");
        o.transcript[at + 1].clone()
    };
    assert_eq!(after(&real), "<< <eof>", "{shown}");
    assert_eq!(after(&ours), "<< CONNECTDONE 1", "{shown}");
    assert!(real.stderr.contains("not supported"), "{shown}");
}

/// The directory gone: each request fails with git-annex's words for a
/// special remote's failure, and the session goes on.
#[test]
fn unavailable_remote_fails_each_request() {
    for kind in [ServerKind::Real, ServerKind::Ours] {
        let out = session(kind, Script::Unavailable);
        let answers: Vec<&String> = out
            .transcript
            .iter()
            .filter(|l| l.starts_with("<< "))
            .collect();
        let errors = answers
            .iter()
            .filter(|l| l.starts_with("<< ERROR proxied special remote reports: "))
            .count();
        assert_eq!(errors, 2, "{}", out.show());
    }
}
