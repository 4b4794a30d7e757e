//! The one line a session may write for the user's eyes: ssh carries our
//! stderr to the client's terminal, where git-annex shows it beside the
//! key it concerns (why a key could not be stored, removed or fetched),
//! as it shows real git-annex-shell's. Everything else — internal trouble,
//! a node's detail — goes to `tracing` only, so an operator sees it in the
//! logs and the user is not shown what they cannot act on.

/// Say `line` to the user (and record that it was said).
pub(crate) fn tell(line: std::fmt::Arguments<'_>) {
    tracing::info!(%line, "told the user");
    eprintln!("git-annex-shell: {line}");
}
