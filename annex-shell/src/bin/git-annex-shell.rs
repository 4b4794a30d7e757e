//! git-annex-shell: a restricted login shell for git-annex access over ssh.
//!
//! This binary is the small front (crate `annex_shell_front`, nothing
//! else: whatever it links is paid at every ssh session's start). It
//! answers a plain `configlist` itself and hands every other call, argv
//! and environment untouched, to the full server by exec:
//! `annexproxy git-annex-shell ARGS…`, found next to this program.

use std::io::Write;
use std::process::ExitCode;

use annex_shell_front::configlist::{self, Env};
use annex_shell_front::handoff;

fn main() -> ExitCode {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let euid = nix::unistd::geteuid().as_raw();
    if let Ok(text) = configlist::answer(&argv, &Env::from_process(), euid) {
        return match std::io::stdout().lock().write_all(text.as_bytes()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("git-annex-shell: {e}");
                ExitCode::from(1)
            }
        };
    }
    let err = handoff::exec_server(&argv);
    eprintln!("git-annex-shell: {err}");
    ExitCode::from(1)
}
