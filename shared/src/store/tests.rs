//! Store behaviour in scratch directories (no git-annex needed).

use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::*;
use crate::clock::PosixTime;

const HELLO_KEY: &str =
    "SHA256E-s12--a948904f2f0f479b8f8197694b30184b0d2ed1c1cd2a1ec0fb85d299a192a447.dat";
const UUID: &str = "11111111-2222-3333-4444-555555555555";

fn key() -> Key {
    Key::parse(HELLO_KEY).expect("parses")
}

/// A key too large for the unlocked small PUT: received under the
/// transfer lock into `annex/tmp`.
fn big_key() -> Key {
    let size = incoming::UNLOCKED_PUT_UP_TO + 1;
    Key::parse(&format!("SHA256E-s{size}--{}.bin", "ab".repeat(32))).expect("parses")
}

fn scratch(bare: bool) -> (tempfile::TempDir, ObjectStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = ObjectStore::new(dir.path().to_owned(), bare, 0);
    (dir, store)
}

fn store_hello(store: &ObjectStore) -> Stored {
    let mut inc = store
        .begin_receive(&key(), UUID, Some("sub/f.dat"))
        .expect("begin");
    inc.write_chunk(b"hello ").expect("write");
    inc.write_chunk(b"world\n").expect("write");
    inc.finish(VerifyMode::Valid).expect("stored")
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p).expect("stat").permissions().mode() & 0o777
}

fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).expect("under").display().to_string());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn layouts_in_git_annex_order() {
    let (_d, nonbare) = scratch(false);
    let [first, second] = nonbare.candidate_paths(&key()).expect("paths");
    assert!(first.ends_with(format!("annex/objects/58/J2/{HELLO_KEY}/{HELLO_KEY}")));
    assert!(second.to_string_lossy().contains(&key().hash_dir_lower()));
    let (_d, bare) = scratch(true);
    let [first, _] = bare.candidate_paths(&key()).expect("paths");
    assert!(first.to_string_lossy().contains(&key().hash_dir_lower()));
}

#[test]
fn content_found_in_either_layout() {
    let (_d, store) = scratch(false);
    assert!(!store.has(&key()));
    let [_, lower] = store.candidate_paths(&key()).expect("paths");
    fs::create_dir_all(lower.parent().expect("dir")).expect("mkdir");
    fs::write(&lower, b"hello world\n").expect("write");
    assert_eq!(store.content_path(&key()), Some(lower.clone()));
    let (mut f, size) = store.open_content(&key()).expect("open").expect("present");
    let mut s = String::new();
    f.read_to_string(&mut s).expect("read");
    assert_eq!((s.as_str(), size), ("hello world\n", 12));
    // A receive of a key already present keeps the copy that is there.
    let stored = store_hello(&store);
    assert_eq!(
        stored,
        Stored {
            path: lower,
            checked: None
        }
    );
}

#[test]
fn receive_stores_frozen_and_cleans_up() {
    let (dir, store) = scratch(false);
    let stored = store_hello(&store);
    assert_eq!(stored.checked, Some(Checked::Hash));
    assert_eq!(Some(stored.path.clone()), store.content_path(&key()));
    assert_eq!(fs::read(&stored.path).expect("read"), b"hello world\n");
    assert_eq!(mode(&stored.path) & 0o222, 0, "object not writable");
    assert_eq!(
        mode(stored.path.parent().expect("keydir")) & 0o222,
        0,
        "key dir frozen"
    );
    assert_eq!(
        mode(
            stored
                .path
                .parent()
                .and_then(Path::parent)
                .expect("hashdir")
        ) & 0o200,
        0o200
    );
    // Only the object remains: no tmp, no transfer info, no locks (but
    // the lock file of othertmp, which stays, as git-annex's does).
    assert_eq!(
        files_under(dir.path()),
        vec![
            format!("annex/objects/58/J2/{HELLO_KEY}/{HELLO_KEY}"),
            "annex/othertmp.lck".to_string()
        ]
    );
}

