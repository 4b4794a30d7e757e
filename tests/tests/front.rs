//! git-annex-shell's small front (README "Start-up"): it answers a plain
//! repository's `configlist` itself, byte for byte as the full server
//! (`annexproxy git-annex-shell`) does, and hands every other call to the
//! full server by exec, found next to it.
//!
//! To tell who answered, the front is copied alone into a directory: a
//! call it hands on then finds no `annexproxy` (and says what to install),
//! or finds a logging wrapper put there in its place.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use annexproxy_tests::tools;
use annexproxy_tests::{ServerKind, TestEnv};

/// A server account's world: a home with the given global config, and
/// repositories made in it.
struct Host {
    _tmp: tempfile::TempDir,
    home: PathBuf,
    /// Holds a copy of the front and nothing else.
    alone: PathBuf,
}

impl Host {
    fn new() -> Host {
        let tmp = tempfile::tempdir().expect("tmp");
        let home = tmp.path().join("home");
        let alone = tmp.path().join("alone");
        for d in [&home, &alone] {
            std::fs::create_dir_all(d).expect("mkdir");
        }
        copy_front(&alone);
        Host {
            _tmp: tmp,
            home,
            alone,
        }
    }

    fn command(&self, program: &Path) -> Command {
        let mut c = Command::new(program);
        c.env_clear()
            .env("HOME", &self.home)
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .current_dir(&self.home);
        c
    }

    fn git(&self, dir: &Path, args: &[&str]) {
        let out = self
            .command(Path::new("git"))
            .current_dir(dir)
            .args(args)
            .output();
        let out = out.expect("git runs");
        assert!(out.status.success(), "git {args:?}: {out:?}");
    }

    /// A bare repository made with git and `annexproxy init`.
    fn repo(&self, name: &str) -> PathBuf {
        let dir = self.home.join(name);
        self.git(&self.home, &["init", "-q", "--bare", name]);
        let out = self
            .command(&tools::ours_bin_dir().join("annexproxy"))
            .arg("-C")
            .arg(&dir)
            .args(["init", name])
            .output()
            .expect("annexproxy init runs");
        assert!(out.status.success(), "annexproxy init: {out:?}");
        dir
    }

    fn configlist(&self, program: &Path, dir: &Path) -> Output {
        self.command(program)
            .arg("configlist")
            .arg(dir)
            .output()
            .expect("runs")
    }

    /// What the full server prints, what the front next to it prints, and
    /// what the front alone does.
    fn three_ways(&self, dir: &Path) -> (Output, Output, Output) {
        let bin = tools::ours_bin_dir();
        let full = self
            .command(&bin.join("annexproxy"))
            .args(["git-annex-shell", "configlist"])
            .arg(dir)
            .output()
            .expect("annexproxy runs");
        let front = self.configlist(&bin.join("git-annex-shell"), dir);
        let alone = self.configlist(&self.alone.join("git-annex-shell"), dir);
        (full, front, alone)
    }

    fn write(&self, rel: &str, text: &str) {
        let p = self.home.join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, text).expect("write");
    }
}

