use super::*;

use tokio::io::AsyncReadExt;

const KEY: &str = "SHA256E-s2500--51fc06835b7175813d12dc92865b12f5d6186f22c412e38cfcaba19b7c23524a";

fn key() -> Key {
    Key::parse(KEY).expect("key parses")
}

fn storage() -> (tempfile::TempDir, Directory) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = Directory::new("d", tmp.path().join("store"));
    fs::create_dir(dir.root()).expect("store");
    (tmp, dir)
}

async fn read_all(dir: &Directory, name: &Key, offset: u64) -> Vec<u8> {
    let mut out = Vec::new();
    let mut r = dir.read(name, offset).await.expect("read");
    r.read_to_end(&mut out).await.expect("read");
    out
}

#[tokio::test]
async fn committed_object_is_where_git_annex_puts_it() {
    let (_t, dir) = storage();
    let ck = key().chunk(1024, 2);
    let mut w = dir.begin_write(&ck, None).await.expect("begin");
    w.write(b"hello ").await.expect("write");
    w.write(b"world").await.expect("write");
    // Staged, not visible.
    assert_eq!(dir.stat(&ck).await.expect("stat"), None);
    w.commit().await.expect("commit");
    let file = ck.key_file();
    let path = dir.root().join("455/bf7").join(&file).join(&file);
    assert_eq!(fs::read(&path).expect("object"), b"hello world");
    assert_eq!(dir.stat(&ck).await.expect("stat"), Some(11));
    assert_eq!(read_all(&dir, &ck, 6).await, b"world");
    // Read-only, as git-annex leaves it; nothing left in tmp/.
    let mode = fs::metadata(&path).expect("meta").permissions().mode();
    assert_eq!(mode & 0o222, 0);
    assert_eq!(
        fs::read_dir(dir.root().join("tmp")).expect("tmp").count(),
        0
    );
    // Removal takes the object and the emptied hash directories.
    dir.remove(&ck).await.expect("remove");
    assert_eq!(dir.stat(&ck).await.expect("stat"), None);
    assert!(!dir.root().join("455").exists());
    dir.remove(&ck).await.expect("absent is removed already");
}

#[tokio::test]
async fn interrupted_write_is_resumed_and_abort_leaves_nothing() {
    let (_t, dir) = storage();
    let k = key();
    let mut w = dir.begin_write(&k, Some(2500)).await.expect("begin");
    w.write(b"0123456789").await.expect("write");
    drop(w);
    let mut w = dir.begin_write(&k, Some(2500)).await.expect("again");
    assert_eq!(w.staged(), 10);
    let mut staged = Vec::new();
    let mut r = w.read_staged().await.expect("read").expect("readable");
    r.read_to_end(&mut staged).await.expect("read");
    assert_eq!(staged, b"0123456789");
    w.write(b"abc").await.expect("write");
    w.abort().await.expect("abort");
    let w = dir.begin_write(&k, Some(2500)).await.expect("fresh");
    assert_eq!(w.staged(), 0);
}

#[tokio::test]
async fn one_writer_per_object() {
    let (_t, dir) = storage();
    let k = key();
    let first = dir.begin_write(&k, None).await.expect("begin");
    let second = dir.begin_write(&k, None).await;
    assert!(
        matches!(second, Err(StorageError::Busy { .. })),
        "{:?}",
        second.err()
    );
    drop(first);
    dir.begin_write(&k, None).await.expect("free again");
}

#[tokio::test]
async fn missing_directory_is_not_an_absent_object() {
    let (_t, dir) = storage();
    fs::remove_dir(dir.root()).expect("rmdir");
    assert!(matches!(
        dir.stat(&key()).await,
        Err(StorageError::Unavailable { .. })
    ));
    assert!(dir.remove(&key()).await.is_err());
}

#[tokio::test]
async fn object_in_the_old_mixed_case_directory_is_found() {
    let (_t, dir) = storage();
    let k = key();
    let file = k.key_file();
    let old = dir.root().join(k.hash_dir_mixed()).join(&file);
    fs::create_dir_all(&old).expect("mkdir");
    fs::write(old.join(&file), b"old layout").expect("write");
    assert_eq!(dir.stat(&k).await.expect("stat"), Some(10));
    assert_eq!(read_all(&dir, &k, 4).await, b"layout");
}

#[tokio::test]
async fn room_is_checked_against_the_reserve() {
    let (_t, dir) = storage();
    dir.room_for(1).await.expect("room for a byte");
    let dir = dir.with_reserve(u64::MAX / 2);
    assert!(matches!(
        dir.room_for(1).await,
        Err(StorageError::NoSpace { .. })
    ));
}
