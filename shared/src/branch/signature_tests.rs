//! Commit dating and naming, against git's own answers.

/// The offset commits are dated with is git's own for this machine
/// (`git var GIT_COMMITTER_IDENT` ends in it, `+hhmm`).
#[test]
fn commits_are_dated_with_gits_offset() {
    let out = std::process::Command::new("git")
        .args(["var", "GIT_COMMITTER_IDENT"])
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@t")
        .output()
        .expect("git var");
    let ident = String::from_utf8(out.stdout).expect("utf-8");
    let gits = ident.trim().rsplit(' ').next().expect("offset").to_owned();
    let ours = super::now_local().offset;
    let sign = if ours < 0 { '-' } else { '+' };
    let mins = ours.abs() / 60;
    assert_eq!(format!("{sign}{:02}{:02}", mins / 60, mins % 60), gits);
}

/// The committer is the one git names in the same repository and
/// environment (`GIT_COMMITTER_*`, then `committer.*` over `user.*`, part
/// by part), whatever the environment the tests run in.
#[test]
fn commits_name_gits_committer() {
    let dir = tempfile::tempdir().expect("tempdir");
    // In the tests' own environment (testkit sets only PATH), which is
    // what `identity` reads too.
    let git = |args: &[&str]| testkit::git(dir.path(), args);
    git(&["init", "-q"]);
    git(&["config", "user.name", "User Name"]);
    git(&["config", "user.email", "user@example.org"]);
    git(&["config", "committer.email", "committer@example.org"]);
    let ident = git(&["var", "GIT_COMMITTER_IDENT"]);
    let repo = gix::open(dir.path()).expect("open");
    let (name, email) = super::identity(&repo).expect("configured");
    assert!(
        ident.starts_with(&format!("{name} <{email}> ")),
        "git: {ident:?}, ours: {name} <{email}>"
    );
}
