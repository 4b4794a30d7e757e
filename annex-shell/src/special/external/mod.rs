//! The `external` special remote (`type=external externaltype=NAME`): a
//! `git-annex-remote-NAME` program on PATH speaks git-annex's external
//! special remote protocol ([`protocol`]; [`driver`] runs the program,
//! [`host`] answers its queries) and the framework uses it as a
//! [`Storage`].
//!
//! The protocol moves whole files: `TRANSFER STORE KEY FILE` reads FILE,
//! `TRANSFER RETRIEVE KEY FILE` writes it. So an object passes through
//! one file in the proxy's `annex/tmp/external/`, at most one per
//! transfer, removed as soon as the transfer is done:
//!
//! - a PUT streams the client's bytes into the file while the framework
//!   hashes them; only once the content is verified is the program asked
//!   to store it (a chunk at a time with `chunk=`: one chunk's file);
//! - a GET has the program retrieve the object into the file, which is
//!   then opened, unlinked, and streamed from the offset asked.
//!
//! CHECKPRESENT says present or not, never a size: an object found is
//! taken to have the size its key says (a chunk key's share of the
//! key's size); a key of unknown size is retrieved to learn it, and that
//! file serves the GET that follows.

pub mod driver;
pub mod host;
mod jobs;
mod pipe;
mod pool;
pub mod protocol;

use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use annex::key::Key;

use self::driver::{or_no_reason, Driver, ExternalError, Limits};
use self::host::Host;
use self::protocol::{Direction, Reply, Request};
use super::storage::{StagedWrite, Storage, StorageError};
use super::SpecialRemote;

/// Where the program runs and what bounds it keeps: resolved from the
/// repository's config ([`super::config`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExternalSetup {
    /// `externaltype=`: the program is `git-annex-remote-<this>`.
    pub externaltype: String,
    /// The repository's git directory (GETGITDIR; the files under its
    /// `annex/tmp`).
    pub git_dir: PathBuf,
    /// Where the program runs: the work tree, or the git directory of a
    /// bare repository, as git-annex runs it.
    pub cwd: PathBuf,
    /// `annexproxy.externaltimeout`: the longest silence of the program.
    pub reply_timeout: Duration,
    /// `annexproxy.externaljobs`: the most requests the remote's program
    /// serves at once in one server process (ASYNC jobs, or processes).
    pub jobs: usize,
}

impl ExternalSetup {
    pub fn program(&self) -> String {
        format!("git-annex-remote-{}", self.externaltype)
    }

    /// A driver of its own of the program for `remote` (not started
    /// yet), for INITREMOTE.
    fn driver(&self, remote: &SpecialRemote) -> Driver {
        let host = Host::new(
            &remote.name,
            &remote.uuid,
            &self.git_dir,
            remote.params.clone(),
        );
        let limits = Limits {
            reply: self.reply_timeout,
            ..Limits::default()
        };
        Driver::new(self.program(), &self.cwd, limits, Arc::new(host))
    }

    /// The program for `remote` shared in this process.
    fn shared(&self, remote: &SpecialRemote) -> Arc<pool::Program> {
        pool::shared(pool::ProgramId {
            program: self.program(),
            cwd: self.cwd.clone(),
            git_dir: self.git_dir.clone(),
            remote: remote.name.clone(),
            uuid: remote.uuid.clone(),
            params: remote.params.clone(),
            reply: self.reply_timeout,
            jobs: self.jobs,
        })
    }
}

/// `annexproxy.externaljobs`'s default: p2phttp's `--jobs` default.
pub const DEFAULT_JOBS: usize = 8;

/// Whether `externaltype` can name a program: no path, no spaces.
pub fn valid_externaltype(t: &str) -> bool {
    !t.is_empty()
        && t.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !t.starts_with('.')
}

/// The transfers of this process so far: each one's directory is
/// `<pid>.<n>`.
static TRANSFERS: AtomicU64 = AtomicU64::new(0);

/// An external remote: its program, shared by the sessions of this
/// process ([`pool`]), and this session's transfer files.
#[derive(Clone)]
pub struct External {
    shared: Arc<Shared>,
}

struct Shared {
    name: String,
    program: Arc<pool::Program>,
    /// `annex/tmp/external/`, absolute.
    tmp: PathBuf,
    cwd: PathBuf,
    /// A retrieved object whose size was unknown: kept (unlinked) for the
    /// read that follows its stat.
    retrieved: std::sync::Mutex<Option<(Key, File)>>,
}

impl External {
    pub fn new(remote: &SpecialRemote, setup: &ExternalSetup) -> External {
        External {
            shared: Arc::new(Shared {
                name: remote.name.clone(),
                program: setup.shared(remote),
                tmp: setup.git_dir.join("annex/tmp/external"),
                cwd: setup.cwd.clone(),
                retrieved: std::sync::Mutex::new(None),
            }),
        }
    }

