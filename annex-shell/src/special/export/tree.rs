//! An exported tree as git-annex sees it (`Annex/Export.hs: exportKey`,
//! `Command/Export.hs: filterExport`): each file of the tree with the key
//! it is exported as — the annexed key of a symlink or pointer file, or,
//! for a file git itself holds, a `GIT--<blob sha>` key (`gitShaKey`).
//! Submodules and symlinks that are not annexed are left out, as
//! git-annex leaves them out.
//!
//! Read with git's plumbing (`ls-tree`, `cat-file --batch`,
//! `diff-tree`): only the small blobs that can be links or pointers are
//! read, never an annexed object.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use annex::key::Key;

/// git's empty tree.
pub const EMPTY_TREE: &str = "4b825dc642cb6eb9a060e54bf8d69288fbee4904";

/// A pointer file is no larger than this (git-annex's `maxPointerSz`).
const MAX_POINTER: u64 = 32 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    #[error("git {what}: {source}")]
    Spawn {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("git {what} failed: {why}")]
    Git { what: &'static str, why: String },
}

/// One file of an exported tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeFile {
    pub path: String,
    /// git's mode of the entry (`100644`, `100755`, `120000`).
    pub mode: String,
    /// The blob's sha (a `GIT--` key's content).
    pub blob: String,
    pub key: Key,
}

/// `GIT--<sha>`: a file git holds, exported from its blob.
pub fn git_sha_key(sha: &str) -> Key {
    Key::parse(&format!("GIT--{sha}")).expect("a sha is a key name")
}

/// The blob a `GIT--` key names.
pub fn key_git_sha(key: &Key) -> Option<&str> {
    (key.variety() == "GIT").then(|| key.name())
}

fn git(git_dir: &Path) -> Command {
    let mut cmd = Command::new("git");
    cmd.arg("--git-dir").arg(git_dir);
    cmd
}

fn run(git_dir: &Path, what: &'static str, args: &[&str]) -> Result<Vec<u8>, TreeError> {
    let out = git(git_dir)
        .args(args)
        .stderr(Stdio::piped())
        .output()
        .map_err(|source| TreeError::Spawn { what, source })?;
    if !out.status.success() {
        let why = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        return Err(TreeError::Git { what, why });
    }
    Ok(out.stdout)
}

