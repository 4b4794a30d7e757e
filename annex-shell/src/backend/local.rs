//! The local repository as a back-end: objects in this repository's
//! annex, presence recorded in its git-annex branch.

use std::collections::BTreeMap;
use std::time::Duration;

use annex::branch::{Branch, LogStatus};
use annex::key::Key;
use annex::p2p::{Connection, Service};
use annex::repo::Repo;
use annex::store::{ContentLock, ObjectStore, StoreError, UploadTransfer};
use tokio::io::{AsyncRead, AsyncWrite};

use super::files::{self, Receiver};
use super::owed::OwedLogs;
use super::{Backend, BackendError, Outcome, StoreEnd, Storing};

/// How often NOTIFYCHANGE looks at the refs.
const POLL: Duration = Duration::from_millis(250);

/// One session's view of a repository on this host.
pub struct Local {
    repo: Repo,
    store: ObjectStore,
    branch: Branch,
    my_uuid: String,
    /// Whom the session serves, for the transfer records.
    client_uuid: String,
    /// Whether the journal gained lines this session, so the branch needs
    /// a commit when it ends.
    journalled: bool,
    /// Whether owed lines go to the journal after each answer, and ending
    /// commits only if this session journalled, not lines other sessions
    /// left there too (as git-annex does); see [`Local::pooled`].
    pooled: bool,
    /// LOCKCONTENT's lock, until UNLOCKCONTENT.
    lock: Option<ContentLock>,
    /// The GET being answered, until the client's verdict.
    upload: Option<UploadTransfer>,
    /// The PUT being received.
    receiving: Option<(Key, Receiver)>,
    /// Location log lines owed for answers already given (`owed.rs`).
    owed: OwedLogs,
}

impl Local {
    pub fn new(repo: Repo, store: ObjectStore, my_uuid: String, client_uuid: String) -> Self {
        Local {
            branch: repo.branch(),
            repo,
            store,
            my_uuid,
            client_uuid,
            journalled: false,
            pooled: false,
            lock: None,
            upload: None,
            receiving: None,
            owed: OwedLogs::default(),
        }
    }

    /// For p2phttp, whose pooled sessions outlive their request: owed
    /// lines are journalled after each answer (`owed.rs`), and a session
    /// commits what it journalled when it closes, so a short session
    /// ending (a putoffset) does not commit the others' lines once per
    /// request.
    pub fn pooled(mut self) -> Self {
        self.pooled = true;
        self
    }

    /// Records, once the answer is out (`owed.rs`), that this repository
    /// now has, or no longer has, a key. A line that cannot be written is
    /// told on stderr.
    fn owe_log(&mut self, key: &Key, present: bool) {
        let status = if present {
            LogStatus::Present
        } else {
            LogStatus::Missing
        };
        self.owed.owe(key, [self.my_uuid.as_str()], status);
    }

    /// Commits the owed lines (`owed.rs`), or journals them in a pooled
    /// session; a line that could not be written is told on stderr.
    fn pay_logs(&mut self) -> Result<(), BackendError> {
        if self.owed.is_empty() {
            return Ok(());
        }
        let store = &self.store;
        let holds = |key: &Key, status| store.has(key) == (status == LogStatus::Present);
        let unlogged = |key: &Key, status, e: &annex::branch::BranchError| {
            let done = if status == LogStatus::Missing {
                "removed"
            } else {
                "stored"
            };
            crate::user::tell(format_args!("{key}: {done}, but not logged: {e}"));
        };
        if self.pooled {
            self.journalled |= self.owed.journal(&self.branch, holds, unlogged);
            return Ok(());
        }
        self.owed.pay(&self.branch, holds, unlogged)?;
        Ok(())
    }
}

impl Backend for Local {
    fn uuid(&self) -> &str {
        &self.my_uuid
    }

    /// What the client offered is capped already; we speak every version.
    async fn negotiate(&mut self, offered: u32) -> u32 {
        offered
    }

    /// A repository is the end of every route: nothing to pass on.
    async fn bypass(&mut self, _set: Vec<String>) -> Result<(), BackendError> {
        Ok(())
    }

    async fn check_present(&mut self, key: &Key) -> Result<bool, BackendError> {
        Ok(self.store.has(key))
    }

