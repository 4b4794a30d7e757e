//! The relay's data transfers: GET streams the node's DATA to the client,
//! PUT the client's DATA to the node, by the kernel where both ends are
//! descriptors and else in bounded chunks, with the verdicts passed on
//! and what the node stored journalled.

use annex::branch::LogStatus;
use annex::key::Key;
use annex::p2p::{ConnError, Message};
use tokio::io::{AsyncRead, AsyncWrite};

use annex::p2p::Connection;
use annex::transport::NodeConnection;

use super::relay::{read_validity, up, Relay, RelayError};

/// After a relayed GET body: the node's VALID or INVALID, as the client
/// gets it. The body is complete either way, so a node that failed now
/// (returned, for the caller to take down) means INVALID: the client
/// discards what it got. A version 0 node sends no verdict; the client
/// checks the content itself.
pub(crate) async fn node_validity(nc: Option<&mut NodeConnection>) -> (Message, Option<ConnError>) {
    let reply = match nc {
        Some(nc) if nc.version == 0 => return (Message::Valid, None),
        Some(nc) => nc.reply().await,
        None => Err(ConnError::Broken),
    };
    match reply {
        Ok(v @ (Message::Valid | Message::Invalid)) => (v, None),
        Ok(_) => (Message::Invalid, None),
        Err(e) => (Message::Invalid, Some(e)),
    }
}

/// The client's SUCCESS or FAILURE after a GET, to pass on to the node;
/// `None` when it hung up. Anything unreadable counts as FAILURE.
pub(crate) async fn client_verdict<R, W>(
    client: &mut Connection<R, W>,
) -> Result<Option<Message>, RelayError>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    match client.read_message().await {
        Ok(Some(m)) => Ok(Some(m)),
        Ok(None) => Ok(None),
        Err(e) if e.is_recoverable() => Ok(Some(Message::Failure)),
        Err(e) => Err(e.into()),
    }
}

/// Bodies smaller than this are copied: a splice costs a thread hop.
const SPLICE_MIN: u64 = 64 * 1024;

/// A node's DATA body of `len` bytes on to `client` as `DATA len`: spliced
/// by the kernel from the node's pipe when both ends allow it, else
/// copied in bounded chunks. As [`Connection::relay_data_to`], a failure
/// on the client's side comes back as [`ConnError::Relay`], anything else
/// is the node's.
pub(crate) async fn relay_body<R, W>(
    nc: &mut NodeConnection,
    len: u64,
    client: &mut Connection<R, W>,
) -> Result<(), ConnError>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    let pipe = match nc.output_pipe() {
        Some(p) if len >= SPLICE_MIN && client.zero_copy() => p,
        _ => return nc.conn.relay_data_to(len, client).await,
    };
    let head = nc.conn.take_buffered(len);
    match client.send_spliced(len, head, pipe).await {
        Ok(_) => Ok(()),
        // The node's pipe ended early: the node is gone.
        Err(e @ ConnError::ShortBody { .. }) => Err(e),
        Err(e) => Err(ConnError::Relay(Box::new(e))),
    }
}

/// A client's DATA body of `len` bytes on to the node as `DATA len`:
/// spliced by the kernel from our input into the node's pipe when both
/// ends allow it, else copied in bounded chunks. Outcomes as
/// [`Connection::relay_data_to`].
async fn relay_put_body<R, W>(
    client: &mut Connection<R, W>,
    len: u64,
    nc: &mut NodeConnection,
) -> Result<(), ConnError>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    match nc.input_pipe() {
        Some(pipe) if len >= SPLICE_MIN && client.splices_input() => {
            client.relay_data_spliced(len, &mut nc.conn, pipe).await
        }
        _ => client.relay_data_to(len, &mut nc.conn).await,
    }
}

