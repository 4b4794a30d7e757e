//! Unlinks in a process of their own, so that a server session ends at its
//! last answer rather than when the kernel has freed what it dropped.
//!
//! On ext4 without a journal mounted with `discard` (this machine's), an
//! unlink frees a file's blocks there and then, and discarding 300 MB
//! holds it for a quarter of a second of device time. A journaled ext4,
//! XFS or btrfs frees blocks after the commit, on a kernel thread nobody
//! waits for. A session that waits for its unlinks keeps its client's ssh,
//! and everything reading the client's output, open that long: the real
//! client has long written its location log by then and has nothing left
//! to wait for. (Real git-annex does not meet the cost on a drop soon after
//! an upload: it never syncs an object, so the blocks of one not yet
//! written back were never allocated. Ours syncs every object before it
//! answers, and pays it.)
//!
//! So a session (`annexproxy git-annex-shell`, set up by [`use_helper`])
//! starts, at its first large removal, one helper (`annexproxy
//! discard-helper`) and hands it the file set aside and the object's old
//! path over a pipe, record by record as removals happen; it unlinks them
//! once the session is over, after a quiet second, or the oldest as more
//! than eight wait ([`serve`]), so the space comes back soon. The helper has `/dev/null` for output
//! and a process group of its own: nothing of the client's waits for it,
//! and a signal to the session's group does not cut it short. It ends at
//! the pipe's end of file, after its last unlink; still the session's
//! descendant, its CPU and writes count as the session's wherever a
//! process tree is accounted (the bench's reaper waits for it).
//!
//! Nothing about the promise of `REMOVE` changes: the object left its
//! path by a rename before the answer, and a file the helper never gets
//! to (killed, the machine down) is in `othertmp` under a dead process's
//! name, where git-annex's `cleanupOtherTmp` and our next sweep delete it.
//! A process without a helper (the HTTP server, operator commands, tests)
//! unlinks on worker threads and [`super::finish`] waits for them.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::process::CommandExt;
use std::path::{Component, Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use super::PREFIX;

/// The `annexproxy` subcommand that runs [`serve`]; taken before the
/// command line parser, as the server subcommand is, and not listed.
pub const HELPER_SUBCOMMAND: &str = "discard-helper";

enum State {
    /// No helper configured, or closed by [`close`]: workers unlink.
    Off,
    /// Configured, started at the first file.
    Ready(PathBuf),
    Running(ChildStdin),
    /// It could not be started or stopped reading: workers unlink.
    Failed,
}

static STATE: Mutex<State> = Mutex::new(State::Off);

/// Hands this process's large unlinks to `program discard-helper` (the
/// running `annexproxy`) from now on.
pub fn use_helper(program: PathBuf) {
    *STATE.lock().unwrap_or_else(|p| p.into_inner()) = State::Ready(program);
}

/// Sends `dropped` (in `othertmp`) and its object's old path to the
/// helper, starting it if need be. `false`: no helper takes it, the
/// caller unlinks it.
pub(super) fn send(dropped: &Path, object: &Path) -> bool {
    let mut state = STATE.lock().unwrap_or_else(|p| p.into_inner());
    if let State::Ready(program) = &*state {
        *state = match start(program) {
            Ok(stdin) => State::Running(stdin),
            Err(e) => {
                tracing::warn!("starting {} {HELPER_SUBCOMMAND}: {e}", program.display());
                State::Failed
            }
        };
    }
    let State::Running(stdin) = &mut *state else {
        return false;
    };
    // One write per record, so a helper that died leaves no half record
    // behind that a later one would complete. Blocks while the pipe is
    // full: the helper is behind by some hundreds of files.
    if let Err(e) = stdin.write_all(&record(dropped, object)) {
        tracing::warn!("the {HELPER_SUBCOMMAND} stopped reading: {e}");
        *state = State::Failed;
        return false;
    }
    true
}

fn start(program: &Path) -> io::Result<ChildStdin> {
    let mut child = Command::new(program)
        .arg(HELPER_SUBCOMMAND)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()?;
    // Never waited for: it outlives us, and whoever reaps our orphans
    // (init, or a subreaper such as the bench's) reaps it.
    child
        .stdin
        .take()
        .ok_or_else(|| io::Error::other("no pipe to the helper"))
}

/// Closes the pipe: the helper unlinks what it was sent and ends. Later
/// files go to workers.
pub(super) fn close() {
    *STATE.lock().unwrap_or_else(|p| p.into_inner()) = State::Off;
}

/// `dropped` NUL `object` NUL: paths are bytes, and neither holds a NUL.
fn record(dropped: &Path, object: &Path) -> Vec<u8> {
    let mut rec = Vec::with_capacity(dropped.as_os_str().len() + object.as_os_str().len() + 2);
    for p in [dropped, object] {
        rec.extend_from_slice(p.as_os_str().as_bytes());
        rec.push(0);
    }
    rec
}

/// How long files sent wait for the session's end before the helper
/// unlinks them anyway (a session that stays open).
const LINGER: Duration = Duration::from_secs(1);

/// The most files that wait: a session dropping many large objects has
/// the older ones unlinked while it goes on, so the space comes back.
const PENDING_MAX: usize = 8;

/// How long the helper leaves the disk to the client once the session is
/// over: the client's last writes (its location log, its commit, its
/// exit) come right after the session's end and would queue behind the
/// discards.
const GRACE: Duration = Duration::from_millis(200);

/// The most a record may take (two paths): more without its end is not
/// from a session of ours.
const RECORD_MAX: usize = 16 * 1024;

/// The helper: unlinks each file sent on `input` and removes its object's
/// directories when empty; returns how many it unlinked. A file waits for
/// the end of the input (the session is over, then [`GRACE`]), [`LINGER`]
/// of quiet, or [`PENDING_MAX`] files sent after it: the client acts on
/// the answer right away (renames and removals in its own repository,
/// which on this `discard` mount waited 30 to 50 ms each behind a 300 MB
/// unlink's discards), and a gateway's session removes the key from its
/// next node meanwhile; both are done soon after the session ends. A record that does not name a `dropped.` file directly
/// in an `annex/othertmp` and an object under that `annex/objects` is
/// skipped: the helper deletes nothing else, whoever runs it.
pub fn serve(mut input: impl Read + AsFd) -> io::Result<usize> {
    let mut buf = Vec::new();
    let mut waiting: VecDeque<(PathBuf, PathBuf)> = VecDeque::new();
    let mut unlinked = 0;
    let mut free = |(dropped, object): (PathBuf, PathBuf)| {
        super::run_unlink(&dropped, &object);
        unlinked += 1;
    };
    let mut chunk = [0u8; 8192];
    loop {
        while let Some(record) = take_record(&mut buf) {
            waiting.push_back(record);
            if waiting.len() > PENDING_MAX {
                waiting.pop_front().map(&mut free);
            }
        }
        if buf.len() > RECORD_MAX {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "a record too long",
            ));
        }
        if !waiting.is_empty() && !readable(&input, LINGER)? {
            waiting.drain(..).for_each(&mut free);
            continue;
        }
        match input.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                waiting.drain(..).for_each(&mut free);
                return Err(e);
            }
        }
    }
    // A record cut short by the session's death is not acted on.
    if !waiting.is_empty() {
        std::thread::sleep(GRACE);
    }
    waiting.drain(..).for_each(&mut free);
    Ok(unlinked)
}

