//! PUT to the cluster: one upload from the client, fanned out to every
//! node that should get the key, reading the client's stream once.
//!
//! Each node says from which offset it wants the body (a node may hold a
//! partial upload from an interrupted attempt); the client is asked from
//! the smallest, and each node is fed only the bytes past its own offset,
//! so no byte is lost or doubled whatever the mix of offsets. A node that
//! fails mid-stream drops out; the others go on, and the answer names
//! exactly the nodes that then hold the key.

use std::collections::{BTreeMap, BTreeSet};

use annex::branch::LogStatus;
use annex::key::Key;
use annex::p2p::connection::DataWriter;
use annex::p2p::{ConnError, Connection, Message};
use annex::store::{Incoming, VerifyMode};
use annex::transport::{BoxRead, BoxWrite};
use futures_util::future::join_all;
use tokio::io::{AsyncRead, AsyncWrite};

use super::gateway::Gateway;
use super::local::{self, LocalOffer, Sinks};
use super::policy;
use super::pool::{fan_out, Slot};
use crate::backend::{BackendError, Outcome, StoreEnd, Storing};

/// How one node answered its PUT.
enum Offer {
    /// Wants the body from this offset.
    From(u64),
    /// Already has it (with the UUIDs a node that is itself a gateway
    /// names for the nodes behind it).
    Has(Vec<String>),
    /// Refused or failed; the reason names the node.
    No(String),
}

/// A PUT between the offers and the outcome.
pub(super) enum Put {
    /// No node can store the key: it fails alone (see
    /// [`Gateway::refuse`]).
    Refused,
    Going(Box<Going>),
}

pub(super) struct Going {
    key: Key,
    /// The offset the client was asked from.
    start: u64,
    holding: BTreeSet<String>,
    reasons: Vec<String>,
    /// The nodes reached through a connection, each with its offset.
    receiving: Vec<(usize, u64)>,
    /// The in-process nodes' uploads, until the body comes.
    incoming: BTreeMap<usize, Box<Incoming>>,
    /// After the body: the in-process uploads, and the nodes whose
    /// connection failed while it was sent.
    sent: Option<(Sinks, Vec<(usize, ConnError)>)>,
}

impl Put {
    /// The client never finished: partial files stay for a resume, as a
    /// node's server keeps them.
    pub(super) fn abandon(self) {
        if let Put::Going(g) = self {
            match g.sent {
                Some((sinks, _)) => sinks.abandon(),
                None => Sinks::new(&g.key, g.start, g.incoming).abandon(),
            }
        }
    }
}

impl Gateway {
    /// Ask every node that should get the key; the client is asked from
    /// the smallest offset a node wants.
    pub(super) async fn offer(&mut self, key: &Key, file: Option<&str>) -> Storing {
        if let Some(put) = self.put.take() {
            put.abandon();
        }
        let targets = self.put_targets(key, file);
        let (in_process, remote): (Vec<usize>, Vec<usize>) = targets
            .iter()
            .partition(|&&i| self.pool.slots[i].local.is_some());
        self.pool.ensure(&remote, self.jobs).await;
        let msg = Message::Put {
            file: file.map(str::to_owned),
            key: key.clone(),
        };
        let mut offers = ask(&mut self.pool.slots, &remote, &msg).await;
        let mut incoming = BTreeMap::new();
        for i in in_process {
            let to = self.pool.my_uuid().to_owned();
            let offer = match local::offer(&self.pool.slots[i], key, file, &to) {
                LocalOffer::Has => Offer::Has(Vec::new()),
                LocalOffer::From(inc) => {
                    let o = inc.offset();
                    incoming.insert(i, inc);
                    Offer::From(o)
                }
                LocalOffer::No(why) => Offer::No(why),
            };
            offers.push((i, offer));
        }
        // The fan-out walks the slots in order.
        offers.sort_by_key(|(i, _)| *i);

        let mut holding: BTreeSet<String> = BTreeSet::new();
        let mut reasons = Vec::new();
        let mut receiving: Vec<(usize, u64)> = Vec::new();
        for (i, offer) in offers {
            match offer {
                Offer::From(o) => receiving.push((i, o)),
                Offer::Has(plus) => {
                    holding.insert(self.pool.slots[i].uuid().to_owned());
                    holding.extend(plus);
                }
                Offer::No(why) => reasons.push(why),
            }
        }
        if receiving.is_empty() {
            if holding.is_empty() {
                if reasons.is_empty() {
                    reasons = self.no_room(key);
                }
                let why = join_reasons(&reasons, "no node has room for it");
                return self.refuse(key, &why);
            }
            self.record(key, &holding, LogStatus::Present);
            return Storing::AlreadyHave(holding.into_iter().collect());
        }
        let start = receiving.iter().map(|&(_, o)| o).min().unwrap_or(0);
        receiving.retain(|(i, _)| !incoming.contains_key(i));
        self.put = Some(Put::Going(Box::new(Going {
            key: key.clone(),
            start,
            holding,
            reasons,
            receiving,
            incoming,
            sent: None,
        })));
        Storing::From(start)
    }