    /// A new file for one transfer of `key`: `<keyfile>` in a directory
    /// of its own, as git-annex hands over an object file named by its key
    /// (git-annex-remote-rclone names what it stores after the file); and
    /// the path the program is given (relative to where it runs: the
    /// protocol's file names carry no whitespace, a repository's path
    /// might).
    fn transfer_file(&self, key: &Key) -> Result<TransferFile, StorageError> {
        // Numbered in the process, not the session: the sessions of one
        // process (p2phttp's) share its pid and the directory.
        let n = TRANSFERS.fetch_add(1, Ordering::Relaxed);
        let dir = self.shared.tmp.join(format!("{}.{n}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(self.io("create", key))?;
        let path = dir.join(key.key_file());
        let given = match path.strip_prefix(&self.shared.cwd) {
            Ok(rel) => rel.display().to_string(),
            Err(_) => path.display().to_string(),
        };
        Ok(TransferFile { dir, path, given })
    }

    fn io(&self, op: &'static str, key: &Key) -> impl FnOnce(io::Error) -> StorageError {
        let (remote, object) = (self.shared.name.clone(), key.to_string());
        move |source| StorageError::Io {
            remote,
            op,
            object,
            source,
        }
    }

    /// The program's failure as the framework's, for `op` on `key`.
    fn failed(&self, op: &'static str, key: &Key, e: ExternalError) -> StorageError {
        self.io(op, key)(io::Error::other(e))
    }

    /// `TRANSFER RETRIEVE` into a new file, opened and unlinked.
    async fn retrieve(&self, key: &Key) -> Result<File, StorageError> {
        let file = self.transfer_file(key)?;
        let request = Request::Transfer {
            direction: Direction::Retrieve,
            key: key.to_string(),
            file: file.given.clone(),
        };
        let result = self
            .shared
            .program
            .request(request, transfer_reply(Direction::Retrieve, key))
            .await;
        // Unlinked when `file` goes: the open file serves the read, and
        // no file stays.
        result
            .map_err(|e| self.failed("retrieve", key, e))
            .and_then(|()| File::open(&file.path).map_err(self.io("open", key)))
    }

    async fn check_present(&self, key: &Key) -> Result<bool, StorageError> {
        let want = key.to_string();
        let result = self
            .shared
            .program
            .request(Request::CheckPresent(want.clone()), |r| match r {
                Reply::CheckPresentSuccess(k) if k == want => Some(Ok(Ok(true))),
                Reply::CheckPresentFailure(k) if k == want => Some(Ok(Ok(false))),
                Reply::CheckPresentUnknown(k, why) if k == want => Some(Ok(Err(why))),
                _ => None,
            })
            .await;
        match result.map_err(|e| self.failed("checkpresent", key, e))? {
            Ok(present) => Ok(present),
            Err(why) => Err(StorageError::Unavailable {
                remote: self.shared.name.clone(),
                what: format!("CHECKPRESENT {key}"),
                why: or_no_reason("CHECKPRESENT", why),
            }),
        }
    }
}

/// One transfer's file and its directory, both removed when dropped.
struct TransferFile {
    dir: PathBuf,
    path: PathBuf,
    /// The name the program is given.
    given: String,
}

impl Drop for TransferFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// The handler of a TRANSFER's reply for `key`.
fn transfer_reply(
    direction: Direction,
    key: &Key,
) -> impl FnMut(Reply) -> Option<Result<(), String>> {
    let want = key.to_string();
    move |r| match r {
        Reply::TransferSuccess(d, k) if d == direction && k == want => Some(Ok(())),
        Reply::TransferFailure(d, k, why) if d == direction && k == want => {
            Some(Err(or_no_reason("TRANSFER", why)))
        }
        _ => None,
    }
}

/// The size of object `name` when whole: the key's size, or a chunk's
/// share of it; `None` when the key has no size.
fn expected_size(name: &Key) -> Option<u64> {
    let size = name.size()?;
    Some(match (name.chunk_size(), name.chunk_num()) {
        (Some(c), Some(n)) => size.saturating_sub((n.max(1) - 1).saturating_mul(c)).min(c),
        _ => size,
    })
}

impl Storage for External {
    type Reader = tokio::fs::File;
    type Staged = ExternalWrite;

    fn remote(&self) -> &str {
        &self.shared.name
    }

    async fn stat(&self, name: &Key) -> Result<Option<u64>, StorageError> {
        if !self.check_present(name).await? {
            return Ok(None);
        }
        if let Some(size) = expected_size(name) {
            return Ok(Some(size));
        }
        let file = self.retrieve(name).await?;
        let size = file.metadata().map_err(self.io("stat", name))?.len();
        if let Ok(mut kept) = self.shared.retrieved.lock() {
            *kept = Some((name.clone(), file));
        }
        Ok(Some(size))
    }

    async fn read(&self, name: &Key, offset: u64) -> Result<tokio::fs::File, StorageError> {
        let kept = self.shared.retrieved.lock().ok().and_then(|mut k| k.take());
        let mut file = match kept {
            Some((key, file)) if key == *name => file,
            _ => self.retrieve(name).await?,
        };
        file.seek(SeekFrom::Start(offset))
            .map_err(self.io("seek", name))?;
        Ok(tokio::fs::File::from_std(file))
    }

    async fn begin_write(
        &self,
        name: &Key,
        _size: Option<u64>,
    ) -> Result<ExternalWrite, StorageError> {
        let transfer = self.transfer_file(name)?;
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&transfer.path)
            .map_err(self.io("create", name))?;
        Ok(ExternalWrite {
            remote: self.clone(),
            key: name.clone(),
            transfer,
            file,
        })
    }

    async fn remove(&self, name: &Key) -> Result<(), StorageError> {
        let want = name.to_string();
        self.shared
            .program
            .request(Request::Remove(want.clone()), |r| match r {
                Reply::RemoveSuccess(k) if k == want => Some(Ok(())),
                Reply::RemoveFailure(k, why) if k == want => Some(Err(or_no_reason("REMOVE", why))),
                _ => None,
            })
            .await
            .map_err(|e| self.failed("remove", name, e))
    }
}

/// An object being written to its transfer file; the program stores it
/// at commit. The file goes when the write ends, whichever way.
pub struct ExternalWrite {
    remote: External,
    key: Key,
    transfer: TransferFile,
    file: File,
}

impl StagedWrite for ExternalWrite {
    type Reader = tokio::fs::File;

