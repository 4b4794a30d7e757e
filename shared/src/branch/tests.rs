//! Branch tests against real git repositories, and against the real
//! git-annex (found by [`testkit`]; the tests that need it fail without it).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::*;

pub(crate) use testkit::{git, real_git_annex as git_annex_bin};

pub(crate) fn run(dir: &Path, prog: &Path, args: &[&str]) -> String {
    let out = testkit::run_ok(testkit::command(prog, dir).args(args));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn new_git_repo(bare: bool) -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::tempdir().expect("tempdir");
    let dir = t.path().join("r");
    let mut args = vec!["init", "-q"];
    if bare {
        args.push("--bare");
    }
    args.push("r");
    git(t.path(), &args);
    git(&dir, &["config", "user.name", "Tester"]);
    git(&dir, &["config", "user.email", "tester@example.org"]);
    (t, dir)
}

const U1: &str = "11111111-1111-4111-8111-111111111111";
const U2: &str = "22222222-2222-4222-8222-222222222222";

#[test]
fn create_makes_empty_tree_commit() {
    let (_t, dir) = new_git_repo(true);
    let b = Branch::open(&dir).expect("open");
    assert!(!b.exists().expect("exists"));
    let tip = b.create().expect("create");
    assert_eq!(b.create().expect("again"), tip);
    assert_eq!(
        git(&dir, &["log", "--format=%s|%an", "git-annex"]),
        "branch created|Tester\n"
    );
    assert_eq!(git(&dir, &["ls-tree", "-r", "git-annex"]), "");
    // The empty tree must really be there: git fsck and fetches need it.
    git(&dir, &["fsck", "--strict"]);
}

#[test]
fn journal_commit_and_read_back() {
    let (_t, dir) = new_git_repo(true);
    let b = Branch::open(&dir).expect("open");
    let path = location_log_path("abc/def", "SHA256E-s1--aa");
    assert!(b.log_location(&path, U2, LogStatus::Present).expect("log"));
    assert!(b.log_location(&path, U1, LogStatus::Present).expect("log"));
    assert!(!b
        .log_location(&path, U1, LogStatus::Present)
        .expect("same status is a no-op"));
    b.change_file("uuid.log", |_| {
        format!("{U1} srv timestamp=5s\n").into_bytes()
    })
    .expect("change");
    assert!(b.journal_dirty());
    assert_eq!(b.location_log(&path).expect("read").present(), vec![U1, U2]);

    let CommitOutcome::Committed(c) = b.commit().expect("commit") else {
        panic!("expected a commit")
    };
    assert!(!b.journal_dirty());
    assert_eq!(b.tip().expect("tip"), Some(c));
    assert_eq!(
        git(&dir, &["log", "--format=%s", "git-annex"]),
        "update\nbranch created\n"
    );
    let shown = git(&dir, &["show", &format!("git-annex:{path}")]);
    assert!(
        shown.contains(&format!(" 1 {U1}\n")) && shown.contains(&format!(" 1 {U2}\n")),
        "{shown}"
    );
    assert_eq!(
        b.read_committed("uuid.log").expect("read"),
        Some(format!("{U1} srv timestamp=5s\n").into_bytes())
    );
    assert_eq!(b.commit().expect("commit"), CommitOutcome::Unchanged);

    // Journalling what is already committed makes no commit.
    b.change_file("uuid.log", |old| old.expect("exists").to_vec())
        .expect("change");
    assert_eq!(b.commit().expect("commit"), CommitOutcome::Unchanged);
    assert!(!b.journal_dirty());
}

/// A gateway logs every node of a key at once: all the lines, one journal
/// file, cluster UUIDs left out, and nothing written when the log already
/// says so.
#[test]
fn several_uuids_logged_at_once() {
    let (_t, dir) = new_git_repo(true);
    let b = Branch::open(&dir).expect("open");
    let key: crate::key::Key = "SHA256E-s1--aa".parse().expect("key");
    let cluster = "ac9d2b2e-0000-8000-8000-000000000001";
    let uuids = [U1, U2, cluster];
    assert!(b
        .log_key_locations(&key, uuids, LogStatus::Present)
        .expect("log"));
    let path = location_log_path_for(&key);
    assert_eq!(b.location_log(&path).expect("read").present(), vec![U1, U2]);
    assert_eq!(b.journal.list().expect("list").len(), 1);
    assert!(!b
        .log_key_locations(&key, [U2, U1], LogStatus::Present)
        .expect("no-op"));
    assert!(b
        .log_key_locations(&key, [U2], LogStatus::Missing)
        .expect("log"));
    assert_eq!(b.location_log(&path).expect("read").present(), vec![U1]);
}

