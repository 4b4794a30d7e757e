//! Annexed content on disk.

pub mod verify;
