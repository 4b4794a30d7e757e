//! A peer's bodies: GET streams the node's DATA to the client, PUT the
//! client's DATA to the node, by the kernel where both ends are
//! descriptors and else in bounded chunks.

use annex::p2p::{ConnError, Connection, Message};
use annex::transport::NodeConnection;
use tokio::io::{AsyncRead, AsyncWrite};

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
pub(crate) async fn relay_put_body<R, W>(
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