#[test]
fn transfer_info_while_receiving() {
    let (dir, store) = scratch(false);
    let inc = store
        .begin_receive(&big_key(), UUID, Some("sub/f.dat"))
        .expect("begin");
    let kf = big_key().key_file();
    let info = fs::read_to_string(inc.record_info_path()).expect("info");
    let (time, rest) = info.split_once('\n').expect("two lines");
    assert!(PosixTime::parse(time).is_some(), "{time:?}");
    assert!(time.ends_with('s'));
    assert_eq!(rest, "sub/f.dat\n");
    let t = dir.path().join("annex/transfer/download");
    assert!(t.join(format!("lck/lck.{kf}")).exists());
    // Not the per-UUID lock of git-annex 10.20240227 and older (see
    // `transfer`): one file less created and deleted per received key.
    assert!(!t.join(format!("{UUID}/lck.{kf}")).exists());
    drop(inc);
    assert!(!t.join(format!("{UUID}/{kf}")).exists());
    assert!(!t.join(format!("lck/lck.{kf}")).exists());
    let failed = dir
        .path()
        .join(format!("annex/transfer/failed/download/{UUID}/{kf}"));
    assert!(fs::read_to_string(failed)
        .expect("failed record")
        .ends_with("\nsub/f.dat\n"));
}

#[test]
fn second_receiver_of_a_key_is_refused() {
    let (_d, store) = scratch(false);
    let first = store.begin_receive(&big_key(), UUID, None).expect("begin");
    let other_uuid = "99999999-2222-3333-4444-555555555555";
    assert!(matches!(
        store.begin_receive(&big_key(), other_uuid, None),
        Err(StoreError::TransferInProgress)
    ));
    drop(first);
    assert!(store.begin_receive(&big_key(), other_uuid, None).is_ok());
}

#[test]
fn interrupted_receive_resumes_and_verifies_whole_file() {
    let (dir, store) = scratch(false);
    let mut inc = store.begin_receive(&key(), UUID, None).expect("begin");
    assert_eq!(inc.offset(), 0);
    inc.write_chunk(b"hello").expect("write");
    drop(inc);
    let tmp = store.tmp_path(&key()).expect("tmp");
    assert_eq!(fs::read(&tmp).expect("partial kept"), b"hello");
    let mut inc = store
        .begin_receive(&key(), UUID, None)
        .expect("begin again");
    assert_eq!(inc.offset(), 5);
    inc.write_chunk(b" world\n").expect("write");
    let stored = inc.finish(VerifyMode::Valid).expect("stored");
    assert_eq!(stored.checked, Some(Checked::Hash));
    // Success clears the earlier failure record.
    assert!(!dir
        .path()
        .join(format!("annex/transfer/failed/download/{UUID}/{HELLO_KEY}"))
        .exists());
}

#[test]
fn corrupt_partial_fails_verification_and_is_deleted() {
    let (_d, store) = scratch(false);
    let tmp = store.tmp_path(&key()).expect("tmp");
    fs::create_dir_all(tmp.parent().expect("dir")).expect("mkdir");
    fs::write(&tmp, b"HELLO").expect("write");
    let mut inc = store.begin_receive(&key(), UUID, None).expect("begin");
    assert_eq!(inc.offset(), 5);
    inc.write_chunk(b" world\n").expect("write");
    let err = inc.finish(VerifyMode::Valid).expect_err("must not verify");
    assert!(
        matches!(err, StoreError::Verification(Mismatch::Hash { .. })),
        "{err}"
    );
    assert!(!tmp.exists());
    assert!(!store.has(&key()));
}

#[test]
fn verify_modes() {
    // Corrupt data is rejected whatever the sender claimed...
    for mode in [VerifyMode::Valid, VerifyMode::Invalid, VerifyMode::Unknown] {
        let (_d, store) = scratch(false);
        let mut inc = store.begin_receive(&key(), UUID, None).expect("begin");
        inc.write_chunk(b"hello_world\n").expect("write");
        assert!(
            matches!(inc.finish(mode), Err(StoreError::Verification(_))),
            "{mode:?}"
        );
        assert!(!store.has(&key()));
    }
    // ...except that annex.verify=false checks only the size.
    let (_d, store) = scratch(false);
    let mut inc = store.begin_receive(&key(), UUID, None).expect("begin");
    inc.write_chunk(b"hello_world\n").expect("write");
    assert_eq!(
        inc.finish(VerifyMode::SizeOnly).expect("stored").checked,
        Some(Checked::SizeOnly)
    );
    // Wrong size fails even then.
    let (_d, store) = scratch(false);
    let mut inc = store.begin_receive(&key(), UUID, None).expect("begin");
    inc.write_chunk(b"hello").expect("write");
    assert!(matches!(
        inc.finish(VerifyMode::SizeOnly),
        Err(StoreError::Verification(Mismatch::Size { .. }))
    ));
}

