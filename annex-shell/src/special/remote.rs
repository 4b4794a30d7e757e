//! A special remote as a [`Backend`]: the session loop serves it as it
//! serves a local repository, over any [`Storage`].
//!
//! What the client observes is what git-annex's proxy gives for a special
//! remote (`Annex/Proxy.hs: proxySpecialRemote`): LOCKCONTENT fails
//! (special remotes cannot lock content), a storage failure is an ERROR
//! for that request alone. CONNECT and NOTIFYCHANGE get that handler's
//! answers (CONNECTDONE 1; an ERROR, the session going on), where
//! git-annex-shell itself ends the session before they reach it. Where we
//! differ too: a PUT resumes (git-annex's proxy always answers `PUT-FROM
//! 0`) and answers ALREADY-HAVE for content the remote holds, and a GET
//! streams from the remote without a copy on the proxy's disk.
//!
//! Changes are logged as for other proxied nodes: the location log (the
//! remote's UUID present or missing) and, for chunks, the chunk log, in
//! this repository's git-annex branch, committed when the session ends.

use std::io::{Seek, SeekFrom};
use std::path::PathBuf;

use annex::branch::{Branch, LogStatus};
use annex::key::Key;
use annex::p2p::MAX_PROTOCOL_VERSION;
use annex::p2p::{Connection, Service};
use annex::store::{Checked, Mismatch};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};

use super::chunks::{self, ChunkConfig, Layout};
use super::present::PresentError;
use super::put::{KeyLock, PutError, Upload};
use super::resume::ResumeFile;
use super::storage::Storage;
use super::SpecialRemote;
use crate::backend::{Backend, BackendError, Failure, Outcome, StoreEnd, Storing};

/// How much of an object is read at a time for a GET.
const READ_BUF: usize = 256 * 1024;

/// Where a key's content is, once found: its objects and their sizes.
pub(crate) struct Located {
    layout: Layout,
    pub(crate) objects: Vec<(Key, u64)>,
}

impl Located {
    pub(crate) fn size(&self) -> u64 {
        self.objects.iter().map(|(_, s)| s).sum()
    }
}

pub struct Special<S: Storage> {
    storage: S,
    name: String,
    uuid: String,
    chunking: ChunkConfig,
    branch: Branch,
    /// The proxy's `annex/`, for the transfer locks.
    annex_dir: PathBuf,
    journalled: bool,
    storing: Option<Result<Upload<S>, Failure>>,
    /// What the reasons given to the client start with, before the
    /// storage's error (which names the remote).
    reports: &'static str,
}

impl<S: Storage> Special<S> {
    pub fn new(storage: S, remote: &SpecialRemote, branch: Branch) -> Special<S> {
        Special {
            annex_dir: branch.git_dir().join("annex"),
            storage,
            name: remote.name.clone(),
            uuid: remote.uuid.clone(),
            chunking: remote.chunking,
            branch,
            journalled: false,
            storing: None,
            // The words git-annex's proxy puts before a special remote's
            // error.
            reports: "proxied special remote reports: ",
        }
    }

