//! Interop with the real git-annex.