/// The first whole record in `buf`, taken out of it; implausible ones are
/// dropped with a warning.
fn take_record(buf: &mut Vec<u8>) -> Option<(PathBuf, PathBuf)> {
    loop {
        let first = buf.iter().position(|&b| b == 0)?;
        let second = first + 1 + buf[first + 1..].iter().position(|&b| b == 0)?;
        let object = PathBuf::from(OsString::from_vec(buf[first + 1..second].to_vec()));
        let dropped = PathBuf::from(OsString::from_vec(buf[..first].to_vec()));
        buf.drain(..=second);
        if plausible(&dropped, &object) {
            return Some((dropped, object));
        }
        tracing::warn!(
            "{HELPER_SUBCOMMAND}: not a dropped object: {} ({})",
            dropped.display(),
            object.display()
        );
    }
}

/// Whether `input` has something to read (or its end) within `timeout`.
fn readable(input: &impl AsFd, timeout: Duration) -> io::Result<bool> {
    let ms = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
    let mut fds = [PollFd::new(input.as_fd(), PollFlags::POLLIN)];
    match poll(&mut fds, PollTimeout::from(ms)) {
        Ok(n) => Ok(n > 0),
        Err(nix::errno::Errno::EINTR) => Ok(true),
        Err(e) => Err(e.into()),
    }
}