/// Lines committed directly (a session's owed lines) land in one commit
/// with the journal, on top of what the journal staged for the same file,
/// each change seeing the one before it, and leave no journal file; a
/// change whose condition no longer holds writes nothing.
#[test]
fn direct_changes_commit_with_the_journal_without_journal_files() {
    let (_t, dir) = new_git_repo(true);
    let b = Branch::open(&dir).expect("open");
    let staged: crate::key::Key = "SHA256E-s1--aa".parse().expect("key");
    let fresh: crate::key::Key = "SHA256E-s2--bb".parse().expect("key");
    b.create().expect("create");
    assert!(b
        .log_key_locations(&staged, [U1], LogStatus::Present)
        .expect("journal"));
    let mut changes = vec![
        Branch::key_locations_change(&staged, vec![U2.into()], LogStatus::Present, || true),
        Branch::key_locations_change(&fresh, vec![U1.into()], LogStatus::Present, || true),
        Branch::key_locations_change(&fresh, vec![U1.into()], LogStatus::Missing, || true),
        Branch::key_locations_change(&fresh, vec![U2.into()], LogStatus::Present, || false),
    ];
    assert!(matches!(
        b.commit_with(&mut changes).expect("commit"),
        CommitOutcome::Committed(_)
    ));
    assert!(b.journal.list().expect("list").is_empty());
    assert_eq!(
        git(&dir, &["rev-list", "--count", "git-annex"]).trim(),
        "2",
        "one commit for the journal and the direct lines"
    );
    let committed = |key: &crate::key::Key| {
        let text = b
            .read_committed(&location_log_path_for(key))
            .expect("read")
            .unwrap_or_default();
        LocationLog::parse(&text)
    };
    assert_eq!(committed(&staged).present(), vec![U1, U2]);
    assert!(committed(&fresh).present().is_empty());
    assert_eq!(committed(&fresh).not_present(), vec![U1]);

    let mut none = vec![Branch::key_locations_change(
        &fresh,
        vec![U2.into()],
        LogStatus::Present,
        || false,
    )];
    assert_eq!(
        b.commit_with(&mut none).expect("commit"),
        CommitOutcome::Unchanged
    );
}

/// A client pushed `git-annex` straight to us between our journal write and
/// our commit (autoinit in `configlist`, then `git annex sync`): the
/// pushed lines must survive next to ours.
#[test]
fn journal_written_before_a_push_keeps_the_pushed_lines() {
    let (_t, dir) = new_git_repo(true);
    let b = Branch::open(&dir).expect("open");
    b.create().expect("create");
    b.change_file("uuid.log", |_| {
        format!("{U1} server timestamp=5s\n").into_bytes()
    })
    .expect("journal");
    // What a push does: a new commit on the branch, made elsewhere.
    let blob = git_stdin(
        &dir,
        &["hash-object", "-w", "--stdin"],
        &format!("{U2} client timestamp=6s\n"),
    );
    let tree = git_stdin(
        &dir,
        &["mktree"],
        &format!("100644 blob {}\tuuid.log\n", blob.trim()),
    );
    let pushed = git(
        &dir,
        &[
            "commit-tree",
            tree.trim(),
            "-p",
            "git-annex",
            "-m",
            "client",
        ],
    );
    git(&dir, &["update-ref", "refs/heads/git-annex", pushed.trim()]);

    b.commit().expect("commit");
    let log = git(&dir, &["show", "git-annex:uuid.log"]);
    assert!(log.contains(&format!("{U1} server")), "{log}");
    assert!(log.contains(&format!("{U2} client")), "{log}");
    // With no push in between, the journal replaces the file as written.
    b.change_file("uuid.log", |_| {
        format!("{U1} only timestamp=7s\n").into_bytes()
    })
    .expect("journal");
    b.commit().expect("commit");
    assert_eq!(
        git(&dir, &["show", "git-annex:uuid.log"]),
        format!("{U1} only timestamp=7s\n")
    );
}

