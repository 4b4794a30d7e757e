//! The gateway's nodes ([`Node`]s of any kind) and the one fan-out to
//! them; and [`Link`], a node's P2P session, opened lazily (a session
//! that only checks presence never starts a node), each told the BYPASS
//! set so a node that is itself a gateway of the same cluster never
//! routes back to us.
//!
//! A node that cannot be reached, or fails mid-request, is marked down
//! with the reason; it costs the requests made of it, never the session.

use std::collections::BTreeSet;

use annex::p2p::{ConnError, Message};
use annex::transport::{connect, ConnectOptions, NodeConnection, NodeRemote};
use futures_util::future::join_all;

use super::node::Node;

/// How the gateway reaches a node's shell: who we are, the client's
/// version (nodes are asked for no more), the BYPASS set.
pub struct Reach {
    pub my_uuid: String,
    pub version: u32,
    /// Sent to every node (version 2 and up) right after VERSION.
    pub bypass: BTreeSet<String>,
    pub opts: ConnectOptions,
}

/// A node's P2P session, or why there is none.
pub enum State {
    Idle,
    Up(Box<NodeConnection>),
    Down(String),
}

/// One node's P2P session through its shell, started when first needed.
pub struct Link {
    pub remote: NodeRemote,
    pub state: State,
}

impl Link {
    pub fn new(remote: NodeRemote) -> Link {
        Link {
            remote,
            state: State::Idle,
        }
    }

    /// A node known to be unusable before anything is asked of it.
    pub fn down(remote: NodeRemote, why: String) -> Link {
        Link {
            remote,
            state: State::Down(why),
        }
    }

    pub fn conn(&mut self) -> Option<&mut NodeConnection> {
        match &mut self.state {
            State::Up(nc) => Some(nc),
            _ => None,
        }
    }

    /// The node's directory, when it is on this machine.
    pub fn dir(&self) -> Option<&std::path::Path> {
        match &self.remote.location {
            annex::transport::Location::Local(dir) => Some(dir),
            _ => None,
        }
    }

    pub fn is_up(&self) -> bool {
        matches!(self.state, State::Up(_))
    }

    pub fn version(&self) -> u32 {
        match &self.state {
            State::Up(nc) => nc.version,
            _ => 0,
        }
    }

    /// Why the node cannot be asked (it is not up).
    pub fn why_not(&self) -> String {
        match &self.state {
            State::Down(why) => why.clone(),
            _ => format!("{}: not connected", self.remote.name),
        }
    }

    /// Start the node's session unless it was tried already.
    pub async fn open(&mut self, reach: &Reach) {
        if !matches!(self.state, State::Idle) {
            return;
        }
        self.state = match connect(&self.remote, &reach.my_uuid, reach.version, &reach.opts).await {
            Ok(mut nc) => {
                let told = if Message::Bypass(Vec::new()).known_in(nc.version) {
                    let list = reach.bypass.iter().cloned().collect();
                    nc.conn.write_message(&Message::Bypass(list)).await
                } else {
                    Ok(())
                };
                self.state = State::Up(Box::new(nc));
                if let Err(e) = told {
                    self.fail(e).await;
                }
                return;
            }
            Err(e) => {
                crate::user::tell(format_args!("{e}"));
                State::Down(e.to_string())
            }
        };
    }

    /// The node failed: close it (for its last words) and remember why.
    /// Returns the reason, which names the node.
    pub async fn fail(&mut self, e: ConnError) -> String {
        let name = self.remote.name.clone();
        let why = match std::mem::replace(&mut self.state, State::Idle) {
            State::Up(nc) => {
                let (_, stderr) = nc.close_with_stderr().await;
                match stderr.trim() {
                    "" => format!("{name}: connection lost ({e})"),
                    s => format!("{name}: connection lost ({e}): {s}"),
                }
            }
            State::Down(why) => why,
            State::Idle => format!("{name}: {e}"),
        };
        crate::user::tell(format_args!("{why}"));
        self.state = State::Down(why.clone());
        why
    }

    /// End the node's session the way a client ends it.
    pub async fn close(&mut self) {
        if let State::Up(nc) = std::mem::replace(&mut self.state, State::Idle) {
            nc.close().await;
        }
    }
}

pub struct Pool {
    pub nodes: Vec<Box<dyn Node>>,
    pub reach: Reach,
}

/// The one fan-out: `each` runs on the nodes at `targets` (every node
/// when `None`) at once, and their results come back in node order. What
/// is asked of a node is the caller's; how the nodes are reached at once
/// is said here only.
///
/// Nodes served in-process do their work inline when first polled, so
/// they are polled last: the others' requests are then under way (their
/// pipes draining) while the in-process ones write.
pub(super) async fn fan_out<'a, T, Fut>(
    nodes: &'a mut [Box<dyn Node>],
    targets: Option<&[usize]>,
    mut each: impl FnMut(usize, &'a mut dyn Node) -> Fut,
) -> Vec<T>
where
    Fut: std::future::Future<Output = T> + 'a,
{
    let wanted: Option<BTreeSet<usize>> = targets.map(|t| t.iter().copied().collect());
    let mut chosen: Vec<(usize, &'a mut Box<dyn Node>)> = nodes
        .iter_mut()
        .enumerate()
        .filter(|(i, _)| wanted.as_ref().is_none_or(|w| w.contains(i)))
        .collect();
    chosen.sort_by_key(|(_, n)| n.in_process());
    let order: Vec<usize> = chosen.iter().map(|&(i, _)| i).collect();
    let runs: Vec<Fut> = chosen
        .into_iter()
        .map(|(i, node)| each(i, node.as_mut()))
        .collect();
    let mut done: Vec<(usize, T)> = order.into_iter().zip(join_all(runs).await).collect();
    done.sort_by_key(|&(i, _)| i);
    done.into_iter().map(|(_, t)| t).collect()
}

impl Pool {
    pub fn new(nodes: Vec<Box<dyn Node>>, reach: Reach) -> Pool {
        Pool { nodes, reach }
    }

    /// No nodes yet: the gateway's pool before the session's BYPASS set
    /// is known (the options are never used to start a node).
    pub fn empty(my_uuid: String) -> Pool {
        let reach = Reach {
            my_uuid,
            version: 0,
            bypass: BTreeSet::new(),
            opts: ConnectOptions::new(std::path::PathBuf::new()),
        };
        Pool::new(Vec::new(), reach)
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn uuids(&self) -> impl Iterator<Item = &str> {
        self.nodes.iter().map(|n| n.uuid())
    }

    pub fn my_uuid(&self) -> &str {
        &self.reach.my_uuid
    }

    /// Open the nodes at `which` (those that need it and can), at most
    /// `jobs` at a time.
    pub async fn ensure(&mut self, which: &[usize], jobs: usize) {
        let wanted: BTreeSet<usize> = which.iter().copied().collect();
        let reach = &self.reach;
        let mut todo = self
            .nodes
            .iter_mut()
            .enumerate()
            .filter(|(i, n)| wanted.contains(i) && !n.ready())
            .map(|(_, n)| n);
        loop {
            let batch: Vec<&mut Box<dyn Node>> = todo.by_ref().take(jobs.max(1)).collect();
            if batch.is_empty() {
                break;
            }
            join_all(batch.into_iter().map(|n| n.open(reach))).await;
        }
    }

    /// End every node's part in the session.
    pub async fn close(&mut self) {
        join_all(self.nodes.iter_mut().map(|n| n.close())).await;
    }
}
