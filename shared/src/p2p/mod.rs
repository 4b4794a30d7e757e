//! The git-annex P2P protocol, in layers: [`message`] (what can be said),
//! [`codec`] (bytes ⇄ messages, sans-IO) and [`connection`] (buffered
//! async reading and writing, including the raw bytes of `DATA`).

pub mod codec;
pub mod connection;
pub mod message;
mod tee;
mod zerocopy;

pub use codec::{decode, encode, DecodeError, Decoded};
pub use connection::{
    file_handoff, ConnError, Connection, DataBody, DataSink, DataWriter, Discard, FileGiver,
    FileTaker, Halves, HandedFile,
};
pub use message::{fit, Message, Service, MAX_PROTOCOL_VERSION};
pub use tee::TeeOut;