fn git_stdin(dir: &Path, args: &[&str], input: &str) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("git")
        .args(args)
        .current_dir(dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn git");
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(input.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("git");
    assert!(out.status.success(), "git {args:?}");
    String::from_utf8(out.stdout).expect("utf8")
}

/// A bare repository whose git-annex branch has one commit (`a.log`), and
/// that commit's sha.
fn branch_with_a_commit() -> (tempfile::TempDir, PathBuf, Branch, String) {
    let (t, dir) = new_git_repo(true);
    let b = Branch::open(&dir).expect("open");
    b.change_file("a.log", |_| b"1s 1 u1\n".to_vec())
        .expect("change");
    b.commit().expect("commit");
    let tip = git(&dir, &["rev-parse", "git-annex"]).trim().to_owned();
    (t, dir, b, tip)
}

#[test]
fn union_merges_synced_branch_and_fast_forwards() {
    let (_t, dir, b, base) = branch_with_a_commit();

    // Another repository's history: same file changed differently, a new file.
    let tree = git_tree(&dir, &[("a.log", "2s 1 u2\n"), ("n/new.log", "x\n")]);
    let other = git(&dir, &["commit-tree", &tree, "-p", &base, "-m", "theirs"])
        .trim()
        .to_owned();
    git(&dir, &["update-ref", "refs/heads/synced/git-annex", &other]);
    b.change_file("a.log", |old| {
        [old.unwrap_or_default(), b"3s 0 u1\n"].concat()
    })
    .expect("change");

    let CommitOutcome::Committed(_) = b.commit().expect("commit") else {
        panic!("expected a merge commit")
    };
    assert_eq!(
        git(&dir, &["show", "git-annex:a.log"]),
        "1s 1 u1\n2s 1 u2\n3s 0 u1\n"
    );
    assert_eq!(git(&dir, &["show", "git-annex:n/new.log"]), "x\n");
    assert_eq!(
        git(&dir, &["log", "-1", "--format=%s", "git-annex"]),
        "merging synced/git-annex into git-annex\n"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("annex/mergedrefs")).expect("mergedrefs"),
        format!("{other}\trefs/heads/synced/git-annex\n"),
        "the merged branch is recorded, as git-annex does"
    );
    assert_eq!(
        b.commit().expect("commit"),
        CommitOutcome::Unchanged,
        "now an ancestor"
    );

    // A branch strictly ahead is fast-forwarded to when the journal is clean.
    let tip = git(&dir, &["rev-parse", "git-annex"]).trim().to_owned();
    let tree = git_tree(&dir, &[("a.log", "9s 1 u9\n")]);
    let ahead = git(&dir, &["commit-tree", &tree, "-p", &tip, "-m", "ahead"])
        .trim()
        .to_owned();
    git(
        &dir,
        &["update-ref", "refs/remotes/origin/git-annex", &ahead],
    );
    let ff: ObjectId = ahead.parse().expect("sha");
    assert_eq!(
        b.commit().expect("commit"),
        CommitOutcome::FastForwarded(ff)
    );
}

#[test]
fn contained_siblings_are_recorded_and_recorded_ones_skipped() {
    let (_t, dir, b, old) = branch_with_a_commit();
    git(&dir, &["update-ref", "refs/heads/synced/git-annex", &old]);
    b.change_file("a.log", |_| b"2s 1 u1\n".to_vec())
        .expect("change");
    b.commit().expect("commit");
    let mergedrefs = dir.join("annex/mergedrefs");
    assert_eq!(
        std::fs::read_to_string(&mergedrefs).expect("mergedrefs"),
        format!("{old}\trefs/heads/synced/git-annex\n"),
        "an ancestor is recorded, as git-annex's addMergedRefs does"
    );

    // A recorded sha is not merged again, even when it is not an ancestor
    // (git-annex skips it the same way).
    let tree = git_tree(&dir, &[("theirs.log", "x\n")]);
    let theirs = git(&dir, &["commit-tree", &tree, "-m", "theirs"])
        .trim()
        .to_owned();
    git(&dir, &["update-ref", "refs/remotes/r/git-annex", &theirs]);
    std::fs::write(&mergedrefs, format!("{theirs}\trefs/remotes/r/git-annex\n")).expect("write");
    b.change_file("a.log", |_| b"3s 1 u1\n".to_vec())
        .expect("change");
    b.commit().expect("commit");
    assert_eq!(
        git(&dir, &["log", "-1", "--format=%p", "git-annex"])
            .split_whitespace()
            .count(),
        1,
        "no merge of a recorded sha"
    );
}