    /// Nothing is kept between attempts: the file goes with the write.
    fn staged(&self) -> u64 {
        0
    }

    async fn read_staged(&mut self) -> Result<Option<tokio::fs::File>, StorageError> {
        Ok(None)
    }

    async fn restart(&mut self) -> Result<(), StorageError> {
        self.file
            .set_len(0)
            .map_err(self.remote.io("truncate", &self.key))?;
        self.file
            .seek(SeekFrom::Start(0))
            .map(drop)
            .map_err(self.remote.io("seek", &self.key))
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), StorageError> {
        self.file
            .write_all(bytes)
            .map_err(self.remote.io("write", &self.key))
    }

    async fn commit(self) -> Result<(), StorageError> {
        let request = Request::Transfer {
            direction: Direction::Store,
            key: self.key.to_string(),
            file: self.transfer.given.clone(),
        };
        let result = self
            .remote
            .shared
            .program
            .request(request, transfer_reply(Direction::Store, &self.key))
            .await;
        result.map_err(|e| self.remote.failed("store", &self.key, e))?;
        tracing::debug!(remote = %self.remote.shared.name, object = %self.key, "stored");
        Ok(())
    }

    async fn abort(self) -> Result<(), StorageError> {
        Ok(())
    }
}

/// Run INITREMOTE (for `initremote` and `enableremote`): the program
/// checks the configuration and may set more of it; what it set is
/// returned, to be recorded in remote.log.
pub async fn init_remote(
    remote: &SpecialRemote,
    setup: &ExternalSetup,
) -> Result<crate::special::config::Params, ExternalError> {
    let mut driver = setup.driver(remote);
    driver
        .request(Request::InitRemote, |r| match r {
            Reply::InitRemoteSuccess => Some(Ok(())),
            Reply::InitRemoteFailure(why) => Some(Err(or_no_reason("INITREMOTE", why))),
            _ => None,
        })
        .await?;
    let changes = driver.host().changes();
    driver.stop();
    Ok(changes)
}

/// Where a repository runs its external programs.
pub fn program_dir(git_dir: &Path, work_dir: Option<&Path>) -> PathBuf {
    work_dir.unwrap_or(git_dir).to_owned()
}

/// `program` as PATH finds it: an executable file.
pub fn find_program(program: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::special::chunks::ChunkConfig;
    use crate::special::Kind;

    /// Two sessions of one process (p2phttp's) transferring at once have
    /// a directory each: one's end never takes the other's file away.
    #[test]
    fn each_transfer_has_a_directory_of_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let setup = ExternalSetup {
            externaltype: "x".into(),
            git_dir: dir.path().to_owned(),
            cwd: dir.path().to_owned(),
            reply_timeout: Duration::from_secs(1),
            jobs: 1,
        };
        let remote = SpecialRemote {
            name: "x".into(),
            uuid: "u-1".into(),
            type_name: "external".into(),
            params: Default::default(),
            kind: Kind::External(Box::new(setup.clone())),
            chunking: ChunkConfig::Whole,
            encryption: None,
            export: None,
        };
        let key = Key::parse("SHA256E-s5--abc.txt").unwrap();
        let (a, b) = (
            External::new(&remote, &setup),
            External::new(&remote, &setup),
        );
        let (fa, fb) = (
            a.transfer_file(&key).unwrap(),
            b.transfer_file(&key).unwrap(),
        );
        assert_ne!(fa.dir, fb.dir);
        std::fs::write(&fb.path, b"hello").unwrap();
        drop(fa);
        assert_eq!(std::fs::read(&fb.path).unwrap(), b"hello");
        let dir = fb.dir.clone();
        drop(fb);
        assert!(!dir.exists(), "removed with its transfer");
    }
}
