//! GET from the cluster: from the gateway's own copy if it has one, else
//! from a node that has the key, the next one if that node cannot send
//! it. Once a node's DATA has started flowing to the client there is no
//! going back: a node failing then ends the transfer (the client resumes
//! it with a new GET, which may well go to another node).

use annex::key::Key;
use annex::p2p::{ConnError, Connection};
use tokio::io::{AsyncRead, AsyncWrite};

use super::gateway::Gateway;
use super::node::Source;
use super::policy;
use super::put::join_reasons;
use crate::backend::peer::relay_body;
use crate::backend::{send_body, BackendError};

/// Sending a node's body to the client broke, on one side or the other.
enum Broke {
    Client(ConnError),
    Node(ConnError),
}

impl Gateway {
    /// The content from `offset` as one DATA to `client`; whether what
    /// was sent is intact.
    pub(super) async fn get<R, W>(
        &mut self,
        offset: u64,
        file: Option<&str>,
        key: &Key,
        client: &mut Connection<R, W>,
    ) -> Result<bool, BackendError>
    where
        R: AsyncRead + Unpin + Send,
        W: AsyncWrite + Unpin + Send,
    {
        let to = self.pool.my_uuid().to_owned();
        let mut reasons = Vec::new();
        for i in self.get_order(key) {
            self.pool.ensure(&[i], 1).await;
            let node = self.pool.nodes[i].as_mut();
            let source = match node.retrieve(key, offset, file, &to).await {
                Ok(source) => source,
                Err(f) => {
                    reasons.push(super::noted(f));
                    continue;
                }
            };
            tracing::Span::current().record("bytes", source.body_len());
            match send(source, client).await {
                Ok(()) => {}
                Err(Broke::Client(e)) => return Err(BackendError::Client(e)),
                Err(Broke::Node(e)) => return Err(BackendError::Lost(node.fail("GET", e).await)),
            }
            // The client's verdict goes back to the node (see `retrieved`).
            self.serving = Some(i);
            return Ok(node.sent().await);
        }
        let why = join_reasons(&reasons, "no node of the cluster has it");
        // git-annex's client shows an ERROR to a GET only as a failed
        // transfer: the nodes' reasons go to its terminal, as a PUT's do.
        if !reasons.is_empty() {
            crate::user::tell(format_args!("{key}: {}", reasons.join("; ")));
        }
        Err(self.refusal("get", format!("cannot get {key}: {why}")))
    }

    /// The gateway's own copy first; then the nodes the location log
    /// names; then, since that log may miss a copy made behind the
    /// gateway's back, every other node (one that lacks the key just
    /// says so).
    fn get_order(&self, key: &Key) -> Vec<usize> {
        let holders = self.holders(key);
        let mut order = Vec::new();
        if let Some(own) = self.own {
            if self.store.has(key) {
                order.push(own);
            }
        }
        let nodes: Vec<usize> = (0..self.pool.len())
            .filter(|&i| Some(i) != self.own)
            .collect();
        let (listed, unlisted): (Vec<usize>, Vec<usize>) = nodes
            .into_iter()
            .partition(|&i| holders.contains(self.pool.nodes[i].uuid()));
        let ready = |i: usize| self.pool.nodes[i].ready();
        let busy = |i: usize| self.pool.nodes[i].busy();
        let spin = spin();
        order.extend(policy::get_order(&listed, &ready, &busy, spin));
        order.extend(policy::get_order(&unlisted, &ready, &busy, spin));
        order
    }
}

/// A node's body on to the client as one DATA, by the kernel where both
/// ends allow it: sendfile from a file, splice from a node's pipe.
async fn send<R, W>(source: Source<'_>, client: &mut Connection<R, W>) -> Result<(), Broke>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    match source {
        Source::File(file, len) => send_body(client, len, file).await.map_err(|e| match e {
            BackendError::Client(e) => Broke::Client(e),
            BackendError::Io(e) => Broke::Node(ConnError::Body(e)),
            other => Broke::Node(ConnError::Body(std::io::Error::other(other.to_string()))),
        }),
        Source::Relay(nc, len) => relay_body(nc, len, client).await.map_err(|e| match e {
            ConnError::Relay(inner) => Broke::Client(*inner),
            e => Broke::Node(e),
        }),
        Source::Reader(mut reader, len) => {
            client
                .send_data(len, &mut reader)
                .await
                .map_err(|e| match e {
                    e @ (ConnError::ShortBody { .. } | ConnError::Body(_)) => Broke::Node(e),
                    e => Broke::Client(e),
                })
        }
    }
}

/// Differs between sessions, so that they start their reads at different
/// nodes.
fn spin() -> usize {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    (nanos as usize) ^ (std::process::id() as usize)
}
