//! git-annex-shell: argv forms, restrictions, and the commands it serves.
//!
//! [`args`] and [`restrict`] decide what may run (argv and the
//! restriction variables live in the `annex_shell_front` crate, which the
//! small `git-annex-shell` front binary is built from alone); [`run`] makes git-annex's
//! checks and picks the command; [`session`] is the one P2P session loop
//! over [`annex::p2p`], asking a [`backend`] (the local repository, a
//! proxied peer) for what only storage can do; [`cluster`] is the gateway.

pub mod backend;
pub mod builtins;
pub mod cluster;
pub mod error;
pub mod http;
pub mod listen;
pub mod operator;
pub mod p2pstdio;
pub mod proxy;
pub mod restrict;
pub mod run;
pub mod session;
pub mod special;
pub mod units;
mod user;

/// The argv forms, shared with the front binary (`annex_shell_front`).
pub use annex_shell_front::args;

#[cfg(test)]
mod testutil;
