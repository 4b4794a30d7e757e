//! Serving a cluster (spec §7): a client asking for a cluster UUID this
//! repository is a gateway for gets one session that speaks for all the
//! cluster's nodes.
//!
//! The session is the one session loop ([`crate::session`]) over a
//! [`gateway::Gateway`], the cluster as a back-end that is a composite of
//! nodes. [`policy`] decides which nodes a request goes to; each node is
//! a [`node::Node`] (what a node kind implements is said there): a P2P
//! peer ([`peer`]) or a repository on this machine served in-process
//! ([`local`]); [`pool`] holds them and has the one fan-out. The
//! gateway's verbs are the fan-out PUT in [`put`], GET with fail-over in
//! [`get`], REMOVE from every node in [`remove`] and git's fetch and push
//! in [`connect`].

mod connect;
pub mod gateway;
mod get;
pub mod lag;
mod local;
pub mod node;
mod peer;
mod placement;
pub mod policy;
pub mod pool;
mod put;
mod remove;
mod special;

use std::collections::BTreeSet;

use annex::key::Key;
use annex::repo::Repo;
use annex::transport::{ConnectOptions, Location, NodeRemote};

use annex::p2p::Connection;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::args::BuiltinCall;
use crate::backend::{BackendError, Failure};
use crate::error::ShellError;
use crate::restrict::{Policy, Rules};
use crate::session::{ServeError, Session};
use gateway::{Gateway, Placement, Setup};
use node::Node;
use pool::{Link, Pool, Reach};

/// `p2pstdio` for a cluster: serve the client on stdin/stdout as the
/// cluster `cluster_uuid`.
pub fn run(
    repo: Repo,
    cluster_uuid: String,
    call: &BuiltinCall,
    policy: &Policy,
) -> Result<i32, ShellError> {
    crate::p2pstdio::serve(call, |conn, _client| {
        // The session ends with the client's command: the location lines
        // go into one commit per repository at its end.
        let jobs = repo.jobs();
        gateway_session_with_jobs(conn, repo, cluster_uuid, Rules::of(policy), jobs, true)
    })
}

/// One client's session with the cluster `cluster_uuid`, on any
/// connection, reaching `annex.jobs` nodes at once (as git-annex's
/// gateway over ssh).
pub async fn gateway_session<R, W>(
    conn: Connection<R, W>,
    repo: Repo,
    cluster_uuid: String,
    rules: Rules,
) -> Result<(), ServeError>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    let jobs = repo.jobs();
    gateway_session_with_jobs(conn, repo, cluster_uuid, rules, jobs, false).await
}

/// [`gateway_session`] reaching at most `jobs` nodes at once when it
/// opens them for a request (p2phttp's `--clusterjobs`). `owing`: the
/// session ends with its client's command (ssh), and the gateway's and
/// its in-process nodes' location lines wait for their session's commit
/// (`Setup::owing`, `Node::owe_logs`).
pub async fn gateway_session_with_jobs<R, W>(
    conn: Connection<R, W>,
    repo: Repo,
    cluster_uuid: String,
    rules: Rules,
    jobs: usize,
    owing: bool,
) -> Result<(), ServeError>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    let my_uuid = repo.uuid().ok_or_else(|| {
        ServeError::Backend(BackendError::Lost(Failure {
            node: cluster_uuid.clone(),
            what: "serve",
            why: "not a git-annex repository".into(),
        }))
    })?;
    // What clients pushed (synced/git-annex) is merged first, as git-annex
    // does on its first read of the branch: their preferred content and
    // groups decide where keys go.
    if let Err(e) = repo.branch().commit() {
        tracing::warn!(error = %e, "merging the git-annex branch");
    }
    let mut opts = ConnectOptions::new(crate::proxy::our_shell()).with_repo(&repo);
    opts.forward_stderr = true;
    let setup = Setup {
        cluster_uuid: cluster_uuid.clone(),
        my_uuid: my_uuid.clone(),
        store: repo.store(),
        branch: repo.branch(),
        placement: placement(&repo, &my_uuid),
        git_relay: repo
            .remotes()
            .into_iter()
            .map(|r| r.name)
            .filter(|name| rules.relays_git_to(&repo, name))
            .collect(),
        jobs: jobs.max(1),
        owing,
    };
    let make_pool = move |version, bypass: BTreeSet<String>| {
        let (mut nodes, own) = node_set(&repo, &cluster_uuid, &my_uuid, &bypass);
        if owing {
            nodes.iter_mut().for_each(|n| n.owe_logs());
        }
        let reach = Reach {
            my_uuid,
            version,
            bypass,
            opts,
        };
        (Pool::new(nodes, reach), own)
    };
    let gateway = Gateway::new(setup, Box::new(make_pool));
    Session::new(conn, gateway, rules).run().await
}

