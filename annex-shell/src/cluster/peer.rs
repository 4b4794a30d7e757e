//! A cluster node reached through its own P2P session (a child
//! `git-annex-shell`, ssh, tor-annex, p2p-annex): each [`Node`] call is
//! the request on the node's connection. Its share of a fanned-out body
//! goes down the connection as the node's own `DATA`; a GET's body is
//! spliced from the node's pipe to the client where both ends allow it.
//! The node has a clock of its own: a REMOVE-BEFORE deadline is moved
//! into it with the node's GETTIMESTAMP answer.

use std::os::fd::OwnedFd;

use annex::key::Key;
use annex::p2p::connection::ParkedData;
use annex::p2p::{ConnError, Message, TeeOut};
use annex::store::VerifyMode;
use annex::transport::NodeRemote;

use super::node::{failure, Answer, Deadline, Ending, Fut, Node, Offer, Source};
use super::policy;
use super::pool::{Link, Reach};
use crate::backend::peer::{get_request, node_validity, put_request};
use crate::backend::{Failure, Outcome};

pub struct PeerNode {
    link: Link,
    /// The node's GETTIMESTAMP answer, for translating REMOVE-BEFORE.
    timestamp: Option<u64>,
    /// The offset the node answered the PUT under way with.
    offset: Option<u64>,
    /// The node's share of the body being sent, between chunks.
    parked: Option<ParkedData>,
    /// The node's connection failed while the body was sent.
    broke: Option<ConnError>,
}

impl PeerNode {
    pub fn new(link: Link) -> PeerNode {
        PeerNode {
            link,
            timestamp: None,
            offset: None,
            parked: None,
            broke: None,
        }
    }

    fn remote(&self) -> &NodeRemote {
        &self.link.remote
    }

    /// Send `msg`, read the node's one answer; a failed connection is the
    /// reason the node gives.
    async fn ask(&mut self, msg: &Message) -> Result<Message, String> {
        let Some(nc) = self.link.conn() else {
            return Err(self.link.why_not());
        };
        match nc.exchange(msg).await {
            Ok(m) => Ok(m),
            Err(e) => Err(self.link.fail(e).await),
        }
    }

    /// The node's word on a store or a removal.
    fn outcome(&self, reply: Message) -> Result<Outcome, String> {
        match reply {
            Message::Success => Ok(Outcome::plain(true)),
            Message::SuccessPlus(also) => Ok(Outcome { ok: true, also }),
            Message::Failure => Ok(Outcome::plain(false)),
            Message::FailurePlus(also) => Ok(Outcome { ok: false, also }),
            other => Err(format!("{}: {}", self.remote().name, describe(&other))),
        }
    }

    /// The REMOVE (or REMOVE-BEFORE) this node is sent, or why the
    /// deadline cannot be kept on it (then not removing is safe).
    fn removal(&self, key: &Key, deadline: Option<Deadline>) -> Result<Message, String> {
        let key = key.clone();
        Ok(match deadline {
            None => Message::Remove(key),
            // Too old for REMOVE-BEFORE (which came with GETTIMESTAMP):
            // plain REMOVE, as git-annex sends it.
            Some(_) if !Message::GetTimestamp.known_in(self.link.version()) => Message::Remove(key),
            Some(Deadline { at, ours: None }) => Message::RemoveBefore { timestamp: at, key },
            Some(Deadline {
                at,
                ours: Some(ours),
            }) => match self.timestamp {
                Some(theirs) => Message::RemoveBefore {
                    timestamp: policy::translate_deadline(at, ours, theirs),
                    key,
                },
                None => return Err(format!("{}: no timestamp", self.remote().name)),
            },
        })
    }