    /// The remote as a cluster's node: its reasons start with its name
    /// alone, as every node's do.
    pub(crate) fn into_node(mut self) -> Special<S> {
        self.reports = "";
        self
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn storage(&self) -> &S {
        &self.storage
    }

    pub(crate) fn failure(&self, what: &'static str, e: impl std::fmt::Display) -> Failure {
        Failure {
            node: self.name.clone(),
            what,
            why: format!("{}{e}", self.reports),
        }
    }

    fn refused(&self, what: &'static str, e: impl std::fmt::Display) -> BackendError {
        BackendError::Refused(self.failure(what, e))
    }

    /// Find the key's content: the first layout (in git-annex's order)
    /// whose objects are all there with the sizes they must have.
    pub(crate) async fn locate(&mut self, key: &Key) -> Result<Option<Located>, BackendError> {
        let log_text = self.branch.read_file(&chunks::chunk_log_path(key))?;
        let logged = chunks::recorded(
            &chunks::parse_chunk_log(&log_text.unwrap_or_default()),
            &self.uuid,
        );
        for layout in chunks::layouts(key, self.chunking, &logged) {
            let Some(objects) = self.complete(key, &layout).await? else {
                continue;
            };
            let found = Located { layout, objects };
            if key.size().is_some_and(|s| s != found.size()) {
                continue;
            }
            if let Layout::Chunks {
                size,
                count,
                logged: false,
            } = found.layout
            {
                // git-annex's ensureChunksAreLogged: a guess that proved
                // right is recorded, so a later chunk= change still finds it.
                self.log_chunks(key, size, count)?;
            }
            return Ok(Some(found));
        }
        Ok(None)
    }

    /// Every object of `layout` with its size, or `None` if one is missing
    /// or a chunk other than the last has not the chunk size.
    async fn complete(
        &mut self,
        key: &Key,
        layout: &Layout,
    ) -> Result<Option<Vec<(Key, u64)>>, BackendError> {
        let names = layout.objects(key);
        let mut out = Vec::with_capacity(names.len());
        for (i, name) in names.iter().enumerate() {
            let stat = self.storage.stat(name).await;
            let size = match stat.map_err(|e| self.refused("stat", e))? {
                Some(s) => s,
                None => return Ok(None),
            };
            if let Layout::Chunks { size: chunk, .. } = layout {
                if i + 1 < names.len() && size != *chunk {
                    return Ok(None);
                }
            }
            out.push((name.clone(), size));
        }
        Ok(Some(out))
    }

    fn log_chunks(&mut self, key: &Key, size: u64, count: u64) -> Result<(), BackendError> {
        let uuid = self.uuid.clone();
        self.branch
            .change_file(&chunks::chunk_log_path(key), |old| {
                chunks::change_chunk_log(old.unwrap_or_default(), &uuid, size, count)
            })?;
        self.journalled = true;
        Ok(())
    }

    pub(crate) fn log_presence(&mut self, key: &Key, present: bool) -> Result<(), BackendError> {
        let status = if present {
            LogStatus::Present
        } else {
            LogStatus::Missing
        };
        if self.branch.log_key_location(key, &self.uuid, status)? {
            self.journalled = true;
        }
        Ok(())
    }

    /// Send the located content from `offset` as one DATA. An object that
    /// ends early or fails mid-way is made up with zeros so the DATA stays
    /// whole, and the client hears INVALID.
    async fn send<R, W>(
        &mut self,
        found: &Located,
        offset: u64,
        client: &mut Connection<R, W>,
    ) -> Result<bool, BackendError>
    where
        R: AsyncRead + Unpin + Send,
        W: AsyncWrite + Unpin + Send,
    {
        let len = found.size().saturating_sub(offset);
        tracing::Span::current().record("bytes", len);
        if let [(name, size)] = found.objects.as_slice() {
            // One object in a local file: the kernel sends it.
            let file = self.storage.local_file(name);
            if let Some(mut file) = file.map_err(|e| self.refused("GET", e))? {
                file.seek(SeekFrom::Start(offset.min(*size)))?;
                let before = file.metadata()?;
                crate::backend::send_body(client, len, file.try_clone()?).await?;
                return Ok(crate::backend::same_file(&before, &file.metadata()?));
            }
        }
        let mut writer = client.start_data(len).await?;
        let mut intact = true;
        let mut skip = offset;
        let mut buf = vec![0u8; READ_BUF.min(usize::try_from(len).unwrap_or(READ_BUF))];
        for (name, size) in &found.objects {
            if skip >= *size {
                skip -= size;
                continue;
            }
            let mut left = size - skip;
            match self.storage.read(name, skip).await {
                Ok(mut reader) => {
                    while left > 0 {
                        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                        let n = match reader.read(&mut buf[..want]).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        writer.write_chunk(&buf[..n]).await?;
                        left -= n as u64;
                    }
                }
                Err(e) => {
                    tracing::warn!("{e}");
                    // The client hears INVALID; our stderr reaches its
                    // terminal with the reason (an external program's
                    // failed RETRIEVE, say).
                    crate::user::tell(format_args!("{e}"));
                }
            }
            if left > 0 {
                intact = false;
                tracing::warn!(object = %name, left, "object ended early; padding");
                pad(&mut writer, left, &mut buf).await?;
            }
            skip = 0;
        }
        writer.finish().await?;
        Ok(intact)
    }

    pub(crate) async fn remove_now(&mut self, key: &Key) -> Result<Outcome, BackendError> {
        let log_text = self.branch.read_file(&chunks::chunk_log_path(key))?;
        let logged = chunks::recorded(
            &chunks::parse_chunk_log(&log_text.unwrap_or_default()),
            &self.uuid,
        );
        for layout in chunks::layouts(key, self.chunking, &logged) {
            for name in layout.objects(key) {
                let removed = self.storage.remove(&name).await;
                removed.map_err(|e| self.refused("REMOVE", e))?;
            }
        }
        for (size, _) in logged {
            self.log_chunks(key, size, 0)?;
        }
        self.log_presence(key, false)?;
        Ok(Outcome::plain(true))
    }
}

/// Why [`Special::finish_upload`] did not store the key.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UploadError {
    /// Not stored (a mismatch, INVALID, the storage failing); nothing of
    /// this upload is visible.
    #[error(transparent)]
    Put(#[from] PutError),
    /// Stored, but the logs could not be written.
    #[error(transparent)]
    Backend(#[from] BackendError),
}

/// The steps of a PUT into the remote, one implementation for the
/// proxy's [`Backend`] and a cluster's node
/// ([`crate::cluster`]'s special-remote node).
impl<S: Storage> Special<S> {
    /// Begin storing `key`: `None` when the remote has it already; else
    /// the upload from its resume offset, or why the remote cannot take
    /// it. Content there that the location log does not record (a direct
    /// upload not yet announced, or one whose announcement was refused)
    /// is not vouched for: the client is asked for it, and may answer
    /// DATA-PRESENT ([`Special::accept_present`]) or send it.
    pub(crate) async fn begin_upload(
        &mut self,
        key: &Key,
    ) -> Result<Option<Result<Upload<S>, Failure>>, BackendError> {
        let recorded = self.branch.key_locations(key)?.contains(&self.uuid);
        if recorded && self.locate(key).await?.is_some() {
            return Ok(None);
        }
        let chunk = self.chunking.chunk_size_for(key);
        let upload = match KeyLock::take(&self.annex_dir, &self.uuid, key) {
            Ok(lock) => {
                let resume = ResumeFile::new(&self.annex_dir, &self.uuid, key);
                Upload::begin(&self.storage, key, chunk, lock, resume)
                    .await
                    .map_err(|e| self.failure("PUT", e))
            }
            Err(e) => Err(self.failure("PUT", e)),
        };
        Ok(Some(upload))
    }

    /// The sender's word is in: verify, make the content visible, and log
    /// it (chunk log, location log) in the branch.
    pub(crate) async fn finish_upload(
        &mut self,
        upload: Upload<S>,
        mode: annex::store::VerifyMode,
        digest: Option<&Result<Checked, Mismatch>>,
    ) -> Result<(), UploadError> {
        let key = upload.key().clone();
        let chunks = upload.finish(&self.storage, mode, digest).await?;
        if let Some((size, count)) = chunks {
            self.log_chunks(&key, size, count)?;
        }
        self.log_presence(&key, true)?;
        Ok(())
    }

    /// Commit what this remote's logs gained, and whatever else waits in
    /// the journal: an external program's SETSTATE, SETURLPRESENT, … are
    /// journalled by it, not by this session, and git-annex commits its
    /// journal when its command ends.
    pub(crate) fn commit_logs(&mut self) -> Result<(), BackendError> {
        if std::mem::take(&mut self.journalled) | self.branch.journal_dirty() {
            self.branch.commit()?;
        }
        Ok(())
    }
}

async fn pad<R, W>(
    writer: &mut annex::p2p::DataWriter<'_, R, W>,
    mut left: u64,
    buf: &mut [u8],
) -> Result<(), BackendError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    buf.fill(0);
    while left > 0 {
        let n = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        writer.write_chunk(&buf[..n]).await?;
        left -= n as u64;
    }
    Ok(())
}

impl<S: Storage> Backend for Special<S> {
    fn uuid(&self) -> &str {
        &self.uuid
    }

