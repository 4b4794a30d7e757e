//! Removal without a lock file (`removal.rs`), in scratch directories.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

use super::testutil::names_in;
use super::*;

fn scratch() -> (tempfile::TempDir, ObjectStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = ObjectStore::new(dir.path().to_owned(), true, 0);
    (dir, store)
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p).expect("stat").permissions().mode() & 0o777
}

/// Stores `content` under its SHA256E key with extension `ext`, as a PUT
/// would.
fn store_object(store: &ObjectStore, content: &[u8], ext: &str) -> (Key, PathBuf) {
    use sha2::Digest;
    let key = format!(
        "SHA256E-s{}--{}{ext}",
        content.len(),
        hex::encode(sha2::Sha256::digest(content))
    );
    store_key(store, &key, content)
}

fn store_key(store: &ObjectStore, key: &str, content: &[u8]) -> (Key, PathBuf) {
    let key = Key::parse(key).expect("key");
    let mut inc = store
        .begin_receive(&key, "11111111-2222-3333-4444-555555555555", None)
        .expect("begin");
    inc.write_chunk(content).expect("write");
    let path = inc.finish(VerifyMode::Valid).expect("stored").path;
    (key, path)
}

fn side(object: &Path, suffix: &str) -> PathBuf {
    let mut s = object.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn othertmp(store: &ObjectStore) -> Vec<String> {
    names_in(&store.annex_dir().join("othertmp"))
}

/// Whether removing `key` created a file in its key directory.
fn removal_creates(store: &ObjectStore, key: &Key, object: &Path) -> Vec<String> {
    let watch = Inotify::init(InitFlags::IN_NONBLOCK).expect("inotify");
    watch
        .add_watch(object.parent().expect("dir"), AddWatchFlags::IN_CREATE)
        .expect("watch");
    assert_eq!(
        store.remove(key, || true).expect("remove"),
        RemoveOutcome::Removed
    );
    let mut names = Vec::new();
    while let Ok(events) = watch.read_events() {
        if events.is_empty() {
            break;
        }
        names.extend(
            events
                .into_iter()
                .filter_map(|e| e.name)
                .map(|n| n.to_string_lossy().into_owned()),
        );
    }
    names
}

#[test]
fn no_lock_file_unless_the_name_would_be_too_long() {
    let (_d, store) = scratch();
    let (key, object) = store_object(&store, b"short\n", ".txt");
    let first_inode = std::os::unix::fs::MetadataExt::ino(&fs::metadata(&object).expect("object"));
    assert_eq!(removal_creates(&store, &key, &object), Vec::<String>::new());
    assert!(!store.has(&key));
    // A key file of 240 bytes fits a lock file's name but not the
    // `removing.` name: removed the old way, under a lock file.
    let name = format!("WORM-s5-m1--{}", "n".repeat(240 - 12));
    let (key, object) = store_key(&store, &name, b"long\n");
    assert_eq!(key.key_file().len(), 240);
    // The first object's inode, emptied and kept, became this one.
    assert_eq!(
        std::os::unix::fs::MetadataExt::ino(&fs::metadata(&object).expect("object")),
        first_inode
    );
    let lck = side(&object, ".lck");
    let lck_name = lck.file_name().expect("name").to_string_lossy();
    assert_eq!(
        removal_creates(&store, &key, &object),
        vec![lck_name.into_owned()]
    );
    assert!(!store.has(&key) && !lck.exists());
    // Directories go after the answer, before the process ends.
    super::discard::finish();
    // Only the (now empty) pool of spare inodes is left.
    assert_eq!(othertmp(&store), vec!["spare".to_string()]);
    assert_eq!(
        names_in(&store.annex_dir().join("othertmp/spare")),
        Vec::<String>::new()
    );
    assert!(!store
        .annex_dir()
        .join("objects")
        .read_dir()
        .expect("objects")
        .any(|_| true));
}

#[test]
fn a_lock_held_puts_the_object_back_as_it_was() {
    let (_d, store) = scratch();
    let (key, object) = store_object(&store, b"held\n", ".txt");
    let dir = object.parent().expect("dir").to_owned();
    let lock = store.lock_content(&key).expect("lock").expect("present");
    // Without its retention time only the fcntl lock refuses the removal.
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).expect("thaw");
    fs::remove_file(side(&object, ".rtm")).expect("rtm");
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o555)).expect("freeze");
    let (object_mode, dir_mode) = (mode(&object), mode(&dir));
    assert_eq!(
        store.remove(&key, || true).expect("remove"),
        RemoveOutcome::Locked
    );
    assert_eq!(fs::read(&object).expect("object"), b"held\n");
    assert_eq!((mode(&object), mode(&dir)), (object_mode, dir_mode));
    assert!(othertmp(&store).iter().all(|n| !n.starts_with("removing.")));
    drop(lock);
    assert_eq!(
        store.remove(&key, || true).expect("remove"),
        RemoveOutcome::Removed
    );
}

/// A large object's removal leaves only a `dropped.` name behind for the
/// worker, never a `removing.` one that a sweep would put back.
#[test]
fn a_large_removal_hands_a_dropped_name_to_the_worker() {
    let (_d, store) = scratch();
    let big = vec![7u8; discard::SET_ASIDE_FROM as usize];
    let (key, object) = store_object(&store, &big, ".bin");
    assert_eq!(removal_creates(&store, &key, &object), Vec::<String>::new());
    assert!(othertmp(&store).iter().all(|n| !n.starts_with("removing.")));
    discard::finish();
    assert!(othertmp(&store).is_empty(), "{:?}", othertmp(&store));
}

#[test]
fn a_leftover_goes_back_even_where_its_directories_went() {
    let (_d, store) = scratch();
    let (key, object) = store_object(&store, b"left\n", ".txt");
    let object_mode = mode(&object);
    let mut child = std::process::Command::new("true").spawn().expect("true");
    let dead = child.id();
    child.wait().expect("wait");
    let rel: Vec<String> = object
        .strip_prefix(store.annex_dir().join("objects"))
        .expect("in store")
        .iter()
        .map(|c| c.to_string_lossy().into_owned())
        .collect();
    let tmp = store.annex_dir().join("othertmp");
    fs::create_dir_all(&tmp).expect("othertmp");
    let aside = tmp.join(format!(
        "removing.{dead}.3.{}.{}.{}",
        rel[0], rel[1], rel[2]
    ));
    // A name that would lead out of the store is left alone.
    let hostile = tmp.join(format!("removing.{dead}.4.x.y.."));
    fs::write(&hostile, b"x").expect("hostile");
    let dir = object.parent().expect("dir").to_owned();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).expect("thaw");
    fs::rename(&object, &aside).expect("aside");
    // git-annex removes empty object directories when it unlocks.
    fs::remove_dir(&dir).expect("key dir");
    let (other, _) = store_object(&store, b"other\n", ".dat");
    assert_eq!(
        store.remove(&other, || true).expect("remove"),
        RemoveOutcome::Removed
    );
    assert_eq!(fs::read(&object).expect("back"), b"left\n");
    assert_eq!(mode(&object), object_mode);
    assert_eq!(mode(&dir) & 0o222, 0, "key dir frozen");
    assert!(store.has(&key));
    assert!(!aside.exists() && hostile.exists());
}
