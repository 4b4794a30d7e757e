//! Tree-level helpers over gix: reading a blob by path, finding the files
//! in which one tree differs from another, and git-annex's union merge.

use std::collections::{BTreeMap, BTreeSet};

use gix::bstr::ByteSlice;
use gix::ObjectId;

/// The blob at `path` in `tree`, if there is one (a tree there counts as
/// absent, as `git cat-file` of it would not give file content).
pub(crate) fn blob_at(
    repo: &gix::Repository,
    tree: ObjectId,
    path: &str,
) -> Result<Option<ObjectId>, gix::Error> {
    let tree = repo.find_tree(tree)?;
    match tree.lookup_entry_by_path(path)? {
        Some(e) if e.mode().is_blob_or_symlink() => Ok(Some(e.object_id())),
        _ => Ok(None),
    }
}

/// Collect into `out` every file (path → blob id) whose blob in `other`
/// differs from (or is missing in) `base`. Subtrees with equal ids are
/// skipped whole, so the cost follows the size of the difference.
pub(crate) fn changed_blobs(
    repo: &gix::Repository,
    base: Option<ObjectId>,
    other: ObjectId,
    prefix: &str,
    out: &mut BTreeMap<String, ObjectId>,
) -> Result<(), gix::Error> {
    if base == Some(other) {
        return Ok(());
    }
    let base_entries: BTreeMap<Vec<u8>, (bool, ObjectId)> = match base {
        Some(b) => tree_entries(repo, b)?,
        None => BTreeMap::new(),
    };
    for (name, (is_tree, oid)) in tree_entries(repo, other)? {
        let Ok(name) = String::from_utf8(name.clone()) else {
            tracing::warn!(prefix, "skipping non-UTF-8 name in git-annex branch merge");
            continue;
        };
        let path = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let in_base = base_entries.get(name_bytes(&path, prefix)).copied();
        if is_tree {
            let sub_base = in_base.filter(|(t, _)| *t).map(|(_, o)| o);
            changed_blobs(repo, sub_base, oid, &path, out)?;
        } else if in_base != Some((false, oid)) {
            out.insert(path, oid);
        }
    }
    Ok(())
}

fn name_bytes<'a>(path: &'a str, prefix: &str) -> &'a [u8] {
    let skip = if prefix.is_empty() {
        0
    } else {
        prefix.len() + 1
    };
    &path.as_bytes()[skip..]
}

/// name → (is a tree, id); blobs and symlinks count as files, submodule
/// entries are ignored (they never occur in a git-annex branch).
fn tree_entries(
    repo: &gix::Repository,
    id: ObjectId,
) -> Result<BTreeMap<Vec<u8>, (bool, ObjectId)>, gix::Error> {
    let tree = repo.find_tree(id)?;
    let decoded = tree.decode()?;
    let mut out = BTreeMap::new();
    for e in &decoded.entries {
        if e.mode.is_tree() {
            out.insert(e.filename.as_bytes().to_vec(), (true, e.oid.to_owned()));
        } else if e.mode.is_blob_or_symlink() {
            out.insert(e.filename.as_bytes().to_vec(), (false, e.oid.to_owned()));
        }
    }
    Ok(out)
}

/// Result of a union merge: reuse one input unchanged, or new content.
#[derive(Debug, PartialEq, Eq)]
pub enum Union {
    Reuse(usize),
    New(Vec<u8>),
}

/// git-annex's union merge of file versions: the sorted, de-duplicated set
/// of all their lines. An input that already is exactly that set (in any
/// order, with duplicates) is reused as-is, as git-annex does.
pub fn union_merge(versions: &[&[u8]]) -> Union {
    let split = |v: &[u8]| -> BTreeSet<Vec<u8>> { file_lines(v).map(<[u8]>::to_vec).collect() };
    let sets: Vec<BTreeSet<Vec<u8>>> = versions.iter().map(|v| split(v)).collect();
    let all: BTreeSet<Vec<u8>> = sets.iter().flatten().cloned().collect();
    if let Some(i) = sets.iter().position(|s| *s == all) {
        return Union::Reuse(i);
    }
    let mut out = Vec::new();
    for l in all {
        out.extend_from_slice(&l);
        out.push(b'\n');
    }
    Union::New(out)
}

/// Lines as Haskell's `lines` splits them: on `\n`, a final line without
/// a newline included, no empty line after a trailing newline.
fn file_lines(v: &[u8]) -> impl Iterator<Item = &[u8]> {
    let body = v.strip_suffix(b"\n").unwrap_or(v);
    let empty = v.is_empty();
    body.split(|&b| b == b'\n').filter(move |_| !empty)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn union_sorted_dedup() {
        assert_eq!(
            union_merge(&[b"b\na\n", b"c\na\n"]),
            Union::New(b"a\nb\nc\n".to_vec())
        );
        assert_eq!(union_merge(&[b"b\na\n", b"a\n"]), Union::Reuse(0));
        assert_eq!(union_merge(&[b"x\n", b"x\ny"]), Union::Reuse(1));
        assert_eq!(union_merge(&[b"", b""]), Union::Reuse(0));
        assert_eq!(
            union_merge(&[b"a\n\nb\n", b"c\n"]),
            Union::New(b"\na\nb\nc\n".to_vec())
        );
    }
}
