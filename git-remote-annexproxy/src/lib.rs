//! The parts of git-remote-annexproxy that read untrusted text — the
//! gitremote-helpers command loop and the URL — as a library, so the fuzz
//! targets (and anything else) can drive them without a process.

pub mod helper;
pub mod url;