#[test]
fn invalid_with_no_bytes_means_no_content_and_keeps_partial() {
    let (_d, store) = scratch(false);
    let mut inc = store.begin_receive(&key(), UUID, None).expect("begin");
    inc.write_chunk(b"hello").expect("write");
    drop(inc);
    let inc = store.begin_receive(&key(), UUID, None).expect("begin");
    assert!(matches!(
        inc.finish(VerifyMode::Invalid),
        Err(StoreError::NoContentSent)
    ));
    assert_eq!(
        fs::read(store.tmp_path(&key()).expect("tmp")).expect("kept"),
        b"hello"
    );
}

#[test]
fn disk_reserve_is_enforced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = ObjectStore::new(dir.path().to_owned(), false, u64::MAX / 2);
    fs::create_dir_all(store.annex_dir()).expect("mkdir");
    match store.begin_receive(&key(), UUID, None) {
        Err(StoreError::NotEnoughSpace { need }) => assert!(need > 0),
        other => panic!(
            "expected NotEnoughSpace, got {:?}",
            other.map(|i| i.offset())
        ),
    }
    // The refusal released the transfer lock.
    let ok = ObjectStore::new(dir.path().to_owned(), false, 0);
    assert!(ok.begin_receive(&key(), UUID, None).is_ok());
}

#[test]
fn hostile_names_never_escape() {
    let (dir, store) = scratch(false);
    for uuid in ["..", ".", "", "/", "//"] {
        assert!(
            matches!(
                store.begin_receive(&key(), uuid, None),
                Err(StoreError::UnsafeName(_))
            ),
            "{uuid:?}"
        );
    }
    // git-annex drops slashes from UUID directory names.
    let inc = store
        .begin_receive(&key(), "../x", None)
        .expect("slashes dropped");
    assert!(inc
        .record_info_path()
        .starts_with(dir.path().join("annex/transfer/download/..x")));
    drop(inc);
    let k = Key::parse("WORM--/../../../etc/passwd").expect("parses");
    let p = store.new_object_path(&k).expect("path");
    assert!(p.starts_with(dir.path().join("annex/objects")));
    assert_eq!(
        p.file_name().and_then(|f| f.to_str()),
        Some("WORM--%..%..%..%etc%passwd")
    );
}

#[test]
fn lock_content_writes_retention_and_cleans_up() {
    let (_d, store) = scratch(false);
    assert!(
        store.lock_content(&key()).expect("lock").is_none(),
        "absent content"
    );
    let obj = store_hello(&store).path;
    let side = |s: &str| {
        let mut p = obj.clone().into_os_string();
        p.push(s);
        std::path::PathBuf::from(p)
    };
    let before = PosixTime::now();
    let lock = store.lock_content(&key()).expect("lock").expect("present");
    let rtm = fs::read_to_string(side(".rtm")).expect("rtm");
    let t = PosixTime::parse(&rtm).expect("rtm parses");
    assert!(rtm.ends_with('s') && !rtm.ends_with('\n'), "{rtm:?}");
    assert_eq!(t, lock.retention());
    assert!(t >= before.add_secs(RETENTION_SECS) && t <= PosixTime::now().add_secs(RETENTION_SECS));
    assert!(side(".lck").exists() && side(".rtl").exists());
    assert_eq!(
        mode(obj.parent().expect("keydir")) & 0o222,
        0,
        "key dir frozen again"
    );
    // A second holder shares; the first to unlock leaves things in place.
    let second = store.lock_content(&key()).expect("lock").expect("present");
    assert_eq!(
        store.remove(&key(), || true).expect("remove"),
        RemoveOutcome::Locked
    );
    drop(lock);
    assert!(side(".lck").exists());
    drop(second);
    for s in [".lck", ".rtl", ".rtm"] {
        assert!(!side(s).exists(), "{s} left behind");
    }
    assert!(obj.exists());
}