fn copy_front(dir: &Path) {
    std::fs::copy(
        tools::ours_bin_dir().join("git-annex-shell"),
        dir.join("git-annex-shell"),
    )
    .expect("copy the front");
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Repositories the front answers for: its output is the full server's,
/// byte for byte, and it needs no `annexproxy` to give it.
#[test]
fn the_front_answers_plain_repositories_as_the_full_server() {
    let host = Host::new();
    let bare = host.repo("bare.git");
    let crypt = host.repo("crypt.git");
    host.git(&crypt, &["config", "core.gcrypt-id", ":id:0123abcd"]);
    let worktree = host.home.join("worktree");
    host.git(&host.home, &["init", "-q", "worktree"]);
    host.git(
        &worktree,
        &[
            "config",
            "annex.uuid",
            "aaaaaaaa-1111-4222-8333-444444444444",
        ],
    );
    let spaced = host.repo("spaced.git");
    let uuid = std::fs::read_to_string(spaced.join("config")).expect("config");
    let uuid = uuid
        .lines()
        .find_map(|l| l.trim().strip_prefix("uuid = "))
        .expect("uuid line")
        .to_owned();
    std::fs::write(
        spaced.join("config"),
        format!("# hand-edited\n[Core]\n  Bare=TRUE ; yes\n[ANNEX]\nUUID   =\t{uuid}   # ours\n"),
    )
    .expect("write");
    // The user's global config is read too, before the repository's.
    host.write(
        ".gitconfig",
        "[user]\n\tname = Server\n[core]\n\tgcrypt-id = from-home\n[annex]\n\tuuid = overridden\n",
    );
    host.write(".config/git/config", "[init]\n\tdefaultBranch = main\n");
    for dir in [&bare, &crypt, &worktree, &spaced] {
        let (full, front, alone) = host.three_ways(dir);
        assert!(full.status.success(), "{dir:?}: {full:?}");
        assert!(text(&full.stdout).starts_with("annex.uuid="), "{full:?}");
        assert_eq!(text(&front.stdout), text(&full.stdout), "{dir:?}");
        assert_eq!(
            text(&alone.stdout),
            text(&full.stdout),
            "{dir:?}: {alone:?}"
        );
        assert!(alone.status.success() && front.status.success());
    }
    let (full, ..) = host.three_ways(&crypt);
    assert!(text(&full.stdout).ends_with("core.gcrypt-id=:id:0123abcd\n"));
    let (full, ..) = host.three_ways(&bare);
    assert!(text(&full.stdout).ends_with("core.gcrypt-id=from-home\n"));
}

/// Calls the front hands on: the front next to `annexproxy` prints what
/// the full server prints, the front alone names what to install.
#[test]
fn the_front_hands_on_what_it_cannot_vouch_for() {
    let host = Host::new();
    let with_remote = host.repo("remote.git");
    host.git(&with_remote, &["remote", "add", "n1", "/nowhere"]);
    let with_include = host.repo("include.git");
    host.git(&with_include, &["config", "include.path", "extra"]);
    let quoted = host.repo("quoted.git");
    host.git(&quoted, &["config", "user.name", "A \"B\""]);
    let uninit = host.home.join("uninit.git");
    host.git(&host.home, &["init", "-q", "--bare", "uninit.git"]);
    for dir in [&with_remote, &with_include, &quoted, &uninit] {
        let (full, front, alone) = host.three_ways(dir);
        assert_eq!(text(&front.stdout), text(&full.stdout), "{dir:?}");
        assert_eq!(front.status.code(), full.status.code(), "{dir:?}");
        assert!(
            !alone.status.success(),
            "{dir:?}: the front answered {alone:?}"
        );
        let err = text(&alone.stderr);
        assert!(
            err.contains("install annexproxy next to git-annex-shell"),
            "{dir:?}: {err}"
        );
    }
    // The uninitialised repository: configlist prints an empty UUID.
    let (full, ..) = host.three_ways(&uninit);
    assert_eq!(text(&full.stdout), "annex.uuid=\ncore.gcrypt-id=\n");
    // Every other command is the full server's.
    let bare = host.repo("bare.git");
    let out = host
        .command(&host.alone.join("git-annex-shell"))
        .arg("inannex")
        .arg(&bare)
        .arg("SHA256E-s1--00")
        .output()
        .expect("runs");
    assert!(
        text(&out.stderr).contains("cannot start the server annexproxy"),
        "{out:?}"
    );
}

/// The server's `git-annex-shell` replaced by a copy of the front next to
/// a wrapper `annexproxy` that logs each call it gets and runs ours.
fn logging_server(env: &TestEnv) -> PathBuf {
    let bin = env.root().join("server-bin");
    std::fs::remove_file(bin.join("git-annex-shell")).expect("rm the link");
    copy_front(&bin);
    let log = env.root().join("full-server.log");
    let wrapper = format!(
        "#!/bin/sh\nprintf '%s\\n' \"$*\" >> '{}'\nexec '{}' \"$@\"\n",
        log.display(),
        tools::ours_bin_dir().join("annexproxy").display()
    );
    let path = bin.join("annexproxy");
    std::fs::write(&path, wrapper).expect("wrapper");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    log
}

fn logged(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The real client against a plain repository through the front:
/// configlist answered by the front, every p2pstdio by the full server.
#[test]
fn the_client_works_through_the_front() {
    let env = TestEnv::new(ServerKind::Ours);
    let server = env.server_bare("server.git");
    env.annexproxy(&server, &["init", "server"]).ok();
    let log = logging_server(&env);
    let client = env.clone_client(&server, "client");
    env.add_file(&client, "a.txt", b"through the front\n");
    env.annex(&client, &["sync"]).ok();
    env.annex(&client, &["copy", "--to", "origin", "a.txt"])
        .ok();
    env.annex(&client, &["whereis", "a.txt"])
        .ok()
        .says("[origin]");
    let calls = logged(&log);
    assert!(
        calls
            .iter()
            .any(|c| c.starts_with("git-annex-shell p2pstdio")),
        "no p2pstdio reached the full server: {calls:?}"
    );
    assert!(
        !calls.iter().any(|c| c.contains("configlist")),
        "the front handed a plain configlist on: {calls:?}"
    );
    let said = env
        .ssh_calls()
        .iter()
        .filter(|c| c.command.contains("configlist"))
        .count();
    assert!(said > 0, "the client never asked for configlist");
}

/// A proxy has remotes, so its configlist goes to the full server, which
/// lists the proxied remotes, and the client finds them.
#[test]
fn a_proxy_configlist_is_handed_to_the_full_server() {
    let env = TestEnv::new(ServerKind::Ours);
    let (proxy, _) = env.ours_proxy_with_nodes(&[("node1", "first node")]);
    env.annexproxy(&proxy, &["updateproxy"]).ok();
    let log = logging_server(&env);
    let client = env.clone_client(&proxy, "client");
    env.annex(&client, &["sync"]).ok();
    env.annex(&client, &["info", "origin"])
        .ok()
        .says("origin-node1");
    env.add_file(&client, "b.txt", b"to the node\n");
    env.annex(&client, &["copy", "--to", "origin-node1", "b.txt"])
        .ok();
    let calls = logged(&log);
    assert!(
        calls
            .iter()
            .any(|c| c.starts_with("git-annex-shell configlist")),
        "the proxy's configlist did not reach the full server: {calls:?}"
    );
    let out = env
        .server_command("git-annex-shell")
        .arg("configlist")
        .arg(&proxy)
        .output()
        .expect("runs");
    assert!(
        text(&out.stdout).contains("annexproxy.proxy.node1="),
        "{out:?}"
    );
}
