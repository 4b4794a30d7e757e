//! The line-oriented builtins: everything but p2pstdio.

use std::io::Write;

use annex::key::Key;
use annex::repo::Repo;
use annex::store::RemoveOutcome;

use crate::args::BuiltinCall;
use crate::error::ShellError;
use crate::restrict::{Policy, Refused, READONLY};

/// `configlist`: the two config lines git-annex prints, then one line for
/// each proxied remote and cluster this repository serves (see
/// [`served_remotes`]). A repository with no UUID is initialised first
/// when a git-annex branch exists (someone pushed one) or the client asked
/// with `autoinit=1`.
pub fn configlist(repo: &mut Repo, call: &BuiltinCall, policy: &Policy) -> Result<i32, ShellError> {
    let mut uuid = repo.uuid();
    if uuid.is_none() && (call.fields.autoinit || repo.has_annex_branch().unwrap_or(false)) {
        if policy.readonly {
            return Err(Refused::Blocked(READONLY).into());
        }
        uuid = Some(
            repo.init_journalled(None)
                .map_err(|e| ShellError::Other(format!("initialisation failed: {e}")))?,
        );
    }
    let gcrypt = repo.config_get("core.gcrypt-id").unwrap_or_default();
    let mut out = std::io::stdout().lock();
    writeln!(out, "annex.uuid={}", uuid.as_deref().unwrap_or_default()).map_err(io)?;
    writeln!(out, "core.gcrypt-id={gcrypt}").map_err(io)?;
    if let Some(mine) = uuid {
        for served in served_remotes(repo, &mine) {
            writeln!(out, "{}", served.config_line()).map_err(io)?;
        }
    }
    Ok(0)
}

/// Prefix of the extra configlist lines; git-annex itself prints no
/// `annexproxy.*` keys.
pub const SERVED_PREFIX: &str = "annexproxy.";

/// A repository behind this one that a client can reach by asking
/// p2pstdio for its UUID with `--uuid`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Served {
    pub cluster: bool,
    /// The name `proxy.log` gives it under our UUID (a legal git remote
    /// name, so it holds no `=` and no whitespace).
    pub name: String,
    pub uuid: String,
}

impl Served {
    /// `annexproxy.proxy.NAME=UUID` or `annexproxy.cluster.NAME=UUID`.
    ///
    /// Extra configlist lines are harmless to git-annex clients: they read
    /// the output as `key=value` config and look up only `annex.uuid` and
    /// `core.gcrypt-id` (pinned by the proxy and cluster end-to-end suites,
    /// whose real clients read our configlist). git-remote-annexproxy
    /// reads them to turn `#NAME` into a UUID without git-annex.
    pub fn config_line(&self) -> String {
        let kind = if self.cluster { "cluster" } else { "proxy" };
        format!("{SERVED_PREFIX}{kind}.{}={}", self.name, self.uuid)
    }
}

/// The remotes `proxy.log` lists under `my_uuid` that a p2pstdio with
/// `--uuid` would really serve: the same test the session makes
/// ([`crate::proxy::select`]), so nothing is offered that would then be
/// refused. Unreadable logs offer nothing: configlist must still answer.
///
/// A repository without any remote serves nothing (no node to relay to,
/// no cluster with a node), so its git-annex branch is not read at all:
/// that read (ref, object store, commit and tree) is most of what a plain
/// server's configlist would otherwise spend after starting.
pub fn served_remotes(repo: &Repo, my_uuid: &str) -> Vec<Served> {
    use crate::proxy::Selection;
    use annex::branch::maplog::{parse_proxy_log, valid_proxies};
    if !repo.has_remotes() {
        return Vec::new();
    }
    let content = match repo.branch().read_file("proxy.log") {
        Ok(c) => c.unwrap_or_default(),
        Err(_) => return Vec::new(),
    };
    let log = parse_proxy_log(&content);
    let Some(listed) = log.get(my_uuid).map(valid_proxies) else {
        return Vec::new();
    };
    listed
        .into_iter()
        .filter_map(|p| match crate::proxy::select(repo, my_uuid, &p.uuid) {
            Ok(Selection::Node(_) | Selection::Special(_)) => Some(Served {
                cluster: false,
                name: p.name,
                uuid: p.uuid,
            }),
            Ok(Selection::Cluster(_)) => Some(Served {
                cluster: true,
                name: p.name,
                uuid: p.uuid,
            }),
            _ => None,
        })
        .collect()
}

