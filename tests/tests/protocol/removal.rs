//! REMOVE without a lock file (README, "Where the server's CPU goes per
//! key" and the compatibility table): what the file system sees, lockers
//! in other processes that follow git-annex's protocol, and what a removal
//! cut short by the death of its process leaves for the next one.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use annexproxy_tests::p2p_driver::{big_content, big_key, Fixture, ABSENT_KEY, HELLO, HELLO_KEY};
use annexproxy_tests::ServerKind;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

/// `annex/objects/H1/H2/KEY/KEY` of `key` in the fixture's repository.
fn object_path(fx: &Fixture, key: &str) -> PathBuf {
    let objects = fx.repo.join("annex/objects");
    for h1 in fs::read_dir(&objects).expect("objects").flatten() {
        for h2 in fs::read_dir(h1.path()).expect("hash dir").flatten() {
            let p = h2.path().join(key).join(key);
            if p.exists() {
                return p;
            }
        }
    }
    panic!("no object of {key} under {}", objects.display());
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p).expect("stat").permissions().mode() & 0o7777
}

/// Names in `annex/othertmp` that start with `prefix`.
fn othertmp_names(fx: &Fixture, prefix: &str) -> Vec<String> {
    let Ok(entries) = fs::read_dir(fx.repo.join("annex/othertmp")) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(prefix))
        .collect();
    names.sort();
    names
}

/// The names of files and directories created in `dir` since `watch`.
fn created_in(watch: &Inotify) -> Vec<String> {
    let mut names = Vec::new();
    loop {
        match watch.read_events() {
            Ok(events) if !events.is_empty() => names.extend(
                events
                    .into_iter()
                    .filter(|e| e.mask.contains(AddWatchFlags::IN_CREATE))
                    .filter_map(|e| e.name)
                    .map(|n| n.to_string_lossy().into_owned()),
            ),
            _ => return names,
        }
    }
}

/// A REMOVE of present content: git-annex creates `<object>.lck` to take
/// its removal lock on; ours creates nothing in the key directory, and the
/// content is gone and logged so all the same.
#[test]
fn remove_creates_no_lock_file() {
    for kind in [ServerKind::Real, ServerKind::Ours] {
        let fx = Fixture::new(kind);
        let object = object_path(&fx, HELLO_KEY);
        let watch = Inotify::init(InitFlags::IN_NONBLOCK).expect("inotify");
        watch
            .add_watch(object.parent().expect("key dir"), AddWatchFlags::IN_CREATE)
            .expect("watch the key directory");
        let mut sh = fx.shell();
        sh.hello(Some(4));
        sh.send(&format!("REMOVE {HELLO_KEY}"));
        sh.expect("SUCCESS");
        sh.finish().assert_exit(0);
        let created = created_in(&watch);
        match kind {
            ServerKind::Real => assert_eq!(created, vec![format!("{HELLO_KEY}.lck")]),
            ServerKind::Ours => assert_eq!(created, Vec::<String>::new()),
        }
        assert!(!object.exists());
        assert_eq!(fx.key_state(HELLO_KEY), (false, false), "{kind:?}");
        assert_eq!(othertmp_names(&fx, "removing."), Vec::<String>::new());
        fx.assert_fsck_clean();
    }
}

/// Locks `object` as git-annex's `lockContentShared` does, from another
/// process: creates `<object>.lck` in the thawed key directory, takes a
/// shared POSIX lock on it, checks the path still names the locked file,
/// freezes the directory again, and only then looks for the object. Holds
/// the lock until its stdin closes.
fn git_annex_style_locker(object: &Path) -> Child {
    const SCRIPT: &str = r#"
import fcntl, os, sys
obj = sys.argv[1]
lck = obj + ".lck"
d = os.path.dirname(obj)
m = os.stat(d).st_mode
os.chmod(d, m | 0o200)
fd = os.open(lck, os.O_RDWR | os.O_CREAT, 0o666)
fcntl.lockf(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
a, b = os.fstat(fd), os.stat(lck)
assert (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino), "insane lock"
os.chmod(d, m)
print("present" if os.path.exists(obj) else "absent", flush=True)
sys.stdin.read()
"#;
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(SCRIPT)
        .arg(object)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().expect("stdout"))
        .read_line(&mut line)
        .expect("locker's answer");
    assert_eq!(line.trim(), "present", "the locker found the content");
    child
}

