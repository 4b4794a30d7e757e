//! Which git refs each cluster node still lacks, kept in the gateway's own
//! refs so that a push a node refused is retried by the next push (also
//! one that changes nothing) and `annexproxy status` can show the lag.
//!
//! One ref per node and ref: `refs/annexproxy/lag/<node uuid>/<ref>`. It
//! is written before the gateway pushes a ref on to the nodes (so a
//! gateway that dies in between leaves the lag on record, not a silent
//! gap) and deleted once the node took the ref. What the node should get
//! is always the gateway's ref as it is now, so the record does not hold
//! it; the record's value is the lease: the value the gateway had before
//! (the node may be overwritten from it, as in a forced push, and from
//! nothing else) or, for a ref the gateway did not have before, the new
//! value (forcing from the value the gateway has is a no-op).
//!
//! Why refs rather than asking every node (`git ls-remote`) on each push:
//! only nodes with a record cost anything, a push that lags nowhere costs
//! one `for-each-ref`, the per-ref locking of `update-ref` keeps
//! concurrent sessions safe, and the records say which refs came through
//! the cluster: the gateway's other refs (its `git-annex` branch, what
//! git-annex clients push to it over plain ssh) differ from the nodes'
//! by design and are no lag. Records are keyed by UUID, which survives a
//! renamed remote. The objects a lease names stay reachable while the
//! record lives, so a later forced push can still be checked against it.

use std::path::Path;
use std::process::Stdio;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// Where the records live in the gateway's repository.
pub const PREFIX: &str = "refs/annexproxy/lag/";

/// What the gateway's `transfer.hideRefs` hides: our own refs, which a
/// client should neither fetch nor (with `push --mirror`) delete.
const HIDDEN: &str = "refs/annexproxy/";

/// `git for-each-ref` arguments listing the records, for [`parse`].
pub const LIST_ARGS: [&str; 3] = ["for-each-ref", "--format=%(objectname) %(refname)", PREFIX];

/// A ref node `node` (UUID) has not taken yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lag {
    pub node: String,
    pub name: String,
    pub lease: String,
}

pub fn record_name(node: &str, name: &str) -> String {
    format!("{PREFIX}{node}/{name}")
}

/// The records in the output of `git` [`LIST_ARGS`].
pub fn parse(listing: &str) -> Vec<Lag> {
    listing
        .lines()
        .filter_map(|l| {
            let (lease, refname) = l.split_once(' ')?;
            let (node, name) = refname.strip_prefix(PREFIX)?.split_once('/')?;
            name.starts_with("refs/").then(|| Lag {
                node: node.to_owned(),
                name: name.to_owned(),
                lease: lease.to_owned(),
            })
        })
        .collect()
}

/// The records of the gateway at `base` (none if git cannot say).
pub async fn read(base: &Path) -> Vec<Lag> {
    let out = git(base, &LIST_ARGS).await;
    match out {
        Ok(o) if o.status.success() => parse(&String::from_utf8_lossy(&o.stdout)),
        Ok(o) => {
            tracing::warn!(stderr = %String::from_utf8_lossy(&o.stderr), "listing node lag records");
            Vec::new()
        }
        Err(e) => {
            tracing::warn!(error = %e, "listing node lag records");
            Vec::new()
        }
    }
}

/// Write the records `adds` (node, ref, lease) and delete the records
/// `drops` (node, ref), in one `git update-ref --stdin`.
pub async fn write(base: &Path, adds: &[Lag], drops: &[(&str, &str)]) {
    if adds.is_empty() && drops.is_empty() {
        return;
    }
    let mut script = String::new();
    for l in adds {
        script.push_str(&format!(
            "update {} {}\n",
            record_name(&l.node, &l.name),
            l.lease
        ));
    }
    for (node, name) in drops {
        script.push_str(&format!("delete {}\n", record_name(node, name)));
    }
    if !adds.is_empty() {
        if let Err(why) = hide_from_clients(base).await {
            tracing::warn!(%why, "hiding the lag records from clients");
        }
    }
    if let Err(why) = update_refs(base, &script).await {
        // The push itself went as it went; only the record is off, and
        // the next push or status shows the node as it was recorded.
        tracing::warn!(%why, "recording which refs the nodes lack");
    }
}

/// Sets `transfer.hideRefs` for our refs in the gateway's config, unless
/// it is there: git's services (upload-pack, receive-pack, over ssh or
/// CONNECT) then leave the records out of what they show and take.
async fn hide_from_clients(base: &Path) -> Result<(), String> {
    let set = git(base, &["config", "--get-all", "transfer.hideRefs"])
        .await
        .map_err(|e| e.to_string())?;
    let hidden = String::from_utf8_lossy(&set.stdout);
    if hidden
        .lines()
        .any(|h| HIDDEN.starts_with(h.trim_end_matches('/')))
    {
        return Ok(());
    }
    let out = git(base, &["config", "--add", "transfer.hideRefs", HIDDEN])
        .await
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

/// git in the gateway's repository at `base`, with no input unless the
/// caller gives it some.
pub(super) fn git_in(base: &Path) -> Command {
    let mut cmd = Command::new("git");
    cmd.arg("-C").arg(base).stdin(Stdio::null());
    cmd
}

/// `git -C base args…`, run to its end.
pub(super) async fn git(base: &Path, args: &[&str]) -> std::io::Result<std::process::Output> {
    git_in(base).args(args).output().await
}

async fn update_refs(base: &Path, script: &str) -> Result<(), String> {
    let mut child = git_in(base)
        .args(["update-ref", "--stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
    }
    let out = child.wait_with_output().await.map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_name_node_ref_and_lease() {
        let a = "1".repeat(40);
        let listing = format!(
            "{a} refs/annexproxy/lag/u-1/refs/heads/main\n\
             {a} refs/annexproxy/lag/u-2/refs/tags/v1/x\n\
             {a} refs/annexproxy/lag/u-3\n\
             {a} refs/annexproxy/lag/u-4/HEAD\n"
        );
        let got = parse(&listing);
        let want = [("u-1", "refs/heads/main"), ("u-2", "refs/tags/v1/x")];
        assert_eq!(got.len(), want.len());
        for (l, (node, name)) in got.iter().zip(want) {
            assert_eq!((l.node.as_str(), l.name.as_str()), (node, name));
            assert_eq!(l.lease, a);
        }
        assert_eq!(
            record_name("u-1", "refs/heads/main"),
            "refs/annexproxy/lag/u-1/refs/heads/main"
        );
    }
}
