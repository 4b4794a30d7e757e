//! The library shared by `git-annex-shell` and `git-remote-annexproxy`.
//!
//! Layers, bottom up: [`key`] (key names and their object paths), [`store`]
//! (content on disk), [`branch`] (the git-annex branch and its logs),
//! [`repo`] (one repository: config, uuid, store and branch together) and
//! [`p2p`] (the P2P protocol: codec, then connection).

pub mod branch;
pub mod clock;
pub mod cluster;
pub mod direct_io;
pub mod key;
pub mod lines;
pub mod lockfile;
pub mod p2p;
pub mod pktline;
pub mod preferred;
pub mod repo;
pub mod spares;
pub mod store;
pub mod threadio;
pub mod transport;
pub mod uuids;
