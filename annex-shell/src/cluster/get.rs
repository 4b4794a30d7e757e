//! GET from the cluster: from the gateway's own copy if it has one, else
//! from a node that has the key, the next one if that node cannot send
//! it. Once a node's DATA has started flowing to the client there is no
//! going back: a node failing then ends the transfer (the client resumes
//! it with a new GET, which may well go to another node).

use annex::key::Key;
use annex::p2p::{ConnError, Message};
use std::io::{Seek, SeekFrom};

use tokio::io::{AsyncRead, AsyncWrite};

use super::gateway::Gateway;
use super::policy;
use super::put::{describe, join_reasons};
use crate::backend::{same_file, send_body, BackendError};
use crate::proxy::relay::RelayError;
use crate::proxy::{client_verdict, node_validity};

impl<R, W> Gateway<R, W>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    pub(super) async fn get(
        &mut self,
        offset: u64,
        file: Option<String>,
        key: Key,
    ) -> Result<(), RelayError> {
        let msg = Message::Get {
            offset,
            file,
            key: key.clone(),
        };
        let mut reasons = Vec::new();
        for i in self.get_order(&key) {
            if self.pool.slots[i].local.is_some() {
                match self.get_local(i, offset, msg_file(&msg), &key).await? {
                    None => return Ok(()),
                    Some(why) => {
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
                Ok(Message::Data(0)) if expects_bytes(&key, offset) => {
                    let turned_down = async {
                        if nc.version >= 1 {
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
            return self.relay_get(i, len).await;
        }
        let why = join_reasons(&reasons, "no node of the cluster has it");
        self.send(Message::Error(format!("cannot get {key}: {why}")))
            .await
    }

    /// GET from a node on this machine, read in-process. `Some(reason)`
    /// when it lacks the key (nothing was sent: the next node is asked).
    async fn get_local(
        &mut self,
        i: usize,
        offset: u64,
        file: Option<&str>,
        key: &Key,
    ) -> Result<Option<String>, RelayError> {
        let to = self.pool.my_uuid().to_owned();
        let slot = &self.pool.slots[i];
        let Some(local) = &slot.local else {
            return Ok(Some(format!("{}: not local", slot.name())));
        };
        let (mut content, size) = match local.store.open_content(key) {
            Ok(Some(c)) => c,
            Ok(None) => return Ok(Some(format!("{}: does not have it", slot.name()))),
            Err(e) => return Ok(Some(format!("{}: {e}", slot.name()))),
        };
        let failed = |e: std::io::Error| RelayError::Node(format!("{}: {e}", slot.name()));
        let before = content.metadata().map_err(failed)?;
        let len = size.saturating_sub(offset);
        content
            .seek(SeekFrom::Start(offset.min(size)))
            .map_err(failed)?;
        let probe = content.try_clone().map_err(failed)?;
        let upload = local.store.begin_upload(key, &to, file).ok();
        let name = slot.name().to_owned();
        if let Err(e) = send_body(&mut self.client, len, content).await {
            return Err(match e {
                BackendError::Client(c) => RelayError::Client(c),
                other => RelayError::Node(format!("{name}: {other}")),
            });
        }
        let valid = probe
            .metadata()
            .map(|after| same_file(&before, &after))
            .unwrap_or(false);
        if self.version >= 1 {
            self.send(if valid {
                Message::Valid
            } else {
                Message::Invalid
            })
            .await?;
        }
        let verdict = client_verdict(&mut self.client).await?;
        if let Some(u) = upload {
            u.finish(verdict == Some(Message::Success));
        }
        Ok(None)
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

    /// The node's DATA streams through to the client, then its validity,
    /// then the client's verdict goes back to the node.
    async fn relay_get(&mut self, i: usize, len: u64) -> Result<(), RelayError> {
        let version = self.version;
        let slot = &mut self.pool.slots[i];
        let Some(nc) = slot.conn() else {
            return Ok(());
        };
        if let Err(e) = crate::proxy::relay_body(nc, len, &mut self.client).await {
            return Err(match e {
                ConnError::Relay(inner) => RelayError::Client(*inner),
                e => RelayError::Node(slot.fail(e).await),
            });
        }
        if version >= 1 {
            let (validity, failed) = node_validity(slot.conn()).await;
            if let Some(e) = failed {
                slot.fail(e).await;
            }
            self.send(validity).await?;
        }
        let Some(verdict) = client_verdict(&mut self.client).await? else {
            return Ok(());
        };
        let slot = &mut self.pool.slots[i];
        if let Some(nc) = slot.conn() {
            if let Err(e) = nc.conn.write_message(&verdict).await {
                slot.fail(e).await;
            }
        }
        Ok(())
    }
}

fn msg_file(msg: &Message) -> Option<&str> {
    match msg {
        Message::Get { file, .. } => file.as_deref(),
        _ => None,
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