/// `…/annex/othertmp/dropped.*` and `…/annex/objects/A/B/K/K` of the same
/// `annex`, absolute, with no `..` anywhere.
fn plausible(dropped: &Path, object: &Path) -> bool {
    let normal = |p: &Path| {
        p.is_absolute()
            && p.components()
                .all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
    };
    if !normal(dropped) || !normal(object) {
        return false;
    }
    let named = |p: &Path, name: &str| p.file_name().is_some_and(|n| n == name);
    let (Some(othertmp), Some(file)) = (dropped.parent(), dropped.file_name()) else {
        return false;
    };
    let Some(annex) = othertmp.parent().filter(|_| named(othertmp, "othertmp")) else {
        return false;
    };
    if !named(annex, "annex") || !file.as_bytes().starts_with(PREFIX.as_bytes()) {
        return false;
    }
    let Ok(rel) = object.strip_prefix(annex.join("objects")) else {
        return false;
    };
    let parts: Vec<_> = rel.iter().collect();
    parts.len() == 4 && parts[2] == parts[3]
}

#[cfg(test)]
mod tests {
    use std::io::{pipe, PipeWriter};
    use std::time::Instant;

    use super::*;

    fn objects_of(annex: &Path) -> PathBuf {
        annex.join("objects/Ab/Cd/SHA256E-s1--x/SHA256E-s1--x")
    }

    /// A repository's `annex` with one `dropped.` file, and its object's
    /// old key directory.
    fn dropped_file(root: &Path, n: u32) -> (PathBuf, PathBuf) {
        let annex = root.join("repo/.git/annex");
        let object = objects_of(&annex);
        std::fs::create_dir_all(object.parent().unwrap()).unwrap();
        std::fs::create_dir_all(annex.join("othertmp")).unwrap();
        let dropped = annex.join(format!("othertmp/dropped.1.{n}"));
        std::fs::write(&dropped, b"x").unwrap();
        (dropped, object)
    }

    /// The helper on a pipe, in a thread; the writing end to the test.
    fn helper() -> (PipeWriter, std::thread::JoinHandle<io::Result<usize>>) {
        let (reader, writer) = pipe().unwrap();
        (writer, std::thread::spawn(move || serve(reader)))
    }

    #[test]
    fn records_go_through_the_helper_and_are_unlinked() {
        let tmp = tempfile::tempdir().expect("tmp");
        let (one, object) = dropped_file(tmp.path(), 0);
        let (two, _) = dropped_file(tmp.path(), 1);
        let (mut writer, helper) = helper();
        writer.write_all(&record(&one, &object)).unwrap();
        writer.write_all(&record(&two, &object)).unwrap();
        drop(writer);
        assert_eq!(helper.join().unwrap().unwrap(), 2);
        assert!(!one.exists() && !two.exists());
        // The key and hash directories went with them; `objects` stays.
        let annex = tmp.path().join("repo/.git/annex");
        assert!(!annex.join("objects/Ab").exists());
        assert!(annex.join("objects").exists());
    }