#[test]
fn remove_outcomes() {
    let (dir, store) = scratch(false);
    assert_eq!(
        store.remove(&key(), || true).expect("remove"),
        RemoveOutcome::NotPresent
    );
    let obj = store_hello(&store).path;
    assert_eq!(
        store.remove(&key(), || false).expect("remove"),
        RemoveOutcome::TooLate
    );
    assert!(obj.exists());
    let mut rtm = obj.clone().into_os_string();
    rtm.push(".rtm");
    // A retention time ahead (a holder that died) refuses removal...
    fs::set_permissions(
        obj.parent().expect("dir"),
        fs::Permissions::from_mode(0o755),
    )
    .expect("thaw");
    fs::write(&rtm, PosixTime::now().add_secs(100).to_string()).expect("write rtm");
    assert_eq!(
        store.remove(&key(), || true).expect("remove"),
        RemoveOutcome::Locked
    );
    // ...one in the past is cleaned away.
    fs::write(&rtm, PosixTime::now().add_secs(-1).to_string()).expect("write rtm");
    assert_eq!(
        store.remove(&key(), || true).expect("remove"),
        RemoveOutcome::Removed
    );
    assert!(!store.has(&key()));
    // Empty hash directories go too, after the answer, before the process
    // ends.
    crate::store::discard::finish();
    assert_eq!(
        files_under(&dir.path().join("annex/objects")),
        Vec::<String>::new()
    );
    assert!(!dir.path().join("annex/objects/58").exists());
}

#[test]
fn upload_record() {
    let (dir, store) = scratch(false);
    let up = store
        .begin_upload(&key(), UUID, Some("f.dat"))
        .expect("begin");
    let info = dir
        .path()
        .join(format!("annex/transfer/upload/{UUID}/{HELLO_KEY}"));
    assert!(fs::read_to_string(&info)
        .expect("info")
        .ends_with("\nf.dat\n"));
    assert!(dir
        .path()
        .join(format!("annex/transfer/upload/{UUID}/lck.{HELLO_KEY}"))
        .exists());
    up.finish(true);
    assert!(!info.exists());
    assert!(!dir.path().join("annex/transfer/failed").exists());
    drop(store.begin_upload(&key(), UUID, None).expect("begin"));
    assert!(dir
        .path()
        .join(format!("annex/transfer/failed/upload/{UUID}/{HELLO_KEY}"))
        .exists());
}

#[test]
fn running_uploads_are_counted_by_info_files_not_locks() {
    let (_t, store) = scratch(true);
    assert_eq!(store.uploads_running(), 0);
    let dir = store.annex_dir().join("transfer/upload/some-uuid");
    fs::create_dir_all(&dir).expect("mkdir");
    fs::write(dir.join("lck.SHA256E-s1--x"), "").expect("lock");
    assert_eq!(store.uploads_running(), 0);
    fs::write(dir.join("SHA256E-s1--x"), "1795000000s\n").expect("info");
    assert_eq!(store.uploads_running(), 1);
}

/// One hash for several stores: the caller hashes, each store only writes.
#[test]
fn content_hashed_by_the_caller_is_stored_on_its_verdict() {
    let (_a, one) = scratch(true);
    let (_b, two) = scratch(true);
    let mut v = Verifier::new(&key());
    let mut incs: Vec<Incoming> = [&one, &two]
        .iter()
        .map(|s| s.begin_receive(&key(), UUID, None).expect("begin"))
        .collect();
    for chunk in [&b"hello "[..], &b"world\n"[..]] {
        v.update(chunk);
        for inc in &mut incs {
            inc.write_chunk_unhashed(chunk).expect("write");
        }
    }
    let verdict = v.check();
    for inc in incs {
        inc.finish_verified(verdict.clone()).expect("stored");
    }
    assert!(one.has(&key()) && two.has(&key()));
}

