//! The store sharing repositories with the real git-annex: what one writes
//! the other accepts, and each one's locks hold against the other.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::testutil::{require_git_annex, P2pSession, RealRepo, CLIENT_UUID};
use super::*;

const HELLO_KEY: &str =
    "SHA256E-s12--a948904f2f0f479b8f8197694b30184b0d2ed1c1cd2a1ec0fb85d299a192a447.dat";

fn key() -> Key {
    Key::parse(HELLO_KEY).expect("parses")
}

fn store_via_us(store: &ObjectStore, key: &Key, data: &[u8]) -> PathBuf {
    let mut inc = store.begin_receive(key, CLIENT_UUID, None).expect("begin");
    inc.write_chunk(data).expect("write");
    inc.finish(VerifyMode::Valid).expect("stored").path
}

fn side(obj: &Path, suffix: &str) -> PathBuf {
    let mut p = obj.as_os_str().to_owned();
    p.push(suffix);
    PathBuf::from(p)
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Deletes a file in a frozen key directory, as a crash or an admin might.
fn delete_in_frozen_dir(path: &Path) {
    let dir = path.parent().expect("dir");
    let mode = fs::metadata(dir).expect("stat").permissions().mode();
    fs::set_permissions(dir, fs::Permissions::from_mode(mode | 0o200)).expect("thaw");
    fs::remove_file(path).expect("remove");
    fs::set_permissions(dir, fs::Permissions::from_mode(mode)).expect("freeze");
}

/// Real git-annex's fsck accepts the stored key, which is then removed
/// for the next phase.
fn accepted_then_removed(repo: &RealRepo, store: &ObjectStore) {
    fsck_accepts(repo, &key());
    assert_eq!(
        store.remove(&key(), || true).expect("remove"),
        RemoveOutcome::Removed
    );
}

fn fsck_accepts(repo: &RealRepo, key: &Key) {
    let k = key.to_string();
    let out = repo.annex(&["setpresentkey", &k, &repo.uuid(), "1"]);
    assert!(out.status.success(), "setpresentkey: {out:?}");
    let out = repo.annex(&["fsck", "--key", &k]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("ok"),
        "fsck rejected our object: {text}"
    );
}

#[test]
fn objects_we_store_pass_real_fsck() {
    require_git_annex!();
    for repo in [RealRepo::init(), RealRepo::init_bare()] {
        let store = repo.store();
        let path = store_via_us(&store, &key(), b"hello world\n");
        let expect_dir = if repo.gitdir() == repo.path() {
            key().hash_dir_lower()
        } else {
            key().hash_dir_mixed()
        };
        assert!(path.to_string_lossy().contains(&expect_dir), "{path:?}");
        fsck_accepts(&repo, &key());
        // A resumed receive of a second key, too.
        let big: Vec<u8> = (0..100_003u32).map(|i| ((i * 7 + 3) % 251) as u8).collect();
        let k2 = Key::parse(
            "BLAKE2SP224-s100003--940df0076e2c16436485688401a4d6f033b167e9f6ae03bb00d53977",
        )
        .expect("parses");
        let mut inc = store.begin_receive(&k2, CLIENT_UUID, None).expect("begin");
        inc.write_chunk(&big[..40_000]).expect("write");
        drop(inc);
        let mut inc = store.begin_receive(&k2, CLIENT_UUID, None).expect("begin");
        assert_eq!(inc.offset(), 40_000);
        inc.write_chunk(&big[40_000..]).expect("write");
        inc.finish(VerifyMode::Valid).expect("stored");
        fsck_accepts(&repo, &k2);
    }
}

#[test]
fn we_find_what_real_git_annex_stores() {
    require_git_annex!();
    for repo in [RealRepo::init(), RealRepo::init_bare()] {
        let mut s = P2pSession::start(&repo);
        s.send(format!("PUT f.dat {HELLO_KEY}\n").as_bytes());
        assert_eq!(s.read_line(), "PUT-FROM 0");
        s.send(b"DATA 12\nhello world\nVALID\n");
        assert_eq!(s.read_line(), "SUCCESS");
        s.close();
        let store = repo.store();
        let (_, size) = store
            .open_content(&key())
            .expect("open")
            .expect("we see it");
        assert_eq!(size, 12);
        assert_eq!(
            store.remove(&key(), || true).expect("remove"),
            RemoveOutcome::Removed
        );
        // The directories go after the answer, before the process ends.
        crate::store::discard::finish();
        assert!(
            !repo
                .gitdir()
                .join("annex/objects")
                .read_dir()
                .expect("dir")
                .any(|_| true),
            "dirs left"
        );
    }
}

#[test]
fn real_lockcontent_holds_against_our_remove() {
    require_git_annex!();
    let repo = RealRepo::init();
    let store = repo.store();
    let obj = store_via_us(&store, &key(), b"hello world\n");
    let mut s = P2pSession::start(&repo);
    s.send(format!("LOCKCONTENT {HELLO_KEY}\n").as_bytes());
    assert_eq!(s.read_line(), "SUCCESS");
    assert_eq!(
        store.remove(&key(), || true).expect("remove"),
        RemoveOutcome::Locked
    );
    // With the retention time gone, the fcntl lock alone still holds.
    delete_in_frozen_dir(&side(&obj, ".rtm"));
    assert_eq!(
        store.remove(&key(), || true).expect("remove"),
        RemoveOutcome::Locked
    );
    // Our own LOCKCONTENT shares with theirs.
    let ours = store.lock_content(&key()).expect("lock").expect("present");
    s.send(b"UNLOCKCONTENT\n");
    s.close();
    assert_eq!(
        store.remove(&key(), || true).expect("remove"),
        RemoveOutcome::Locked
    );
    drop(ours);
    wait_until("lock files to go", || !side(&obj, ".lck").exists());
    assert_eq!(
        store.remove(&key(), || true).expect("remove"),
        RemoveOutcome::Removed
    );
}

#[test]
fn our_lock_holds_against_real_remove() {
    require_git_annex!();
    let repo = RealRepo::init();
    let store = repo.store();
    let obj = store_via_us(&store, &key(), b"hello world\n");
    let lock = store.lock_content(&key()).expect("lock").expect("present");
    let try_real_remove = || {
        let mut s = P2pSession::start(&repo);
        s.send(format!("REMOVE {HELLO_KEY}\n").as_bytes());
        // git-annex-shell dies with "content is locked" instead of replying.
        let reply = s.read_line();
        s.close();
        reply
    };
    assert_ne!(try_real_remove(), "SUCCESS");
    assert!(obj.exists());
    // The fcntl lock alone, without the retention time.
    delete_in_frozen_dir(&side(&obj, ".rtm"));
    assert_ne!(try_real_remove(), "SUCCESS");
    let out = repo.annex(&["drop", "--force", "--key", HELLO_KEY]);
    assert!(!out.status.success(), "drop succeeded under our lock");
    assert!(obj.exists());
    drop(lock);
    assert!(!side(&obj, ".lck").exists());
    assert_eq!(try_real_remove(), "SUCCESS");
    assert!(!obj.exists());
}

#[test]
fn a_killed_holder_leaves_a_retention_time_we_honour() {
    require_git_annex!();
    let repo = RealRepo::init();
    let store = repo.store();
    let obj = store_via_us(&store, &key(), b"hello world\n");
    let mut s = P2pSession::start(&repo);
    s.send(format!("LOCKCONTENT {HELLO_KEY}\n").as_bytes());
    assert_eq!(s.read_line(), "SUCCESS");
    s.kill();
    assert!(side(&obj, ".rtm").exists());
    assert_eq!(
        store.remove(&key(), || true).expect("remove"),
        RemoveOutcome::Locked
    );
}

#[test]
fn small_puts_run_beside_real_ones_and_leave_partials_for_them() {
    require_git_annex!();
    let repo = RealRepo::init();
    let store = repo.store();
    // A real PUT in progress holds the download lock; our receive of a
    // small key takes none (a file of its own) and goes ahead meanwhile.
    let mut s = P2pSession::start(&repo);
    s.send(format!("PUT f.dat {HELLO_KEY}\n").as_bytes());
    assert_eq!(s.read_line(), "PUT-FROM 0");
    s.send(b"DATA 12\nhello");
    let lck = repo
        .gitdir()
        .join(format!("annex/transfer/download/lck/lck.{HELLO_KEY}"));
    wait_until("git-annex's transfer lock", || lck.exists());
    let mut inc = store
        .begin_receive(&key(), CLIENT_UUID, None)
        .expect("not excluded");
    inc.write_chunk(b"hello world\n").expect("write");
    let stored = inc.finish(VerifyMode::Valid).expect("stored");
    assert_eq!(stored.checked, Some(Checked::Hash));
    s.send(b" world\nVALID\n");
    assert_eq!(s.read_line(), "SUCCESS");
    s.close();
    accepted_then_removed(&repo, &store);
    // Our receive of a small key writes a file of its own under no lock:
    // a real PUT meanwhile goes ahead from 0, and ours then finds the
    // content there and keeps it.
    let mut inc = store
        .begin_receive(&key(), CLIENT_UUID, None)
        .expect("begin");
    inc.write_chunk(b"hello").expect("write");
    let mut s = P2pSession::start(&repo);
    s.send(format!("PUT f.dat {HELLO_KEY}\n").as_bytes());
    assert_eq!(s.read_line(), "PUT-FROM 0");
    s.send(b"DATA 12\nhello world\nVALID\n");
    assert_eq!(s.read_line(), "SUCCESS");
    s.close();
    inc.write_chunk(b" world\n").expect("write");
    assert_eq!(inc.finish(VerifyMode::Valid).expect("stored").checked, None);
    accepted_then_removed(&repo, &store);
    // Interrupted, it leaves its bytes where git-annex resumes them.
    let mut inc = store
        .begin_receive(&key(), CLIENT_UUID, None)
        .expect("begin");
    inc.write_chunk(b"hello").expect("write");
    drop(inc);
    let mut s = P2pSession::start(&repo);
    s.send(format!("PUT f.dat {HELLO_KEY}\n").as_bytes());
    assert_eq!(s.read_line(), "PUT-FROM 5");
    s.send(b"DATA 7\n world\nVALID\n");
    assert_eq!(s.read_line(), "SUCCESS");
    s.close();
    assert!(store.has(&key()));
}

#[test]
fn we_resume_what_real_git_annex_left() {
    require_git_annex!();
    let repo = RealRepo::init();
    let mut s = P2pSession::start(&repo);
    s.send(format!("PUT f.dat {HELLO_KEY}\n").as_bytes());
    assert_eq!(s.read_line(), "PUT-FROM 0");
    s.send(b"DATA 12\nhello");
    // End of input inside DATA: git-annex keeps what it got for a resume.
    s.close();
    let tmp = repo.store().tmp_path(&key()).expect("tmp");
    assert_eq!(fs::metadata(&tmp).map(|m| m.len()).ok(), Some(5));
    let store = repo.store();
    let mut inc = store
        .begin_receive(&key(), CLIENT_UUID, None)
        .expect("begin");
    assert_eq!(inc.offset(), 5);
    inc.write_chunk(b" world\n").expect("write");
    inc.finish(VerifyMode::Valid).expect("stored");
    fsck_accepts(&repo, &key());
}
