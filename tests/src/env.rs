//! One scenario's world: a temp dir with a client home, a server home, the
//! ssh stand-in, and the server's bin dir for the chosen [`ServerKind`].

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::run::{run, Out};
use crate::standin::{self, SshCall, StandinConfig};
use crate::tools;

/// Which git-annex-shell answers on the server side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerKind {
    /// The real git-annex-shell (the venv's binary under that name).
    Real,
    /// Ours, with no git-annex anywhere on the server's PATH.
    Ours,
}

/// PATH entries after the server bin dir; none of them may hold git-annex.
const SYSTEM_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// How long a server session may outlive the client command that opened it.
const SERVER_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// A scenario's world. Dropping it removes the temp dir (set
/// `ANNEXPROXY_KEEP_TMP=1` to keep it for a post-mortem).
pub struct TestEnv {
    pub kind: ServerKind,
    root: tempfile::TempDir,
    /// Client's `$HOME`.
    pub home: PathBuf,
    /// Server user's `$HOME`; sessions start there.
    pub server_home: PathBuf,
    /// Where fixtures put server repositories.
    pub srv: PathBuf,
    state: PathBuf,
    standin_dir: PathBuf,
    client_bin: PathBuf,
    /// Bin dir with the real git-annex(-shell), for oracle runs.
    oracle_bin: PathBuf,
    /// PATH the stand-in gives the server.
    pub server_path: String,
}

fn write(path: &Path, text: &str) {
    if let Err(e) = fs::write(path, text) {
        panic!("writing {}: {e}", path.display());
    }
}

fn mkdir(path: &Path) {
    if let Err(e) = fs::create_dir_all(path) {
        panic!("creating {}: {e}", path.display());
    }
}

fn link(target: &Path, at: &Path) {
    if let Err(e) = symlink(target, at) {
        panic!("symlink {} -> {}: {e}", at.display(), target.display());
    }
}

impl TestEnv {
    /// Builds the world; panics with a clear message when git-annex or our
    /// binary cannot be found (the suite must fail, never skip).
    pub fn new(kind: ServerKind) -> TestEnv {
        let real = tools::real_annex_binary();
        let root = tempfile::Builder::new()
            .prefix(match kind {
                ServerKind::Real => "e2e-real-",
                ServerKind::Ours => "e2e-ours-",
            })
            .tempdir()
            .expect("temp dir under $TMPDIR");
        let r = root.path().to_path_buf();
        let home = r.join("home");
        let server_home = r.join("server-home");
        let srv = r.join("srv");
        let state = r.join("state");
        let standin_dir = r.join("standin");
        let client_bin = r.join("client-bin");
        let oracle_bin = r.join("oracle-bin");
        let server_bin = r.join("server-bin");
        for d in [
            &home,
            &server_home,
            &srv,
            &state,
            &standin_dir,
            &client_bin,
            &oracle_bin,
            &server_bin,
        ] {
            mkdir(d);
        }
        link(real, &client_bin.join("git-annex"));
        link(real, &oracle_bin.join("git-annex"));
        link(real, &oracle_bin.join("git-annex-shell"));
        match kind {
            ServerKind::Real => {
                link(real, &server_bin.join("git-annex-shell"));
                // real git-annex-shell may re-exec git-annex for some work
                link(real, &server_bin.join("git-annex"));
            }
            ServerKind::Ours => {
                link(
                    &tools::ours_bin_dir().join("git-annex-shell"),
                    &server_bin.join("git-annex-shell"),
                );
            }
        }
        let server_path = format!("{}:{SYSTEM_PATH}", server_bin.display());
        if kind == ServerKind::Ours {
            for dir in server_path.split(':') {
                let p = Path::new(dir).join("git-annex");
                assert!(
                    !p.exists(),
                    "{} is on the server PATH; our server must run without git-annex",
                    p.display()
                );
            }
        }
        write(
            &home.join(".gitconfig"),
            "[user]\n\tname = E2E Client\n\temail = client@example.invalid\n\
             [init]\n\tdefaultBranch = main\n\
             [annex]\n\tsshcaching = false\n\
             [advice]\n\tdetachedHead = false\n",
        );
        write(
            &server_home.join(".gitconfig"),
            "[user]\n\tname = E2E Server\n\temail = server@example.invalid\n\
             [init]\n\tdefaultBranch = main\n",
        );
        let user = tools::user_name();
        let script = standin::script(&StandinConfig {
            state_dir: &state,
            server_home: &server_home,
            server_path: &server_path,
            user: &user,
        });
        let ssh = standin_dir.join("ssh");
        write(&ssh, &script);
        fs::set_permissions(&ssh, fs::Permissions::from_mode(0o755))
            .expect("chmod of the stand-in we just wrote");
        TestEnv {
            kind,
            root,
            home,
            server_home,
            srv,
            state,
            standin_dir,
            client_bin,
            oracle_bin,
            server_path,
        }
    }

    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// Replaces this run's temp dir in `s` with `<root>`, so observations
    /// compare across runs.
    pub fn unroot(&self, s: &str) -> String {
        s.replace(&self.root().display().to_string(), "<root>")
    }

