//! CONNECT on a cluster: plain git (through git-remote-annexproxy) fetches
//! from and pushes to a cluster as to one repository.
//!
//! - `git-upload-pack` is served by the gateway's own repository, where
//!   every push to the cluster lands first (and where git-annex puts a
//!   push to a cluster remote too), so a fetch sees what was pushed even
//!   when a node lags; the first reachable node serves it only if the
//!   gateway's own session cannot start. The conversation is relayed
//!   message by message until `CONNECTDONE`.
//! - `git-receive-pack` lands on the gateway's own repository, through a
//!   p2pstdio child of ours like any node's session (the local CONNECT of
//!   `backend::local`), and every ref the gateway then accepted is pushed
//!   on from the gateway to each node with plain `git push` (nodes are git
//!   remotes of the gateway). A node that refuses or cannot be reached is
//!   named in one line on stderr, and the client's `CONNECTDONE` is 1.
//!   What a node did not take stays on record in the gateway ([`lag`])
//!   and goes with every later push, also one that changes nothing,
//!   until the node has it.
//!
//! Why not replay the client's push to every node: git's push is a
//! conversation about the refs the server advertised, and its pack is thin
//! against them; nodes that differ from the advertisement (a lagging node,
//! a new one) would reject the commands or the pack, and the client can
//! only be shown one advertisement and get one status report. Landing the
//! push once and propagating it keeps the client's conversation ordinary,
//! and the client's pack is received once. It also matches where
//! git-annex puts a push to a cluster remote: on the gateway.
//!
//! Only what the client asked for is propagated: the ref updates are read
//! from the client's command list as it passes (a few pkt-lines before
//! the pack, read by [`annex::pktline::Commands`]), and each is propagated
//! only if the gateway's ref now holds the new value. A ref moved backwards (a forced push) is forced on a
//! node only if the node still had the value the gateway had
//! (`--force-with-lease`), so a node that went its own way is reported,
//! never overwritten. Nodes reached only through another gateway have no
//! git URL here and are reported as not updated.
//!
//! Under a restriction variable, git goes on to a node only where the
//! operator allowed it (`Rules::relays_git_to`), as for a proxied node: the
//! gateway's own repository still serves the fetch and takes the push,
//! other nodes neither serve a fetch nor are pushed to, and are reported
//! as not updated.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use annex::p2p::{Connection, Message, Service};
use annex::pktline::{is_zero_id, Commands, RefUpdate};
use annex::transport::NodeConnection;
use tokio::io::{AsyncRead, AsyncWrite, Empty, Sink};

use super::gateway::Gateway;
use super::lag::{self, Lag};
use crate::backend::{BackendError, Failure};
use crate::restrict::Rules;