/// Another process holds the content lock as git-annex does: the real
/// server dies with "content is locked", ours answers FAILURE; on both the
/// object stays at its path, byte for byte, with its mode, in a key
/// directory frozen as before. Once the locker lets go, REMOVE succeeds.
#[test]
fn remove_of_content_locked_by_another_process() {
    for kind in [ServerKind::Real, ServerKind::Ours] {
        let fx = Fixture::new(kind);
        let object = object_path(&fx, HELLO_KEY);
        let key_dir = object.parent().expect("key dir").to_owned();
        let (object_mode, dir_mode) = (mode(&object), mode(&key_dir));
        assert_eq!(dir_mode & 0o222, 0, "the key directory starts frozen");
        let mut locker = git_annex_style_locker(&object);

        let mut sh = fx.shell();
        sh.hello(Some(4));
        sh.send(&format!("REMOVE {HELLO_KEY}"));
        match kind {
            ServerKind::Real => {
                assert_eq!(sh.recv(), None);
                let out = sh.finish();
                assert!(out.stderr.contains("content is locked"), "{}", out.show());
            }
            ServerKind::Ours => {
                sh.expect("FAILURE");
                sh.send(&format!("CHECKPRESENT {HELLO_KEY}"));
                sh.expect("SUCCESS");
                sh.finish().assert_exit(0);
            }
        }
        assert_eq!(fs::read(&object).expect("object"), HELLO, "{kind:?}");
        assert_eq!(mode(&object), object_mode, "{kind:?}: object mode");
        assert_eq!(mode(&key_dir), dir_mode, "{kind:?}: key dir mode");
        assert_eq!(othertmp_names(&fx, "removing."), Vec::<String>::new());
        assert_eq!(fx.key_state(HELLO_KEY), (true, true), "{kind:?}");

        drop(locker.stdin.take());
        locker.wait().expect("locker ends");
        let mut sh = fx.shell();
        sh.hello(Some(4));
        sh.send(&format!("REMOVE {HELLO_KEY}"));
        sh.expect("SUCCESS");
        sh.finish().assert_exit(0);
        assert_eq!(fx.key_state(HELLO_KEY), (false, false), "{kind:?}");
        fx.assert_fsck_clean();
    }
}

/// The pid of a process that has ended.
fn dead_pid() -> u32 {
    let mut child = Command::new("true").spawn().expect("true runs");
    let pid = child.id();
    child.wait().expect("true ends");
    pid
}

/// `removing.PID.N.H1.H2.KEY`: what a removal of ours calls the object it
/// set aside, naming where it came from.
fn removing_name(fx: &Fixture, pid: u32, n: u32, object: &Path) -> PathBuf {
    let rel = object
        .strip_prefix(fx.repo.join("annex/objects"))
        .expect("in the store");
    let parts: Vec<String> = rel
        .iter()
        .map(|c| c.to_string_lossy().into_owned())
        .collect();
    fx.repo.join("annex/othertmp").join(format!(
        "removing.{pid}.{n}.{}.{}.{}",
        parts[0], parts[1], parts[2]
    ))
}

