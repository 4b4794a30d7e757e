//! Handing a call to the full server: `annexproxy git-annex-shell ARGS…`,
//! by exec, so the server owns the session's stdio and exit status and no
//! front process stays around.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

/// The program that holds the full server.
pub const SERVER_PROGRAM: &str = "annexproxy";

/// Its hidden subcommand that serves as git-annex-shell, the arguments
/// following it verbatim.
pub const SERVER_SUBCOMMAND: &str = "git-annex-shell";

/// Why the full server could not be started.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot start the server {}: {source}; install annexproxy next to git-annex-shell (the same \
     directory) or on PATH",
    program.display()
)]
pub struct NoServer {
    pub program: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// Where the full server is: next to this program (`current_exe` resolves
/// a symlinked git-annex-shell to the file it points at), else looked up
/// on PATH by exec.
pub fn server_program(current_exe: Option<&Path>) -> PathBuf {
    current_exe
        .map(|exe| exe.with_file_name(SERVER_PROGRAM))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(SERVER_PROGRAM))
}

/// exec the full server with `argv` (without argv[0]); returns only when
/// that fails. The environment is passed on untouched.
pub fn exec_server(argv: &[OsString]) -> NoServer {
    let program = server_program(std::env::current_exe().ok().as_deref());
    let source = std::process::Command::new(&program)
        .arg(SERVER_SUBCOMMAND)
        .args(argv)
        .exec();
    NoServer { program, source }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_next_to_the_front_else_on_path() {
        let t = tempfile::tempdir().expect("tmp");
        let front = t.path().join("git-annex-shell");
        assert_eq!(server_program(Some(&front)), PathBuf::from("annexproxy"));
        assert_eq!(server_program(None), PathBuf::from("annexproxy"));
        std::fs::write(t.path().join("annexproxy"), "").expect("write");
        assert_eq!(server_program(Some(&front)), t.path().join("annexproxy"));
    }
}
