//! Small PUTs into a file of their own, without transfer lock or info
//! file (`incoming.rs`).

use std::fs;

use super::testutil::names_in;
use super::*;

const HELLO_KEY: &str =
    "SHA256E-s12--a948904f2f0f479b8f8197694b30184b0d2ed1c1cd2a1ec0fb85d299a192a447.dat";
const UUID: &str = "11111111-2222-3333-4444-555555555555";

fn key() -> Key {
    Key::parse(HELLO_KEY).expect("parses")
}

#[test]
fn a_small_put_makes_no_transfer_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = ObjectStore::new(dir.path().to_owned(), true, 0);
    let annex = store.annex_dir();
    let mut inc = store
        .begin_receive(&key(), UUID, Some("f.dat"))
        .expect("begin");
    inc.write_chunk(b"hello ").expect("write");
    let object = store.new_object_path(&key()).expect("path");
    assert!(
        object.parent().expect("key dir").is_dir(),
        "its directories made before the body ends"
    );
    assert!(!annex.join("transfer").exists(), "no lock, no info file");
    assert!(!annex.join("tmp").exists(), "not annex/tmp/<keyfile>");
    let own = inc.tmp_file().to_owned();
    assert!(own.starts_with(annex.join("othertmp")), "{own:?}");
    inc.write_chunk(b"world\n").expect("write");
    let stored = inc.finish(VerifyMode::Valid).expect("stored");
    assert_eq!(stored.checked, Some(Checked::Hash));
    assert_eq!(fs::read(&stored.path).expect("object"), b"hello world\n");
    assert!(!annex.join("transfer").exists());
    assert_eq!(names_in(&annex.join("othertmp")), Vec::<String>::new());
}

#[test]
fn two_receivers_of_a_small_key_both_store_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = ObjectStore::new(dir.path().to_owned(), true, 0);
    let mut one = store.begin_receive(&key(), UUID, None).expect("first");
    let mut two = store
        .begin_receive(&key(), "99999999-2222-3333-4444-555555555555", None)
        .expect("second, at the same time");
    assert_ne!(one.tmp_file(), two.tmp_file());
    for chunk in [&b"hello "[..], &b"world\n"[..]] {
        one.write_chunk(chunk).expect("write one");
        two.write_chunk(chunk).expect("write two");
    }
    let first = one.finish(VerifyMode::Valid).expect("one stored");
    let second = two.finish(VerifyMode::Valid).expect("two stored");
    assert_eq!(first.checked, Some(Checked::Hash));
    // The second finds the content there and keeps that copy.
    assert_eq!((second.path.clone(), second.checked), (first.path, None));
    assert_eq!(fs::read(&second.path).expect("object"), b"hello world\n");
    assert_eq!(
        names_in(&store.annex_dir().join("othertmp")),
        Vec::<String>::new()
    );
}

#[test]
fn a_failed_small_put_leaves_only_its_failure_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = ObjectStore::new(dir.path().to_owned(), true, 0);
    let annex = store.annex_dir();
    let mut inc = store.begin_receive(&key(), UUID, None).expect("begin");
    inc.write_chunk(b"hello_world\n").expect("write");
    assert!(matches!(
        inc.finish(VerifyMode::Valid),
        Err(StoreError::Verification(_))
    ));
    assert!(!store.has(&key()));
    assert_eq!(names_in(&annex.join("othertmp")), Vec::<String>::new());
    assert_eq!(
        names_in(&annex.join("objects")),
        Vec::<String>::new(),
        "the directories made for it are gone"
    );
    assert!(!annex.join("tmp").exists());
    assert_eq!(
        names_in(&annex.join("transfer/failed/download").join(UUID)),
        vec![HELLO_KEY.to_string()]
    );
    // Abandoned before any byte: nothing at all.
    let inc = store.begin_receive(&key(), UUID, None).expect("begin");
    inc.abandon();
    assert_eq!(names_in(&annex.join("othertmp")), Vec::<String>::new());
    assert_eq!(names_in(&annex.join("objects")), Vec::<String>::new());
}

/// Two receivers finishing at once both pass the presence check; the
/// later rename must not replace the earlier object (the earlier one would
/// take it for its own file swapped under it, and remove it).
#[test]
fn a_rename_into_the_store_never_replaces_an_object() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (from, to) = (dir.path().join("from"), dir.path().join("to"));
    fs::write(&from, b"second").expect("from");
    fs::write(&to, b"first").expect("to");
    assert!(!super::fsutil::rename_noreplace(&from, &to).expect("rename"));
    assert_eq!(fs::read(&to).expect("to"), b"first");
    assert_eq!(fs::read(&from).expect("from"), b"second");
    fs::remove_file(&to).expect("rm");
    assert!(super::fsutil::rename_noreplace(&from, &to).expect("rename"));
    assert_eq!(fs::read(&to).expect("to"), b"second");
}
