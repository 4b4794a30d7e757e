//! Trees a client crafts and pushes to the proxy, whose post-receive
//! hook exports them into a directory remote: `git receive-pack` does
//! not fsck what it is sent, so a tree may hold names git itself never
//! writes. None may make the export write outside its place, lose what
//! it holds, or say it is complete when it is not.

use std::path::Path;

use annexproxy_tests::TestEnv;

use super::export::{add_git_file, directory_export_with};
use super::world::*;

/// A directory remote `d` (`exporttree=yes annexobjects=yes`) tracking
/// `main`, with the proxy's hook installed.
fn directory_export() -> World {
    directory_export_with(&["exporttree=yes", "annexobjects=yes"])
}

/// `script` run by `sh` in the client (git's plumbing, as an attacker
/// runs it); its trimmed output.
fn sh(env: &TestEnv, client: &Path, script: &str) -> String {
    let mut cmd = env.client_command("sh");
    cmd.args(["-c", script]);
    let out = annexproxy_tests::run::run(cmd, client).ok();
    out.stdout.trim().to_owned()
}

/// `main` set to a commit of the tree `git mktree` makes of `entries`
/// (printf format: `\t`, `\377`…) added to HEAD's, and pushed.
fn push_crafted(env: &TestEnv, client: &Path, entries: &str) {
    let root = sh(
        env,
        client,
        &format!("(git ls-tree HEAD; printf '{entries}') | git mktree"),
    );
    let commit = sh(
        env,
        client,
        &format!("git commit-tree {root} -p HEAD -m crafted"),
    );
    env.git(client, &["update-ref", "refs/heads/main", &commit])
        .ok();
    env.git(client, &["push", "-q", "origin", "main"]).ok();
    env.wait_server_idle();
}