/// CONNECT through the gateway: git's service on the gateway's own
/// repository (or, to fetch, a node's); the exit code for CONNECTDONE.
pub(super) async fn handle<R, W>(
    gw: &mut Gateway,
    service: Service,
    client: &mut Connection<R, W>,
) -> Result<Option<i32>, BackendError>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    let nodes: Vec<usize> = (0..gw.pool.len()).filter(|i| Some(*i) != gw.own).collect();
    let (reachable, kept_out): (Vec<usize>, Vec<usize>) = nodes
        .iter()
        .partition(|&&i| gw.git_relay.contains(gw.pool.nodes[i].name()));
    let Some(own) = gw.own else {
        let why = "the cluster gateway has no repository of its own";
        return Err(gw.refusal("connect", why.into()));
    };
    let order: Vec<usize> = match service {
        Service::UploadPack => std::iter::once(own)
            .chain(reachable.iter().copied())
            .collect(),
        Service::ReceivePack => vec![own],
    };
    let Some(i) = first_up(&mut gw.pool, order).await else {
        let why = "no node of the cluster can be reached";
        return Err(gw.refusal("connect", why.into()));
    };
    let mut commands = Commands::default();
    let status = {
        let node = gw.pool.nodes[i].as_mut();
        let link = node.link().expect("chosen because it has a link");
        let nc = link.conn().expect("chosen because it is up");
        if let Err(e) = nc.conn.write_message(&Message::Connect(service)).await {
            return Err(BackendError::Lost(node.fail("CONNECT", e).await));
        }
        let watch = |bytes: &[u8]| {
            if service == Service::ReceivePack {
                commands.feed(bytes);
            }
        };
        match relay(client, nc, watch).await {
            Ok(s) => s,
            Err(BackendError::Lost(f)) => {
                crate::user::tell(format_args!("{f}"));
                return Err(BackendError::Lost(f));
            }
            Err(e) => return Err(e),
        }
    };
    let status = match (service, status) {
        (Service::UploadPack, s) => s,
        (Service::ReceivePack, Relayed::Done(code)) => {
            let base = gw.pool.nodes[own]
                .link()
                .and_then(|l| l.dir())
                .map_or_else(PathBuf::new, Path::to_owned);
            let (nodes, kept_out) = {
                let all = &gw.pool.nodes;
                let names = |of: &[usize]| -> Vec<(String, String)> {
                    of.iter()
                        .map(|&n| (all[n].name().to_owned(), all[n].uuid().to_owned()))
                        .collect()
                };
                (names(&reachable), names(&kept_out))
            };
            match propagate(&base, &nodes, &kept_out, &commands).await {
                Ok(()) => Relayed::Done(code),
                Err(()) => Relayed::Done(if code == 0 { 1 } else { code }),
            }
        }
        (_, s) => s,
    };
    match status {
        Relayed::Done(code) => Ok(Some(code)),
        Relayed::NodeError(e) => Err(gw.refusal("connect", e)),
    }
}

/// The node git was connected to failed: the session cannot go on.
fn lost(node: String, why: String) -> BackendError {
    BackendError::Lost(Failure {
        node,
        what: "connect",
        why,
    })
}

/// The first node of `order` whose session for git can be started.
async fn first_up(pool: &mut super::pool::Pool, order: Vec<usize>) -> Option<usize> {
    for i in order {
        let Some(link) = pool.nodes[i].link() else {
            continue;
        };
        link.open(&pool.reach).await;
        if link.is_up() {
            return Some(i);
        }
    }
    None
}

/// How the node's side of the service ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Relayed {
    Done(i32),
    NodeError(String),
}

/// git's conversation between the client and the node, as DATA both
/// ways, until the node says CONNECTDONE (which is not passed on: the
/// caller has the last word). `watch` sees the client's bytes.
///
/// Each way runs on its own, a chunk at a time: one side that stops
/// reading holds back only what flows towards it, never the other way
/// (with one loop for both, a full pipe towards the client would stop the
/// client's bytes to the node too, and both ends could wait on each other).
async fn relay<R, W>(
    client: &mut Connection<R, W>,
    node: &mut NodeConnection,
    mut watch: impl FnMut(&[u8]),
) -> Result<Relayed, BackendError>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    let name = node.name().to_owned();
    let lost = |e: &dyn std::fmt::Display| {
        self::lost(name.clone(), format!("{name}: connection lost ({e})"))
    };
    let mut from_client = client.split();
    let mut from_node = node.conn.split();
    // Set while a client body is on its way, so the node's end can let
    // the body finish and leave the client's connection in step.
    let mid_body = AtomicBool::new(false);
    let stop = AtomicBool::new(false);
    let (c_read, c_write) = (&mut from_client.reading, &mut from_client.writing);
    let (n_read, n_write) = (&mut from_node.reading, &mut from_node.writing);
    let upstream = async {
        while !stop.load(Ordering::Relaxed) {
            match c_read.read_message().await? {
                Some(Message::Data(len)) => {
                    mid_body.store(true, Ordering::Relaxed);
                    let mut out = n_write.start_data(len).await.map_err(|e| lost(&e))?;
                    let mut body = c_read.data_body(len);
                    while let Some(chunk) = body.next_chunk().await? {
                        watch(chunk);
                        out.write_chunk(chunk).await.map_err(|e| lost(&e))?;
                    }
                    out.finish().await.map_err(|e| lost(&e))?;
                    mid_body.store(false, Ordering::Relaxed);
                }
                // The client gives up; so does the node, when we close it.
                Some(Message::ConnectDone(_)) | Some(Message::Error(_)) | None => {
                    return Err(BackendError::Client(annex::p2p::ConnError::UnexpectedEof));
                }
                Some(other) => {
                    let why = format!("unexpected {} during CONNECT", other.verb());
                    return Err(self::lost(name.clone(), why));
                }
            }
        }
        Ok(())
    };
    let downstream = node_to_client(n_read, c_write, &name);
    tokio::pin!(upstream);
    let relayed = tokio::select! {
        r = &mut upstream => return r.and(Err(lost(&"the client stopped"))),
        r = downstream => r,
    };
    if mid_body.load(Ordering::Relaxed) {
        stop.store(true, Ordering::Relaxed);
        upstream.await?;
    }
    relayed
}

