//! Requests to the nodes on this machine, done in-process. Uploads: the
//! gateway writes each local node's temp file itself and hashes the
//! stream once for all of them, where a child per node would read its own
//! copy from a pipe and hash it again. Verified content goes into each
//! node's object store and the node's own location log, as the node's
//! server would do; removals likewise. The nodes share this machine's
//! monotonic clock, so REMOVE-BEFORE deadlines need no translation.

use std::collections::BTreeMap;

use annex::branch::LogStatus;
use annex::key::Key;
use annex::p2p::Message;
use annex::store::{Incoming, RemoveOutcome, Verifier, VerifyMode};

use super::pool::Slot;

/// A local node's answer to PUT.
pub(super) enum LocalOffer {
    Has,
    /// Receiving, from the partial file's offset.
    From(Box<Incoming>),
    No(String),
}

/// `to`: the UUID the node's transfer record names (the gateway).
pub(super) fn offer(slot: &Slot, key: &Key, file: Option<&str>, to: &str) -> LocalOffer {
    let Some(local) = &slot.local else {
        return LocalOffer::No(format!("{}: not local", slot.name()));
    };
    if local.store.has(key) {
        return LocalOffer::Has;
    }
    match local.store.begin_receive(key, to, file) {
        Ok(inc) => LocalOffer::From(Box::new(inc)),
        Err(e) => LocalOffer::No(format!("{}: {e}", slot.name())),
    }
}

/// The local nodes' share of one fanned-out body.
pub(super) struct Sinks {
    key: Key,
    /// Hash of the stream, kept when it covers some node's whole content
    /// (the body starts at offset 0).
    verifier: Option<Verifier>,
    lanes: Vec<Lane>,
}

struct Lane {
    index: usize,
    offset: u64,
    state: Result<Box<Incoming>, String>,
}

impl Sinks {
    /// `start`: where the client's body begins.
    pub fn new(key: &Key, start: u64, incoming: BTreeMap<usize, Box<Incoming>>) -> Sinks {
        let lanes: Vec<Lane> = incoming
            .into_iter()
            .map(|(index, inc)| Lane {
                index,
                offset: inc.offset(),
                state: Ok(inc),
            })
            .collect();
        let shared = start == 0 && lanes.iter().any(|l| l.offset == 0);
        Sinks {
            key: key.clone(),
            verifier: shared.then(|| Verifier::new(key)),
            lanes,
        }
    }

    /// The body ends at byte `end` of the content: a node that would then
    /// hold more than the key's size drops out before anything is written
    /// (its partial file goes too), as its own server would refuse it.
    pub fn expect_end(&mut self, end: u64) {
        for lane in &mut self.lanes {
            if let Ok(inc) = &mut lane.state {
                if let Err(e) = inc.expect_end(end) {
                    lane.state = Err(e.to_string());
                }
            }
        }
    }

    /// The piece of the body that starts at offset `at`.
    pub fn write(&mut self, at: u64, chunk: &[u8]) {
        if let Some(v) = self.verifier.as_mut() {
            v.update(chunk);
        }
        let hashed_here = self.verifier.is_some();
        let end = at + chunk.len() as u64;
        for lane in &mut self.lanes {
            let Ok(inc) = &mut lane.state else { continue };
            if end <= lane.offset {
                continue;
            }
            let skip = usize::try_from(lane.offset.saturating_sub(at)).unwrap_or(chunk.len());
            let piece = &chunk[skip..];
            // A node resuming from its own partial file hashes for itself:
            // its bytes before the offset are not in the stream.
            let written = if hashed_here && lane.offset == 0 {
                inc.write_chunk_unhashed(piece)
            } else {
                inc.write_chunk(piece)
            };
            if let Err(e) = written {
                lane.state = Err(e.to_string());
            }
        }
    }

    /// Verify and store, as the client's verdict (`None`: protocol version
    /// 0) allows; each node's answer.
    pub fn finish(
        self,
        validity: Option<&Message>,
        slots: &mut [Slot],
    ) -> Vec<(usize, Result<Message, String>)> {
        let mode = match validity {
            Some(Message::Valid) => VerifyMode::Valid,
            Some(_) => VerifyMode::Invalid,
            None => VerifyMode::Unknown,
        };
        let verdict = self.verifier.map(Verifier::check);
        let mut out = Vec::new();
        for lane in self.lanes {
            let slot = &mut slots[lane.index];
            let name = slot.name().to_owned();
            let uuid = slot.uuid().to_owned();
            let inc = match lane.state {
                Ok(inc) => inc,
                Err(why) => {
                    out.push((lane.index, Err(format!("{name}: {why}"))));
                    continue;
                }
            };
            let stored = match (&verdict, lane.offset) {
                (Some(v), 0) => inc.finish_verified(v.clone()),
                _ => inc.finish(mode),
            };
            let answer = match stored {
                Ok(_) => {
                    if let Some(local) = slot.local.as_mut() {
                        local.log(&self.key, &uuid, LogStatus::Present);
                    }
                    Ok(Message::Success)
                }
                Err(e) => Err(format!("{name}: {e}")),
            };
            out.push((lane.index, answer));
        }
        out
    }

    /// The body never came: keep partial files for a resume, as a node's
    /// server does.
    pub fn abandon(self) {
        for lane in self.lanes {
            if let Ok(inc) = lane.state {
                inc.abandon();
            }
        }
    }
}

/// DATA-PRESENT: the client says the content reached the node by other
/// means; it counts if the node has it now.
pub(super) fn data_present(
    incoming: BTreeMap<usize, Box<Incoming>>,
    key: &Key,
    slots: &mut [Slot],
) -> Vec<(usize, Result<Message, String>)> {
    incoming
        .into_iter()
        .map(|(i, inc)| {
            inc.abandon();
            let slot = &mut slots[i];
            let uuid = slot.uuid().to_owned();
            let answer = match slot.local.as_mut() {
                Some(local) if local.store.has(key) => {
                    local.log(key, &uuid, LogStatus::Present);
                    Ok(Message::Success)
                }
                _ => Ok(Message::Failure),
            };
            (i, answer)
        })
        .collect()
}

/// REMOVE on a local node, in-process. `deadline`: a REMOVE-BEFORE time in
/// this machine's monotonic clock (the node's too).
pub(super) fn remove(slot: &mut Slot, key: &Key, deadline: Option<u64>) -> Result<Message, String> {
    let name = slot.name().to_owned();
    let uuid = slot.uuid().to_owned();
    let Some(local) = slot.local.as_mut() else {
        return Err(format!("{name}: not local"));
    };
    // Checked under the removal lock, as the node's server checks it.
    let still_allowed = || match deadline {
        Some(t) => annex::clock::monotonic_seconds() < t,
        None => true,
    };
    match local.store.remove(key, still_allowed) {
        Ok(RemoveOutcome::NotPresent) => Ok(Message::Success),
        Ok(RemoveOutcome::Removed) => {
            local.log(key, &uuid, LogStatus::Missing);
            Ok(Message::Success)
        }
        Ok(RemoveOutcome::Locked | RemoveOutcome::TooLate) => Ok(Message::Failure),
        Err(e) => Err(format!("{name}: {e}")),
    }
}