/// A tree holding `files` (paths may contain one directory level).
fn git_tree(dir: &Path, files: &[(&str, &str)]) -> String {
    let repo = gix::open(dir).expect("open");
    let mut ed = repo
        .edit_tree(ObjectId::empty_tree(gix::hash::Kind::Sha1))
        .expect("editor");
    for (p, c) in files {
        let blob = repo.write_blob(c.as_bytes()).expect("blob");
        ed.upsert(*p, gix::object::tree::EntryKind::Blob, blob)
            .expect("upsert");
    }
    ed.write().expect("write").to_string()
}

#[test]
fn hooks_and_commit_message_config() {
    let (_t, dir) = new_git_repo(true);
    git(&dir, &["config", "annex.commitmessage", "custom msg"]);
    let hook = dir.join("hooks/post-update-annex");
    std::fs::write(&hook, "#!/bin/sh\necho ran >> \"$PWD/hook-ran\"\n").expect("hook");
    Command::new("chmod")
        .arg("755")
        .arg(&hook)
        .status()
        .expect("chmod");
    let b = Branch::open(&dir).expect("open");
    b.change_file("x.log", |_| b"1\n".to_vec()).expect("change");
    b.commit().expect("commit");
    assert_eq!(
        git(&dir, &["log", "--format=%s", "git-annex"]),
        "custom msg\ncustom msg\n"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("hook-ran")).expect("hook ran"),
        "ran\nran\n"
    );
}

#[test]
fn interoperates_with_real_git_annex() {
    let ga = git_annex_bin();
    let (_t, dir) = new_git_repo(false);
    run(&dir, &ga, &["init", "-q", "test repo"]);
    std::fs::write(dir.join("f"), "hello\n").expect("write");
    run(&dir, &ga, &["add", "-q", "f"]);
    git(&dir, &["commit", "-qm", "f"]);
    let key = run(&dir, &ga, &["lookupkey", "f"]).trim().to_owned();
    let path = run(
        &dir,
        &ga,
        &["examinekey", "--format=${hashdirlower}${key}.log", &key],
    );
    let here = git(&dir, &["config", "annex.uuid"]).trim().to_owned();

    let b = Branch::open(&dir).expect("open");
    assert!(b.log_location(&path, U1, LogStatus::Present).expect("log"));
    assert!(b
        .log_location(&path, &here, LogStatus::Missing)
        .expect("log"));
    b.commit().expect("commit");
    // git-annex's index followed our commit.
    let idx = dir.join(".git/annex/index");
    let diff = Command::new("git")
        .args(["diff-index", "--cached", "--name-only", "git-annex"])
        .env("GIT_INDEX_FILE", &idx)
        .current_dir(&dir)
        .output()
        .expect("diff-index");
    assert_eq!(
        String::from_utf8_lossy(&diff.stdout),
        "",
        "annex/index differs from the branch"
    );

    let whereis = run(&dir, &ga, &["whereis", "--key", &key]);
    assert!(
        whereis.contains(U1) && !whereis.contains("test repo"),
        "{whereis}"
    );
    // git-annex's own change after ours keeps ours, and we see its change.
    run(&dir, &ga, &["setpresentkey", &key, U2, "1"]);
    run(&dir, &ga, &["setpresentkey", &key, &here, "1"]);
    let log = b.location_log(&path).expect("read");
    assert_eq!(log.present().len(), 3, "{log:?}");
    run(&dir, &ga, &["fsck", "-q", "f"]);
    b.commit().expect("commit");
    let log = LocationLog::parse(&b.read_committed(&path).expect("read").expect("exists"));
    assert_eq!(log.present().len(), 3, "{log:?}");
    run(&dir, &ga, &["info", "-q"]);

    // A push moves the branch behind git-annex's back (its index is now
    // stale); we commit on top, then git-annex must keep all of it.
    let tip = git(&dir, &["rev-parse", "git-annex"]).trim().to_owned();
    let pushed_tree = {
        let repo = gix::open(&dir).expect("open");
        let tree = repo
            .find_commit(tip.parse::<ObjectId>().expect("sha"))
            .expect("commit")
            .tree_id()
            .expect("tree");
        let mut ed = repo.edit_tree(tree).expect("editor");
        let blob = repo.write_blob(b"1s 1 pushed\n").expect("blob");
        ed.upsert("pushed.log", gix::object::tree::EntryKind::Blob, blob)
            .expect("upsert");
        ed.write().expect("write").to_string()
    };
    let pushed = git(
        &dir,
        &["commit-tree", &pushed_tree, "-p", &tip, "-m", "pushed"],
    )
    .trim()
    .to_owned();
    git(&dir, &["update-ref", "refs/heads/git-annex", &pushed, &tip]);
    b.change_file("ours.log", |_| b"1s 1 ours\n".to_vec())
        .expect("change");
    b.commit().expect("commit");
    run(&dir, &ga, &["setpresentkey", &key, U1, "0"]);
    // setpresentkey only journals; our commit takes its change along.
    b.commit().expect("commit");
    for f in ["pushed.log", "ours.log"] {
        git(&dir, &["cat-file", "-e", &format!("git-annex:{f}")]);
    }
    let log = LocationLog::parse(&b.read_committed(&path).expect("read").expect("exists"));
    assert_eq!(log.present().len(), 2, "{log:?}");
}