    /// GET from the node: its DATA, ready to relay, or why not (nothing
    /// reached the client then).
    async fn get(
        &mut self,
        key: &Key,
        offset: u64,
        file: Option<&str>,
    ) -> Result<Source<'_>, String> {
        let len = match self.ask(&get_request(offset, file, key)).await? {
            // git-annex-shell's way of saying it lacks the key: an empty
            // body, then INVALID. Nothing reached the client yet, so the
            // next node can be asked.
            Message::Data(0) if key.size().is_some_and(|s| s > offset) => {
                let Some(nc) = self.link.conn() else {
                    return Err(self.link.why_not());
                };
                let turned_down = async {
                    if Message::Invalid.known_in(nc.version) {
                        nc.reply().await?;
                    }
                    nc.conn.write_message(&Message::Failure).await
                };
                return Err(match turned_down.await {
                    Ok(()) => format!("{}: does not have it", self.name()),
                    Err(e) => self.link.fail(e).await,
                });
            }
            Message::Data(len) => len,
            other => return Err(format!("{}: {}", self.name(), describe(&other))),
        };
        let why = self.link.why_not();
        let nc = self.link.conn().ok_or(why)?;
        Ok(Source::Relay(nc, len))
    }

    /// The node's outcome of the PUT once the client ended it, `None`
    /// when it gives none.
    async fn answer(&mut self, ending: &Ending<'_>) -> Option<Result<Outcome, String>> {
        self.offset.take()?;
        if let Some(e) = self.broke.take() {
            return Some(Err(self.link.fail(e).await));
        }
        match ending {
            // The node keeps what came for a resume when its session
            // closes.
            Ending::Body { hung_up: true, .. } => None,
            Ending::Body { mode, .. } => self.verdict(*mode).await,
            Ending::Present => Some(match self.ask(&Message::DataPresent).await {
                Ok(m) => self.outcome(m),
                Err(why) => Err(why),
            }),
            Ending::Abandon(why) => {
                self.tell(&Message::Error((*why).to_owned())).await;
                None
            }
        }
    }

    /// Tell the node something it does not answer.
    async fn tell(&mut self, msg: &Message) {
        if let Some(nc) = self.link.conn() {
            if let Err(e) = nc.conn.write_message(msg).await {
                self.link.fail(e).await;
            }
        }
    }

    /// The node's answer once the client's body came: the client's
    /// verdict passed on (a version 0 node knows none), then its word.
    async fn verdict(&mut self, mode: VerifyMode) -> Option<Result<Outcome, String>> {
        let validity = match mode {
            VerifyMode::Valid | VerifyMode::SizeOnly => Some(Message::Valid),
            VerifyMode::Invalid => Some(Message::Invalid),
            VerifyMode::Unknown => None,
        };
        let Some(nc) = self.link.conn() else {
            return Some(Err(self.link.why_not()));
        };
        let knows = Message::Valid.known_in(nc.version);
        let answer = match validity.filter(|_| knows) {
            Some(v) => nc.exchange(&v).await,
            None => nc.reply().await,
        };
        Some(match answer {
            Ok(m) => self.outcome(m),
            Err(e) => Err(self.link.fail(e).await),
        })
    }
}

impl Node for PeerNode {
    fn name(&self) -> &str {
        &self.link.remote.name
    }

    fn uuid(&self) -> &str {
        &self.link.remote.uuid
    }

    fn ready(&self) -> bool {
        self.link.is_up()
    }

    /// Known for nodes on this machine only: their stores count the
    /// uploads they serve.
    fn busy(&self) -> bool {
        let Some(dir) = self.link.dir() else {
            return false;
        };
        let dot_git = dir.join(".git");
        let (gitdir, bare) = if dot_git.is_dir() {
            (dot_git, false)
        } else {
            (dir.to_owned(), true)
        };
        annex::store::ObjectStore::new(gitdir, bare, 0).uploads_running() > 0
    }

    fn in_process(&self) -> bool {
        false
    }

    fn open<'a>(&'a mut self, reach: &'a Reach) -> Fut<'a, ()> {
        Box::pin(self.link.open(reach))
    }

