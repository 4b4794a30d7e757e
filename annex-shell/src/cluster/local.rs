//! A cluster node on this machine, served in-process: the gateway opens
//! the node's repository itself. Uploads: the gateway writes the node's
//! temp file and, for all such nodes of one upload, hashes the stream once
//! ([`Node::shares_hash`]), where a child per node would read its own
//! copy from a pipe and hash it again. Verified content goes into the
//! node's object store and the node's own location log, as the node's
//! server would do; removals likewise. Downloads go from the node's object
//! file by sendfile. The node shares this machine's monotonic clock, so a
//! REMOVE-BEFORE deadline needs no translation. Only git's CONNECT goes
//! through a child, over the node's [`Link`].

use annex::branch::{Branch, LogStatus};
use annex::key::Key;
use annex::p2p::ConnError;
use annex::store::{Incoming, ObjectStore, RemoveOutcome, UploadTransfer};
use annex::transport::Location;

use super::node::{failure, Answer, Deadline, Ending, Fut, Node, Offer, Source};
use super::pool::Link;
use crate::backend::owed::OwedLogs;
use crate::backend::{same_file, Failure, Outcome};

pub struct LocalNode {
    link: Link,
    store: ObjectStore,
    branch: Branch,
    /// Whether its journal gained lines this session (committed on close).
    journalled: bool,
    /// Lines owed to the commit on close instead ([`Node::owe_logs`]).
    owed: Option<OwedLogs>,
    /// The upload under way.
    receiving: Option<Receiving>,
    /// The GET under way: the file sent, as it was before, to tell
    /// whether it changed while it was sent; the upload's record.
    serving: Option<Serving>,
}

struct Receiving {
    key: Key,
    offset: u64,
    /// The partial file, or why the node dropped out.
    state: Result<Box<Incoming>, String>,
}

struct Serving {
    probe: std::fs::File,
    before: std::fs::Metadata,
    upload: Option<UploadTransfer>,
}

impl LocalNode {
    /// The node at `link`'s directory, if it is there the annex
    /// repository the link names.
    pub fn open(link: Link) -> Result<LocalNode, Box<Link>> {
        let Location::Local(dir) = &link.remote.location else {
            return Err(Box::new(link));
        };
        let repo = match annex::repo::Repo::open(dir) {
            Ok(r) if r.is_annex_initialized() && r.uuid().as_deref() == Some(&link.remote.uuid) => {
                r
            }
            _ => return Err(Box::new(link)),
        };
        Ok(LocalNode {
            store: repo.store(),
            branch: repo.branch(),
            link,
            journalled: false,
            owed: None,
            receiving: None,
            serving: None,
        })
    }

    /// Journal a change of the node's own location log, as the node's
    /// own server would.
    fn log(&mut self, key: &Key, status: LogStatus) {
        if let Some(owed) = &mut self.owed {
            owed.owe(key, [self.link.remote.uuid.as_str()], status);
            if owed.due() {
                self.pay_logs();
            }
            return;
        }
        let uuid = &self.link.remote.uuid;
        match self.branch.log_key_location(key, uuid, status) {
            Ok(changed) => self.journalled |= changed,
            Err(e) => {
                tracing::warn!(node = %self.link.remote.name, %key, error = %e, "recording in the node's location log")
            }
        }
    }

    /// Commits the owed lines, each only while the content is as it
    /// says (`backend/owed.rs`).
    fn pay_logs(&mut self) {
        let Some(owed) = &mut self.owed else { return };
        if owed.is_empty() {
            return;
        }
        let store = &self.store;
        let holds = |key: &Key, status| store.has(key) == (status == LogStatus::Present);
        let name = &self.link.remote.name;
        let unlogged = |key: &Key, _, e: &annex::branch::BranchError| {
            tracing::warn!(node = %name, %key, error = %e, "recording in the node's location log");
        };
        if let Err(e) = owed.pay(&self.branch, holds, unlogged) {
            tracing::warn!(node = %name, error = %e, "committing the node's git-annex branch");
        }
    }

    fn named(&self, e: &dyn std::fmt::Display) -> String {
        format!("{}: {e}", self.link.remote.name)
    }