/// The cluster's nodes as the gateway reaches them (a special remote by
/// its storage, [`special`]), then the gateway's own repository, a local
/// node like the others (see [`node_for`]). A
/// node whose remote cannot be reached by any transport is kept, already
/// down: a REMOVE must report it as not removed from.
fn node_set(
    repo: &Repo,
    cluster_uuid: &str,
    my_uuid: &str,
    bypass: &BTreeSet<String>,
) -> (Vec<Box<dyn Node>>, Option<usize>) {
    let base = repo.work_dir().unwrap_or(repo.git_dir()).to_owned();
    let remotes = match annex::cluster::gateway_nodes(repo, cluster_uuid, bypass) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(cluster = %cluster_uuid, error = %e, "finding the nodes of the cluster");
            Vec::new()
        }
    };
    let specials = crate::special::config::remote_log(repo).unwrap_or_else(|e| {
        tracing::warn!(error = %e, "reading remote.log");
        Default::default()
    });
    let mut nodes: Vec<Box<dyn Node>> = remotes
        .iter()
        .filter(|r| r.annex_uuid().is_some_and(|u| !bypass.contains(u)))
        .map(|r| {
            if crate::special::config::is_special(r, &specials) {
                return match crate::special::SpecialRemote::load(repo, r, &specials) {
                    Ok(remote) => special::open(repo, &remote).unwrap_or_else(|why| down(r, why)),
                    Err(e) => down(r, e.to_string()),
                };
            }
            match NodeRemote::from_config(r, &base) {
                Ok(node) => node_for(node),
                Err(e) => down(r, e.to_string()),
            }
        })
        .collect();
    let own = NodeRemote {
        name: "gateway".into(),
        uuid: my_uuid.to_owned(),
        location: Location::Local(base),
        annex_shell: None,
        ssh_options: Vec::new(),
    };
    nodes.push(node_for(own));
    let own = nodes.len() - 1;
    (nodes, Some(own))
}

/// A node that cannot be reached: every request of it is answered with
/// `why`.
fn down(r: &annex::repo::RemoteConfig, why: String) -> Box<dyn Node> {
    let remote = NodeRemote {
        name: r.name.clone(),
        uuid: r.annex_uuid().unwrap_or_default().to_owned(),
        location: Location::Local(Default::default()),
        annex_shell: None,
        ssh_options: Vec::new(),
    };
    Box::new(peer::PeerNode::new(Link::down(remote, why)))
}

/// The node kind that serves `remote`. A node our own shell would serve
/// from this machine is served in-process for transfers and removals
/// (git's CONNECT still goes through a child); one with an `annex-shell`
/// of its own, or over ssh or P2P, through its P2P session.
pub(crate) fn node_for(remote: NodeRemote) -> Box<dyn Node> {
    let link = Link::new(remote);
    let ours = matches!(
        (&link.remote.location, &link.remote.annex_shell),
        (Location::Local(_), None)
    );
    if !ours {
        return Box::new(peer::PeerNode::new(link));
    }
    match local::LocalNode::open(link) {
        Ok(node) => Box::new(node),
        Err(link) => Box::new(peer::PeerNode::new(*link)),
    }
}

/// A node's failure, kept in the trace with its parts; the reason the
/// client is told.
pub(crate) fn noted(f: Failure) -> String {
    tracing::warn!(node = %f.node, what = f.what, why = %f.why, "node failed");
    f.why
}

/// The nodes' preferred content; if the branch cannot be read for it,
/// git-annex's default (every node wants every key).
fn placement(repo: &Repo, my_uuid: &str) -> Box<dyn Placement> {
    match placement::Preferred::load(repo.branch(), my_uuid.to_owned()) {
        Ok(p) => Box::new(p),
        Err(e) => {
            tracing::warn!(error = %e, "reading preferred content");
            Box::new(EveryNode)
        }
    }
}

/// Placement with no preferred content: git-annex's default, every node
/// wants every key, and the gateway keeps none.
struct EveryNode;

impl Placement for EveryNode {
    fn wanted(
        &mut self,
        nodes: &[&str],
        _key: &Key,
        _file: Option<&str>,
        _holders: &BTreeSet<String>,
    ) -> BTreeSet<String> {
        nodes.iter().map(|s| s.to_string()).collect()
    }

    fn gateway_wants(&mut self, _: &Key, _: Option<&str>, _: &BTreeSet<String>) -> bool {
        false
    }

    fn placed(&mut self, _: &Key, _: &BTreeSet<String>) {}
}

#[cfg(test)]
mod tests;

#[cfg(test)]
#[path = "composite_tests.rs"]
mod composite_tests;

#[cfg(test)]
#[path = "special_tests.rs"]
mod special_tests;