    fn sync_clock(&mut self) -> Fut<'_, ()> {
        Box::pin(async move {
            self.timestamp = match self.ask(&Message::GetTimestamp).await {
                Ok(Message::Timestamp(t)) => Some(t),
                _ => None,
            };
        })
    }

    fn check_present<'a>(&'a mut self, key: &'a Key) -> Fut<'a, Result<bool, Failure>> {
        Box::pin(async move {
            let failed = failure(self.name(), "CHECKPRESENT");
            let answer = async {
                match self.ask(&Message::CheckPresent(key.clone())).await? {
                    Message::Success => Ok(true),
                    Message::Failure => Ok(false),
                    other => Err(format!("{}: {}", self.name(), describe(&other))),
                }
            };
            answer.await.map_err(failed)
        })
    }

    fn remove<'a>(&'a mut self, key: &'a Key, deadline: Option<Deadline>) -> Fut<'a, Answer> {
        Box::pin(async move {
            let failed = failure(self.name(), "REMOVE");
            let answer = async {
                if !self.link.is_up() {
                    return Err(self.link.why_not());
                }
                let msg = self.removal(key, deadline)?;
                let reply = self.ask(&msg).await?;
                self.outcome(reply)
            };
            answer.await.map_err(failed)
        })
    }

    fn retrieve<'a>(
        &'a mut self,
        key: &'a Key,
        offset: u64,
        file: Option<&'a str>,
        _to: &'a str,
    ) -> Fut<'a, Result<Source<'a>, Failure>> {
        let failed = failure(self.name(), "GET");
        Box::pin(async move { self.get(key, offset, file).await.map_err(failed) })
    }

    fn sent(&mut self) -> Fut<'_, bool> {
        Box::pin(async move {
            let (validity, failed) = node_validity(self.link.conn()).await;
            if let Some(e) = failed {
                self.link.fail(e).await;
            }
            validity == Message::Valid
        })
    }
    fn retrieved(&mut self, verdict: Option<bool>) -> Fut<'_, ()> {
        Box::pin(async move {
            if let Some(ok) = verdict {
                self.tell(&crate::session::success(ok)).await;
            }
        })
    }

    fn offer<'a>(
        &'a mut self,
        key: &'a Key,
        file: Option<&'a str>,
        _to: &'a str,
    ) -> Fut<'a, Offer> {
        Box::pin(async move {
            self.offset = None;
            self.broke = None;
            match self.ask(&put_request(key, file)).await {
                Ok(Message::PutFrom(o)) => {
                    self.offset = Some(o);
                    Offer::From(o)
                }
                Ok(Message::AlreadyHave) => Offer::Has(Vec::new()),
                Ok(Message::AlreadyHavePlus(us)) => Offer::Has(us),
                Ok(other) => {
                    let why = format!("{}: {}", self.name(), describe(&other));
                    Offer::No(failure(self.name(), "PUT")(why))
                }
                Err(why) => Offer::No(failure(self.name(), "PUT")(why)),
            }
        })
    }

    fn begin_body(&mut self, end: u64) -> Fut<'_, ()> {
        Box::pin(async move {
            let offset = self.offset.unwrap_or(0);
            let Some(nc) = self.link.conn() else { return };
            match nc.conn.start_data(end.saturating_sub(offset)).await {
                Ok(w) => self.parked = Some(w.park()),
                Err(e) => self.broke = Some(e),
            }
        })
    }

    /// The part of `chunk` past the node's offset, down its connection.
    fn receive<'a>(&'a mut self, at: u64, chunk: &'a [u8], _hashed: bool) -> Fut<'a, ()> {
        Box::pin(async move {
            let offset = self.offset.unwrap_or(0);
            let end = at + chunk.len() as u64;
            if end <= offset || self.parked.is_none() {
                return;
            }
            let (Some(parked), Some(nc)) = (self.parked.take(), self.link.conn()) else {
                return;
            };
            let skip = usize::try_from(offset.saturating_sub(at)).unwrap_or(chunk.len());
            let mut w = nc.conn.resume_data(parked);
            match w.write_chunk(&chunk[skip..]).await {
                Ok(()) => self.parked = Some(w.park()),
                // Dropped short: the connection is broken, the node out.
                Err(e) => self.broke = Some(e),
            }
        })
    }

    /// The node's stdin when it is a pipe (a child's: ssh or a local
    /// `git-annex-shell`) and it wants all of the body.
    fn body_pipe(&mut self, start: u64) -> Option<OwnedFd> {
        if self.offset != Some(start) || self.parked.is_none() || self.broke.is_some() {
            return None;
        }
        self.link.conn()?.input_pipe()
    }

    fn piped(&mut self, got: TeeOut) {
        if let Some(parked) = self.parked.as_mut() {
            parked.sent_around(got.sent);
        }
        if let Some(e) = got.error {
            // Its session is broken: nothing more goes down it.
            self.parked = None;
            self.broke = Some(ConnError::Io(e));
        }
    }

    fn end_body(&mut self) -> Fut<'_, ()> {
        Box::pin(async move {
            let (Some(parked), Some(nc)) = (self.parked.take(), self.link.conn()) else {
                return;
            };
            if let Err(e) = nc.conn.resume_data(parked).finish().await {
                self.broke = Some(e);
            }
        })
    }

    fn conclude<'a>(&'a mut self, ending: &'a Ending<'a>) -> Fut<'a, Option<Answer>> {
        let failed = failure(self.name(), "PUT");
        Box::pin(async move {
            let answer = self.answer(ending).await?;
            Some(answer.map_err(failed))
        })
    }

    /// The node's server keeps what came for a resume when its session
    /// closes.
    fn abandon(&mut self) {
        self.offset = None;
        self.parked = None;
    }

    fn fail(&mut self, what: &'static str, e: ConnError) -> Fut<'_, Failure> {
        let failed = failure(self.name(), what);
        Box::pin(async move { failed(self.link.fail(e).await) })
    }

    fn link(&mut self) -> Option<&mut Link> {
        Some(&mut self.link)
    }

    fn close(&mut self) -> Fut<'_, ()> {
        Box::pin(self.link.close())
    }
}

/// What an answer that is not the one asked for says.
pub(super) fn describe(m: &Message) -> String {
    match m {
        Message::Error(e) => e.clone(),
        Message::Failure | Message::FailurePlus(_) => "failed".into(),
        other => format!("unexpected {}", other.verb()),
    }
}
