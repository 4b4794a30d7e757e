//! Where the programs under test come from: the real git-annex in the
//! workspace venv (found by [`testkit`]), and our `git-annex-shell` from
//! the cargo target dir.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Where the real git-annex is: one definition for every test of the
/// workspace, in the testkit crate.
pub use testkit::{
    real_annex_binary, real_magic_db, venv_dir, workspace_root, EXPECTED_ANNEX_VERSION,
};

/// Directory holding our `git-annex-shell`.
///
/// `$ANNEXPROXY_BIN_DIR` wins and is used as is. Otherwise the binary is
/// built once per test process with `cargo build -p annex-shell --bins`
/// (skipped when `ANNEXPROXY_NO_BUILD` is set), because cargo does not build
/// another package's binaries for an integration test.
pub fn ours_bin_dir() -> &'static Path {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match DIR.get_or_init(find_or_build_ours) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) if !d.is_empty() => {
            let d = PathBuf::from(d);
            if d.is_absolute() {
                d
            } else {
                workspace_root().join(d)
            }
        }
        _ => workspace_root().join("target"),
    }
}

fn find_or_build_ours() -> Result<PathBuf, String> {
    if let Some(d) = std::env::var_os("ANNEXPROXY_BIN_DIR").filter(|d| !d.is_empty()) {
        let d = PathBuf::from(d);
        return if d.join("git-annex-shell").is_file() {
            Ok(d)
        } else {
            Err(format!(
                "ANNEXPROXY_BIN_DIR={} has no git-annex-shell",
                d.display()
            ))
        };
    }
    build(&["-p", "annex-shell", "--bins"])?;
    let dir = target_dir().join("debug");
    if dir.join("git-annex-shell").is_file() {
        Ok(dir)
    } else {
        Err(format!(
            "our git-annex-shell is not at {}; build it with `cargo build -p annex-shell --bins` \
             or set ANNEXPROXY_BIN_DIR",
            dir.display()
        ))
    }
}

/// `cargo build ARGS` of the workspace, unless `ANNEXPROXY_NO_BUILD` says
/// the binaries are built already.
fn build(args: &[&str]) -> Result<(), String> {
    if std::env::var_os("ANNEXPROXY_NO_BUILD").is_some() {
        return Ok(());
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let what = format!("cargo build {}", args.join(" "));
    let out = Command::new(&cargo)
        .args(["build", "--quiet"])
        .args(args)
        .arg("--manifest-path")
        .arg(workspace_root().join("Cargo.toml"))
        .output()
        .map_err(|e| format!("could not run `{what}`: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "`{what}` failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

/// Login name to put in the server's environment, as sshd would.
pub fn user_name() -> String {
    for var in ["USER", "LOGNAME"] {
        if let Ok(v) = std::env::var(var) {
            if !v.is_empty() {
                return v;
            }
        }
    }
    Command::new("id")
        .arg("-un")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "root".to_string())
}

/// This machine's host name, as git-annex puts it into descriptions.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| {
            Command::new("uname")
                .arg("-n")
                .output()
                .ok()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        })
        .unwrap_or_default()
}

/// Our `git-remote-annexproxy`: in `$ANNEXPROXY_BIN_DIR` when that is set,
/// else built once per test process with `cargo build -p
/// git-remote-annexproxy` (skipped with `ANNEXPROXY_NO_BUILD`), as
/// [`ours_bin_dir`] does for git-annex-shell.
pub fn remote_helper_bin() -> &'static Path {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match BIN.get_or_init(find_or_build_helper) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

const HELPER: &str = "git-remote-annexproxy";

fn find_or_build_helper() -> Result<PathBuf, String> {
    let dir = match std::env::var_os("ANNEXPROXY_BIN_DIR").filter(|d| !d.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => {
            build(&["-p", HELPER])?;
            target_dir().join("debug")
        }
    };
    let bin = dir.join(HELPER);
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(format!(
            "{HELPER} is not at {}; build it with `cargo build -p {HELPER}` or set ANNEXPROXY_BIN_DIR",
            bin.display()
        ))
    }
}