/// A removal whose process died after setting the object aside and before
/// answering: the client was never told, the location log still says
/// present. The next session's first REMOVE (of any key) puts the object
/// back, frozen as it was; a leftover whose key has content at its path
/// again is deleted.
#[test]
fn a_removal_cut_short_is_put_back_by_the_next_session() {
    let fx = Fixture::new(ServerKind::Ours);
    let object = object_path(&fx, HELLO_KEY);
    let key_dir = object.parent().expect("key dir").to_owned();
    let (object_mode, dir_mode) = (mode(&object), mode(&key_dir));
    let big = object_path(&fx, big_key());
    let pid = dead_pid();
    fs::create_dir_all(fx.repo.join("annex/othertmp")).expect("othertmp");
    // As the dead process left it: the key directory thawed, the object
    // moved out.
    fs::set_permissions(&key_dir, fs::Permissions::from_mode(dir_mode | 0o200)).expect("thaw");
    let aside = removing_name(&fx, pid, 0, &object);
    fs::rename(&object, &aside).expect("set aside");
    let stale = removing_name(&fx, pid, 1, &big);
    fs::File::create(&stale)
        .and_then(|mut f| f.write_all(b"an older copy"))
        .expect("stale copy");

    let mut sh = fx.shell();
    sh.hello(Some(4));
    sh.send(&format!("REMOVE {ABSENT_KEY}"));
    sh.expect("SUCCESS");
    sh.send(&format!("CHECKPRESENT {HELLO_KEY}"));
    sh.expect("SUCCESS");
    sh.finish().assert_exit(0);

    assert_eq!(fs::read(&object).expect("object back"), HELLO);
    assert_eq!(mode(&object), object_mode, "object mode");
    assert_eq!(mode(&key_dir), dir_mode, "key dir frozen again");
    assert_eq!(fs::read(&big).expect("big object"), big_content());
    assert_eq!(othertmp_names(&fx, "removing."), Vec::<String>::new());
    assert_eq!(fx.key_state(HELLO_KEY), (true, true));
    fx.assert_fsck_clean();
}

/// What a session hands its helper (`annexproxy discard-helper`, which
/// unlinks a large removed object after the session): the helper deletes
/// a `dropped.` file of an `annex/othertmp` and the object's empty
/// directories, and nothing else, whoever writes to it.
#[test]
fn the_discard_helper_deletes_only_dropped_objects() {
    let tmp = tempfile::tempdir().expect("tmp");
    let annex = tmp.path().join("repo/annex");
    let othertmp = annex.join("othertmp");
    let key_dir = annex.join("objects/Ab/Cd/SHA256E-s9--k");
    fs::create_dir_all(&othertmp).expect("othertmp");
    fs::create_dir_all(&key_dir).expect("key dir");
    let dropped = othertmp.join("dropped.1.0");
    let precious = tmp.path().join("repo/precious");
    let other = othertmp.join("put.1.0");
    for f in [&dropped, &precious, &other] {
        fs::write(f, b"content").expect("write");
    }
    let mut records = Vec::new();
    let object = key_dir.join("SHA256E-s9--k");
    for (file, object) in [
        (precious.clone(), object.clone()),
        (othertmp.join("../precious"), object.clone()),
        (other.clone(), object.clone()),
        (dropped.clone(), tmp.path().join("repo/objects/Ab/Cd/k/k")),
        (dropped.clone(), object.clone()),
    ] {
        for p in [&file, &object] {
            records.extend_from_slice(p.as_os_str().as_encoded_bytes());
            records.push(0);
        }
    }
    let mut helper = Command::new(annexproxy_tests::tools::ours_bin_dir().join("annexproxy"))
        .arg("discard-helper")
        .stdin(Stdio::piped())
        .spawn()
        .expect("annexproxy discard-helper");
    helper
        .stdin
        .take()
        .expect("stdin")
        .write_all(&records)
        .expect("records");
    assert!(helper.wait().expect("wait").success());
    assert!(!dropped.exists(), "the dropped object is still there");
    assert!(
        !annex.join("objects/Ab").exists(),
        "its directories are still there"
    );
    assert!(annex.join("objects").exists());
    assert_eq!(fs::read(&precious).expect("precious"), b"content");
    assert_eq!(fs::read(&other).expect("put file"), b"content");
}