fn keys(call: &BuiltinCall) -> Result<Vec<Key>, ShellError> {
    call.params
        .iter()
        .map(|p| Key::parse(p).map_err(|e| ShellError::Other(e.to_string())))
        .collect()
}

/// `inannex KEY…`: exit 0 when every key is present, 1 when one is not.
pub fn inannex(repo: &Repo, call: &BuiltinCall) -> Result<i32, ShellError> {
    let store = repo.store();
    let all = keys(call)?.iter().all(|k| store.has(k));
    Ok(if all { 0 } else { 1 })
}

/// `dropkey KEY…`: remove content without numcopies checks (the client has
/// made them) and record it.
pub fn dropkey(repo: &Repo, call: &BuiltinCall) -> Result<i32, ShellError> {
    let store = repo.store();
    let uuid = repo.uuid().unwrap_or_default();
    let branch = repo.branch();
    let mut ok = true;
    let mut logged = false;
    for key in keys(call)? {
        match store.remove(&key, || true).map_err(other)? {
            RemoveOutcome::Removed => {
                logged |= branch
                    .log_key_location(&key, &uuid, annex::branch::LogStatus::Missing)
                    .map_err(other)?;
            }
            RemoveOutcome::NotPresent => {}
            RemoveOutcome::Locked | RemoveOutcome::TooLate => {
                crate::user::tell(format_args!("{key} is locked; not dropped"));
                ok = false;
            }
        }
    }
    if logged {
        branch.commit().map_err(other)?;
    }
    Ok(if ok { 0 } else { 1 })
}

/// `lockcontent KEY`: hold a shared lock, print `OK`, and keep it until
/// stdin closes (the protocol older ssh remotes used for drop proofs).
pub fn lockcontent(repo: &Repo, call: &BuiltinCall) -> Result<i32, ShellError> {
    let [key] = keys(call)?
        .try_into()
        .map_err(|_| ShellError::Other("lockcontent takes one key".into()))?;
    let store = repo.store();
    match store.lock_content(&key).map_err(other)? {
        Some(lock) => {
            println!("OK");
            std::io::stdout().flush().map_err(io)?;
            let drained = drain_stdin();
            drop(lock);
            drained.map(|()| 0)
        }
        None => Ok(1),
    }
}

/// `commit`: commit the journal to the git-annex branch.
pub fn commit(repo: &Repo) -> Result<i32, ShellError> {
    repo.branch().commit().map_err(other)?;
    Ok(0)
}

/// `notifychanges`: print `CHANGED sha…` whenever refs change, until stdin
/// closes.
pub fn notifychanges(repo: &Repo) -> Result<i32, ShellError> {
    let (tx, rx) = std::sync::mpsc::channel::<Result<(), ShellError>>();
    std::thread::spawn(move || {
        let _ = tx.send(drain_stdin());
    });
    let mut before = repo.ref_values().map_err(other)?;
    let mut out = std::io::stdout();
    loop {
        match rx.recv_timeout(std::time::Duration::from_millis(250)) {
            Ok(drained) => return drained.map(|()| 0),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return Ok(0),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
        }
        let now = repo.ref_values().map_err(other)?;
        let mut changed: Vec<&String> = now
            .iter()
            .filter(|(k, v)| before.get(*k) != Some(*v))
            .map(|(_, v)| v)
            .collect();
        changed.sort();
        changed.dedup();
        if !changed.is_empty() {
            let line: Vec<&str> = changed.iter().map(|s| s.as_str()).collect();
            if writeln!(out, "CHANGED {}", line.join(" "))
                .and_then(|_| out.flush())
                .is_err()
            {
                return Ok(0);
            }
        }
        before = now;
    }
}

/// `transferinfo KEY`: the client reports upload progress on stdin; the
/// server only needs it for its transfer log, which p2pstdio keeps itself.
pub fn transferinfo(_repo: &Repo, call: &BuiltinCall) -> Result<i32, ShellError> {
    keys(call)?;
    drain_stdin().map(|()| 0)
}

/// Reads the client's lines until it closes stdin, each bounded as a P2P
/// protocol line is: a client that sends no newline gets an error, not a
/// server that grows with what it sent.
fn drain_stdin() -> Result<(), ShellError> {
    annex::lines::drain(&mut std::io::stdin().lock())
        .map_err(|e| ShellError::Other(format!("reading stdin: {e}")))
}

fn io(e: std::io::Error) -> ShellError {
    ShellError::Other(e.to_string())
}

fn other(e: impl std::fmt::Display) -> ShellError {
    ShellError::Other(e.to_string())
}