    async fn lock(&mut self, key: &Key) -> Result<bool, BackendError> {
        self.lock = match self.store.lock_content(key) {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!("locking {key}: {e}");
                None
            }
        };
        Ok(self.lock.is_some())
    }

    async fn unlock(&mut self) {
        self.lock = None;
    }

    async fn remove(&mut self, key: &Key, deadline: Option<u64>) -> Result<Outcome, BackendError> {
        use annex::store::RemoveOutcome;
        // The deadline is checked right before the object leaves the store
        // (after the retention check), so the removal happens by the
        // deadline or not at all.
        let still_allowed = || match deadline {
            Some(ts) => annex::clock::monotonic_seconds() < ts,
            None => true,
        };
        let ok = match self.store.remove(key, still_allowed)? {
            RemoveOutcome::NotPresent => true,
            RemoveOutcome::Removed => {
                self.owe_log(key, false);
                true
            }
            // git-annex dies here with "content is locked"; a FAILURE tells
            // the client the same thing and keeps the session.
            RemoveOutcome::Locked | RemoveOutcome::TooLate => false,
        };
        Ok(Outcome::plain(ok))
    }

    async fn retrieve<R, W>(
        &mut self,
        key: &Key,
        offset: u64,
        file: Option<&str>,
        client: &mut Connection<R, W>,
    ) -> Result<bool, BackendError>
    where
        R: AsyncRead + Unpin + Send,
        W: AsyncWrite + Unpin + Send,
    {
        let Some((content, size)) = self.store.open_content(key)? else {
            client.send_data(0, &mut tokio::io::empty()).await?;
            return Ok(false);
        };
        self.upload = Some(self.store.begin_upload(key, &self.client_uuid, file)?);
        files::send_content(client, content, size, offset).await
    }

    /// GET never changes the location log: the client may not keep it.
    /// The upload counts as failed unless the client says it got it.
    async fn retrieved(&mut self, verdict: Option<bool>) {
        if let Some(upload) = self.upload.take() {
            upload.finish(verdict == Some(true));
        }
    }

    async fn store_begin(
        &mut self,
        key: &Key,
        file: Option<&str>,
    ) -> Result<Storing, BackendError> {
        self.receiving = None;
        if self.store.has(key) {
            return Ok(Storing::AlreadyHave(Vec::new()));
        }
        let (receiver, offset) = Receiver::offer(&self.store, key, file);
        self.receiving = Some((key.clone(), receiver));
        Ok(Storing::From(offset))
    }

    /// The transfer lock, the info file, the space check and the partial
    /// file, while PUT-FROM travels and the client's DATA comes back.
    async fn store_offered(&mut self) {
        if let Some((key, receiver)) = self.receiving.as_mut() {
            receiver.open(&self.store, key, &self.client_uuid);
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
        let Some((key, receiver)) = self.receiving.as_mut() else {
            client.recv_data(len, &mut annex::p2p::Discard).await?;
            return Ok(());
        };
        // Opened already, unless store_offered was skipped.
        receiver.open(&self.store, key, &self.client_uuid);
        // More than the key can hold is refused before a byte is written;
        // the body is still read, and thrown away.
        receiver.expect_len(len);
        // A short body ends the connection; the partial bytes stay in
        // annex/tmp for a resumed PUT.
        client.recv_data(len, receiver).await?;
        Ok(())
    }

    async fn store_end(&mut self, end: StoreEnd) -> Result<Outcome, BackendError> {
        let Some((key, receiver)) = self.receiving.take() else {
            return Ok(Outcome::plain(false));
        };
        let stored = match end {
            StoreEnd::Body(mode) => match receiver.finish(mode) {
                Ok(()) => true,
                // The client's offset probe (DATA 0, INVALID) is no error.
                Err(StoreError::NoContentSent) => false,
                Err(e) => {
                    crate::user::tell(format_args!("{key}: {e}"));
                    false
                }
            },
            StoreEnd::Present => {
                receiver.abandon();
                self.store.has(&key)
            }
            StoreEnd::Abandon(_) => {
                receiver.abandon();
                return Ok(Outcome::plain(false));
            }
        };
        if stored {
            self.owe_log(&key, true);
        }
        Ok(Outcome::plain(stored))
    }

    async fn settle(&mut self) {
        if self.pooled || self.owed.due() {
            // Told already; the session goes on.
            let _ = self.pay_logs();
        }
    }

    async fn changed_refs(&mut self) -> Result<Vec<String>, BackendError> {
        let before = self.repo.ref_values()?;
        loop {
            tokio::time::sleep(POLL).await;
            let changed = changed_values(&before, &self.repo.ref_values()?);
            if !changed.is_empty() {
                return Ok(changed);
            }
        }
    }

    async fn git_service<R, W>(
        &mut self,
        service: Service,
        client: &mut Connection<R, W>,
    ) -> Result<Option<i32>, BackendError>
    where
        R: AsyncRead + Unpin + Send,
        W: AsyncWrite + Unpin + Send,
    {
        let dir = self.repo.work_dir().unwrap_or(self.repo.git_dir());
        files::tunnel_git(dir, service, client).await.map(Some)
    }

    async fn finish(&mut self) -> Result<(), BackendError> {
        if !self.owed.is_empty() && !self.pooled {
            // One commit, with the journal.
            return self.pay_logs();
        }
        self.pay_logs()?;
        // Like git-annex, commit whatever the journal holds, also lines an
        // earlier `configlist` autoinit left there.
        if self.journalled || (!self.pooled && self.branch.journal_dirty()) {
            self.branch.commit()?;
        }
        Ok(())
    }
}