    /// The description git-annex gives a repository it initialises without
    /// being told one (`user@host:path`, path relative to the server's home
    /// as `~/...` when under it), with the temp dir as `<root>`.
    pub fn default_description(&self, server: &Path) -> String {
        let path = match server.strip_prefix(&self.server_home) {
            Ok(rel) => format!("~/{}", rel.display()),
            Err(_) => server.display().to_string(),
        };
        self.unroot(&format!(
            "{}@{}:{path}",
            tools::user_name(),
            tools::hostname()
        ))
    }

    // ----- commands -------------------------------------------------------

    /// A client-side command: real git-annex and the ssh stand-in on PATH, a
    /// private HOME, nothing inherited from the caller's environment.
    pub fn client_command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new(program);
        cmd.env_clear()
            .env("HOME", &self.home)
            .env(
                "PATH",
                format!(
                    "{}:{}:{SYSTEM_PATH}",
                    self.standin_dir.display(),
                    self.client_bin.display()
                ),
            )
            .env("USER", tools::user_name())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("TMPDIR", std::env::temp_dir());
        if let Some(magic) = tools::real_magic_db() {
            cmd.env("MAGIC", magic);
        }
        cmd
    }

    /// A client with plain git only: the ssh stand-in, our
    /// `git-remote-annexproxy` and our `git-annex-shell` (for `annexproxy::`
    /// URLs that name a local path) on PATH, and no git-annex anywhere on
    /// it. Only meaningful with [`ServerKind::Ours`]: real git-annex-shell
    /// does not serve `CONNECT` over p2pstdio.
    pub fn plain_client_command(&self, program: impl AsRef<OsStr>) -> Command {
        assert_eq!(
            self.kind,
            ServerKind::Ours,
            "annexproxy:: URLs need our server"
        );
        let bin = self.root().join("plain-client-bin");
        if !bin.exists() {
            mkdir(&bin);
            link(
                tools::remote_helper_bin(),
                &bin.join("git-remote-annexproxy"),
            );
            link(
                &tools::ours_bin_dir().join("git-annex-shell"),
                &bin.join("git-annex-shell"),
            );
        }
        let path = format!(
            "{}:{}:{SYSTEM_PATH}",
            self.standin_dir.display(),
            bin.display()
        );
        for dir in path.split(':') {
            let p = Path::new(dir).join("git-annex");
            assert!(!p.exists(), "{} is on the plain client's PATH", p.display());
        }
        let mut cmd = self.client_command(program);
        cmd.env("PATH", path);
        cmd
    }

    /// `git args...` as a plain-git client (see
    /// [`TestEnv::plain_client_command`]), then waits for the server side.
    #[track_caller]
    pub fn plain_git(&self, dir: &Path, args: &[&str]) -> Out {
        let mut cmd = self.plain_client_command("git");
        cmd.args(args);
        let out = run(cmd, dir);
        self.wait_server_idle();
        out
    }

    /// Runs `git args...` as the client in `dir`, then waits until every
    /// server session it opened has ended (git-annex does not wait for its
    /// ssh children, and the server commits its journal on the way out).
    #[track_caller]
    pub fn git(&self, dir: &Path, args: &[&str]) -> Out {
        let mut cmd = self.client_command("git");
        cmd.args(args);
        let out = run(cmd, dir);
        self.wait_server_idle();
        out
    }

    /// `git annex args...` as the client.
    #[track_caller]
    pub fn annex(&self, dir: &Path, args: &[&str]) -> Out {
        let mut all = vec!["annex"];
        all.extend_from_slice(args);
        self.git(dir, &all)
    }

    /// Runs the REAL git-annex (or git) on the server side directly, without
    /// ssh, as the server user: used to prepare fixtures and as the oracle
    /// after a scenario. Never part of what our server is judged on.
    #[track_caller]
    pub fn oracle(&self, dir: &Path, args: &[&str]) -> Out {
        let mut cmd = self.oracle_command("git");
        cmd.args(args);
        run(cmd, dir)
    }

    /// `program` (`git`, `git-annex`) as [`TestEnv::oracle`] runs git, to
    /// be given arguments and run or spawned (a real `git-annex p2phttp`
    /// server, say).
    pub fn oracle_command(&self, program: &str) -> Command {
        // git from the system; git-annex's programs from the oracle's bin.
        let mut cmd = match program {
            "git" => Command::new("git"),
            p => Command::new(self.oracle_bin.join(p)),
        };
        cmd.env_clear()
            .env("HOME", &self.server_home)
            .env(
                "PATH",
                format!("{}:{SYSTEM_PATH}", self.oracle_bin.display()),
            )
            .env("USER", tools::user_name())
            .env("GIT_CONFIG_NOSYSTEM", "1");
        cmd
    }

    /// [`Self::oracle_annex`] with `vars` added to its environment (an
    /// S3 remote's credentials, for `initremote`).
    #[track_caller]
    pub fn oracle_annex_with(&self, dir: &Path, args: &[&str], vars: &[(&str, &str)]) -> Out {
        let mut cmd = self.oracle_command("git");
        cmd.envs(vars.iter().copied()).arg("annex").args(args);
        run(cmd, dir)
    }

    /// `git annex args...` with the real git-annex inside a server repo.
    #[track_caller]
    pub fn oracle_annex(&self, dir: &Path, args: &[&str]) -> Out {
        let mut all = vec!["annex"];
        all.extend_from_slice(args);
        self.oracle(dir, &all)
    }

    /// The oracle check every scenario ends with: real `git annex fsck`
    /// inside the server repo must find nothing wrong.
    #[track_caller]
    pub fn assert_server_fsck_clean(&self, server: &Path) {
        self.wait_server_idle();
        let out = self.oracle_annex(server, &["fsck", "--quiet"]);
        if !out.success() || out.stderr.contains("**") {
            panic!("real git-annex fsck inside the server repo is not clean:\n{out}\n--- ssh log ---\n{}", self.ssh_log_text());
        }
    }

    // ----- server switches ------------------------------------------------

    /// Sets the extra server environment (replacing any earlier set), e.g.
    /// `[("GIT_ANNEX_SHELL_READONLY", "1")]`.
    pub fn set_server_env(&self, vars: &[(&str, &str)]) {
        let text: String = vars.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
        write(&self.state.join("server.env"), &text);
    }

    /// Switches the forced-command emulation
    /// (`git-annex-shell -c "$SSH_ORIGINAL_COMMAND"`) on or off.
    pub fn set_forced_command(&self, on: bool) {
        let p = self.state.join("forced");
        if on {
            write(&p, "");
        } else if p.exists() {
            fs::remove_file(&p).expect("removing the forced-command switch");
        }
    }

    /// Replaces the ssh stand-in at the front of the client's PATH with
    /// `script` (e.g. the real OpenSSH client with a test config; see
    /// [`crate::sshd`]). The stand-in's log stays empty from then on, so
    /// [`TestEnv::wait_server_idle`] no longer waits for anything.
    pub fn replace_ssh(&self, script: &str) {
        let ssh = self.standin_dir.join("ssh");
        write(&ssh, script);
        fs::set_permissions(&ssh, fs::Permissions::from_mode(0o755))
            .expect("chmod of the ssh we just wrote");
    }

    // ----- ssh log --------------------------------------------------------

    pub fn ssh_log_text(&self) -> String {
        fs::read_to_string(self.state.join("ssh.log")).unwrap_or_default()
    }

    /// Every server session so far, in start order.
    pub fn ssh_calls(&self) -> Vec<SshCall> {
        standin::parse_log(&self.ssh_log_text())
    }

    /// Number of sessions so far; pair with [`TestEnv::ssh_calls_since`].
    pub fn ssh_mark(&self) -> usize {
        self.ssh_calls().len()
    }

    pub fn ssh_calls_since(&self, mark: usize) -> Vec<SshCall> {
        self.ssh_calls().into_iter().skip(mark).collect()
    }

    /// Logs as ended (status -9) every session whose stand-in is gone
    /// without saying so: one SIGKILLed together with its client never
    /// writes its exit line, and [`TestEnv::wait_server_idle`] would wait
    /// for it.
    pub fn close_dead_sessions(&self) {
        let gone = |pid: u32| match fs::read_to_string(format!("/proc/{pid}/stat")) {
            // the state follows the parenthesised command name
            Ok(stat) => stat
                .rsplit_once(") ")
                .is_some_and(|(_, rest)| rest.starts_with('Z') || rest.starts_with('X')),
            Err(_) => true,
        };
        let lines: String = self
            .ssh_calls()
            .iter()
            .filter(|c| c.exit.is_none() && gone(c.pid))
            .map(|c| format!("exit {} -9\n", c.pid))
            .collect();
        if lines.is_empty() {
            return;
        }
        // appended, as the stand-ins do, so no line of theirs is lost
        let log = self.state.join("ssh.log");
        let appended = fs::OpenOptions::new()
            .append(true)
            .open(&log)
            .and_then(|mut f| std::io::Write::write_all(&mut f, lines.as_bytes()));
        if let Err(e) = appended {
            panic!("appending to {}: {e}", log.display());
        }
    }

    /// Waits until every server session has exited.
    #[track_caller]
    pub fn wait_server_idle(&self) {
        let start = Instant::now();
        loop {
            let calls = self.ssh_calls();
            if calls.iter().all(|c| c.exit.is_some()) {
                return;
            }
            if start.elapsed() > SERVER_IDLE_TIMEOUT {
                panic!(
                    "server sessions still running after {SERVER_IDLE_TIMEOUT:?}:\n{}",
                    self.ssh_log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    // ----- fixtures -------------------------------------------------------

    /// `git init --bare` with plain git: a server repo nobody ran git-annex
    /// in, as a user creates one before the first `git annex sync`.
    pub fn server_bare(&self, name: &str) -> PathBuf {
        let p = self.srv.join(name);
        self.oracle(&self.srv, &["init", "-q", "--bare", &p.to_string_lossy()])
            .ok();
        p
    }

    /// A non-bare server repo made with plain git, with one commit so that
    /// clients have a branch to track.
    pub fn server_nonbare(&self, name: &str) -> PathBuf {
        let p = self.srv.join(name);
        self.oracle(&self.srv, &["init", "-q", &p.to_string_lossy()])
            .ok();
        write(&p.join("README"), "server worktree\n");
        self.oracle(&p, &["add", "README"]).ok();
        self.oracle(&p, &["commit", "-q", "-m", "initial"]).ok();
        p
    }

    /// Runs real `git annex init <description>` in a server repo.
    pub fn server_annex_init(&self, server: &Path, description: &str) {
        self.oracle_annex(server, &["init", description]).ok();
    }

    /// Runs OUR operator CLI, `annexproxy args...`, in a server repo as the
    /// server user, with the server's PATH (no git-annex on it).
    #[track_caller]
    pub fn annexproxy(&self, dir: &Path, args: &[&str]) -> Out {
        let mut cmd = self.server_command("annexproxy");
        cmd.args(args);
        run(cmd, dir)
    }

    /// One of OUR binaries (`annexproxy`, `git-annex-shell`), to be run as
    /// the server user, with the server's PATH (no git-annex on it).
    pub fn server_command(&self, program: &str) -> Command {
        let mut cmd = Command::new(tools::ours_bin_dir().join(program));
        cmd.env_clear()
            .env("HOME", &self.server_home)
            .env("PATH", &self.server_path)
            .env("USER", tools::user_name())
            .env("GIT_CONFIG_NOSYSTEM", "1");
        cmd
    }

    /// Adds remote `name` at `url` to the server repository `at`, marked
    /// `annex-proxy`.
    pub fn add_proxied_remote(&self, at: &Path, name: &str, url: &str) {
        self.oracle(at, &["remote", "add", name, url]).ok();
        self.oracle(
            at,
            &["config", &format!("remote.{name}.annex-proxy"), "true"],
        )
        .ok();
    }

    /// Bare node repositories `(name, description)` and a bare
    /// `proxy.git`, all set up by our `annexproxy init`, each node a local
    /// remote of the proxy marked `annex-proxy` (updateproxy not run yet).
    pub fn ours_proxy_with_nodes(&self, nodes: &[(&str, &str)]) -> (PathBuf, Vec<PathBuf>) {
        let dirs: Vec<PathBuf> = nodes
            .iter()
            .map(|(name, desc)| {
                let dir = self.server_bare(&format!("{name}.git"));
                self.annexproxy(&dir, &["init", desc]).ok();
                dir
            })
            .collect();
        let proxy = self.server_bare("proxy.git");
        self.annexproxy(&proxy, &["init", "the proxy"]).ok();
        for ((name, _), dir) in nodes.iter().zip(&dirs) {
            self.add_proxied_remote(&proxy, name, &dir.display().to_string());
        }
        (proxy, dirs)
    }

    /// Puts `program` (an external special remote, `git-annex-remote-*`)
    /// on the server's PATH and on the oracle's, named `name`, so both our
    /// server and real git-annex run on the server can use the remote.
    pub fn add_server_program(&self, name: &str, program: &Path) {
        assert!(program.is_file(), "{} is not installed", program.display());
        link(program, &self.root().join("server-bin").join(name));
        link(program, &self.oracle_bin.join(name));
    }

    /// Puts the ssh stand-in on the server's PATH as well, so that a
    /// server-side program (a proxy reaching a node over ssh) can use it.
    pub fn server_can_ssh(&self) {
        let bin = self.root().join("server-bin");
        link(&self.standin_dir.join("ssh"), &bin.join("ssh"));
    }

    /// Puts the ssh stand-in on the oracle's PATH too, so that real
    /// git-annex run on the server (setting up a second gateway that
    /// reaches the first over ssh) can use it.
    pub fn oracle_can_ssh(&self) {
        link(&self.standin_dir.join("ssh"), &self.oracle_bin.join("ssh"));
    }

    /// The real git-annex-shell (a symlink outside the server's PATH), for
    /// a remote's `annex-shell` setting.
    pub fn real_annex_shell(&self) -> PathBuf {
        self.oracle_bin.join("git-annex-shell")
    }

    /// The server repo's `annex.uuid` (empty when uninitialised).
    pub fn server_uuid(&self, server: &Path) -> String {
        let out = self.oracle(server, &["config", "--get", "annex.uuid"]);
        out.stdout.trim().to_string()
    }

    /// The ssh URL of a server repo, `localhost:/abs/path`.
    pub fn url(&self, server: &Path) -> String {
        format!("localhost:{}", server.display())
    }

    /// `git clone localhost:/abs/server <name>` then `git annex init <name>`;
    /// returns the client work tree.
    #[track_caller]
    pub fn clone_client(&self, server: &Path, name: &str) -> PathBuf {
        self.clone_url(&self.url(server), name)
    }

    /// Like [`TestEnv::clone_client`] with any URL.
    #[track_caller]
    pub fn clone_url(&self, url: &str, name: &str) -> PathBuf {
        let dir = self.root().join(name);
        self.git(self.root(), &["clone", "-q", url, name]).ok();
        self.annex(&dir, &["init", name]).ok();
        dir
    }

    /// Writes `content` to `file` in `client`, `git annex add`s and commits it.
    #[track_caller]
    pub fn add_file(&self, client: &Path, file: &str, content: &[u8]) {
        let p = client.join(file);
        if let Some(parent) = p.parent() {
            mkdir(parent);
        }
        if let Err(e) = fs::write(&p, content) {
            panic!("writing {}: {e}", p.display());
        }
        self.annex(client, &["add", file]).ok();
        self.git(client, &["commit", "-q", "-m", &format!("add {file}")])
            .ok();
    }

    /// [`TestEnv::add_file`] for many files at once: one `git annex add`
    /// and one commit, so a scenario with dozens of files stays quick.
    #[track_caller]
    pub fn add_files(&self, client: &Path, files: &[(String, Vec<u8>)]) {
        for (file, content) in files {
            let p = client.join(file);
            if let Some(parent) = p.parent() {
                mkdir(parent);
            }
            if let Err(e) = fs::write(&p, content) {
                panic!("writing {}: {e}", p.display());
            }
        }
        let mut args = vec!["add", "--"];
        args.extend(files.iter().map(|(f, _)| f.as_str()));
        self.annex(client, &args).ok();
        self.git(client, &["commit", "-q", "-m", "add files"]).ok();
    }

    /// The key of an annexed file.
    #[track_caller]
    pub fn key_of(&self, client: &Path, file: &str) -> String {
        self.annex(client, &["lookupkey", file])
            .ok()
            .stdout
            .trim()
            .to_string()
    }

    /// Real git-annex in a server repo mid-scenario, told not to merge the
    /// branches clients pushed: an oracle must not do the server's work.
    #[track_caller]
    pub fn oracle_peek(&self, dir: &Path, args: &[&str]) -> Out {
        let mut all = vec!["-c", "annex.merge-annex-branches=false", "annex"];
        all.extend_from_slice(args);
        self.oracle(dir, &all)
    }

    /// Whether the real git-annex finds `key`'s content in the server repo.
    pub fn server_has_content(&self, server: &Path, key: &str) -> bool {
        self.oracle_peek(server, &["contentlocation", key])
            .success()
    }

    /// How many commits the git-annex branch of `repo` has.
    pub fn branch_commits(&self, repo: &Path) -> u32 {
        let out = self.git(repo, &["rev-list", "--count", "git-annex"]).ok();
        out.stdout.trim().parse().expect("a commit count")
    }

    /// Whether the server repo's own location log says it has `key`.
    pub fn server_log_says_present(&self, server: &Path, key: &str) -> bool {
        let uuid = self.server_uuid(server);
        let out = self.oracle_peek(server, &["whereis", "--json", "--key", key]);
        crate::observe::whereis_uuids(&out.stdout).contains(&uuid)
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        if std::env::var_os("ANNEXPROXY_KEEP_TMP").is_some() {
            let kept =
                std::mem::replace(&mut self.root, tempfile::TempDir::new().expect("temp dir"));
            let path = kept.keep();
            eprintln!("kept test dir {}", path.display());
        }
    }
}
