//! Location log lines owed for answers already sent.
//!
//! A store or removal in this repository is answered as soon as the
//! content is (or is no longer) where the answer says; the client logs the
//! change in its own location log and goes on to its next file. The
//! server's own log line, a journal write that costs a new file each time,
//! is written after the answer ([`super::Backend::settle`]), while the
//! client works, and in any case before the session's commit
//! ([`super::Backend::finish`]). Since another session may have changed
//! the content since the answer (a REMOVE of the key just stored), each
//! line is written only if the content is still as it says, checked under
//! the journal lock (`Branch::log_key_locations_if`): the log ends as the
//! content is, whichever session writes last.

use annex::branch::{Branch, BranchError, LogStatus};
use annex::key::Key;

/// What is owed: per key, the repositories and what they now hold.
#[derive(Default)]
pub struct OwedLogs(Vec<(Key, Vec<String>, LogStatus)>);

impl OwedLogs {
    pub fn owe<'a>(
        &mut self,
        key: &Key,
        uuids: impl IntoIterator<Item = &'a str>,
        status: LogStatus,
    ) {
        let uuids: Vec<String> = uuids.into_iter().map(str::to_owned).collect();
        if !uuids.is_empty() {
            self.0.push((key.clone(), uuids, status));
        }
    }

    /// Writes what is owed into `branch`'s journal, each line only if
    /// `holds(key, status)` (asked under the journal lock); whether the
    /// journal gained lines. A line that cannot be written is handed to
    /// `unlogged` (the answer stands: the content is where it said, and
    /// `git annex fsck` logs it later).
    pub fn pay(
        &mut self,
        branch: &Branch,
        holds: impl Fn(&Key, LogStatus) -> bool,
        mut unlogged: impl FnMut(&Key, LogStatus, BranchError),
    ) -> bool {
        let mut journalled = false;
        for (key, uuids, status) in std::mem::take(&mut self.0) {
            let uuids = uuids.iter().map(String::as_str);
            match branch.log_key_locations_if(&key, uuids, status, || holds(&key, status)) {
                Ok(changed) => journalled |= changed,
                Err(e) => unlogged(&key, status, e),
            }
        }
        journalled
    }
}
