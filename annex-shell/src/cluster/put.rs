//! PUT to the cluster: one upload from the client, fanned out to every
//! node that should get the key, reading the client's stream once.
//!
//! Each node says from which offset it wants the body (a node may hold a
//! partial upload from an interrupted attempt); the client is asked from
//! the smallest, and each node is handed every chunk with its offset and
//! keeps only the bytes past its own, so no byte is lost or doubled
//! whatever the mix of offsets. When the body covers the whole content,
//! the gateway hashes it once for every node that can verify with that
//! one hash (the in-process ones). When all the receiving nodes are
//! pipes (ssh or child sessions) that verify for themselves, the kernel
//! tees the body from the client's pipe into theirs ([`tee_body`]). A
//! node that fails mid-stream drops out; the others go on, and the
//! answer names exactly the nodes that then hold the key.

use std::collections::BTreeSet;
use std::os::fd::OwnedFd;

use annex::branch::LogStatus;
use annex::key::Key;
use annex::p2p::connection::TeeRest;
use annex::p2p::{Connection, DataBody, Message};
use annex::store::{Verifier, VerifyMode};
use tokio::io::{AsyncRead, AsyncWrite};

use super::gateway::Gateway;
use super::node::{Digest, Ending, Node, Offer};
use super::policy;
use super::pool::fan_out;
use crate::backend::{BackendError, Outcome, StoreEnd, Storing};

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
    /// The nodes that take the body.
    receiving: Vec<usize>,
    /// Whether the body came (read to its end or cut short), and the one
    /// hash of it if the gateway hashed it for the nodes.
    sent: Option<Option<Digest>>,
}

