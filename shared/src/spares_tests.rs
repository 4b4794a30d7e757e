use std::fs;
use std::io::{Read, Seek, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::*;

fn othertmp() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let othertmp = dir.path().join("othertmp");
    fs::create_dir(&othertmp).expect("othertmp");
    (dir, othertmp)
}

fn spares_in(othertmp: &Path) -> Vec<u64> {
    match fs::read_dir(othertmp.join(DIR)) {
        Ok(rd) => rd
            .map(|e| e.expect("entry").metadata().expect("meta").ino())
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// The length of the pool's one spare, which must be inode `ino`.
fn only_spare_len(othertmp: &Path, ino: u64) -> u64 {
    assert_eq!(spares_in(othertmp), vec![ino]);
    let spare = fs::read_dir(othertmp.join(DIR)).expect("pool").next();
    spare
        .expect("a spare")
        .expect("entry")
        .metadata()
        .expect("meta")
        .len()
}

/// A read-only object of `len` bytes at a name of ours, as a removal
/// leaves it.
fn object(othertmp: &Path, name: &str, len: usize) -> (PathBuf, u64) {
    let path = othertmp.join(name);
    fs::write(&path, vec![b'o'; len]).expect("write");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o444)).expect("chmod");
    let ino = fs::metadata(&path).expect("meta").ino();
    (path, ino)
}

#[test]
fn a_given_object_is_emptied_and_taken_again_with_a_new_files_mode() {
    let (_d, othertmp) = othertmp();
    let (path, ino) = object(&othertmp, "removing.1", 3000);
    give(&othertmp, &path).expect("give");
    assert!(!path.exists());
    assert_eq!(only_spare_len(&othertmp, ino), 0, "emptied when given");

    let dest = othertmp.join("put.1.0");
    let mut f = take(&othertmp, &dest, 0o666).expect("a spare");
    let meta = fs::metadata(&dest).expect("dest");
    assert_eq!(meta.ino(), ino, "the same inode");
    assert_eq!(meta.len(), 0);
    assert_eq!(meta.mode() & 0o777, 0o666 & !umask());
    f.write_all(b"new").expect("write");
    f.rewind().expect("rewind");
    let mut back = String::new();
    f.read_to_string(&mut back).expect("read");
    assert_eq!(back, "new");
    assert!(spares_in(&othertmp).is_empty());
}

#[test]
fn a_kept_journal_file_keeps_its_content_until_taken() {
    let (d, othertmp) = othertmp();
    let journal = d.path().join("journal");
    fs::create_dir(&journal).unwrap();
    let file = journal.join("aaa_bbb_K.log");
    fs::write(&file, b"1s 1 uuid\n").unwrap();
    // A reader that opened it before the commit reads what it opened.
    let mut reader = fs::File::open(&file).unwrap();
    keep(&othertmp, &file).expect("keep");
    assert!(!file.exists());
    assert_eq!(spares_in(&othertmp).len(), 1);
    // Taken while that reader has it open: not reused, deleted.
    assert!(take(&othertmp, &othertmp.join("t1"), 0o666).is_none());
    assert!(!othertmp.join("t1").exists());
    let mut read = String::new();
    reader.read_to_string(&mut read).unwrap();
    assert_eq!(read, "1s 1 uuid\n", "the reader's content untouched");
    assert!(spares_in(&othertmp).is_empty());
}

#[test]
fn an_object_someone_reads_is_deleted_not_emptied() {
    let (_d, othertmp) = othertmp();
    let (path, _) = object(&othertmp, "removing.2", 5000);
    let mut sender = fs::File::open(&path).unwrap();
    give(&othertmp, &path).expect("give");
    assert!(!path.exists());
    assert!(spares_in(&othertmp).is_empty(), "not kept");
    let mut all = Vec::new();
    sender.read_to_end(&mut all).unwrap();
    assert_eq!(all.len(), 5000, "a GET in flight still sends it whole");
}