    /// Fail this key alone. An ERROR answer to PUT would end the session:
    /// git-annex's client answers it with an ERROR of its own, after which
    /// a server gives up, and the next file meets a dead connection. So the
    /// PUT is accepted from the key's end (`PUT-FROM <size>`: the client
    /// sends `DATA 0`, no byte of content) and answered FAILURE, which the
    /// client takes as "this key failed" and goes on. Without a size in
    /// the key, the body is read and dropped. The reason goes to stderr,
    /// which ssh carries to the user's terminal.
    fn refuse(&mut self, key: &Key, why: &str) -> Storing {
        eprintln!("git-annex-shell: {key}: no node can store it: {why}");
        self.put = Some(Put::Refused);
        Storing::From(key.size().unwrap_or(0))
    }

    /// The client's `DATA len`, read once: to the in-process nodes'
    /// files and down every receiving node's connection. A refused PUT's
    /// body is read and dropped.
    pub(super) async fn take_body<R, W>(
        &mut self,
        len: u64,
        client: &mut Connection<R, W>,
    ) -> Result<(), BackendError>
    where
        R: AsyncRead + Unpin + Send,
        W: AsyncWrite + Unpin + Send,
    {
        let Some(Put::Going(going)) = self.put.as_mut() else {
            let mut body = client.data_body(len);
            while body.next_chunk().await?.is_some() {}
            return Ok(());
        };
        let incoming = std::mem::take(&mut going.incoming);
        let mut sinks = Sinks::new(&going.key, going.start, incoming);
        sinks.expect_end(going.start.saturating_add(len));
        let (start, receiving) = (going.start, going.receiving.clone());
        let failures = stream(
            &mut self.pool.slots,
            start,
            len,
            &receiving,
            &mut sinks,
            client,
        )
        .await?;
        if let Some(Put::Going(going)) = self.put.as_mut() {
            going.sent = Some((sinks, failures));
        }
        Ok(())
    }

    /// The nodes' answers once the client said how the PUT ends; the
    /// outcome names exactly the nodes that then hold the key.
    pub(super) async fn conclude(&mut self, end: StoreEnd) -> Outcome {
        let Some(Put::Going(going)) = self.put.take() else {
            return Outcome::plain(false);
        };
        let Going {
            key,
            start,
            mut holding,
            mut reasons,
            receiving,
            incoming,
            sent,
        } = *going;
        let results = match (end, sent) {
            (StoreEnd::Body(mode), Some((sinks, failures))) => {
                self.verdicts(mode, &receiving, sinks, failures).await
            }
            (StoreEnd::Present, None) => {
                let idx: Vec<usize> = receiving.iter().map(|&(i, _)| i).collect();
                let mut r = collect(&mut self.pool.slots, &idx, Some(&Message::DataPresent)).await;
                r.extend(local::data_present(incoming, &key, &mut self.pool.slots));
                r
            }
            (StoreEnd::Abandon(why), None) => {
                // The client could not send after all: the nodes hear it too.
                Sinks::new(&key, start, incoming).abandon();
                tell(&mut self.pool.slots, &receiving, &Message::Error(why)).await;
                return Outcome::plain(false);
            }
            (_, sent) => {
                if let Some((sinks, _)) = sent {
                    sinks.abandon();
                }
                return Outcome::plain(false);
            }
        };
        let mut stored = false;
        for (i, result) in results {
            match result {
                Ok(Message::Success) => {
                    stored = true;
                    holding.insert(self.pool.slots[i].uuid().to_owned());
                }
                Ok(Message::SuccessPlus(plus)) => {
                    stored = true;
                    holding.insert(self.pool.slots[i].uuid().to_owned());
                    holding.extend(plus);
                }
                Ok(other) => reasons.push(format!(
                    "{}: {}",
                    self.pool.slots[i].name(),
                    describe(&other)
                )),
                Err(why) => reasons.push(why),
            }
        }
        if !reasons.is_empty() {
            eprintln!("git-annex-shell: {key}: {}", reasons.join("; "));
        }
        self.record(&key, &holding, LogStatus::Present);
        self.placement.placed(&key, &holding);
        Outcome {
            ok: stored || !holding.is_empty(),
            also: holding.into_iter().collect(),
        }
    }

