//! A real OpenSSH server on a loopback port, for the one scenario that
//! checks our git-annex-shell behind `sshd` and an authorized_keys forced
//! command exactly as users deploy it (everything else uses the stand-in).
//!
//! The daemon runs in the foreground (`-D -e`) with its own config, host key,
//! pid file, authorized_keys and log in a directory of the scenario's temp
//! dir, listening on 127.0.0.1 only, on a free unprivileged port. It is
//! killed on drop. The session environment comes from `SetEnv` in its
//! config: PATH starting with the server bin dir (our git-annex-shell, no
//! git-annex), and HOME at the server home, so that neither the machine's
//! git-annex nor root's own dotfiles take part.
//!
//! The client side is the real `ssh` with a config file in the client's
//! HOME. ssh finds `~/.ssh/config` through the passwd database, not $HOME,
//! so [`Sshd::client_ssh_script`] is an `ssh` that adds `-F` to it and
//! otherwise passes git's and git-annex's own arguments untouched.

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::standin::sh_quote;

pub const SSHD: &str = "/usr/sbin/sshd";
pub const SSH: &str = "/usr/bin/ssh";
const SSH_KEYGEN: &str = "/usr/bin/ssh-keygen";

/// How long sshd may take to listen, and sessions to end after a command.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// The authorized_keys options git-annex's documentation pairs with the
/// forced command.
pub const KEY_OPTIONS: &str = "no-port-forwarding,no-X11-forwarding,no-agent-forwarding,no-pty";

/// The forced command users put in authorized_keys.
pub const FORCED_COMMAND: &str = r#"git-annex-shell -c "$SSH_ORIGINAL_COMMAND""#;

/// A running sshd; killed (with any session still open) on drop.
pub struct Sshd {
    child: Child,
    pub port: u16,
    dir: PathBuf,
    /// The client's public key line (`ssh-ed25519 AAAA... comment`).
    client_pub: String,
    /// The client's private key.
    pub identity: PathBuf,
    /// The host's public key line, for known_hosts.
    host_pub: String,
}

fn keygen(path: &Path, comment: &str) -> String {
    let out = Command::new(SSH_KEYGEN)
        .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
        .arg(path)
        .output()
        .unwrap_or_else(|e| panic!("running {SSH_KEYGEN}: {e}"));
    assert!(
        out.status.success(),
        "ssh-keygen failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pub_path = path.with_extension("pub");
    fs::read_to_string(&pub_path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", pub_path.display()))
        .trim()
        .to_string()
}

fn write(path: &Path, text: &str) {
    fs::write(path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

/// A port nobody listens on right now. Another process may take it before
/// sshd binds; [`Sshd::start`] retries then.
fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("binding a loopback port");
    l.local_addr().expect("bound socket has an address").port()
}

/// Parent pid from `/proc/<pid>/stat` (the command name may hold spaces
/// and parentheses, so read after the last `)`).
fn ppid_of(stat: &str) -> Option<u32> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

fn children_of(pid: u32) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                .and_then(|s| ppid_of(&s))
                == Some(pid)
        })
        .collect()
}

