//! Faults around our cluster gateway (issue 6), with the real git-annex
//! client over the ssh stand-in: a node that cannot write, a node out of
//! disk space, a client or the gateway killed mid-upload, a node dying
//! mid-REMOVE. After each fault the client's location log holds nothing
//! false, real `git annex fsck` is clean in every server repository, and
//! once the fault is gone a retry succeeds.
//!
//! Shared set-up and checks: `faults/world.rs`.

#[path = "faults/world.rs"]
mod world;

#[path = "faults/kills.rs"]
mod kills;
#[path = "faults/space.rs"]
mod space;