#[test]
fn a_wrong_verdict_or_a_missing_hash_stores_nothing() {
    let (_a, store) = scratch(true);
    let mut inc = store.begin_receive(&key(), UUID, None).expect("begin");
    inc.write_chunk_unhashed(b"hello world\n").expect("write");
    let wrong = Err(Mismatch::Hash {
        expected: "a".into(),
        actual: "b".into(),
    });
    assert!(matches!(
        inc.finish_verified(wrong),
        Err(StoreError::Verification(_))
    ));
    assert!(!store.has(&key()));
    assert!(!store.tmp_path(&key()).expect("tmp").exists());

    // Unhashed bytes finished the ordinary way are never trusted.
    let mut inc = store.begin_receive(&key(), UUID, None).expect("begin");
    inc.write_chunk_unhashed(b"hello world\n").expect("write");
    assert!(inc.finish(VerifyMode::Valid).is_err());
    assert!(!store.has(&key()));
}

#[test]
fn securehashesonly_refuses_before_any_bookkeeping() {
    let (dir, store) = scratch(true);
    let store = store.with_secure_hashes_only(true);
    for k in ["WORM-s12--x", "MD5-s12--00", "SHA1E-s12--00.dat", "URL--u"] {
        let k = Key::parse(k).expect("parses");
        assert!(matches!(
            store.begin_receive(&k, UUID, None),
            Err(StoreError::InsecureHash { .. })
        ));
    }
    assert_eq!(files_under(dir.path()), Vec::<String>::new());
    store_hello(&store);
}

#[test]
fn nothing_is_written_past_the_key_size() {
    let (_d, store) = scratch(false);
    let tmp = store.tmp_path(&key()).expect("tmp");
    let mut inc = store.begin_receive(&key(), UUID, None).expect("begin");
    inc.expect_end(12).expect("exactly the size");
    inc.write_chunk(b"hello world\n").expect("write");
    assert!(inc.write_chunk(b"!").is_err());
    assert!(inc.write_chunk_unhashed(b"!").is_err());
    // Bytes wait in memory for their aligned run (`aligned.rs`); an
    // interrupted transfer writes them out when it is dropped.
    drop(inc);
    assert_eq!(fs::read(&tmp).expect("kept as partial"), b"hello world\n");
    // resumed with a body that would overshoot: refused, partial dropped
    let mut inc = store.begin_receive(&key(), UUID, None).expect("begin");
    assert_eq!(inc.offset(), 12);
    assert!(matches!(
        inc.expect_end(13),
        Err(StoreError::TooMuchData { size: 12, end: 13 })
    ));
    drop(inc);
    assert!(!tmp.exists());
    store_hello(&store);
}

#[test]
fn a_symlink_as_partial_file_is_replaced_not_followed() {
    let (dir, store) = scratch(false);
    let outside = dir.path().join("outside");
    fs::write(&outside, b"hello ").expect("target");
    let tmp = store.tmp_path(&key()).expect("tmp");
    fs::create_dir_all(tmp.parent().expect("dir")).expect("annex/tmp");
    std::os::unix::fs::symlink(&outside, &tmp).expect("symlink");
    let mut inc = store.begin_receive(&key(), UUID, None).expect("begin");
    assert_eq!(inc.offset(), 0, "starts over");
    inc.write_chunk(b"hello world\n").expect("write");
    let stored = inc.finish(VerifyMode::Valid).expect("stored");
    assert!(fs::symlink_metadata(&stored.path)
        .expect("object")
        .is_file());
    assert_eq!(fs::read(&outside).expect("target"), b"hello ");
}

#[test]
fn a_partial_file_swapped_before_the_rename_is_not_stored() {
    let (dir, store) = scratch(false);
    let outside = dir.path().join("outside");
    fs::write(&outside, b"hello world\n").expect("target");
    let mut inc = store.begin_receive(&key(), UUID, None).expect("begin");
    let tmp = inc.tmp_file().to_owned();
    inc.write_chunk(b"hello world\n").expect("write");
    fs::remove_file(&tmp).expect("rm");
    std::os::unix::fs::symlink(&outside, &tmp).expect("symlink");
    assert!(inc.finish(VerifyMode::Valid).is_err());
    assert!(!store.has(&key()));
    assert_eq!(fs::read(&outside).expect("target"), b"hello world\n");
}