#[test]
fn a_hard_linked_file_is_never_kept() {
    let (d, othertmp) = othertmp();
    let (path, _) = object(&othertmp, "removing.3", 100);
    let worktree = d.path().join("worktree-file");
    fs::hard_link(&path, &worktree).unwrap();
    give(&othertmp, &path).expect("give");
    assert!(!path.exists());
    assert!(spares_in(&othertmp).is_empty());
    assert_eq!(
        fs::read(&worktree).unwrap(),
        vec![b'o'; 100],
        "the other name intact"
    );

    let journal = d.path().join("j");
    fs::write(&journal, b"x").unwrap();
    let link = d.path().join("j2");
    fs::hard_link(&journal, &link).unwrap();
    keep(&othertmp, &journal).expect("keep");
    assert!(spares_in(&othertmp).is_empty());
    assert_eq!(fs::read(&link).unwrap(), b"x");
}

#[test]
fn a_big_file_is_deleted() {
    let (_d, othertmp) = othertmp();
    let (path, _) = object(&othertmp, "removing.4", MAX_GIVEN as usize + 1);
    give(&othertmp, &path).expect("give");
    assert!(!path.exists());
    assert!(spares_in(&othertmp).is_empty());
}

#[test]
fn what_is_planted_in_the_pool_is_never_written_through() {
    let (d, othertmp) = othertmp();
    let pool = othertmp.join(DIR);
    fs::create_dir(&pool).unwrap();
    let victim = d.path().join("victim");
    fs::write(&victim, b"precious").unwrap();
    std::os::unix::fs::symlink(&victim, pool.join("7")).unwrap();
    let other = d.path().join("other-name");
    fs::write(&other, b"linked").unwrap();
    fs::hard_link(&other, pool.join("8")).unwrap();
    fs::create_dir(pool.join("9")).unwrap();
    let dest = othertmp.join("put.9.0");
    assert!(take(&othertmp, &dest, 0o666).is_none());
    assert_eq!(fs::read(&victim).unwrap(), b"precious");
    assert_eq!(fs::read(&other).unwrap(), b"linked");
    assert!(!dest.exists());
}

#[test]
fn the_pool_is_bounded() {
    let (_d, othertmp) = othertmp();
    for i in 0..SLOTS + 200 {
        let path = othertmp.join(format!("f{i}"));
        fs::write(&path, b"").unwrap();
        give(&othertmp, &path).expect("give");
        assert!(!path.exists());
    }
    let n = spares_in(&othertmp).len() as u64;
    assert!(n <= SLOTS, "{n} spares");
    assert!(n > SLOTS / 2, "{n} spares");
}

#[test]
fn an_empty_or_missing_pool_gives_nothing() {
    let (_d, othertmp) = othertmp();
    assert!(take(&othertmp, &othertmp.join("a"), 0o666).is_none());
    fs::create_dir(othertmp.join(DIR)).unwrap();
    assert!(take(&othertmp, &othertmp.join("b"), 0o666).is_none());
    keep(&othertmp, &othertmp.join("missing")).expect("nothing to keep");
}

#[test]
fn a_destination_that_cannot_be_made_ends_the_search() {
    let (_d, othertmp) = othertmp();
    let (path, ino) = object(&othertmp, "removing.5", 10);
    give(&othertmp, &path).expect("give");
    // No such directory: the spare stays for later, nothing loops.
    assert!(take(&othertmp, &othertmp.join("missing/dest"), 0o666).is_none());
    assert_eq!(spares_in(&othertmp), vec![ino]);
}

/// The next process puts a dead one's `removing.` file back in the store:
/// an object must never be emptied under that name, only once it is in
/// the pool (a watch on `othertmp`, not on the pool, sees no change to it).
#[test]
fn an_object_is_emptied_only_once_in_the_pool() {
    use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
    let (_d, othertmp) = othertmp();
    fs::create_dir(othertmp.join(DIR)).unwrap();
    let (path, ino) = object(&othertmp, "removing.77.0.aaa.bbb.KEY", 2000);
    let watch = Inotify::init(InitFlags::IN_NONBLOCK).expect("inotify");
    watch
        .add_watch(&othertmp, AddWatchFlags::IN_MODIFY)
        .expect("watch");
    give(&othertmp, &path).expect("give");
    let changed: Vec<String> = watch
        .read_events()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|e| e.name)
        .map(|n| n.to_string_lossy().into_owned())
        .collect();
    assert!(
        !changed.iter().any(|n| n.starts_with("removing.")),
        "{changed:?}"
    );
    assert_eq!(only_spare_len(&othertmp, ino), 0);
}
