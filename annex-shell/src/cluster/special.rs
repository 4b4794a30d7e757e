//! A special remote as a cluster node (`annex-cluster-node` on a remote
//! made by `initremote`, as git-annex allows): the gateway drives the
//! special-remote framework ([`crate::special`]) in-process, through the
//! same steps the proxy's back-end uses ([`Special::begin_upload`],
//! [`Upload::write`], [`Special::finish_upload`]), so chunking, the chunk
//! log, verification before anything is visible and the location log are
//! the framework's, over any [`Storage`] kind.
//!
//! Hashing: an upload that starts at byte 0 shares the gateway's one
//! hash of the client's stream ([`Node::shares_hash`], as the
//! in-process repositories do), so one hash serves every such node; one
//! that resumes hashes for itself, because the framework's [`Upload`]
//! first reads back and hashes what the remote already holds, which is
//! not in the stream. Either way the body comes from the gateway's single
//! read of the client's stream. A node whose storage fails while the body streams keeps
//! reading nothing, removes what this upload committed, and answers its
//! failure, so the cluster never names it among the holders.
//!
//! Logs (location, chunk) go to the gateway's git-annex branch, where
//! git-annex keeps them for a special remote; they are committed when
//! the session ends.

use annex::key::Key;
use annex::p2p::ConnError;
use annex::repo::Repo;

use super::node::{failure, Answer, Deadline, Ending, Fut, Node, Offer, Source};
use crate::backend::{same_file, Backend, BackendError, Failure, Outcome};
use crate::special::crypt::Crypt;
use crate::special::present::PresentError;
use crate::special::put::{PutError, Upload};
use crate::special::read::Objects;
use crate::special::remote::{Special, UploadError};
use crate::special::storage::Storage;
use crate::special::{with_storage, SpecialRemote, WithStorage};

/// The node serving `remote` from this repository (`repo`, whose
/// git-annex branch keeps the remote's logs), or why it cannot be served.
pub(crate) fn open(repo: &Repo, remote: &SpecialRemote) -> Result<Box<dyn Node>, String> {
    with_storage(repo, remote, NodeOf { repo, remote }).map_err(|e| e.to_string())
}

/// A node, as a [`WithStorage`] job: every kind behind the encryption
/// layer (a pass-through when the remote does not encrypt).
struct NodeOf<'a> {
    repo: &'a Repo,
    remote: &'a SpecialRemote,
}

impl WithStorage for NodeOf<'_> {
    type Out = Box<dyn Node>;

    fn with<S>(self, storage: S) -> Box<dyn Node>
    where
        S: Storage + 'static,
        S::Reader: 'static,
    {
        let special = Special::new(crypt(storage, self.remote), self.remote, self.repo.branch());
        Box::new(SpecialNode::new(special.into_node()))
    }
}

fn crypt<S: Storage>(storage: S, remote: &SpecialRemote) -> Crypt<S> {
    Crypt::new(storage, remote.encryption.clone())
}

pub struct SpecialNode<S: Storage> {
    special: Special<S>,
    /// The upload under way.
    receiving: Option<Receiving<S>>,
    /// A GET from a local file: the file as it was, to tell whether it
    /// changed while it was sent.
    serving: Option<(std::fs::File, std::fs::Metadata)>,
}

struct Receiving<S: Storage> {
    key: Key,
    /// Where the node's share of the body starts.
    offset: u64,
    /// Whether it was written unhashed, the gateway hashing the stream.
    unhashed: bool,
    /// The upload, or why the node cannot take the key.
    state: Result<Upload<S>, Failure>,
}