    /// The content from `offset`: the file, positioned, and its length.
    fn content(
        &mut self,
        key: &Key,
        offset: u64,
        to: &str,
        file: Option<&str>,
    ) -> Result<Source<'static>, String> {
        use std::io::{Seek, SeekFrom};
        let (mut content, size) = match self.store.open_content(key) {
            Ok(Some(c)) => c,
            Ok(None) => return Err(self.named(&"does not have it")),
            Err(e) => return Err(self.named(&e)),
        };
        let before = content.metadata().map_err(|e| self.named(&e))?;
        content
            .seek(SeekFrom::Start(offset.min(size)))
            .map_err(|e| self.named(&e))?;
        let probe = content.try_clone().map_err(|e| self.named(&e))?;
        self.serving = Some(Serving {
            probe,
            before,
            upload: self.store.begin_upload(key, to, file).ok(),
        });
        Ok(Source::File(content, size.saturating_sub(offset)))
    }

    /// Verify and store what came, as the client's verdict allows; with
    /// the gateway's digest when this upload is the whole stream.
    fn store(&mut self, ending: &Ending<'_>) -> Option<Result<Outcome, String>> {
        let Receiving { key, offset, state } = self.receiving.take()?;
        let key = &key;
        let inc = match state {
            Ok(inc) => inc,
            Err(why) => return Some(Err(self.named(&why))),
        };
        let stored = match ending {
            Ending::Body {
                digest: Some(d), ..
            } if offset == 0 => inc.finish_verified((*d).clone()),
            Ending::Body { mode, .. } => inc.finish(*mode),
            Ending::Present => {
                inc.abandon();
                if !self.store.has(key) {
                    return Some(Ok(Outcome::plain(false)));
                }
                self.log(key, LogStatus::Present);
                return Some(Ok(Outcome::plain(true)));
            }
            Ending::Abandon(_) => {
                inc.abandon();
                return None;
            }
        };
        Some(match stored {
            Ok(_) => {
                self.log(key, LogStatus::Present);
                Ok(Outcome::plain(true))
            }
            Err(e) => Err(self.named(&e)),
        })
    }
}

impl Node for LocalNode {
    fn name(&self) -> &str {
        &self.link.remote.name
    }

    fn uuid(&self) -> &str {
        &self.link.remote.uuid
    }

    fn ready(&self) -> bool {
        true
    }

    fn busy(&self) -> bool {
        self.store.uploads_running() > 0
    }

    fn in_process(&self) -> bool {
        true
    }

    fn owe_logs(&mut self) {
        self.owed.get_or_insert_with(OwedLogs::default);
    }

    fn check_present<'a>(&'a mut self, key: &'a Key) -> Fut<'a, Result<bool, Failure>> {
        Box::pin(async move { Ok(self.store.has(key)) })
    }

    /// The deadline is checked right before the object leaves the store, as
    /// the node's server checks it.
    fn remove<'a>(&'a mut self, key: &'a Key, deadline: Option<Deadline>) -> Fut<'a, Answer> {
        Box::pin(async move {
            let still_allowed = || match deadline {
                Some(d) => annex::clock::monotonic_seconds() < d.at,
                None => true,
            };
            match self.store.remove(key, still_allowed) {
                Ok(RemoveOutcome::NotPresent) => Ok(Outcome::plain(true)),
                Ok(RemoveOutcome::Removed) => {
                    self.log(key, LogStatus::Missing);
                    Ok(Outcome::plain(true))
                }
                Ok(RemoveOutcome::Locked | RemoveOutcome::TooLate) => Ok(Outcome::plain(false)),
                Err(e) => Err(failure(self.name(), "REMOVE")(self.named(&e))),
            }
        })
    }

