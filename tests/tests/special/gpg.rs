//! gpg keys of the encrypted-remote tests: made by the test, without a
//! passphrase, in the server user's home (its `~/.gnupg`, which both real
//! git-annex and our git-annex-shell use there) or held elsewhere.

use std::path::{Path, PathBuf};
use std::process::Command;

use annexproxy_tests::TestEnv;

/// The test key's address, which `keyid=` takes.
macro_rules! key_address {
    () => {
        "gpg@annexproxy.invalid"
    };
}

/// The test key's user id.
const KEY_USER: &str = concat!("annexproxy test <", key_address!(), ">");
pub const KEY_ID: &str = key_address!();
/// The `keyid=` parameter of a remote encrypted to the test key.
pub const KEYID: &str = concat!("keyid=", key_address!());

/// A test's environment (our server) with the test key in the server
/// user's keyring; the key goes with the guard.
pub fn env_with_key() -> (TestEnv, GpgKey) {
    let env = TestEnv::new(annexproxy_tests::ServerKind::Ours);
    let key = GpgKey::make(&env);
    (env, key)
}

/// gpg with `home` as its home directory (`~/.gnupg` under it).
fn gpg_in(home: &Path) -> Command {
    let mut cmd = Command::new("gpg");
    cmd.env_clear()
        .env("HOME", home)
        .env("PATH", "/usr/local/bin:/usr/bin:/bin");
    cmd
}

/// Run gpg in `home` with `args` (and `input` on its stdin); its output.
fn run_gpg(home: &Path, args: &[&str], input: Option<&[u8]>) -> Vec<u8> {
    use std::io::Write;
    let mut child = gpg_in(home)
        .args(["--batch", "--pinentry-mode", "loopback", "--passphrase", ""])
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run gpg");
    let mut stdin = child.stdin.take().expect("piped");
    stdin
        .write_all(input.unwrap_or_default())
        .expect("feed gpg");
    drop(stdin);
    let out = child.wait_with_output().expect("gpg");
    assert!(out.status.success(), "gpg {args:?}: {out:?}");
    out.stdout
}

/// A gpg key without a passphrase in `home`; the agents it started are
/// stopped when the guard goes.
pub struct GpgKey {
    homes: Vec<PathBuf>,
}

impl GpgKey {
    /// The key in the server user's keyring, secret half included.
    pub fn make(env: &TestEnv) -> GpgKey {
        GpgKey::make_in(&env.server_home)
    }

    /// The key in the keyring of `home`.
    pub fn make_in(home: &Path) -> GpgKey {
        let dir = home.join(".gnupg");
        std::fs::create_dir_all(&dir).expect("gnupg dir");
        let perms = std::os::unix::fs::PermissionsExt::from_mode(0o700);
        std::fs::set_permissions(&dir, perms).expect("chmod");
        run_gpg(
            home,
            &["--quick-gen-key", KEY_USER, "default", "default", "never"],
            None,
        );
        GpgKey {
            homes: vec![home.to_owned()],
        }
    }

    /// The key held in a home of its own under the test's server
    /// directory, its public half alone in the server user's keyring.
    pub fn held_elsewhere(env: &TestEnv) -> GpgKey {
        let mut key = GpgKey::make_in(&env.srv.join("holder"));
        let public = run_gpg(&key.homes[0], &["--armor", "--export", KEY_ID], None);
        run_gpg(&env.server_home, &["--import"], Some(&public));
        key.homes.push(env.server_home.clone());
        key
    }

    /// Give the secret half to the server user too.
    pub fn give_secret_to_server(&self, env: &TestEnv) {
        let args = ["--armor", "--export-secret-keys", KEY_ID];
        let secret = run_gpg(&self.homes[0], &args, None);
        run_gpg(&env.server_home, &["--import"], Some(&secret));
    }
}

impl Drop for GpgKey {
    fn drop(&mut self) {
        for home in &self.homes {
            let _ = Command::new("gpgconf")
                .env("HOME", home)
                .args(["--kill", "gpg-agent"])
                .status();
        }
    }
}
