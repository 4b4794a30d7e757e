//! git-annex-shell: a restricted login shell for git-annex access over ssh.

use std::process::ExitCode;

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    if std::env::var_os("ANNEXPROXY_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_env_filter(tracing_subscriber::EnvFilter::from_env("ANNEXPROXY_LOG"))
            .init();
    }
    let result = annex_shell::run::run(&argv);
    // Objects dropped after their reply are unlinked before we end.
    annex::store::discard::finish();
    match result {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            eprintln!("git-annex-shell: {e}");
            ExitCode::from(1)
        }
    }
}