    /// Why no node takes `key`, node by node, when placement chose none.
    fn no_room(&mut self, key: &Key) -> Vec<String> {
        let mut reasons = Vec::new();
        for i in (0..self.pool.len()).filter(|&i| Some(i) != self.own) {
            let slot = &self.pool.slots[i];
            if let Some(why) = self.placement.no_room(slot.uuid(), key) {
                reasons.push(format!("{}: {why}", slot.name()));
            }
        }
        reasons
    }

    fn put_targets(&mut self, key: &Key, file: Option<&str>) -> Vec<usize> {
        let holders = self.holders(key);
        let node_idx: Vec<usize> = (0..self.pool.len())
            .filter(|&i| Some(i) != self.own)
            .collect();
        let nodes: Vec<&str> = node_idx
            .iter()
            .map(|&i| self.pool.slots[i].uuid())
            .collect();
        let wanted = self.placement.wanted(&nodes, key, file, &holders);
        let mut targets: Vec<usize> = policy::put_targets(&nodes, &holders, &wanted)
            .into_iter()
            .map(|j| node_idx[j])
            .collect();
        if let Some(own) = self.own {
            if !self.store.has(key) && self.placement.gateway_wants(key, file, &holders) {
                targets.push(own);
            }
        }
        targets
    }

    /// Pass on the client's verdict on the body and collect each node's
    /// answer. A client that hung up instead of a verdict (protocol 1 and
    /// up) leaves the connected nodes unanswered: they keep what came for
    /// a resume when their session closes; the in-process ones verify in
    /// full, as git-annex does for content that arrived whole.
    async fn verdicts(
        &mut self,
        mode: VerifyMode,
        receiving: &[(usize, u64)],
        sinks: Sinks,
        mut failures: Vec<(usize, ConnError)>,
    ) -> Vec<(usize, Result<Message, String>)> {
        let validity = match mode {
            // (The session only hears VALID, INVALID or nothing.)
            VerifyMode::Valid | VerifyMode::SizeOnly => Some(Message::Valid),
            VerifyMode::Invalid => Some(Message::Invalid),
            VerifyMode::Unknown => None,
        };
        let hung_up = validity.is_none() && Message::Valid.known_in(self.version);
        let mut results = Vec::new();
        let mut ok: Vec<usize> = Vec::new();
        for &(i, _) in receiving {
            match failures.iter().position(|(f, _)| *f == i) {
                Some(at) => {
                    let (_, e) = failures.swap_remove(at);
                    let why = self.pool.slots[i].fail(e).await;
                    results.push((i, Err(why)));
                }
                None if hung_up => {}
                None => ok.push(i),
            }
        }
        // Nodes speaking version 0 know no VALID; they just answer.
        let mut verdict_for = Vec::new();
        for &i in &ok {
            let knows = Message::Valid.known_in(self.pool.slots[i].version());
            verdict_for.push((i, validity.clone().filter(|_| knows)));
        }
        results.extend(sinks.finish(validity.as_ref(), &mut self.pool.slots));
        results.extend(collect_each(&mut self.pool.slots, &verdict_for).await);
        results
    }
}

/// Stream the client's `DATA len` (starting at offset `start`) to the
/// receiving nodes (`receiving` through their connections, `local`
/// in-process); the nodes whose connection failed on the way.
async fn stream<R, W>(
    slots: &mut [Slot],
    start: u64,
    len: u64,
    receiving: &[(usize, u64)],
    local: &mut Sinks,
    client: &mut Connection<R, W>,
) -> Result<Vec<(usize, ConnError)>, BackendError>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    let total = start.saturating_add(len);
    let wanted: BTreeSet<usize> = receiving.iter().map(|&(i, _)| i).collect();
    let offsets: Vec<u64> = receiving.iter().map(|&(_, o)| o).collect();
    let mut lanes: Vec<Lane> = Vec::with_capacity(receiving.len());
    let receivers = slots
        .iter_mut()
        .enumerate()
        .filter(|(i, _)| wanted.contains(i));
    // `receiving` is in slot order (ask() keeps it), as are the slots.
    for ((index, slot), &offset) in receivers.zip(&offsets) {
        let Some(nc) = slot.conn() else { continue };
        let state = match nc.conn.start_data(total.saturating_sub(offset)).await {
            Ok(w) => LaneState::Writing(w),
            Err(e) => LaneState::Failed(e),
        };
        lanes.push(Lane {
            index,
            offset,
            state,
        });
    }

    let mut body = client.data_body(len);
    let mut pos = start;
    while let Some(chunk) = body.next_chunk().await? {
        let at = pos;
        let remote = join_all(lanes.iter_mut().map(|lane| lane.write(at, chunk)));
        // The local files are written while the pipes drain.
        let (_, ()) = tokio::join!(remote, async { local.write(at, chunk) });
        pos += chunk.len() as u64;
    }
    drop(body);
    join_all(lanes.iter_mut().map(Lane::finish)).await;
    Ok(lanes
        .into_iter()
        .filter_map(|l| match l.state {
            LaneState::Failed(e) => Some((l.index, e)),
            _ => None,
        })
        .collect())
}

