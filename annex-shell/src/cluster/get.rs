//! GET from the cluster: from the gateway's own copy if it has one, else
//! from a node that has the key, the next one if that node cannot send
//! it. Once a node's DATA has started flowing to the client there is no
//! going back: a node failing then ends the transfer (the client resumes
//! it with a new GET, which may well go to another node).

use annex::key::Key;
use annex::p2p::{ConnError, Connection, Message};
use std::io::{Seek, SeekFrom};

use tokio::io::{AsyncRead, AsyncWrite};

use super::gateway::{Gateway, Serving};
use super::policy;
use super::put::{describe, join_reasons};
use crate::backend::peer::{node_validity, relay_body};
use crate::backend::{same_file, send_body, BackendError, Failure};

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
        let msg = Message::Get {
            offset,
            file: file.map(str::to_owned),
            key: key.clone(),
        };
        let mut reasons = Vec::new();
        for i in self.get_order(key) {
            if self.pool.slots[i].local.is_some() {
                match self.get_local(i, offset, file, key, client).await? {
                    Ok(valid) => return Ok(valid),
                    Err(why) => {
                        reasons.push(why);
                        continue;
                    }
                }
            }
            self.pool.ensure(&[i], 1).await;
            let slot = &mut self.pool.slots[i];
            let Some(nc) = slot.conn() else {
                reasons.push(slot.down_reason().unwrap_or("not connected").to_owned());
                continue;
            };
            let len = match nc.exchange(&msg).await {
                // git-annex-shell's way of saying it lacks the key: an
                // empty body, then INVALID. Nothing reached the client
                // yet, so the next node can be asked.
                Ok(Message::Data(0)) if expects_bytes(key, offset) => {
                    let turned_down = async {
                        if Message::Invalid.known_in(nc.version) {
                            nc.reply().await?;
                        }
                        nc.conn.write_message(&Message::Failure).await
                    };
                    match turned_down.await {
                        Ok(()) => reasons.push(format!("{}: does not have it", slot.name())),
                        Err(e) => reasons.push(slot.fail(e).await),
                    }
                    continue;
                }
                Ok(Message::Data(len)) => len,
                Ok(other) => {
                    reasons.push(format!("{}: {}", slot.name(), describe(&other)));
                    continue;
                }
                Err(e) => {
                    reasons.push(slot.fail(e).await);
                    continue;
                }
            };
            return self.relay_get(i, len, client).await;
        }
        let why = join_reasons(&reasons, "no node of the cluster has it");
        Err(self.refusal("get", format!("cannot get {key}: {why}")))
    }

    /// GET from a node on this machine, read in-process: whether what was
    /// sent is intact, or why the node lacks the key (nothing was sent:
    /// the next node is asked).
    async fn get_local<R, W>(
        &mut self,
        i: usize,
        offset: u64,
        file: Option<&str>,
        key: &Key,
        client: &mut Connection<R, W>,
    ) -> Result<Result<bool, String>, BackendError>
    where
        R: AsyncRead + Unpin + Send,
        W: AsyncWrite + Unpin + Send,
    {
        let to = self.pool.my_uuid().to_owned();
        let slot = &self.pool.slots[i];
        let Some(local) = &slot.local else {
            return Ok(Err(format!("{}: not local", slot.name())));
        };
        let (mut content, size) = match local.store.open_content(key) {
            Ok(Some(c)) => c,
            Ok(None) => return Ok(Err(format!("{}: does not have it", slot.name()))),
            Err(e) => return Ok(Err(format!("{}: {e}", slot.name()))),
        };
        let name = slot.name().to_owned();
        let failed = |e: &dyn std::fmt::Display| {
            BackendError::Lost(Failure {
                node: name.clone(),
                what: "get",
                why: format!("{name}: {e}"),
            })
        };
        let before = content.metadata().map_err(|e| failed(&e))?;
        let len = size.saturating_sub(offset);
        content
            .seek(SeekFrom::Start(offset.min(size)))
            .map_err(|e| failed(&e))?;
        let probe = content.try_clone().map_err(|e| failed(&e))?;
        let upload = local.store.begin_upload(key, &to, file).ok();
        if let Err(e) = send_body(client, len, content).await {
            return Err(match e {
                e @ BackendError::Client(_) => e,
                other => failed(&other),
            });
        }
        let valid = probe
            .metadata()
            .map(|after| same_file(&before, &after))
            .unwrap_or(false);
        self.serving = Some(Serving::Local(upload));
        Ok(Ok(valid))
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
            .partition(|&i| holders.contains(self.pool.slots[i].uuid()));
        let connected = |i: usize| self.pool.slots[i].conn_ref().is_some();
        let busy = |i: usize| self.pool.slots[i].busy();
        let spin = spin();
        order.extend(policy::get_order(&listed, &connected, &busy, spin));
        order.extend(policy::get_order(&unlisted, &connected, &busy, spin));
        order
    }

    /// The node's DATA streams through to the client; then its
    /// validity, which the session passes on. The client's verdict goes
    /// back to the node (see `retrieved`).
    async fn relay_get<R, W>(
        &mut self,
        i: usize,
        len: u64,
        client: &mut Connection<R, W>,
    ) -> Result<bool, BackendError>
    where
        R: AsyncRead + Unpin + Send,
        W: AsyncWrite + Unpin + Send,
    {
        let version = self.version;
        let slot = &mut self.pool.slots[i];
        let Some(nc) = slot.conn() else {
            return Ok(false);
        };
        if let Err(e) = relay_body(nc, len, client).await {
            return Err(match e {
                ConnError::Relay(inner) => BackendError::Client(*inner),
                e => {
                    let why = slot.fail(e).await;
                    BackendError::Lost(Failure {
                        node: slot.name().to_owned(),
                        what: "get",
                        why,
                    })
                }
            });
        }
        self.serving = Some(Serving::Node(i));
        if !Message::Valid.known_in(version) {
            return Ok(true);
        }
        let (validity, failed) = node_validity(slot.conn()).await;
        if let Some(e) = failed {
            slot.fail(e).await;
        }
        Ok(validity == Message::Valid)
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

/// Whether a GET from `offset` must carry bytes: the key's size says so
/// (a key of unknown size may really be empty).
fn expects_bytes(key: &Key, offset: u64) -> bool {
    key.size().is_some_and(|s| s > offset)
}