    async fn negotiate(&mut self, offered: u32) -> u32 {
        offered.min(MAX_PROTOCOL_VERSION)
    }

    /// The remote is the end of every route.
    async fn bypass(&mut self, _set: Vec<String>) -> Result<(), BackendError> {
        Ok(())
    }

    async fn check_present(&mut self, key: &Key) -> Result<bool, BackendError> {
        Ok(self.locate(key).await?.is_some())
    }

    /// Special remotes cannot lock content: FAILURE, as git-annex's proxy
    /// answers (the client then looks for another copy to lock).
    async fn lock(&mut self, _key: &Key) -> Result<bool, BackendError> {
        Ok(false)
    }

    async fn unlock(&mut self) {}

    async fn remove(&mut self, key: &Key, deadline: Option<u64>) -> Result<Outcome, BackendError> {
        if deadline.is_some_and(|ts| annex::clock::monotonic_seconds() >= ts) {
            return Ok(Outcome::plain(false));
        }
        self.remove_now(key).await
    }

    async fn retrieve<R, W>(
        &mut self,
        key: &Key,
        offset: u64,
        _file: Option<&str>,
        client: &mut Connection<R, W>,
    ) -> Result<bool, BackendError>
    where
        R: AsyncRead + Unpin + Send,
        W: AsyncWrite + Unpin + Send,
    {
        match self.locate(key).await? {
            Some(found) => {
                // Before DATA. git-annex's client shows an ERROR to a GET
                // only as a failed transfer: the reason goes to its
                // terminal too.
                if let Err(e) = self.storage.readable() {
                    crate::user::tell(format_args!("{e}"));
                    return Err(self.refused("GET", e));
                }
                self.send(&found, offset, client).await
            }
            None => {
                client.send_data(0, &mut tokio::io::empty()).await?;
                Ok(false)
            }
        }
    }