/// `git ARGS` with `input` on its stdin; its trimmed output.
fn run_with_input(
    git_dir: &Path,
    what: &'static str,
    args: &[&str],
    input: &[u8],
) -> Result<String, TreeError> {
    let mut cmd = git(git_dir);
    cmd.args(args);
    // A server user without a git identity still commits, as our
    // git-annex branch commits do.
    if git(git_dir)
        .args(["config", "user.email"])
        .output()
        .map_or(true, |o| o.stdout.is_empty())
    {
        let user = std::env::var("USER").unwrap_or_else(|_| "git-annex".into());
        let email = format!("{user}@localhost");
        for v in ["GIT_AUTHOR_NAME", "GIT_COMMITTER_NAME"] {
            cmd.env(v, &user);
        }
        for v in ["GIT_AUTHOR_EMAIL", "GIT_COMMITTER_EMAIL"] {
            cmd.env(v, &email);
        }
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| TreeError::Spawn { what, source })?;
    let mut stdin = child.stdin.take().expect("piped");
    let input = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child
        .wait_with_output()
        .map_err(|source| TreeError::Spawn { what, source })?;
    let _ = writer.join();
    if !out.status.success() {
        let why = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        return Err(TreeError::Git { what, why });
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Where git-annex grafts an exported tree in its branch.
const GRAFT_POINT: &str = "export.tree";

/// `rememberExportTreeish`: two commits on the git-annex branch, one with
/// `tree` grafted at `export.tree` and one taking it out again, so the
/// tree stays reachable from the branch (a clone can read the export
/// even when no branch holds the tree any more). A branch that moved
/// meanwhile is left alone (the tree is then only in `export.log`).
pub fn remember_tree(git_dir: &Path, tree: &str) -> Result<(), TreeError> {
    let Some(tip) = rev_parse(git_dir, "refs/heads/git-annex") else {
        return Ok(());
    };
    let tip_tree = rev_parse(git_dir, &format!("{tip}^{{tree}}")).unwrap_or_default();
    let listing = run(git_dir, "ls-tree", &["ls-tree", "-z", &tip_tree])?;
    let mut entries: Vec<u8> = listing
        .split(|b| *b == 0)
        .filter(|e| !e.is_empty() && !e.ends_with(format!("\t{GRAFT_POINT}").as_bytes()))
        .flat_map(|e| e.iter().copied().chain([0]))
        .collect();
    entries.extend_from_slice(format!("040000 tree {tree}\t{GRAFT_POINT}\0").as_bytes());
    let grafted = run_with_input(git_dir, "mktree", &["mktree", "-z"], &entries)?;
    let commit = |tree: &str, parent: &str, msg: &str| {
        run_with_input(
            git_dir,
            "commit-tree",
            &["commit-tree", tree, "-p", parent, "-F", "-"],
            msg.as_bytes(),
        )
    };
    let graft = commit(&grafted, &tip, "graft")?;
    let cleanup = commit(&tip_tree, &graft, "graft cleanup")?;
    let moved = run(
        git_dir,
        "update-ref",
        &["update-ref", "refs/heads/git-annex", &cleanup, &tip],
    );
    if let Err(e) = moved {
        tracing::info!("git-annex branch moved; export tree not grafted: {e}");
    }
    Ok(())
}

/// The sha `rev` names, `None` when it names nothing.
pub fn rev_parse(git_dir: &Path, rev: &str) -> Option<String> {
    let out = run(git_dir, "rev-parse", &["rev-parse", "--verify", "-q", rev]).ok()?;
    let sha = String::from_utf8_lossy(&out).trim().to_owned();
    (!sha.is_empty()).then_some(sha)
}

/// A key from the file name an annex link ends in (`fileKey`).
fn key_of_file_name(name: &str) -> Option<Key> {
    let mut out = String::with_capacity(name.len());
    let mut chars = name.chars();
    while let Some(c) = chars.next() {
        match c {
            '%' => out.push('/'),
            '&' => out.push(match chars.next()? {
                'c' => ':',
                's' => '%',
                'a' => '&',
                _ => return None,
            }),
            c => out.push(c),
        }
    }
    Key::parse(&out).ok()
}

/// The key an annex symlink's target or a pointer file names.
pub fn key_of_link(target: &[u8]) -> Option<Key> {
    let text = std::str::from_utf8(target).ok()?;
    let line = text.lines().next()?;
    if !line.contains("annex/objects/") {
        return None;
    }
    key_of_file_name(line.rsplit('/').next()?)
}

/// Blob entries of a tree, and whether a submodule was left out.
type Entries = (Vec<(String, String, u64, String)>, bool);

/// `ls-tree -r -l` of a tree: (mode, sha, size, path) of every blob;
/// submodules are left out.
fn ls_tree(git_dir: &Path, tree: &str) -> Result<Entries, TreeError> {
    let out = run(git_dir, "ls-tree", &["ls-tree", "-r", "-z", "-l", tree])?;
    let mut entries = Vec::new();
    let mut dropped = false;
    for rec in out.split(|b| *b == 0).filter(|r| !r.is_empty()) {
        // A name that is not UTF-8 is left out: read lossily, two such
        // names would be one path.
        let Ok(rec) = std::str::from_utf8(rec) else {
            tracing::info!("{}: not UTF-8; not exported", String::from_utf8_lossy(rec));
            dropped = true;
            continue;
        };
        let Some((meta, path)) = rec.split_once('\t') else {
            continue;
        };
        let f: Vec<&str> = meta.split_whitespace().collect();
        if let [mode, "blob", sha, size] = f.as_slice() {
            let size = size.parse().unwrap_or(u64::MAX);
            entries.push(((*mode).into(), (*sha).into(), size, path.into()));
        } else {
            dropped = true;
        }
    }
    Ok((entries, dropped))
}

/// The key each blob of `shas` names ([`key_of_link`]), in order, through
/// one `cat-file --batch`: only keys are kept, never the blobs, so a tree
/// of many small files (one blob under many names costs a pusher
/// nothing) is not held in memory.
fn blob_keys(git_dir: &Path, shas: Vec<String>) -> Result<Vec<Option<Key>>, TreeError> {
    let mut child = git(git_dir)
        .args(["cat-file", "--batch"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|source| TreeError::Spawn {
            what: "cat-file",
            source,
        })?;
    let mut stdin = child.stdin.take().expect("piped");
    let count = shas.len();
    // Written from a thread: git answers as it reads, and a full pipe
    // each way would stop both.
    let writer = std::thread::spawn(move || {
        for sha in shas {
            if writeln!(stdin, "{sha}").is_err() {
                break;
            }
        }
    });
    let mut out = BufReader::new(child.stdout.take().expect("piped"));
    let mut keys = Vec::with_capacity(count);
    let mut body = Vec::new();
    let bad = |why: &str| TreeError::Git {
        what: "cat-file",
        why: why.to_owned(),
    };
    for _ in 0..count {
        let mut header = String::new();
        out.read_line(&mut header)
            .map_err(|source| TreeError::Spawn {
                what: "cat-file",
                source,
            })?;
        let size: usize = header
            .split_whitespace()
            .nth(2)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad(header.trim()))?;
        body.resize(size + 1, 0);
        out.read_exact(&mut body)
            .map_err(|source| TreeError::Spawn {
                what: "cat-file",
                source,
            })?;
        keys.push(key_of_link(&body[..size]));
    }
    let _ = writer.join();
    let _ = child.wait();
    Ok(keys)
}

/// Every file of `tree` that an export holds, with its key.
pub fn files(git_dir: &Path, tree: &str) -> Result<Vec<TreeFile>, TreeError> {
    listing(git_dir, tree).map(|(files, _)| files)
}

/// [`files`], and whether anything of the tree was left out (a
/// submodule, a symlink git-annex does not manage).
pub fn listing(git_dir: &Path, tree: &str) -> Result<(Vec<TreeFile>, bool), TreeError> {
    let (entries, mut dropped) = ls_tree(git_dir, tree)?;
    let read: Vec<usize> = (0..entries.len())
        // A larger "symlink" is none git-annex made, and is not read.
        .filter(|i| entries[*i].2 <= MAX_POINTER)
        .collect();
    let keys = blob_keys(
        git_dir,
        read.iter().map(|i| entries[*i].1.clone()).collect(),
    )?;
    let mut contents = read.into_iter().zip(keys).peekable();
    let mut out = Vec::with_capacity(entries.len());
    for (i, (mode, sha, _, path)) in entries.into_iter().enumerate() {
        let annexed = match contents.peek() {
            Some((j, _)) if *j == i => contents.next().and_then(|(_, k)| k),
            _ => None,
        };
        let key = match (annexed, mode.as_str()) {
            (Some(key), _) => key,
            // A symlink git-annex does not manage is not exported.
            (None, "120000") => {
                dropped = true;
                continue;
            }
            (None, _) => git_sha_key(&sha),
        };
        out.push(TreeFile {
            path,
            mode,
            blob: sha,
            key,
        });
    }
    Ok((out, dropped))
}

/// The tree holding exactly `files` (`git mktree`, a directory at a
/// time, deepest first).
pub fn build_tree(git_dir: &Path, files: &[TreeFile]) -> Result<String, TreeError> {
    let refs: Vec<(&str, &TreeFile)> = files.iter().map(|f| (f.path.as_str(), f)).collect();
    build_dir(git_dir, &refs)
}

fn build_dir(git_dir: &Path, files: &[(&str, &TreeFile)]) -> Result<String, TreeError> {
    let mut input = Vec::new();
    let mut subdirs: std::collections::BTreeMap<&str, Vec<(&str, &TreeFile)>> =
        std::collections::BTreeMap::new();
    for (rest, f) in files {
        match rest.split_once('/') {
            Some((dir, below)) => subdirs.entry(dir).or_default().push((below, f)),
            None => input.extend(format!("{} blob {}\t{rest}\0", f.mode, f.blob).bytes()),
        }
    }
    for (dir, below) in subdirs {
        let sha = build_dir(git_dir, &below)?;
        input.extend(format!("040000 tree {sha}\t{dir}\0").bytes());
    }
    run_with_input(git_dir, "mktree", &["mktree", "-z"], &input)
}

/// A changed path, with its old and new blob.
pub type Change = (String, Option<String>, Option<String>);

/// The paths that differ between trees `old` and `new` (`diff-tree -r`),
/// each with its old and new blob (`None` where the side has none).
pub fn changed_paths(git_dir: &Path, old: &str, new: &str) -> Result<Vec<Change>, TreeError> {
    let out = run(git_dir, "diff-tree", &["diff-tree", "-r", "-z", old, new])?;
    let mut fields = out.split(|b| *b == 0).filter(|r| !r.is_empty());
    let mut changes = Vec::new();
    let null = |s: &str| (s.bytes().any(|b| b != b'0')).then(|| s.to_owned());
    while let (Some(meta), Some(path)) = (fields.next(), fields.next()) {
        let meta = String::from_utf8_lossy(meta);
        let f: Vec<&str> = meta.trim_start_matches(':').split(' ').collect();
        // Not UTF-8: never exported ([`ls_tree`]), so nothing to change.
        if let ([_, _, src, dst, _], Ok(path)) = (f.as_slice(), std::str::from_utf8(path)) {
            changes.push((path.to_owned(), null(src), null(dst)));
        }
    }
    Ok(changes)
}

/// The key a blob of a tree is exported as (its link's or pointer's key,
/// else its `GIT--` key).
pub fn blob_key(git_dir: &Path, sha: &str) -> Result<Key, TreeError> {
    let size = run(git_dir, "cat-file", &["cat-file", "-s", sha])?;
    let size: u64 = String::from_utf8_lossy(&size)
        .trim()
        .parse()
        .unwrap_or(u64::MAX);
    if size > MAX_POINTER {
        return Ok(git_sha_key(sha));
    }
    let blob = run(git_dir, "cat-file", &["cat-file", "blob", sha])?;
    Ok(key_of_link(&blob).unwrap_or_else(|| git_sha_key(sha)))
}

/// A blob's content as a stream (a file git holds, exported).
pub fn blob_reader(git_dir: &Path, sha: &str) -> Result<tokio::process::Child, TreeError> {
    tokio::process::Command::new("git")
        .arg("--git-dir")
        .arg(git_dir)
        .args(["cat-file", "blob", sha])
        .kill_on_drop(true)
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|source| TreeError::Spawn {
            what: "cat-file",
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_links_and_pointers() {
        let k = "SHA256E-s5--abc.txt";
        let link = format!("../../.git/annex/objects/xx/yy/{k}/{k}");
        assert_eq!(key_of_link(link.as_bytes()).unwrap().to_string(), k);
        let pointer = format!("/annex/objects/{k}\n");
        assert_eq!(key_of_link(pointer.as_bytes()).unwrap().to_string(), k);
        assert!(key_of_link(b"plain text\n").is_none());
        let escaped = "URL--http&c%%x.org%a&ab";
        let key = key_of_link(format!("/annex/objects/{escaped}").as_bytes()).unwrap();
        assert_eq!(key.to_string(), "URL--http://x.org/a&b");
        assert_eq!(key.key_file(), escaped);
        let g = git_sha_key("0123456789abcdef0123456789abcdef01234567");
        assert_eq!(
            key_git_sha(&g),
            Some("0123456789abcdef0123456789abcdef01234567")
        );
    }

    /// The peak of this process's resident memory, in KiB.
    fn peak_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    /// A tree bomb a pusher makes for nothing: one small blob under
    /// 10,000 names (a tree of 100 trees of 100 entries). Listing it
    /// holds the names and keys, not 10,000 copies of the blob (300 MB).
    #[test]
    fn many_names_of_one_small_blob_are_listed_in_little_memory() {
        let dir = tempfile::tempdir().unwrap();
        let git_dir = dir.path().join("r.git");
        let ok =
            |args: &[&str], input: &[u8]| run_with_input(&git_dir, "test", args, input).unwrap();
        let init = Command::new("git")
            .args(["init", "-q", "--bare"])
            .arg(&git_dir)
            .status();
        assert!(init.unwrap().success());
        let blob = ok(&["hash-object", "-w", "--stdin"], &[b'x'; 32_000]);
        let names = |kind: &str, sha: &str| -> Vec<u8> {
            (0..100)
                .flat_map(|i| format!("{kind} {sha}\tn{i}\0").into_bytes())
                .collect()
        };
        let inner = ok(&["mktree", "-z"], &names("100644 blob", &blob));
        let outer = ok(&["mktree", "-z"], &names("040000 tree", &inner));
        let before = peak_kib();
        let (files, _) = listing(&git_dir, &outer).unwrap();
        assert_eq!(files.len(), 10_000);
        let grew = peak_kib().saturating_sub(before);
        assert!(grew < 100 * 1024, "the listing took {grew} KiB");
    }
}
