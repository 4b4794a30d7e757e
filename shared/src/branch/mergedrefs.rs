//! `annex/mergedrefs` and `annex/ignoredrefs`: which other git-annex
//! branches need no merge.
//!
//! Before a commit every other git-annex branch (`synced/git-annex`,
//! `*/git-annex`) is checked for being an ancestor of the tip, which walks
//! the history since it: a ref a client pushed once and never again makes
//! that walk longer with every session. git-annex keeps the shas it found
//! merged, or already contained, in `annex/mergedrefs` (`<sha>\t<ref>` per
//! line, the newest sha of each ref) and skips them; so do we, and we add
//! what we find the same way (git-annex's `addMergedRefs` in
//! `Annex/Branch.hs`), so neither side walks it again.

use std::collections::HashSet;
use std::fs;
use std::io::Write;
use std::path::Path;

use gix::ObjectId;

const MERGED: &str = "annex/mergedrefs";
const IGNORED: &str = "annex/ignoredrefs";

/// The shas git-annex (or we) recorded as merged, and the ones it was told
/// to ignore.
pub(super) fn skipped(git_dir: &Path) -> HashSet<String> {
    [MERGED, IGNORED]
        .iter()
        .flat_map(|f| lines(git_dir, f))
        .map(|(sha, _)| sha)
        .collect()
}

/// `<sha>\t<ref>` lines of `file` (a missing file has none).
fn lines(git_dir: &Path, file: &str) -> Vec<(String, String)> {
    fs::read_to_string(git_dir.join(file))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (sha, name) = l.split_once('\t').unwrap_or((l, ""));
            let sha = sha.trim();
            (!sha.is_empty()).then(|| (sha.to_owned(), name.to_owned()))
        })
        .collect()
}

/// Records `found` (sha, full ref name) in `annex/mergedrefs`, before what
/// is there, keeping one line per ref: the newest. A cache of facts that
/// stay true (a sha contained in the branch stays so), so a failure to
/// write it costs only the walk next time, and is only logged.
pub(super) fn record(git_dir: &Path, found: &[(ObjectId, String)]) {
    if found.is_empty() {
        return;
    }
    let old = lines(git_dir, MERGED);
    let mut seen: HashSet<&str> = HashSet::new();
    let mut text = String::new();
    let new = found.iter().map(|(sha, name)| (sha.to_string(), name));
    for (sha, name) in new.chain(old.iter().map(|(s, n)| (s.clone(), n))) {
        if seen.insert(name.as_str()) {
            text.push_str(&sha);
            text.push('\t');
            text.push_str(name);
            text.push('\n');
        }
    }
    if let Err(e) = write_replacing(&git_dir.join(MERGED), text.as_bytes()) {
        tracing::debug!(error = %e, "could not record merged refs");
    }
}

/// Writes `path` whole by a temporary file renamed over it, so a reader
/// never sees half of it.
fn write_replacing(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let written = fs::File::create(&tmp).and_then(|mut f| f.write_all(bytes));
    let renamed = written.and_then(|()| fs::rename(&tmp, path));
    if renamed.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    renamed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oid(hex: char) -> ObjectId {
        hex.to_string().repeat(40).parse().expect("sha")
    }

    #[test]
    fn new_shas_replace_a_refs_old_one_and_others_stay() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::create_dir(dir.path().join("annex")).expect("annex");
        let a = "refs/heads/synced/git-annex".to_owned();
        let b = "refs/remotes/origin/git-annex".to_owned();
        record(dir.path(), &[(oid('1'), a.clone()), (oid('2'), b.clone())]);
        record(dir.path(), &[(oid('3'), a.clone())]);
        let text = fs::read_to_string(dir.path().join(MERGED)).expect("read");
        assert_eq!(text, format!("{}\t{a}\n{}\t{b}\n", oid('3'), oid('2')));
        fs::write(dir.path().join(IGNORED), format!("{}\trefs/x\n", oid('4'))).expect("ignored");
        let skip = skipped(dir.path());
        let want: HashSet<String> = ['3', '2', '4'].map(|c| oid(c).to_string()).into();
        assert_eq!(skip, want);
    }
}
