//! The URL git hands us: parsed in the shared library, where the server
//! reads its remotes' URLs with the same code.

pub use annex::transport::url::*;