    /// A GET changes nothing on the remote.
    async fn retrieved(&mut self, _verdict: Option<bool>) {}

    async fn store_begin(
        &mut self,
        key: &Key,
        _file: Option<&str>,
    ) -> Result<Storing, BackendError> {
        self.storing = None;
        match self.begin_upload(key).await? {
            None => Ok(Storing::AlreadyHave(Vec::new())),
            Some(upload) => {
                let offset = upload.as_ref().map_or(0, Upload::offset);
                // A remote that cannot take it fails this key after its body.
                self.storing = Some(upload);
                Ok(Storing::From(offset))
            }
        }
    }

    async fn store_body<R, W>(
        &mut self,
        len: u64,
        client: &mut Connection<R, W>,
    ) -> Result<(), BackendError>
    where
        R: AsyncRead + Unpin + Send,
        W: AsyncWrite + Unpin + Send,
    {
        let mut body = client.data_body(len);
        let Some(Ok(upload)) = self.storing.as_mut() else {
            while body.next_chunk().await?.is_some() {}
            return Ok(());
        };
        upload.expect_len(len);
        while let Some(piece) = body.next_chunk().await? {
            upload.write(&self.storage, piece).await;
        }
        Ok(())
    }

    async fn store_end(&mut self, end: StoreEnd) -> Result<Outcome, BackendError> {
        let upload = match self.storing.take() {
            Some(Ok(u)) => u,
            Some(Err(failure)) => {
                tracing::warn!("{failure}");
                // Our stderr reaches the client's terminal, as the local
                // back-end's reasons do.
                crate::user::tell(format_args!("{failure}"));
                return Ok(Outcome::plain(false));
            }
            None => return Ok(Outcome::plain(false)),
        };
        let key = upload.key().clone();
        let mode = match end {
            StoreEnd::Body(mode) => mode,
            // What was staged stays for a resume.
            StoreEnd::Abandon(_) => return Ok(Outcome::plain(false)),
            StoreEnd::Present => {
                drop(upload);
                return match self.accept_present(&key).await {
                    Ok(()) => Ok(Outcome::plain(true)),
                    Err(PresentError::Backend(e)) => Err(e),
                    Err(e) => {
                        crate::user::tell(format_args!("{e}"));
                        Ok(Outcome::plain(false))
                    }
                };
            }
        };
        match self.finish_upload(upload, mode, None).await {
            Ok(()) => Ok(Outcome::plain(true)),
            Err(UploadError::Backend(e)) => Err(e),
            Err(UploadError::Put(e)) => {
                crate::user::tell(format_args!("{}: {key}: {e}", self.name));
                Ok(Outcome::plain(false))
            }
        }
    }

    async fn changed_refs(&mut self) -> Result<Vec<String>, BackendError> {
        Err(self.refused_plain("NOTIFYCHANGE unsupported for a special remote"))
    }

    /// git-annex's proxy ends the session with CONNECTDONE 1: a special
    /// remote has no git repository.
    async fn git_service<R, W>(
        &mut self,
        _service: Service,
        _client: &mut Connection<R, W>,
    ) -> Result<Option<i32>, BackendError>
    where
        R: AsyncRead + Unpin + Send,
        W: AsyncWrite + Unpin + Send,
    {
        Ok(Some(1))
    }

    async fn finish(&mut self) -> Result<(), BackendError> {
        self.commit_logs()
    }
}

impl<S: Storage> Special<S> {
    fn refused_plain(&self, why: &str) -> BackendError {
        BackendError::Refused(Failure {
            node: self.name.clone(),
            what: "NOTIFYCHANGE",
            why: why.to_owned(),
        })
    }
}