/// The new values of the refs that changed, each once.
fn changed_values(
    before: &BTreeMap<String, String>,
    now: &BTreeMap<String, String>,
) -> Vec<String> {
    let mut out: Vec<String> = now
        .iter()
        .filter(|(name, sha)| before.get(*name) != Some(*sha))
        .map(|(_, sha)| sha.clone())
        .collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str =
        "SHA256E-s12--a948904f2f0f479b8f8197694b30184b0d2ed1c1cd2a1ec0fb85d299a192a447.dat";

    fn local() -> (tempfile::TempDir, Local, String) {
        let dir = tempfile::tempdir().expect("tempdir");
        let (path, uuid) = crate::testutil::new_repo(dir.path(), "r.git", "r");
        let repo = Repo::open(&path).expect("open");
        let store = repo.store();
        let local = Local::new(repo, store, uuid.clone(), "client".into());
        (dir, local, uuid)
    }

    /// A line owed since an answer is written only while the content is
    /// still as it says: another session that removed (or stored) the key
    /// since, and logged so, is not outdated by it. Committed directly, or
    /// journalled by a pooled (p2phttp) session.
    #[test]
    fn owed_lines_are_written_only_while_they_hold() {
        for pooled in [false, true] {
            owed_lines_hold(pooled);
        }
    }

    fn owed_lines_hold(pooled: bool) {
        let (_d, local, uuid) = local();
        let mut local = if pooled { local.pooled() } else { local };
        let key = Key::parse(KEY).expect("key");
        let present =
            |local: &Local| local.branch.key_locations(&key).expect("log") == [uuid.clone()];

        // Answered as stored; another session removed it and logged that
        // before our line was paid.
        local.owe_log(&key, true);
        local
            .branch
            .log_key_location(&key, &uuid, LogStatus::Missing)
            .expect("log");
        local.pay_logs().expect("commit");
        assert!(!present(&local), "the removal's line stands");

        // Answered as stored, and it still is: written.
        let object = local.store.new_object_path(&key).expect("path");
        std::fs::create_dir_all(object.parent().expect("dir")).expect("mkdir");
        std::fs::write(&object, b"hello world\n").expect("object");
        local.owe_log(&key, true);
        local.pay_logs().expect("commit");
        assert!(present(&local));

        // Answered as removed, but stored again (and logged) since.
        local.owe_log(&key, false);
        local.pay_logs().expect("commit");
        assert!(present(&local), "the store's line stands");

        // Answered as removed, and it still is: written.
        std::fs::remove_file(&object).expect("rm");
        local.owe_log(&key, false);
        local.pay_logs().expect("commit");
        assert!(!present(&local));
    }
}