    /// Files wait for the session's end, and after a quiet [`LINGER`]
    /// go anyway.
    #[test]
    fn files_wait_for_the_end_or_a_quiet_second() {
        let tmp = tempfile::tempdir().expect("tmp");
        let (one, object) = dropped_file(tmp.path(), 0);
        let (two, _) = dropped_file(tmp.path(), 1);
        let (three, _) = dropped_file(tmp.path(), 2);
        let (mut writer, helper) = helper();
        writer.write_all(&record(&one, &object)).unwrap();
        writer.write_all(&record(&two, &object)).unwrap();
        std::thread::sleep(LINGER / 4);
        assert!(
            one.exists() && two.exists(),
            "unlinked before the session ended"
        );
        // Quiet, the session still open: both go after LINGER.
        let deadline = Instant::now() + LINGER * 10;
        while (one.exists() || two.exists()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(
            !one.exists() && !two.exists(),
            "a quiet session kept its files"
        );
        writer.write_all(&record(&three, &object)).unwrap();
        drop(writer);
        assert_eq!(helper.join().unwrap().unwrap(), 3);
        assert!(!three.exists());
    }

    /// Past [`PENDING_MAX`] waiting files, the oldest goes while the
    /// session goes on.
    #[test]
    fn the_oldest_goes_when_too_many_wait() {
        let tmp = tempfile::tempdir().expect("tmp");
        let files: Vec<_> = (0..=PENDING_MAX as u32)
            .map(|n| dropped_file(tmp.path(), n))
            .collect();
        let (mut writer, helper) = helper();
        for (dropped, object) in &files {
            writer.write_all(&record(dropped, object)).unwrap();
        }
        let deadline = Instant::now() + LINGER / 2;
        while files[0].0.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(!files[0].0.exists(), "the oldest still waits");
        assert!(files[1..].iter().all(|(d, _)| d.exists()));
        drop(writer);
        assert_eq!(helper.join().unwrap().unwrap(), files.len());
    }

    /// Whoever runs the helper, it deletes nothing but a `dropped.` file
    /// in an `annex/othertmp`, and only empty object directories.
    #[test]
    fn the_helper_refuses_what_is_not_a_dropped_object() {
        let tmp = tempfile::tempdir().expect("tmp");
        let annex = tmp.path().join("annex");
        std::fs::create_dir_all(annex.join("othertmp")).unwrap();
        let victim = tmp.path().join("precious");
        std::fs::write(&victim, b"keep").unwrap();
        let kept_object = objects_of(&annex);
        std::fs::create_dir_all(kept_object.parent().unwrap()).unwrap();
        std::fs::write(&kept_object, b"x").unwrap();
        let dotdot = annex.join("othertmp/../../precious");
        let not_dropped = annex.join("othertmp/put.1.0");
        std::fs::write(&not_dropped, b"keep").unwrap();
        let elsewhere = tmp.path().join("othertmp/dropped.1.0");
        std::fs::create_dir_all(elsewhere.parent().unwrap()).unwrap();
        std::fs::write(&elsewhere, b"keep").unwrap();
        let dropped = annex.join("othertmp/dropped.1.1");
        std::fs::write(&dropped, b"x").unwrap();
        let (mut writer, helper) = helper();
        for (d, o) in [
            (&victim, &kept_object),
            (&dotdot, &kept_object),
            (&not_dropped, &kept_object),
            (&elsewhere, &kept_object),
            // A real dropped file with an object path outside the store.
            (&dropped, &tmp.path().join("a/b/c/d")),
            (&dropped, &annex.join("objects/../../x/y/z/z")),
        ] {
            writer.write_all(&record(d, o)).unwrap();
        }
        drop(writer);
        assert_eq!(helper.join().unwrap().unwrap(), 0);
        for f in [&victim, &not_dropped, &elsewhere, &dropped, &kept_object] {
            assert!(f.exists(), "{} deleted", f.display());
        }
    }

    #[test]
    fn a_cut_record_is_not_acted_on() {
        let tmp = tempfile::tempdir().expect("tmp");
        let (dropped, object) = dropped_file(tmp.path(), 0);
        let mut input = record(&dropped, &object);
        input.truncate(input.len() - 5);
        let (mut writer, helper) = helper();
        writer.write_all(&input).unwrap();
        drop(writer);
        assert_eq!(helper.join().unwrap().unwrap(), 0);
        assert!(dropped.exists());
    }

    #[test]
    fn an_endless_record_is_refused() {
        let (mut writer, helper) = helper();
        // The helper stops reading: the writer sees a broken pipe.
        let _ = writer.write_all(&vec![b'/'; RECORD_MAX * 2]);
        drop(writer);
        let err = helper.join().unwrap().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }
}