/// The node's side of [`relay`]: its DATA on to the client until it ends
/// the service.
async fn node_to_client<R, W>(
    node: &mut Connection<R, Sink>,
    client: &mut Connection<Empty, W>,
    name: &str,
) -> Result<Relayed, BackendError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let lost = |e: &dyn std::fmt::Display| {
        self::lost(name.to_owned(), format!("{name}: connection lost ({e})"))
    };
    loop {
        match node.read_message().await {
            Ok(Some(Message::Data(len))) => node
                .relay_data_to(len, client)
                .await
                .map_err(|e| lost(&e))?,
            Ok(Some(Message::ConnectDone(code))) => return Ok(Relayed::Done(code)),
            Ok(Some(Message::Error(e))) => return Ok(Relayed::NodeError(format!("{name}: {e}"))),
            Ok(Some(other)) => {
                return Ok(Relayed::NodeError(format!(
                    "{name}: unexpected {}",
                    other.verb()
                )))
            }
            Ok(None) => return Err(lost(&"closed")),
            Err(e) => return Err(lost(&e)),
        }
    }
}

/// Pushes what the gateway accepted of `commands` to each node of `nodes`
/// (name, UUID), together with what each node still lacks from earlier
/// pushes ([`lag`]), so a node that refused once is retried by every later
/// push, also one that changed nothing. `kept_out` are nodes git may not
/// reach in this session: what they lack is recorded, for a session that
/// may. On failure, the one line naming the nodes not updated has been
/// said.
async fn propagate(
    base: &Path,
    nodes: &[(String, String)],
    kept_out: &[(String, String)],
    commands: &Commands,
) -> Result<(), ()> {
    let mut accepted = Vec::new();
    for u in &commands.updates {
        let now = rev_parse(base, &u.name).await;
        let landed = match now {
            Some(v) => v == u.new,
            None => is_zero_id(&u.new),
        };
        if landed && !(is_zero_id(&u.old) && is_zero_id(&u.new)) {
            accepted.push(u.clone());
        }
    }
    let mut refused = Vec::new();
    if commands.incomplete {
        refused
            .push("the push's ref list could not be read whole, so no node was updated".to_owned());
        accepted.clear();
    }
    let lags = lag::read(base).await;
    // On record before any node is pushed to: a gateway that dies midway
    // leaves the lag to the next push, not a silent gap.
    let ahead: Vec<Lag> = nodes
        .iter()
        .chain(kept_out)
        .flat_map(|(_, uuid)| accepted.iter().map(move |u| (uuid, u)))
        .filter(|(uuid, u)| !lags.iter().any(|l| &l.node == *uuid && l.name == u.name))
        .map(|(uuid, u)| Lag {
            node: uuid.clone(),
            name: u.name.clone(),
            lease: if is_zero_id(&u.old) { &u.new } else { &u.old }.clone(),
        })
        .collect();
    lag::write(base, &ahead, &[]).await;
    for (name, uuid) in nodes {
        let updates = node_updates(base, uuid, &accepted, &lags).await;
        if updates.is_empty() {
            continue;
        }
        let pushed = push_node(base, name, &updates).await;
        // A ref named twice would fail the whole update-ref transaction.
        let done: std::collections::BTreeSet<&String> = pushed.done.iter().collect();
        let drops: Vec<(&str, &str)> = done
            .into_iter()
            .map(|r| (uuid.as_str(), r.as_str()))
            .collect();
        lag::write(base, &[], &drops).await;
        if let Some(why) = pushed.refused {
            refused.push(format!("{name} ({why})"));
        }
    }
    for (name, uuid) in kept_out {
        if !accepted.is_empty() || lags.iter().any(|l| &l.node == uuid) {
            refused.push(format!("{name} ({})", Rules::git_relay_refusal(name)));
        }
    }
    if refused.is_empty() {
        return Ok(());
    }
    crate::user::tell(format_args!(
        "the push reached the cluster's gateway but not every node: {}",
        refused.join("; ")
    ));
    Err(())
}