#[test]
fn concurrent_with_real_git_annex() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let ga = git_annex_bin();
    let (_t, dir) = new_git_repo(false);
    run(&dir, &ga, &["init", "-q"]);
    let b = Branch::open(&dir).expect("open");
    const THEIRS: usize = 15;
    let key = |i: usize| format!("SHA256E-s{i}--{i:064x}");
    let ours_path = move |i: usize| location_log_path(&format!("{:03x}/ours", i % 7), &key(i));
    let done = Arc::new(AtomicBool::new(false));
    let ours = std::thread::spawn({
        let (b, done) = (b.clone(), done.clone());
        move || {
            let mut i = 0;
            // Keep writing until git-annex has finished, so the two overlap.
            while !done.load(Ordering::SeqCst) || i < 5 {
                b.log_location(&ours_path(i), U1, LogStatus::Present)
                    .expect("log");
                if i % 2 == 0 {
                    b.commit().expect("commit");
                }
                i += 1;
            }
            i
        }
    });
    for i in 0..THEIRS {
        // setpresentkey only journals; merge makes git-annex commit too.
        run(&dir, &ga, &["setpresentkey", &key(i + 1000), U2, "1"]);
        if i % 2 == 1 {
            run(&dir, &ga, &["merge", "-q"]);
        }
    }
    done.store(true, Ordering::SeqCst);
    let n_ours = ours.join().expect("our thread");
    // git-annex reads the branch tip before taking the journal lock, so it
    // may log "recovery from race" commits here (as between two git-annex
    // processes); the checks below are that nothing was lost either way.
    b.commit().expect("final commit");
    for i in 0..n_ours {
        let log = LocationLog::parse(
            &b.read_committed(&ours_path(i))
                .expect("read")
                .unwrap_or_default(),
        );
        assert_eq!(log.present(), vec![U1], "our change {i} of {n_ours} lost");
    }
    let tree = git(&dir, &["ls-tree", "-r", "--name-only", "git-annex"]);
    let theirs = tree
        .lines()
        .filter(|l| l.contains("SHA256E") && !l.contains("/ours/"))
        .count();
    assert_eq!(theirs, THEIRS, "git-annex's changes lost");
    for i in [0, THEIRS - 1] {
        let whereis = run(&dir, &ga, &["whereis", "--key", &key(i + 1000)]);
        assert!(whereis.contains(U2), "{whereis}");
    }
    run(&dir, &ga, &["setpresentkey", &key(5000), U2, "1"]);
    run(&dir, &ga, &["merge", "-q"]);
    let tree = git(&dir, &["ls-tree", "-r", "--name-only", "git-annex"]);
    assert_eq!(
        tree.lines().filter(|l| l.contains("/ours/")).count(),
        n_ours,
        "git-annex dropped ours"
    );
}