fn read(wd: &World, file: &str) -> Vec<u8> {
    std::fs::read(wd.store.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// A file named as the update's own temporary name for a key
/// (`.git-annex-tmp-content-<key>`) is not exported: when that key's
/// file moves, the update renames it through that name, which would
/// overwrite the tree's file, and then take it for exported.
#[test]
fn a_file_named_as_the_updates_temporary_is_not_exported() {
    let wd = directory_export();
    let (env, client) = (&wd.env, &wd.client);
    env.add_file(client, "a.txt", b"content that moves\n");
    let key = env.key_of(client, "a.txt");
    let tmp = format!(".git-annex-tmp-content-{key}");
    add_git_file(env, client, &tmp, "in the way\n");
    env.annex(client, &["push"]).ok();
    env.wait_server_idle();
    assert_eq!(held(&wd), ["a.txt"]);
    env.git(client, &["mv", "a.txt", "b.txt"]).ok();
    env.git(client, &["commit", "-q", "-m", "mv"]).ok();
    env.annex(client, &["push"]).ok();
    env.wait_server_idle();
    assert_eq!(held(&wd), ["b.txt"]);
    assert_eq!(read(&wd, "b.txt"), b"content that moves\n");
    server_fsck_from_d(&wd);
}

/// Names that are not UTF-8 are not exported: two of them differing in
/// such bytes must not land on one file (the one taken for the other).
#[test]
fn names_that_are_not_utf8_are_not_exported() {
    let wd = directory_export();
    let (env, client) = (&wd.env, &wd.client);
    add_git_file(env, client, "ok.txt", "fine\n");
    let one = sh(env, client, "echo one | git hash-object -w --stdin");
    let two = sh(env, client, "echo two | git hash-object -w --stdin");
    push_crafted(
        env,
        client,
        &format!("100644 blob {one}\\tn\\376.txt\\n100644 blob {two}\\tn\\377.txt\\n"),
    );
    assert_eq!(held(&wd), ["ok.txt"]);
}

/// Names git never writes (`..` and `.` as directories, a `\\`), pushed
/// unchecked, and a directory the remote holds as a symlink (planted:
/// the export writes no symlink, it leaves unmanaged ones out) lead
/// nowhere outside the directory: such paths are not exported, or fail
/// and leave the export incomplete.
#[test]
fn crafted_names_and_planted_symlinks_stay_in_the_directory() {
    let wd = directory_export();
    let (env, client) = (&wd.env, &wd.client);
    add_git_file(env, client, "ok.txt", "fine\n");
    env.annex(client, &["push"]).ok();
    env.wait_server_idle();
    let outside = env.srv.join("outside");
    std::fs::create_dir_all(&outside).expect("mkdir");
    std::os::unix::fs::symlink(&outside, wd.store.join("link")).expect("symlink");
    let blob = sh(env, client, "echo evil | git hash-object -w --stdin");
    let sub = sh(
        env,
        client,
        &format!("printf '100644 blob {blob}\\tescape\\n' | git mktree"),
    );
    push_crafted(
        env,
        client,
        &format!(
            "040000 tree {sub}\\t..\\n040000 tree {sub}\\t.\\n040000 tree {sub}\\tlink\\n\
             100644 blob {blob}\\tback\\\\slash\\n"
        ),
    );
    let main = env.git(client, &["rev-parse", "main"]).ok().stdout;
    let theirs = env.oracle(&wd.proxy, &["rev-parse", "main"]).ok().stdout;
    assert_eq!(theirs, main, "the crafted push was taken");
    assert_eq!(std::fs::read_dir(&outside).expect("outside").count(), 0);
    let parent = wd.store.parent().expect("store's parent");
    assert!(!parent.join("escape").exists() && !wd.store.join("escape").exists());
    let mut held = held(&wd);
    held.retain(|f| f != "link");
    assert_eq!(held, ["back\\slash", "ok.txt"]);
    let tracking = env.oracle(&wd.proxy, &["rev-parse", "refs/remotes/d/main"]);
    assert_ne!(tracking.stdout, main, "not complete");
}

/// A pointer file naming a `GIT--<sha>` key (which git-annex writes for
/// no file) is an annexed key's, as git-annex takes it: the proxy has no
/// such content, so the file is missing from the export, which stays
/// incomplete; it is not the blob that sha names (any blob of the
/// proxy's repository, by its sha).
#[test]
fn a_pointer_naming_a_git_key_exports_no_blob() {
    let wd = directory_export();
    let (env, client) = (&wd.env, &wd.client);
    add_git_file(env, client, "old.txt", "a blob of the repository\n");
    env.annex(client, &["push"]).ok();
    let sha = sh(env, client, "git rev-parse HEAD:old.txt");
    env.git(client, &["rm", "-q", "old.txt"]).ok();
    add_git_file(env, client, "ok.txt", "fine\n");
    env.annex(client, &["push"]).ok();
    env.wait_server_idle();
    assert_eq!(held(&wd), ["ok.txt"]);
    let pointer = sh(
        env,
        client,
        &format!("printf '/annex/objects/GIT--{sha}\\n' | git hash-object -w --stdin"),
    );
    push_crafted(env, client, &format!("100644 blob {pointer}\\tp.txt\\n"));
    assert_eq!(held(&wd), ["ok.txt"]);
    let tracking = env.oracle(&wd.proxy, &["rev-parse", "refs/remotes/d/main"]);
    let main = env.git(client, &["rev-parse", "main"]).ok().stdout;
    assert_ne!(tracking.stdout.trim(), main.trim(), "not complete");
}

/// S3 object names are the tree's paths byte for byte under
/// `fileprefix`: URL-special characters (`?`, `#`, `%`, `+`, `&`,
/// spaces) and non-ASCII letters reach the bucket as themselves; real
/// git-annex in the proxy (in a UTF-8 locale) finds them (`fsck --from
/// d`), and its own export of the same tree names no other object.
#[test]
fn s3_object_names_are_the_paths_as_git_annex_names_them() {
    let wd = super::export::export_world(Setup::Ours);
    let (env, client) = (&wd.env, &wd.client);
    let names = [
        "q?.txt",
        "h#.txt",
        "p%20.txt",
        "s p.txt",
        "u\u{fc}.txt",
        "plus+.txt",
        "sp ace/\u{e9}+x&y=z.txt",
    ];
    std::fs::create_dir_all(client.join("sp ace")).expect("mkdir");
    for (i, n) in names.iter().enumerate() {
        // Named by `git mv`: a destination is no pathspec, where `?` globs.
        let t = format!("t{i}");
        if i % 2 == 0 {
            env.add_file(client, &t, format!("content {i}\n").as_bytes());
        } else {
            add_git_file(env, client, &t, &format!("content {i}\n"));
        }
        env.git(client, &["mv", &t, n]).ok();
    }
    env.git(client, &["commit", "-q", "-m", "odd names"]).ok();
    env.annex(client, &["push"]).ok();
    env.wait_server_idle();
    let mut want = names.to_vec();
    want.sort();
    assert_eq!(super::export::tree_objects(&wd), want);
    assert_eq!(
        super::export::object(&wd, "sp%20ace/%C3%A9%2Bx%26y%3Dz.txt"),
        "content 6\n"
    );
    assert_eq!(super::export::object(&wd, "q%3F.txt"), "content 0\n");
    let real = [
        ("AWS_ACCESS_KEY_ID", testkit::moto::ACCESS_KEY_ID),
        ("AWS_SECRET_ACCESS_KEY", testkit::moto::SECRET_ACCESS_KEY),
        ("LC_ALL", "C.UTF-8"),
    ];
    let fsck = env.oracle_annex_with(&wd.proxy, &["fsck", "--from", "d", "--all"], &real);
    assert!(fsck.success() && !fsck.all().contains("failed"), "{fsck}");
    env.oracle_annex_with(&wd.proxy, &["export", "main", "--to", "d"], &real)
        .ok();
    assert_eq!(super::export::tree_objects(&wd), want);
    env.annex(client, &["drop", "--force", names[2]]).ok();
    env.annex(client, &["get", "--from", "origin-d", names[2]])
        .ok();
}

/// What the directory holds beside the export (an operator's files, an
/// empty directory) stays through files added, moved and removed, and
/// the directories the export empties go, as git-annex removes them.
#[test]
fn the_directorys_other_content_is_never_removed() {
    let wd = directory_export();
    let (env, client) = (&wd.env, &wd.client);
    std::fs::create_dir_all(wd.store.join("notes/empty")).expect("mkdir");
    std::fs::write(wd.store.join("notes/keep.txt"), "the operator's\n").expect("write");
    std::fs::create_dir_all(client.join("notes")).expect("mkdir");
    env.add_file(client, "notes/a.txt", b"exported beside\n");
    env.add_file(client, "x", b"a file where a directory comes\n");
    env.annex(client, &["push"]).ok();
    env.wait_server_idle();
    env.git(client, &["mv", "x", "moved"]).ok();
    env.git(client, &["mv", "notes/a.txt", "x"]).ok();
    env.git(client, &["commit", "-q", "-m", "mv"]).ok();
    env.annex(client, &["push"]).ok();
    env.wait_server_idle();
    assert_eq!(read(&wd, "x"), b"exported beside\n");
    assert_eq!(read(&wd, "moved"), b"a file where a directory comes\n");
    env.git(client, &["rm", "-q", "x"]).ok();
    std::fs::create_dir_all(client.join("x")).expect("mkdir");
    env.add_file(client, "x/y", b"a directory where a file was\n");
    env.annex(client, &["push"]).ok();
    env.wait_server_idle();
    assert_eq!(read(&wd, "x/y"), b"a directory where a file was\n");
    assert_eq!(read(&wd, "notes/keep.txt"), b"the operator's\n");
    assert!(wd.store.join("notes/empty").is_dir());
    let tracking = env.oracle(&wd.proxy, &["rev-parse", "refs/remotes/d/main"]);
    let main = env.git(client, &["rev-parse", "main"]).ok().stdout;
    assert_eq!(tracking.stdout.trim(), main.trim(), "complete");
}