impl<S: Storage + 'static> SpecialNode<S> {
    pub fn new(special: Special<S>) -> SpecialNode<S> {
        SpecialNode {
            special,
            receiving: None,
            serving: None,
        }
    }

    /// A framework error as the node's failure at `what`.
    fn failed(&self, what: &'static str, e: BackendError) -> Failure {
        match e {
            BackendError::Refused(f) | BackendError::Lost(f) => f,
            e => failure(self.name(), what)(format!("{}: {e}", self.name())),
        }
    }

    /// The located content from `offset`: the remote's one local file
    /// (sent by the kernel), or a stream of its objects.
    async fn source(&mut self, key: &Key, offset: u64) -> Result<Source<'_>, Failure> {
        use std::io::{Seek, SeekFrom};
        self.serving = None;
        let found = match self.special.locate(key).await {
            Ok(Some(found)) => found,
            Ok(None) => {
                let why = format!("{}: does not have it", self.name());
                return Err(failure(self.name(), "GET")(why));
            }
            Err(e) => return Err(self.failed("GET", e)),
        };
        let readable = self.special.storage().readable();
        readable.map_err(|e| self.special.failure("GET", e))?;
        let len = found.size().saturating_sub(offset);
        if let [(name, size)] = found.objects.as_slice() {
            let io = |e: std::io::Error| self.special.failure("GET", e);
            let local = self.special.storage().local_file(name);
            if let Some(mut file) = local.map_err(|e| self.special.failure("GET", e))? {
                file.seek(SeekFrom::Start(offset.min(*size))).map_err(io)?;
                let before = file.metadata().map_err(io)?;
                self.serving = Some((file.try_clone().map_err(io)?, before));
                return Ok(Source::File(file, len));
            }
        }
        let objects = Objects::new(self.special.storage(), &found, offset);
        let len = objects.len();
        Ok(Source::Reader(Box::new(objects), len))
    }

    /// Verify and commit the upload as the client ended it.
    async fn store(&mut self, ending: &Ending<'_>) -> Option<Answer> {
        let Receiving {
            key,
            state: upload,
            unhashed,
            ..
        } = self.receiving.take()?;
        let (mode, digest) = match ending {
            // The verdict never came: what was staged stays for a resume.
            Ending::Body { hung_up: true, .. } | Ending::Abandon(_) => return None,
            Ending::Body { mode, digest, .. } => (*mode, digest.filter(|_| unhashed)),
            Ending::Present => {
                drop(upload);
                return Some(match self.special.accept_present(&key).await {
                    Ok(()) => Ok(Outcome::plain(true)),
                    Err(PresentError::Backend(e)) => Err(self.failed("PUT", e)),
                    Err(e) => Err(failure(self.name(), "PUT")(e.to_string())),
                });
            }
        };
        let upload = match upload {
            Ok(u) => u,
            Err(f) => return Some(Err(f)),
        };
        Some(
            match self.special.finish_upload(upload, mode, digest).await {
                Ok(()) => Ok(Outcome::plain(true)),
                // A storage error names the remote already.
                Err(UploadError::Put(PutError::Storage(e))) => {
                    Err(failure(self.name(), "PUT")(e.to_string()))
                }
                Err(UploadError::Put(e)) => {
                    let why = format!("{}: {e}", self.name());
                    Err(failure(self.name(), "PUT")(why))
                }
                Err(UploadError::Backend(e)) => Err(self.failed("PUT", e)),
            },
        )
    }
}

