//! REMOVE from the cluster: from every node, whether or not the location
//! log lists it there (a copy made behind the gateway's back must go
//! too), and from the gateway's own store.
//!
//! The answer names the nodes the key was removed from, also when some
//! failed (FAILURE-PLUS), and exactly those are logged as lacking it. A
//! node that cannot be reached at all is one more failed node: the ones
//! that did drop are still named. (git-annex's gateway ends the session
//! there, and its client goes on believing the dropped copies exist.)

use std::collections::BTreeSet;

use annex::branch::LogStatus;
use annex::key::Key;
use annex::p2p::Message;

use super::gateway::Gateway;
use super::local;
use super::policy;
use super::pool::fan_out;
use super::put::describe;
use crate::backend::Outcome;

impl Gateway {
    /// `before`: the client's REMOVE-BEFORE deadline, in our clock if we
    /// answered its GETTIMESTAMP.
    pub(super) async fn remove_everywhere(&mut self, key: &Key, before: Option<u64>) -> Outcome {
        let targets: Vec<usize> = (0..self.pool.len())
            .filter(|&i| Some(i) != self.own || self.store.has(key))
            .collect();
        let (in_process, targets): (Vec<usize>, Vec<usize>) = targets
            .into_iter()
            .partition(|&i| self.pool.slots[i].local.is_some());
        let mut local_answers = Vec::new();
        for i in in_process {
            let slot = &mut self.pool.slots[i];
            let answer = local::remove(slot, key, before);
            let name = slot.name().to_owned();
            local_answers.push((slot.uuid().to_owned(), answer.map(|m| (m, name))));
        }
        self.pool.ensure(&targets, self.jobs).await;
        let our_ts = self.our_timestamp;
        let answers = fan_out(&mut self.pool.slots, Some(&targets), |_, slot| {
            let key = key.clone();
            async move {
                let uuid = slot.uuid().to_owned();
                let Some(nc) = slot.conn() else {
                    let why = slot.down_reason().unwrap_or("not connected").to_owned();
                    return (uuid, Err(why));
                };
                let msg = match (before, our_ts) {
                    (None, _) => Message::Remove(key),
                    // Too old for REMOVE-BEFORE (which came with
                    // GETTIMESTAMP): plain REMOVE, as git-annex sends it.
                    (Some(_), _) if !Message::GetTimestamp.known_in(nc.version) => {
                        Message::Remove(key)
                    }
                    (Some(t), None) => Message::RemoveBefore { timestamp: t, key },
                    (Some(t), Some(ours)) => match slot.timestamp {
                        Some(theirs) => Message::RemoveBefore {
                            timestamp: policy::translate_deadline(t, ours, theirs),
                            key,
                        },
                        // Without its clock the deadline cannot be
                        // kept on this node: not removing is safe.
                        None => {
                            let why = format!("{}: no timestamp", slot.name());
                            return (uuid, Err(why));
                        }
                    },
                };
                let Some(nc) = slot.conn() else {
                    return (uuid, Err("not connected".to_owned()));
                };
                match nc.exchange(&msg).await {
                    Ok(m) => (uuid, Ok((m, slot.name().to_owned()))),
                    Err(e) => (uuid, Err(slot.fail(e).await)),
                }
            }
        })
        .await;

        let mut removed = BTreeSet::new();
        let mut reasons = Vec::new();
        for (uuid, answer) in answers.into_iter().chain(local_answers) {
            match answer {
                Ok((Message::Success, _)) => {
                    removed.insert(uuid);
                }
                Ok((Message::SuccessPlus(plus), _)) => {
                    removed.insert(uuid);
                    removed.extend(plus);
                }
                Ok((Message::FailurePlus(plus), name)) => {
                    removed.extend(plus);
                    reasons.push(format!("{name}: failed"));
                }
                Ok((other, name)) => reasons.push(format!("{name}: {}", describe(&other))),
                Err(why) => reasons.push(why),
            }
        }
        self.record(key, &removed, LogStatus::Missing);
        if !reasons.is_empty() {
            eprintln!(
                "git-annex-shell: removing {key} from the cluster: {}",
                reasons.join("; ")
            );
        }
        Outcome {
            ok: reasons.is_empty(),
            also: removed.into_iter().collect(),
        }
    }
}