impl<R, W> Relay<R, W>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    /// GET: the node's DATA streams through to the client, then its
    /// validity, then the client's verdict goes back to the node.
    pub(super) async fn get(&mut self, msg: Message) -> Result<(), RelayError> {
        let version = self.version;
        if !self.tell_if_down().await? {
            return Ok(());
        }
        let Some(nc) = up(&mut self.node) else {
            return Ok(());
        };
        let len = match nc.exchange(&msg).await {
            Ok(Message::Data(len)) => len,
            Ok(other) => {
                // ERROR (or nonsense): the client treats it as a failed GET.
                let other = match other {
                    e @ Message::Error(_) => e,
                    m => Message::Error(format!("{}: unexpected {}", self.remote.name, m.verb())),
                };
                return self.send(other).await;
            }
            Err(e) => return self.node_failed(e).await,
        };
        if let Err(e) = relay_body(nc, len, &mut self.client).await {
            return Err(match e {
                ConnError::Relay(inner) => RelayError::Client(*inner),
                e => {
                    let why = self.take_node_down(e).await;
                    RelayError::Node(why)
                }
            });
        }
        if version >= 1 {
            let (validity, failed) = node_validity(up(&mut self.node)).await;
            if let Some(e) = failed {
                self.take_node_down(e).await;
            }
            self.send(validity).await?;
        }
        let Some(verdict) = client_verdict(&mut self.client).await? else {
            return Ok(());
        };
        if let Some(nc) = up(&mut self.node) {
            if let Err(e) = nc.conn.write_message(&verdict).await {
                self.take_node_down(e).await;
            }
        }
        Ok(())
    }

    pub(super) async fn put(&mut self, key: Key, msg: Message) -> Result<(), RelayError> {
        // The client sends its DATA from the node's offset; we need not know it.
        if !matches!(self.request(msg).await?, Some(Message::PutFrom(_))) {
            return Ok(());
        }
        let next = match self.client.read_message().await {
            Ok(Some(m)) => m,
            Ok(None) => return Ok(()),
            Err(e) if e.is_recoverable() => Message::Error("unparseable".into()),
            Err(e) => return Err(e.into()),
        };
        let Some(nc) = up(&mut self.node) else {
            return Ok(());
        };
        let result = match next {
            Message::Data(len) => {
                let relayed = relay_put_body(&mut self.client, len, nc).await;
                let node_broke = match relayed {
                    Ok(()) => None,
                    // The client's body was still read to its end.
                    Err(ConnError::Relay(inner)) => Some(*inner),
                    Err(e) => return Err(e.into()),
                };
                let validity = if self.version >= 1 {
                    Some(read_validity(&mut self.client).await?)
                } else {
                    None
                };
                if let Some(e) = node_broke {
                    return self.node_failed(e).await;
                }
                let sent = match validity {
                    Some(v) => nc.conn.write_message(&v).await,
                    None => Ok(()),
                };
                match sent {
                    Ok(()) => nc.reply().await,
                    Err(e) => Err(e),
                }
            }
            Message::DataPresent => nc.exchange(&Message::DataPresent).await,
            // The client could not send after all; neither side answers.
            e @ Message::Error(_) => {
                if let Err(e) = nc.conn.write_message(&e).await {
                    self.take_node_down(e).await;
                }
                return Ok(());
            }
            _ => {
                // Keep the node in step the same way, then tell the client.
                if let Err(e) = nc
                    .conn
                    .write_message(&Message::Error("expected DATA".into()))
                    .await
                {
                    self.take_node_down(e).await;
                }
                return self.send(Message::Error("expected DATA".into())).await;
            }
        };
        let reply = match result {
            Ok(r) => r,
            Err(e) => return self.node_failed(e).await,
        };
        let node_uuid = self.remote.uuid.clone();
        match &reply {
            Message::Success => self.record(&key, [node_uuid.as_str()], LogStatus::Present),
            Message::SuccessPlus(us) => {
                self.record(&key, [node_uuid.as_str()], LogStatus::Present);
                self.record(&key, us.iter().map(String::as_str), LogStatus::Present);
            }
            _ => {}
        }
        self.send(reply).await
    }
}
