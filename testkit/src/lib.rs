//! What the unit tests of every crate and the end-to-end tests share:
//! where the real git-annex is (the oracle every compatibility test is
//! judged by), running git, and moto's S3 server ([`moto`]). It depends
//! on nothing of ours, so any crate of the workspace can take it as a
//! dev-dependency.
//!
//! The real git-annex lives in a venv: `$ANNEX_VENV`, else
//! `<workspace>/.venv`, where `scripts/install-git-annex.sh` puts it. A
//! test that needs it fails when it is missing or of another version: a
//! compatibility test that passes without its oracle proves nothing.

pub mod counting_proxy;
pub mod garage;
pub mod http_proxy;
pub mod moto;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The git-annex version every expectation of the tests was taken from.
pub const EXPECTED_ANNEX_VERSION: &str = "10.20261026";

/// Workspace root (the parent of this crate's manifest dir).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the testkit crate lives inside the workspace")
        .to_path_buf()
}

/// The venv holding git-annex: `$ANNEX_VENV`, else `<workspace>/.venv`.
pub fn venv_dir() -> PathBuf {
    match std::env::var_os("ANNEX_VENV") {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => workspace_root().join(".venv"),
    }
}

/// The real git-annex ELF binary shipped inside the venv's python package,
/// of [`EXPECTED_ANNEX_VERSION`]. Symlinks to it named `git-annex-shell`
/// act as git-annex-shell; going through the venv's python wrappers would
/// add interpreter start-up to every ssh hop.
pub fn real_annex_binary() -> &'static Path {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match BIN.get_or_init(find_real_annex) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

/// The venv's magic database; git-annex's python wrapper points libmagic at
/// it, so the client does too.
pub fn real_magic_db() -> Option<PathBuf> {
    let p = real_annex_binary().with_file_name("magic.mgc");
    p.exists().then_some(p)
}

/// The venv's `bin`, where `git-annex` and `git-annex-shell` are the
/// commands git and git-annex look up on `PATH`.
pub fn annex_bin_dir() -> PathBuf {
    // Checked first, for its version and its hint when missing.
    real_annex_binary();
    let bin = venv_dir().join("bin");
    for name in ["git-annex", "git-annex-shell"] {
        assert!(
            bin.join(name).exists(),
            "{} has no {name}: run scripts/install-git-annex.sh",
            bin.display()
        );
    }
    bin
}

/// The real `git-annex` command, as a user runs it.
pub fn real_git_annex() -> PathBuf {
    annex_bin_dir().join("git-annex")
}

/// The real `git-annex-shell` command.
pub fn real_git_annex_shell() -> PathBuf {
    annex_bin_dir().join("git-annex-shell")
}

/// `PATH` with the venv's `bin` first, for git-annex and the git that
/// runs it (git-annex's hooks and remote helpers are found through `PATH`).
/// A test that needs git-annex asks for it with [`real_git_annex`] and
/// fails there when it is missing; one that needs only git runs without.
pub fn path_env() -> OsString {
    let mut dirs = vec![venv_dir().join("bin")];
    if let Some(p) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&p));
    }
    std::env::join_paths(dirs).expect("PATH entries join")
}

/// `program` in `dir`, with the real git-annex first on `PATH`.
pub fn command(program: impl AsRef<std::ffi::OsStr>, dir: &Path) -> Command {
    let mut c = Command::new(program);
    c.current_dir(dir).env("PATH", path_env());
    c
}

/// Runs `c`, failing the test (with its output) unless it succeeds.
#[track_caller]
pub fn run_ok(c: &mut Command) -> Output {
    let out = c.output().unwrap_or_else(|e| panic!("{c:?}: {e}"));
    assert!(
        out.status.success(),
        "{c:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `git ARGS` in `dir`, which must succeed; its stdout.
#[track_caller]
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = run_ok(command("git", dir).args(args));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn find_real_annex() -> Result<PathBuf, String> {
    let venv = venv_dir();
    let hint = format!(
        "git-annex {EXPECTED_ANNEX_VERSION} is required by the tests and was not found in the \
         venv {}.\nInstall it with `scripts/install-git-annex.sh` (from the workspace root), \
         or point ANNEX_VENV at a venv that has it.",
        venv.display()
    );
    let lib = venv.join("lib");
    let entries =
        std::fs::read_dir(&lib).map_err(|e| format!("{hint}\n({}: {e})", lib.display()))?;
    let mut candidates: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("site-packages/git_annex/git-annex"))
        .filter(|p| p.is_file())
        .collect();
    candidates.sort();
    let bin = candidates.pop().ok_or_else(|| hint.clone())?;
    let out = Command::new(&bin)
        .arg("version")
        .arg("--raw")
        .output()
        .map_err(|e| format!("{hint}\n(running {} failed: {e})", bin.display()))?;
    let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !version.starts_with(EXPECTED_ANNEX_VERSION) {
        return Err(format!(
            "{hint}\n({} reports version {version:?})",
            bin.display()
        ));
    }
    Ok(bin)
}