impl<S: Storage + 'static> Node for SpecialNode<S> {
    fn name(&self) -> &str {
        self.special.name()
    }

    fn uuid(&self) -> &str {
        Backend::uuid(&self.special)
    }

    fn ready(&self) -> bool {
        true
    }

    /// Served by the gateway itself, on this machine's clock.
    fn in_process(&self) -> bool {
        true
    }

    fn check_present<'a>(&'a mut self, key: &'a Key) -> Fut<'a, Result<bool, Failure>> {
        Box::pin(async move {
            match self.special.locate(key).await {
                Ok(found) => Ok(found.is_some()),
                Err(e) => Err(self.failed("CHECKPRESENT", e)),
            }
        })
    }

    /// A deadline already past removes nothing (our clock is the
    /// gateway's).
    fn remove<'a>(&'a mut self, key: &'a Key, deadline: Option<Deadline>) -> Fut<'a, Answer> {
        Box::pin(async move {
            if deadline.is_some_and(|d| annex::clock::monotonic_seconds() >= d.at) {
                return Ok(Outcome::plain(false));
            }
            match self.special.remove_now(key).await {
                Ok(outcome) => Ok(outcome),
                Err(e) => Err(self.failed("REMOVE", e)),
            }
        })
    }

    fn retrieve<'a>(
        &'a mut self,
        key: &'a Key,
        offset: u64,
        _file: Option<&'a str>,
        _to: &'a str,
    ) -> Fut<'a, Result<Source<'a>, Failure>> {
        Box::pin(self.source(key, offset))
    }

    /// A local file is intact if it did not change while it was sent; a
    /// stream of objects that ended early failed the DATA already.
    fn sent(&mut self) -> Fut<'_, bool> {
        Box::pin(async move {
            match self.serving.take() {
                Some((probe, before)) => probe
                    .metadata()
                    .map(|after| same_file(&before, &after))
                    .unwrap_or(false),
                None => true,
            }
        })
    }

    /// A GET changes nothing on the remote.
    fn retrieved(&mut self, _verdict: Option<bool>) -> Fut<'_, ()> {
        Box::pin(async {})
    }

    fn offer<'a>(
        &'a mut self,
        key: &'a Key,
        _file: Option<&'a str>,
        _to: &'a str,
    ) -> Fut<'a, Offer> {
        Box::pin(async move {
            self.abandon();
            let state = match self.special.begin_upload(key).await {
                Ok(None) => return Offer::Has(Vec::new()),
                Ok(Some(Ok(upload))) => upload,
                Ok(Some(Err(f))) => return Offer::No(f),
                Err(e) => return Offer::No(self.failed("PUT", e)),
            };
            let offset = state.offset();
            tracing::debug!(node = %self.name(), %key, offset, "special node takes the key");
            self.receiving = Some(Receiving {
                key: key.clone(),
                offset,
                unhashed: false,
                state: Ok(state),
            });
            Offer::From(offset)
        })
    }

    /// More than the key can hold is refused before a byte is stored.
    fn begin_body(&mut self, end: u64) -> Fut<'_, ()> {
        Box::pin(async move {
            if let Some(Receiving {
                offset,
                state: Ok(upload),
                ..
            }) = &mut self.receiving
            {
                upload.expect_len(end.saturating_sub(*offset));
            }
        })
    }

    /// An upload from byte 0 verifies with the gateway's one hash of the
    /// stream; one that resumed hashes for itself (what the remote held
    /// before is not in the stream).
    fn shares_hash(&self, start: u64) -> bool {
        start == 0
            && self
                .receiving
                .as_ref()
                .is_some_and(|r| r.offset == 0 && r.state.is_ok())
    }

    fn receive<'a>(&'a mut self, at: u64, chunk: &'a [u8], hashed: bool) -> Fut<'a, ()> {
        Box::pin(async move {
            let Some(Receiving {
                offset,
                unhashed,
                state: Ok(upload),
                ..
            }) = &mut self.receiving
            else {
                return;
            };
            if at + chunk.len() as u64 <= *offset {
                return;
            }
            let skip = usize::try_from(offset.saturating_sub(at)).unwrap_or(chunk.len());
            let storage = self.special.storage();
            if hashed && *offset == 0 {
                *unhashed = true;
                upload.write_unhashed(storage, &chunk[skip..]).await;
            } else {
                upload.write(storage, &chunk[skip..]).await;
            }
        })
    }

    fn conclude<'a>(&'a mut self, ending: &'a Ending<'a>) -> Fut<'a, Option<Answer>> {
        Box::pin(self.store(ending))
    }

    /// What was staged stays for a resume (the framework keeps it when
    /// an upload is dropped unfinished).
    fn abandon(&mut self) {
        self.receiving = None;
    }

    fn fail(&mut self, what: &'static str, e: ConnError) -> Fut<'_, Failure> {
        let why = format!("{}: {e}", self.name());
        let failed = failure(self.name(), what);
        Box::pin(async move { failed(why) })
    }

    fn close(&mut self) -> Fut<'_, ()> {
        Box::pin(async move {
            self.abandon();
            if let Err(e) = self.special.commit_logs() {
                tracing::warn!(node = %self.name(), error = %e, "committing the special remote's logs");
            }
        })
    }
}
