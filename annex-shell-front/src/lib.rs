//! git-annex-shell's front: what the small `git-annex-shell` binary is
//! built from, and the part of the server it shares with the full one
//! (`annex_shell`, run by `annexproxy git-annex-shell`).
//!
//! Every ssh session starts a git-annex-shell, and most of a `configlist`
//! call used to be starting the full server (a large static binary:
//! relocating itself, probing the CPU for its crypto and hashing code,
//! faulting in its pages). The front parses argv ([`args`]) and checks the
//! restriction variables ([`restrict`]) exactly as the full server does
//! (it is the same code), answers a plain `configlist` itself
//! ([`configlist`]) and hands every other call on by exec ([`handoff`]).
//!
//! It depends on std, nix and shell-words only: anything it links is paid
//! at every start.

pub mod args;
pub mod configlist;
pub mod gitconfig;
pub mod handoff;
pub mod location;
pub mod restrict;