/// Loose objects and pack files of a repository, as `git count-objects -v`
/// counts them.
fn object_counts(dir: &Path) -> (usize, usize) {
    let out = git(dir, &["count-objects", "-v"]);
    let field = |name: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .expect("count-objects field")
    };
    (field("count:"), field("packs:"))
}

#[test]
fn a_commit_of_many_keys_is_one_pack_git_reads() {
    let (_t, dir) = new_git_repo(true);
    let b = Branch::open(&dir).expect("open");
    b.create().expect("create");
    let before = object_counts(&dir);
    let paths: Vec<String> = (0..20)
        .map(|i| location_log_path(&format!("{i:03x}/f{i:02x}"), &format!("SHA256E-s{i}--k{i}")))
        .collect();
    for p in &paths {
        b.log_location(p, U1, LogStatus::Present).expect("log");
    }
    b.commit().expect("commit");
    // 20 blobs, 40 trees, the root and the commit: one pack, no loose.
    assert_eq!(object_counts(&dir), (before.0, before.1 + 1));
    git(&dir, &["fsck", "--strict", "--no-dangling"]);
    let shown = git(&dir, &["show", &format!("git-annex:{}", paths[7])]);
    assert!(shown.ends_with(&format!(" 1 {U1}\n")), "{shown}");

    // Read back from the pack, changed, and committed again: a few objects
    // go loose.
    assert_eq!(b.location_log(&paths[7]).expect("read").present(), vec![U1]);
    b.log_location(&paths[7], U1, LogStatus::Missing)
        .expect("log");
    b.commit().expect("commit");
    assert_eq!(object_counts(&dir), (before.0 + 5, before.1 + 1));
    assert!(b
        .location_log(&paths[7])
        .expect("read")
        .present()
        .is_empty());
    git(&dir, &["fsck", "--strict", "--no-dangling"]);
    assert_eq!(
        git(&dir, &["ls-tree", "-r", "--name-only", "git-annex"])
            .lines()
            .count(),
        20
    );
}

#[test]
fn packs_past_gc_auto_pack_limit_are_collected() {
    let (_t, dir) = new_git_repo(true);
    git(&dir, &["config", "gc.autoPackLimit", "2"]);
    git(&dir, &["config", "gc.autoDetach", "false"]);
    let b = Branch::open(&dir).expect("open");
    b.create().expect("create");
    for round in 0..3 {
        for i in 0..20 {
            let p = location_log_path(&format!("{i:03x}/{round:03x}"), &format!("K{round}-{i}"));
            b.log_location(&p, U1, LogStatus::Present).expect("log");
        }
        b.commit().expect("commit");
    }
    // The third pack made three, past the limit: git gc folded them.
    let (_, packs) = object_counts(&dir);
    assert!(packs <= 2, "{packs} packs");
    git(&dir, &["fsck", "--strict", "--no-dangling"]);
    assert_eq!(
        git(&dir, &["ls-tree", "-r", "--name-only", "git-annex"])
            .lines()
            .count(),
        60
    );
}

/// A line owed since an answer (a gateway's, for its node) keeps another
/// session's newer line for the same repository, replaces an older one,
/// and is added where the repository has none.
#[test]
fn lines_as_of_their_answer_keep_newer_ones() {
    let (u2, u3) = (U2, "33333333-3333-4333-8333-333333333333");
    let old = format!("200s 1 {U1}\n100s 1 {u2}\n");
    let at = VectorClock::from_secs(150);
    let uuids = [U1.to_owned(), u2.to_owned(), u3.to_owned()];
    let new = locations_changed_as_of(Some(old.as_bytes()), &uuids, LogStatus::Missing, at)
        .expect("changed");
    let log = LocationLog::parse(&new);
    let line = |u: &str| log.get(u).map(|l| (l.clock, l.status));
    assert_eq!(
        line(U1),
        Some((VectorClock::from_secs(200), LogStatus::Present)),
        "newer kept"
    );
    assert_eq!(line(u2), Some((at, LogStatus::Missing)), "older replaced");
    assert_eq!(line(u3), Some((at, LogStatus::Missing)), "absent added");
    // Nothing older to replace: no change at all.
    let newer_only = format!("200s 1 {U1}\n");
    assert_eq!(
        locations_changed_as_of(
            Some(newer_only.as_bytes()),
            &uuids[..1],
            LogStatus::Missing,
            at
        ),
        None
    );
}
