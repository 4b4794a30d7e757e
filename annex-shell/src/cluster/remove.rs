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

use super::gateway::Gateway;
use super::node::Deadline;
use super::pool::fan_out;
use crate::backend::Outcome;

impl Gateway {
    /// `before`: the client's REMOVE-BEFORE deadline, in our clock if we
    /// answered its GETTIMESTAMP.
    pub(super) async fn remove_everywhere(&mut self, key: &Key, before: Option<u64>) -> Outcome {
        let targets: Vec<usize> = (0..self.pool.len())
            .filter(|&i| Some(i) != self.own || self.store.has(key))
            .collect();
        self.pool.ensure(&targets, self.jobs).await;
        let deadline = before.map(|at| Deadline {
            at,
            ours: self.our_timestamp,
        });
        let answers = fan_out(&mut self.pool.nodes, Some(&targets), |_, node| async move {
            let answer = node.remove(key, deadline).await;
            (node.uuid().to_owned(), node.name().to_owned(), answer)
        })
        .await;

        let mut removed = BTreeSet::new();
        let mut reasons = Vec::new();
        for (uuid, name, answer) in answers {
            match answer {
                Ok(o) => {
                    if o.ok {
                        removed.insert(uuid);
                    } else {
                        reasons.push(format!("{name}: failed"));
                    }
                    // Others that removed it did so even when the node
                    // failed to.
                    removed.extend(o.also);
                }
                Err(f) => reasons.push(super::noted(f)),
            }
        }
        self.record(key, &removed, LogStatus::Missing);
        if !reasons.is_empty() {
            crate::user::tell(format_args!(
                "removing {key} from the cluster: {}",
                reasons.join("; ")
            ));
        }
        Outcome {
            ok: reasons.is_empty(),
            also: removed.into_iter().collect(),
        }
    }
}