impl Sshd {
    /// Starts sshd for `user` in `dir` (created), sessions getting
    /// `server_path` and `server_home`. Panics with the way out when sshd
    /// is not installed: this scenario must fail, never skip.
    pub fn start(dir: &Path, user: &str, server_path: &str, server_home: &Path) -> Sshd {
        for tool in [SSHD, SSH, SSH_KEYGEN] {
            assert!(
                Path::new(tool).is_file(),
                "{tool} is missing: the real-sshd scenario needs openssh-server and \
                 openssh-client (run scripts/install-openssh.sh, or scripts/test.sh)"
            );
        }
        fs::create_dir_all(dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        // sshd refuses to start without its privilege separation directory,
        // which the package leaves to the service start we prevent.
        if !Path::new("/run/sshd").is_dir() {
            fs::create_dir_all("/run/sshd").expect("creating /run/sshd for sshd's privsep");
            fs::set_permissions("/run/sshd", fs::Permissions::from_mode(0o755))
                .expect("chmod /run/sshd");
        }
        let host_key = dir.join("host_ed25519");
        let host_pub = keygen(&host_key, "annexproxy-test-host");
        let identity = dir.join("client_ed25519");
        let client_pub = keygen(&identity, "annexproxy-test-client");
        let authorized = dir.join("authorized_keys");
        write(&authorized, "");

        let mut last_log = String::new();
        for _attempt in 0..5 {
            let port = free_port();
            let cfg = dir.join("sshd_config");
            write(
                &cfg,
                &config(&ConfigFor {
                    port,
                    dir,
                    host_key: &host_key,
                    authorized: &authorized,
                    user,
                    server_path,
                    server_home,
                }),
            );
            let log_path = dir.join("sshd.log");
            let log = fs::File::create(&log_path).expect("creating sshd.log");
            let child = Command::new(SSHD)
                .arg("-f")
                .arg(&cfg)
                .args(["-D", "-e"])
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("dup of the log file"))
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("starting {SSHD}: {e}"));
            let mut sshd = Sshd {
                child,
                port,
                dir: dir.to_path_buf(),
                client_pub: client_pub.clone(),
                identity: identity.clone(),
                host_pub: host_pub.clone(),
            };
            if sshd.wait_listening() {
                return sshd;
            }
            last_log = sshd.log();
            // Drop kills it; a port taken in between is worth another try.
        }
        panic!("sshd did not start listening on 127.0.0.1:\n{last_log}");
    }

    /// Whether sshd accepts connections; false when it exited first.
    fn wait_listening(&mut self) -> bool {
        let start = Instant::now();
        while start.elapsed() < READY_TIMEOUT {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// The daemon's log so far (its stderr, `LogLevel VERBOSE`).
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("sshd.log")).unwrap_or_default()
    }

    /// Replaces authorized_keys with the client's key behind `options`
    /// (the part before the key type, e.g. `command="...",no-pty`). sshd
    /// reads the file at each login, so this applies to the next session.
    pub fn authorize(&self, options: &str) {
        write(
            &self.dir.join("authorized_keys"),
            &format!("{options} {}\n", self.client_pub),
        );
    }

    /// `command="<env> git-annex-shell -c \"$SSH_ORIGINAL_COMMAND\"",<KEY_OPTIONS>`,
    /// with `env` as `NAME='value'` words before the command: the way
    /// git-annex-shell's documentation sets the restriction variables.
    pub fn forced_options(env: &[(&str, &str)]) -> String {
        let mut command = String::new();
        for (name, value) in env {
            command.push_str(&format!("{name}={} ", sh_quote(value)));
        }
        command.push_str(FORCED_COMMAND);
        format!("command=\"{}\",{KEY_OPTIONS}", command.replace('"', "\\\""))
    }

    /// `ssh://user@127.0.0.1:PORT/abs/path`.
    pub fn url(&self, user: &str, path: &Path) -> String {
        format!("ssh://{user}@127.0.0.1:{}{}", self.port, path.display())
    }

    /// Writes the client's ssh config and known_hosts under `client_home`
    /// and returns the text of an `ssh` that uses them.
    pub fn client_ssh_script(&self, client_home: &Path) -> String {
        let dot_ssh = client_home.join(".ssh");
        fs::create_dir_all(&dot_ssh).expect("creating the client's ~/.ssh");
        let known = dot_ssh.join("known_hosts");
        write(
            &known,
            &format!("[127.0.0.1]:{} {}\n", self.port, self.host_pub),
        );
        let cfg = dot_ssh.join("config");
        write(
            &cfg,
            &format!(
                "Host 127.0.0.1\n\
                 \tIdentityFile {}\n\
                 \tIdentitiesOnly yes\n\
                 \tIdentityAgent none\n\
                 \tBatchMode yes\n\
                 \tStrictHostKeyChecking yes\n\
                 \tUserKnownHostsFile {}\n\
                 \tGlobalKnownHostsFile /dev/null\n\
                 \tLogLevel ERROR\n",
                self.identity.display(),
                known.display()
            ),
        );
        format!(
            "#!/bin/sh\n# The real OpenSSH client with this test's ~/.ssh/config.\nexec {SSH} -F {} \"$@\"\n",
            sh_quote(&cfg.to_string_lossy())
        )
    }

    /// Waits until no session is open: sshd forks a child per connection,
    /// which ends when the forced command has exited and the client is gone.
    #[track_caller]
    pub fn wait_idle(&self) {
        let start = Instant::now();
        while !children_of(self.child.id()).is_empty() {
            if start.elapsed() > IDLE_TIMEOUT {
                panic!(
                    "sshd sessions still open after {IDLE_TIMEOUT:?}:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let sessions = children_of(self.child.id());
        // a kill failure means the process is already gone
        let _ = self.child.kill();
        let _ = self.child.wait();
        for pid in sessions {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
    }
}

struct ConfigFor<'a> {
    port: u16,
    dir: &'a Path,
    host_key: &'a Path,
    authorized: &'a Path,
    user: &'a str,
    server_path: &'a str,
    server_home: &'a Path,
}

/// sshd_config text. Key logins only, for one user; `forced-commands-only`
/// for root, so only an authorized_keys `command=` gets in. No PAM (it
/// would want a system login setup) and no StrictModes (the temp dir sits
/// under a world-writable /tmp). GIT_PROTOCOL is accepted as git's
/// documentation asks of servers.
fn config(c: &ConfigFor<'_>) -> String {
    let setenv = |name: &str, v: &str| format!("\"{name}={}\"", v.replace('"', ""));
    format!(
        "Port {port}\n\
         ListenAddress 127.0.0.1\n\
         HostKey {host_key}\n\
         PidFile {pid}\n\
         AuthorizedKeysFile {authorized}\n\
         AllowUsers {user}\n\
         PermitRootLogin forced-commands-only\n\
         PubkeyAuthentication yes\n\
         PasswordAuthentication no\n\
         KbdInteractiveAuthentication no\n\
         UsePAM no\n\
         StrictModes no\n\
         PermitUserEnvironment no\n\
         AllowTcpForwarding no\n\
         AllowAgentForwarding no\n\
         X11Forwarding no\n\
         PrintMotd no\n\
         PrintLastLog no\n\
         MaxStartups 50\n\
         AcceptEnv GIT_PROTOCOL\n\
         SetEnv {path} {home} GIT_CONFIG_NOSYSTEM=1\n\
         LogLevel VERBOSE\n",
        port = c.port,
        host_key = c.host_key.display(),
        pid = c.dir.join("sshd.pid").display(),
        authorized = c.authorized.display(),
        user = c.user,
        path = setenv("PATH", c.server_path),
        home = setenv("HOME", &c.server_home.to_string_lossy()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ppid_is_read_after_the_command_name() {
        assert_eq!(ppid_of("42 (a) b) c) S 17 42 42 0"), Some(17));
        assert_eq!(ppid_of("42 (sshd) S 1 42"), Some(1));
        assert_eq!(ppid_of("garbage"), None);
    }

    #[test]
    fn forced_options_quote_for_the_shell_and_for_authorized_keys() {
        assert_eq!(
            Sshd::forced_options(&[]),
            r#"command="git-annex-shell -c \"$SSH_ORIGINAL_COMMAND\"",no-port-forwarding,no-X11-forwarding,no-agent-forwarding,no-pty"#
        );
        assert_eq!(
            Sshd::forced_options(&[("GIT_ANNEX_SHELL_READONLY", "true")]),
            r#"command="GIT_ANNEX_SHELL_READONLY='true' git-annex-shell -c \"$SSH_ORIGINAL_COMMAND\"",no-port-forwarding,no-X11-forwarding,no-agent-forwarding,no-pty"#
        );
    }
}