#[test]
fn a_symlinked_tmp_dir_is_refused() {
    let (dir, store) = scratch(false);
    let elsewhere = dir.path().join("elsewhere");
    fs::create_dir_all(&elsewhere).expect("dir");
    fs::create_dir_all(dir.path().join("annex")).expect("annex");
    std::os::unix::fs::symlink(&elsewhere, dir.path().join("annex/tmp")).expect("symlink");
    assert!(store.begin_receive(&big_key(), UUID, None).is_err());
    // A small key does not go through annex/tmp, not even interrupted.
    let mut inc = store.begin_receive(&key(), UUID, None).expect("begin");
    inc.write_chunk(b"hello").expect("write");
    drop(inc);
    store_hello(&store);
    assert_eq!(fs::read_dir(&elsewhere).expect("dir").count(), 0);
}

#[test]
fn a_symlink_as_transfer_record_is_replaced_not_followed() {
    let (dir, store) = scratch(false);
    let outside = dir.path().join("outside");
    fs::write(&outside, b"keep\n").expect("target");
    let failed = dir
        .path()
        .join("annex/transfer/failed/download")
        .join(UUID)
        .join(key().key_file());
    fs::create_dir_all(failed.parent().expect("dir")).expect("dirs");
    std::os::unix::fs::symlink(&outside, &failed).expect("symlink");
    let mut inc = store.begin_receive(&key(), UUID, None).expect("begin");
    inc.write_chunk(b"hello").expect("write");
    drop(inc);
    assert_eq!(fs::read(&outside).expect("target"), b"keep\n");
    assert!(fs::symlink_metadata(&failed).expect("record").is_file());
}

#[test]
fn the_resume_offset_is_a_stat() {
    let (d, store) = scratch(false);
    assert_eq!(store.resume_offset(&key()).expect("offset"), 0);
    assert!(files_under(d.path()).is_empty(), "nothing made");
    let tmp = store.tmp_path(&key()).expect("tmp");
    fs::create_dir_all(tmp.parent().expect("dir")).expect("mkdir");
    std::os::unix::fs::symlink("/etc/passwd", &tmp).expect("symlink");
    assert_eq!(store.resume_offset(&key()).expect("offset"), 0);
    fs::remove_file(&tmp).expect("rm");
    fs::write(&tmp, b"hello").expect("write");
    assert_eq!(store.resume_offset(&key()).expect("offset"), 5);
}

#[test]
fn receiving_at_an_offer_follows_a_partial_changed_since() {
    let (_d, store) = scratch(false);
    let tmp = store.tmp_path(&key()).expect("tmp");
    fs::create_dir_all(tmp.parent().expect("dir")).expect("mkdir");
    // Longer than offered (another receiver wrote on meanwhile): cut, and
    // the sender's bytes follow the offer.
    fs::write(&tmp, b"hello wXYZ").expect("write");
    let mut inc = store
        .begin_receive_at(&key(), UUID, None, 6)
        .expect("begin");
    assert_eq!(inc.offset(), 6);
    inc.write_chunk(b"world\n").expect("write");
    inc.finish(VerifyMode::Valid).expect("stored");
    assert!(store.has(&key()));
    // Shorter than offered: the sender cannot continue it.
    let (_d, store) = scratch(false);
    let tmp = store.tmp_path(&key()).expect("tmp");
    fs::create_dir_all(tmp.parent().expect("dir")).expect("mkdir");
    fs::write(&tmp, b"hel").expect("write");
    assert!(matches!(
        store.begin_receive_at(&key(), UUID, None, 6),
        Err(StoreError::TransferInProgress)
    ));
    assert_eq!(fs::read(&tmp).expect("kept"), b"hel");
    assert!(store.begin_receive_at(&key(), UUID, None, 3).is_ok());
}