/// One node's share of a fanned-out body.
struct Lane<'a> {
    index: usize,
    offset: u64,
    state: LaneState<'a>,
}

enum LaneState<'a> {
    Writing(DataWriter<'a, BoxRead, BoxWrite>),
    Done,
    /// This node dropped out; the others go on.
    Failed(ConnError),
}

impl Lane<'_> {
    /// Write the part of `chunk` (which starts at offset `at`) past this
    /// node's offset.
    async fn write(&mut self, at: u64, chunk: &[u8]) {
        let LaneState::Writing(w) = &mut self.state else {
            return;
        };
        let end = at + chunk.len() as u64;
        if end <= self.offset {
            return;
        }
        let skip = usize::try_from(self.offset.saturating_sub(at)).unwrap_or(chunk.len());
        if let Err(e) = w.write_chunk(&chunk[skip..]).await {
            self.state = LaneState::Failed(e);
        }
    }

    async fn finish(&mut self) {
        if let LaneState::Writing(w) = std::mem::replace(&mut self.state, LaneState::Done) {
            if let Err(e) = w.finish().await {
                self.state = LaneState::Failed(e);
            }
        }
    }
}

/// Send `msg` to the slots at `targets` (connected or not) at once; each
/// answer, in slot order.
async fn ask(slots: &mut [Slot], targets: &[usize], msg: &Message) -> Vec<(usize, Offer)> {
    fan_out(slots, Some(targets), |i, slot| async move {
        let offer = match slot.conn() {
            None => Offer::No(
                slot.down_reason()
                    .map_or_else(|| format!("{}: not connected", slot.name()), str::to_owned),
            ),
            Some(nc) => match nc.exchange(msg).await {
                Ok(Message::PutFrom(o)) => Offer::From(o),
                Ok(Message::AlreadyHave) => Offer::Has(Vec::new()),
                Ok(Message::AlreadyHavePlus(us)) => Offer::Has(us),
                Ok(other) => Offer::No(format!("{}: {}", slot.name(), describe(&other))),
                Err(e) => Offer::No(slot.fail(e).await),
            },
        };
        (i, offer)
    })
    .await
}

/// Send `msg` (if any) to each slot and read one answer from each.
async fn collect(
    slots: &mut [Slot],
    targets: &[usize],
    msg: Option<&Message>,
) -> Vec<(usize, Result<Message, String>)> {
    let each: Vec<(usize, Option<Message>)> = targets.iter().map(|&i| (i, msg.cloned())).collect();
    collect_each(slots, &each).await
}

/// Per slot: send its message (if any), then read its answer.
async fn collect_each(
    slots: &mut [Slot],
    each: &[(usize, Option<Message>)],
) -> Vec<(usize, Result<Message, String>)> {
    let targets: Vec<usize> = each.iter().map(|&(i, _)| i).collect();
    fan_out(slots, Some(&targets), |i, slot| {
        let msg = each
            .iter()
            .find(|(j, _)| *j == i)
            .and_then(|(_, m)| m.clone());
        async move {
            let Some(nc) = slot.conn() else {
                let why = slot.down_reason().unwrap_or("not connected").to_owned();
                return (i, Err(why));
            };
            let answer = match msg {
                Some(m) => nc.exchange(&m).await,
                None => nc.reply().await,
            };
            match answer {
                Ok(m) => (i, Ok(m)),
                Err(e) => (i, Err(slot.fail(e).await)),
            }
        }
    })
    .await
}

/// Tell the receiving nodes something they do not answer.
async fn tell(slots: &mut [Slot], receiving: &[(usize, u64)], msg: &Message) {
    let targets: Vec<usize> = receiving.iter().map(|&(i, _)| i).collect();
    fan_out(slots, Some(&targets), |_, slot| async move {
        if let Some(nc) = slot.conn() {
            if let Err(e) = nc.conn.write_message(msg).await {
                slot.fail(e).await;
            }
        }
    })
    .await;
}

pub(super) fn describe(m: &Message) -> String {
    match m {
        Message::Error(e) => e.clone(),
        Message::Failure | Message::FailurePlus(_) => "failed".into(),
        other => format!("unexpected {}", other.verb()),
    }
}

pub(super) fn join_reasons(reasons: &[String], none: &str) -> String {
    if reasons.is_empty() {
        none.to_owned()
    } else {
        reasons.join("; ")
    }
}