/// What node `uuid` is to get: this push's updates and the refs it lacks
/// from before, each to the gateway's value now, under the lease on
/// record where there is one.
async fn node_updates(
    base: &Path,
    uuid: &str,
    accepted: &[RefUpdate],
    lags: &[Lag],
) -> Vec<RefUpdate> {
    let mine: Vec<&Lag> = lags.iter().filter(|l| l.node == uuid).collect();
    let mut updates: Vec<RefUpdate> = accepted
        .iter()
        .map(|u| match mine.iter().find(|l| l.name == u.name) {
            Some(l) => RefUpdate {
                old: l.lease.clone(),
                ..u.clone()
            },
            None => u.clone(),
        })
        .collect();
    for l in mine {
        if accepted.iter().any(|u| u.name == l.name) {
            continue;
        }
        let new = match rev_parse(base, &l.name).await {
            Some(v) => v,
            None => "0".repeat(l.lease.len()),
        };
        updates.push(RefUpdate {
            old: l.lease.clone(),
            new,
            name: l.name.clone(),
        });
    }
    updates
}

async fn git(base: &Path, args: &[&str]) -> Option<std::process::Output> {
    lag::git(base, args).await.ok()
}

async fn rev_parse(base: &Path, name: &str) -> Option<String> {
    let out = git(base, &["rev-parse", "--verify", "-q", name]).await?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The arguments of the `git push` that gives node `remote` the updates.
pub fn push_args(
    remote: &str,
    updates: &[&RefUpdate],
    fast_forward: impl Fn(&RefUpdate) -> bool,
) -> Vec<String> {
    // Not `-q`: it would hide the porcelain lines of the refs that went
    // through, which clear their lag records when another ref is refused.
    let mut args = vec!["push".to_owned(), "--porcelain".to_owned()];
    let mut specs = Vec::new();
    for u in updates {
        if is_zero_id(&u.new) {
            args.push(format!("--force-with-lease={}:{}", u.name, u.old));
            specs.push(format!(":{}", u.name));
        } else if is_zero_id(&u.old) || fast_forward(u) {
            specs.push(format!("{}:{}", u.new, u.name));
        } else {
            args.push(format!("--force-with-lease={}:{}", u.name, u.old));
            specs.push(format!("{}:{}", u.new, u.name));
        }
    }
    args.push(remote.to_owned());
    args.extend(specs);
    args
}

/// How one node's push went: the refs it now has as the gateway has
/// them, and why it refused the others.
struct Pushed {
    done: Vec<String>,
    refused: Option<String>,
}

impl Pushed {
    fn failed(why: impl Into<String>) -> Pushed {
        Pushed {
            done: Vec::new(),
            refused: Some(why.into()),
        }
    }
}

async fn push_node(base: &Path, remote: &str, updates: &[RefUpdate]) -> Pushed {
    let has_url = git(base, &["config", "--get", &format!("remote.{remote}.url")])
        .await
        .is_some_and(|o| o.status.success());
    if !has_url {
        return Pushed::failed("reached through another gateway; no git URL of its own");
    }
    // A deletion of a ref the node does not have is done already (git
    // push would call it an error).
    let (absent, updates) = match absent_on_node(base, remote, updates).await {
        Ok(absent) => {
            let rest: Vec<&RefUpdate> = updates
                .iter()
                .filter(|u| !absent.contains(&u.name))
                .collect();
            (absent, rest)
        }
        Err(why) => return Pushed::failed(why),
    };
    if updates.is_empty() {
        return Pushed {
            done: absent,
            refused: None,
        };
    }
    let mut ff = std::collections::BTreeSet::new();
    for u in &updates {
        if !is_zero_id(&u.old) && !is_zero_id(&u.new) {
            let is_ff = git(base, &["merge-base", "--is-ancestor", &u.old, &u.new])
                .await
                .is_some_and(|o| o.status.success());
            if is_ff {
                ff.insert(u.name.clone());
            }
        }
    }
    let args = push_args(remote, &updates, |u| ff.contains(&u.name));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let Some(out) = git(base, &args).await else {
        return Pushed::failed("git push could not run");
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let (mut done, rejected) = porcelain(&stdout);
    done.extend(absent);
    let refused = if out.status.success() {
        done.extend(updates.iter().map(|u| u.name.clone()));
        None
    } else if !rejected.is_empty() {
        Some(rejected.join(", "))
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr);
        Some(
            stderr
                .trim()
                .lines()
                .last()
                .unwrap_or("git push failed")
                .to_owned(),
        )
    };
    Pushed { done, refused }
}

/// Of the deletions among `updates`, the refs `remote` does not have.
async fn absent_on_node(
    base: &Path,
    remote: &str,
    updates: &[RefUpdate],
) -> Result<Vec<String>, String> {
    let deletions: Vec<&str> = updates
        .iter()
        .filter(|u| is_zero_id(&u.new))
        .map(|u| u.name.as_str())
        .collect();
    if deletions.is_empty() {
        return Ok(Vec::new());
    }
    let mut args = vec!["ls-remote", "--refs", remote];
    args.extend(&deletions);
    let out = git(base, &args)
        .await
        .ok_or("git ls-remote could not run")?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(stderr
            .trim()
            .lines()
            .last()
            .unwrap_or("unreachable")
            .to_owned());
    }
    let listed = String::from_utf8_lossy(&out.stdout);
    let has: Vec<&str> = listed
        .lines()
        .filter_map(|l| l.split('\t').nth(1))
        .collect();
    Ok(deletions
        .into_iter()
        .filter(|d| !has.contains(d))
        .map(str::to_owned)
        .collect())
}

/// `git push --porcelain` output: the destination refs pushed or already
/// up to date, and `ref [rejected] (why)` for each refused one.
pub fn porcelain(stdout: &str) -> (Vec<String>, Vec<String>) {
    let mut done = Vec::new();
    let mut rejected = Vec::new();
    for l in stdout.lines() {
        let mut f = l.split('\t');
        let (Some(flag), Some(spec)) = (f.next(), f.next()) else {
            continue;
        };
        let Some(dst) = spec.rsplit(':').next() else {
            continue;
        };
        match flag {
            "!" => rejected.push(format!("{dst} {}", f.next().unwrap_or("rejected"))),
            " " | "+" | "-" | "*" | "=" => done.push(dst.to_owned()),
            _ => {}
        }
    }
    (done, rejected)
}

#[cfg(test)]
#[path = "connect_tests.rs"]
mod tests;