impl Gateway {
    /// Ask every node that should get the key; the client is asked from
    /// the smallest offset a node wants.
    pub(super) async fn offer(&mut self, key: &Key, file: Option<&str>) -> Storing {
        self.abandon_put();
        let targets = self.put_targets(key, file);
        self.pool.ensure(&targets, self.jobs).await;
        let to = self.pool.my_uuid().to_owned();
        let to = to.as_str();
        let offers = fan_out(&mut self.pool.nodes, Some(&targets), |i, node| async move {
            (i, node.offer(key, file, to).await)
        })
        .await;

        let mut holding: BTreeSet<String> = BTreeSet::new();
        let mut reasons = Vec::new();
        let mut receiving: Vec<(usize, u64)> = Vec::new();
        for (i, offer) in offers {
            match offer {
                Offer::From(o) => receiving.push((i, o)),
                Offer::Has(plus) => {
                    holding.insert(self.pool.nodes[i].uuid().to_owned());
                    holding.extend(plus);
                }
                Offer::No(f) => reasons.push(super::noted(f)),
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
        self.put = Some(Put::Going(Box::new(Going {
            key: key.clone(),
            start,
            holding,
            reasons,
            receiving: receiving.into_iter().map(|(i, _)| i).collect(),
            sent: None,
        })));
        Storing::From(start)
    }

    /// The store under way ends without the client: the receiving nodes
    /// keep what came for a resume.
    pub(super) fn abandon_put(&mut self) {
        if let Some(Put::Going(g)) = self.put.take() {
            for &i in &g.receiving {
                self.pool.nodes[i].abandon();
            }
        }
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
        crate::user::tell(format_args!("{key}: no node can store it: {why}"));
        self.put = Some(Put::Refused);
        Storing::From(key.size().unwrap_or(0))
    }

    /// The client's `DATA len`, read once and handed to every receiving
    /// node, chunk by chunk. A refused PUT's body is read and dropped.
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
        let (start, receiving) = (going.start, going.receiving.clone());
        let nodes = &mut self.pool.nodes;
        let end = start.saturating_add(len);
        fan_out(nodes, Some(&receiving), |_, n| n.begin_body(end)).await;
        let hashed = receiving.iter().any(|&i| nodes[i].shares_hash(start));
        let mut verifier = hashed.then(|| Verifier::new(&going.key));
        let mut body = client.data_body(len);
        let mut at = start;
        if !hashed && len >= TEE_FROM {
            at = tee_body(nodes, &receiving, start, &mut body).await?;
        }
        // Chunks as they come, not gathered into 1 MiB runs: with three
        // in-process nodes runs cost more CPU than they saved (README,
        // "Drops and configlist start-up").
        while let Some(chunk) = body.next_chunk().await? {
            if let Some(v) = verifier.as_mut() {
                v.update(chunk);
            }
            fan_out(nodes, Some(&receiving), |_, n| n.receive(at, chunk, hashed)).await;
            at += chunk.len() as u64;
        }
        drop(body);
        fan_out(nodes, Some(&receiving), |_, n| n.end_body()).await;
        going.sent = Some(verifier.map(Verifier::check));
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
            mut holding,
            mut reasons,
            receiving,
            sent,
            ..
        } = *going;
        let ending = match (&end, &sent) {
            (StoreEnd::Body(mode), Some(digest)) => Ending::Body {
                // (The session only hears VALID, INVALID or nothing.)
                mode: match mode {
                    VerifyMode::SizeOnly => VerifyMode::Valid,
                    m => *m,
                },
                hung_up: *mode == VerifyMode::Unknown && Message::Valid.known_in(self.version),
                digest: digest.as_ref(),
            },
            (StoreEnd::Present, None) => Ending::Present,
            // The client could not send after all: the nodes hear it too.
            (StoreEnd::Abandon(why), None) => Ending::Abandon(why),
            _ => {
                for &i in &receiving {
                    self.pool.nodes[i].abandon();
                }
                return Outcome::plain(false);
            }
        };
        let ending = &ending;
        let answers = fan_out(&mut self.pool.nodes, Some(&receiving), |i, n| async move {
            (i, n.conclude(ending).await)
        })
        .await;
        if let Ending::Abandon(_) = ending {
            return Outcome::plain(false);
        }
        let mut stored = false;
        for (i, answer) in answers {
            let node = &self.pool.nodes[i];
            match answer {
                Some(Ok(o)) if o.ok => {
                    stored = true;
                    holding.insert(node.uuid().to_owned());
                    holding.extend(o.also);
                }
                Some(Ok(_)) => reasons.push(format!("{}: failed", node.name())),
                Some(Err(f)) => reasons.push(super::noted(f)),
                None => {}
            }
        }
        if !reasons.is_empty() {
            crate::user::tell(format_args!("{key}: {}", reasons.join("; ")));
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
            let node = &self.pool.nodes[i];
            if let Some(why) = self.placement.no_room(node.uuid(), key) {
                reasons.push(format!("{}: {why}", node.name()));
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
            .map(|&i| self.pool.nodes[i].uuid())
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
}

/// Bodies from this size on are worth the kernel's tee (below it, the
/// system calls cost more than the copies they save).
const TEE_FROM: u64 = 64 * 1024;

/// When every receiving node is a pipe that wants the whole body and the
/// client's body is still in our input pipe: the bytes already read go
/// to the nodes the ordinary way, and the rest is teed by the kernel
/// from our input into the nodes' pipes (issue 16: no copy per node in
/// user space), each node told what it got. Returns the offset the body
/// is at afterwards (its end, unless the kernel could not tee: then the
/// rest comes by [`annex::p2p::DataBody::next_chunk`]).
async fn tee_body<R, W>(
    nodes: &mut [Box<dyn Node>],
    receiving: &[usize],
    start: u64,
    body: &mut DataBody<'_, R, W>,
) -> Result<u64, BackendError>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    let pipes = |nodes: &mut [Box<dyn Node>], at: u64| -> Option<Vec<OwnedFd>> {
        let pipes: Option<Vec<OwnedFd>> =
            receiving.iter().map(|&i| nodes[i].body_pipe(at)).collect();
        pipes.filter(|p| !p.is_empty())
    };
    if pipes(nodes, start).is_none() {
        return Ok(start);
    }
    let Some(input) = body.kernel_input().await else {
        return Ok(start);
    };
    let mut at = start;
    while let Some(chunk) = body.next_buffered(&input).await? {
        fan_out(nodes, Some(receiving), |_, n| n.receive(at, chunk, false)).await;
        at += chunk.len() as u64;
    }
    // Asked again: a node may have failed on the bytes already read.
    let Some(pipes) = pipes(nodes, start) else {
        return Ok(at);
    };
    let rest = body.remaining();
    match body.tee_rest(input, pipes).await? {
        TeeRest::Done(got) => {
            tracing::debug!(
                nodes = got.len(),
                bytes = rest,
                "body teed into the nodes' pipes"
            );
            for (&i, got) in receiving.iter().zip(got) {
                nodes[i].piped(got);
            }
            Ok(at + rest)
        }
        TeeRest::Unsupported => Ok(at),
    }
}

pub(super) fn join_reasons(reasons: &[String], none: &str) -> String {
    if reasons.is_empty() {
        none.to_owned()
    } else {
        reasons.join("; ")
    }
}