    fn retrieve<'a>(
        &'a mut self,
        key: &'a Key,
        offset: u64,
        file: Option<&'a str>,
        to: &'a str,
    ) -> Fut<'a, Result<Source<'a>, Failure>> {
        let failed = failure(self.name(), "GET");
        Box::pin(async move { self.content(key, offset, to, file).map_err(failed) })
    }

    /// Intact if the object file did not change while it was sent.
    fn sent(&mut self) -> Fut<'_, bool> {
        Box::pin(async move {
            let Some(s) = &self.serving else { return false };
            s.probe
                .metadata()
                .map(|after| same_file(&s.before, &after))
                .unwrap_or(false)
        })
    }

    fn retrieved(&mut self, verdict: Option<bool>) -> Fut<'_, ()> {
        Box::pin(async move {
            if let Some(upload) = self.serving.take().and_then(|s| s.upload) {
                upload.finish(verdict == Some(true));
            }
        })
    }

    fn offer<'a>(&'a mut self, key: &'a Key, file: Option<&'a str>, to: &'a str) -> Fut<'a, Offer> {
        Box::pin(async move {
            self.abandon();
            if self.store.has(key) {
                return Offer::Has(Vec::new());
            }
            match self.store.begin_receive(key, to, file) {
                Ok(inc) => {
                    let offset = inc.offset();
                    self.receiving = Some(Receiving {
                        key: key.clone(),
                        offset,
                        state: Ok(Box::new(inc)),
                    });
                    Offer::From(offset)
                }
                Err(e) => Offer::No(failure(self.name(), "PUT")(self.named(&e))),
            }
        })
    }

    fn shares_hash(&self, start: u64) -> bool {
        start == 0
            && self
                .receiving
                .as_ref()
                .is_some_and(|r| r.offset == 0 && r.state.is_ok())
    }

    /// A node that would then hold more than the key's size drops out
    /// before anything is written (its partial file goes too), as its own
    /// server would refuse it.
    fn begin_body(&mut self, end: u64) -> Fut<'_, ()> {
        Box::pin(async move {
            if let Some(Receiving { state, .. }) = &mut self.receiving {
                let refused = match state {
                    Ok(inc) => inc.expect_end(end).err(),
                    Err(_) => None,
                };
                if let Some(e) = refused {
                    *state = Err(e.to_string());
                }
            }
        })
    }

    fn receive<'a>(&'a mut self, at: u64, chunk: &'a [u8], hashed: bool) -> Fut<'a, ()> {
        Box::pin(async move {
            let Some(Receiving { offset, state, .. }) = &mut self.receiving else {
                return;
            };
            let offset = *offset;
            let Ok(inc) = state else { return };
            let end = at + chunk.len() as u64;
            if end <= offset {
                return;
            }
            let skip = usize::try_from(offset.saturating_sub(at)).unwrap_or(chunk.len());
            let piece = &chunk[skip..];
            // A node resuming from its own partial file hashes for itself:
            // its bytes before the offset are not in the stream.
            let written = if hashed && offset == 0 {
                inc.write_chunk_unhashed(piece)
            } else {
                inc.write_chunk(piece)
            };
            if let Err(e) = written {
                *state = Err(e.to_string());
            }
        })
    }

    fn conclude<'a>(&'a mut self, ending: &'a Ending<'a>) -> Fut<'a, Option<Answer>> {
        let failed = failure(self.name(), "PUT");
        Box::pin(async move { self.store(ending).map(|a| a.map_err(failed)) })
    }

    /// Partial files stay for a resume, as a node's server keeps them.
    fn abandon(&mut self) {
        if let Some(Receiving { state: Ok(inc), .. }) = self.receiving.take() {
            inc.abandon();
        }
    }

    /// Sending from the node's file broke, or its session for git did.
    fn fail(&mut self, what: &'static str, e: ConnError) -> Fut<'_, Failure> {
        let failed = failure(self.name(), what);
        Box::pin(async move {
            if self.link.is_up() {
                return failed(self.link.fail(e).await);
            }
            let why = match std::error::Error::source(&e) {
                Some(cause) => self.named(&format!("{e}: {cause}")),
                None => self.named(&e),
            };
            failed(why)
        })
    }

    fn link(&mut self) -> Option<&mut Link> {
        Some(&mut self.link)
    }

    /// Lets go of git's session, and commits what the node journalled.
    fn close(&mut self) -> Fut<'_, ()> {
        Box::pin(async move {
            self.abandon();
            self.link.close().await;
            self.pay_logs();
            if std::mem::take(&mut self.journalled) {
                if let Err(e) = self.branch.commit() {
                    tracing::warn!(node = %self.link.remote.name, error = %e, "committing the node's git-annex branch");
                }
            }
        })
    }
}
