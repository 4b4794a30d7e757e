//! Location log lines owed for answers already sent.
//!
//! A store or removal in this repository is answered as soon as the
//! content is (or is no longer) where the answer says; the client logs the
//! change in its own location log and goes on to its next file. The
//! server's own line is owed until the session commits: at its end
//! ([`super::Backend::finish`]), or earlier once [`DUE_AFTER`] has passed
//! or [`DUE_AT`] lines wait ([`super::Backend::settle`]). The lines go
//! straight into that commit (`Branch::commit_with`), not through a
//! journal file each: a new file per key is the costliest thing a server
//! does per key (see `annex::branch::pack`), and git-annex's journal is
//! only there for what is not committed yet.
//!
//! Since another session may have changed the content since the answer (a
//! REMOVE of the key just stored), each line is written only if the
//! content is still as it says, checked at commit time under the journal
//! lock, under which every writer logs after it changed the content: the
//! log ends as the content is, whichever session writes last.
//!
//! A proxy or cluster gateway owes its nodes' lines the same way when its
//! session ends with the client's command (ssh). It cannot look into a
//! node under its journal lock, so each line carries the clock of its
//! answer and leaves a newer line of another session alone
//! ([`OwedLogs::pay_as_of`]); a cluster's in-process nodes owe their own
//! lines as a served repository does.
//!
//! A session that outlives its client's command (p2phttp keeps idle
//! sessions for the next request) writes its lines to the journal after
//! each answer instead ([`OwedLogs::journal`]), so that git-annex in the
//! repository sees them as soon as the client is done, as with git-annex's
//! own p2phttp.

use std::time::{Duration, Instant};

use annex::branch::{Branch, BranchError, Direct, LogStatus, VectorClock};
use annex::key::Key;

/// How long a line may wait for its commit while the session goes on.
pub const DUE_AFTER: Duration = Duration::from_secs(2);

/// How many lines may wait: a commit of this many keys is one pack.
pub const DUE_AT: usize = 1000;

/// What is owed, in the order of the answers.
#[derive(Default)]
pub struct OwedLogs {
    lines: Vec<Line>,
    /// When the oldest line still owed was owed.
    since: Option<Instant>,
}

impl OwedLogs {
    pub fn owe<'a>(
        &mut self,
        key: &Key,
        uuids: impl IntoIterator<Item = &'a str>,
        status: LogStatus,
    ) {
        let uuids: Vec<String> = uuids.into_iter().map(str::to_owned).collect();
        if !uuids.is_empty() {
            self.lines
                .push((key.clone(), uuids, status, VectorClock::candidate_now()));
            self.since.get_or_insert_with(Instant::now);
        }
    }

    /// `holders` (of `key`, as the log says) updated with what is owed
    /// for it, in the order of the answers: what a session that reads its
    /// log (a cluster gateway's CHECKPRESENT) must see of its own answers.
    pub fn apply_to(&self, key: &Key, holders: &mut std::collections::BTreeSet<String>) {
        for (k, uuids, status, _) in &self.lines {
            if k != key {
                continue;
            }
            for u in uuids {
                if *status == LogStatus::Present {
                    holders.insert(u.clone());
                } else {
                    holders.remove(u);
                }
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// Whether the lines should be committed now rather than at the end.
    pub fn due(&self) -> bool {
        self.lines.len() >= DUE_AT || self.since.is_some_and(|t| t.elapsed() >= DUE_AFTER)
    }

    /// Writes what is owed into `branch`'s journal, each line only if
    /// `holds(key, status)` (asked under the journal lock); whether the
    /// journal gained lines. A line that cannot be written is handed to
    /// `unlogged`. For sessions that outlive their client's command
    /// (p2phttp's pooled ones), whose lines must be seen at once.
    pub fn journal(
        &mut self,
        branch: &Branch,
        holds: impl Fn(&Key, LogStatus) -> bool,
        mut unlogged: impl FnMut(&Key, LogStatus, &BranchError),
    ) -> bool {
        self.since = None;
        let mut journalled = false;
        for (key, uuids, status, _) in std::mem::take(&mut self.lines) {
            let uuids = uuids.iter().map(String::as_str);
            match branch.log_key_locations_if(&key, uuids, status, || holds(&key, status)) {
                Ok(changed) => journalled |= changed,
                Err(e) => unlogged(&key, status, &e),
            }
        }
        journalled
    }

    /// Commits `branch` with what is owed, each line only if
    /// `holds(key, status)` (asked at commit time, under the journal
    /// lock). When the commit fails, every line is handed to `unlogged`
    /// (the answers stand: the content is where they said, and
    /// `git annex fsck` logs it later) and the error returned.
    pub fn pay(
        &mut self,
        branch: &Branch,
        holds: impl Fn(&Key, LogStatus) -> bool,
        unlogged: impl FnMut(&Key, LogStatus, &BranchError),
    ) -> Result<(), BranchError> {
        self.since = None;
        let lines = std::mem::take(&mut self.lines);
        let holds = &holds;
        commit(&lines, branch, unlogged, |key, uuids, status, _| {
            Branch::key_locations_change(key, uuids, status, move || holds(key, status))
        })
    }

    /// Commits `branch` with what is owed for repositories this process
    /// cannot look into (a gateway's nodes): each line as of its answer,
    /// so that a line another session logged since is kept
    /// (`Branch::key_locations_change_as_of`).
    pub fn pay_as_of(
        &mut self,
        branch: &Branch,
        unlogged: impl FnMut(&Key, LogStatus, &BranchError),
    ) -> Result<(), BranchError> {
        self.since = None;
        let lines = std::mem::take(&mut self.lines);
        commit(&lines, branch, unlogged, Branch::key_locations_change_as_of)
    }
}

/// One owed line: the key, the repositories, what they now hold, and the
/// clock of the answer.
type Line = (Key, Vec<String>, LogStatus, VectorClock);

/// One commit of `lines`, each made a change by `change`; when it fails,
/// every line is handed to `unlogged`.
fn commit<'a>(
    lines: &'a [Line],
    branch: &Branch,
    mut unlogged: impl FnMut(&Key, LogStatus, &BranchError),
    change: impl Fn(&'a Key, Vec<String>, LogStatus, VectorClock) -> Direct<'a>,
) -> Result<(), BranchError> {
    let mut changes: Vec<_> = lines
        .iter()
        .map(|(key, uuids, status, at)| change(key, uuids.clone(), *status, *at))
        .collect();
    let result = branch.commit_with(&mut changes);
    if let Err(e) = &result {
        for (key, _, status, _) in lines {
            unlogged(key, *status, e);
        }
    }
    result.map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str =
        "SHA256E-s12--a948904f2f0f479b8f8197694b30184b0d2ed1c1cd2a1ec0fb85d299a192a447.dat";

    #[test]
    fn lines_fall_due_by_age_or_count() {
        let key = Key::parse(KEY).expect("key");
        let mut owed = OwedLogs::default();
        assert!(!owed.due());
        owed.owe(&key, ["u1"], LogStatus::Present);
        owed.owe(&key, [], LogStatus::Present);
        assert_eq!(owed.lines.len(), 1, "nothing owed for no repository");
        assert!(!owed.due());
        owed.since = Instant::now().checked_sub(DUE_AFTER);
        assert!(owed.due(), "waited long enough");
        owed.since = Some(Instant::now());
        while owed.lines.len() < DUE_AT {
            assert!(!owed.due());
            owed.owe(&key, ["u1"], LogStatus::Missing);
        }
        assert!(owed.due(), "enough lines");
    }
}
