//! `annexproxy p2p-token …` and `annexproxy serve-p2p`: who may connect as
//! a P2P peer, and the listener they connect to.
//!
//! Tokens live in `annex/creds/p2pauth` in git-annex's format, so a
//! repository set up by `git annex p2p` keeps working with our listener, and
//! the reverse.

use std::io::Write;
use std::path::Path;

use annex::transport::auth::{AuthToken, Creds, CredsError, GENERATED_TOKEN_LEN};
use annex::transport::p2paddr::{AddressError, P2pAddress};

use super::{open, OperatorError};
use crate::listen::{self, Endpoint, ListenError, ListenOptions};

/// What `git annex p2p --gen-addresses` warns on stderr.
const SHARE_WARNING: &str = "These addresses allow access to this git-annex repository. Only share them with people you trust with that access, using trusted communication channels!";

#[derive(Debug, thiserror::Error)]
pub enum P2pError {
    #[error(transparent)]
    Address(#[from] AddressError),
    #[error(transparent)]
    Creds(#[from] CredsError),
    #[error("generating a token: {0}")]
    Random(#[source] std::io::Error),
    #[error("not an auth token (letters and digits only)")]
    BadToken,
    #[error("no such token in p2pauth")]
    NoSuchToken,
    #[error(transparent)]
    Listen(#[from] ListenError),
}

/// `p2p-token add [--address ADDR]`: accept a new token and print what a
/// peer needs: `ADDR:TOKEN` (what `git annex p2p --link` reads), or the
/// token alone (for tor, whose onion address the operator knows).
pub fn token_add(
    dir: &Path,
    address: Option<&str>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), OperatorError> {
    let repo = open(dir)?;
    let address = address
        .map(P2pAddress::parse)
        .transpose()
        .map_err(P2pError::from)?;
    let token = AuthToken::generate(GENERATED_TOKEN_LEN).map_err(P2pError::Random)?;
    Creds::new(&repo.annex_dir())
        .add_accepted(&token, address.as_ref())
        .map_err(P2pError::from)?;
    writeln!(err, "{SHARE_WARNING}")?;
    match address {
        Some(a) => writeln!(out, "{a}:{}", token.as_str())?,
        None => writeln!(out, "{}", token.as_str())?,
    }
    Ok(())
}

/// `p2p-token list`: the lines of `p2pauth`.
pub fn token_list(dir: &Path, out: &mut dyn Write) -> Result<(), OperatorError> {
    let repo = open(dir)?;
    for a in Creds::new(&repo.annex_dir())
        .accepted()
        .map_err(P2pError::from)?
    {
        match a.address {
            Some(addr) => writeln!(out, "{} {addr}", a.token.as_str())?,
            None => writeln!(out, "{}", a.token.as_str())?,
        }
    }
    Ok(())
}

/// `p2p-token remove TOKEN`: stop accepting it, on every address.
pub fn token_remove(dir: &Path, token: &str) -> Result<(), OperatorError> {
    let repo = open(dir)?;
    let token = AuthToken::parse(token).ok_or(P2pError::BadToken)?;
    let removed = Creds::new(&repo.annex_dir())
        .remove_accepted(&token)
        .map_err(P2pError::from)?;
    if removed {
        Ok(())
    } else {
        Err(P2pError::NoSuchToken.into())
    }
}

/// `serve-p2p`: listen until killed; prints `listening on WHERE` once
/// peers can connect.
pub fn serve(
    dir: &Path,
    endpoint: Endpoint,
    address: Option<&str>,
    serve_for: Option<&str>,
    limits: listen::Limits,
    out: &mut dyn Write,
) -> Result<(), OperatorError> {
    let repo = open(dir)?;
    if repo.uuid().is_none() {
        return Err(OperatorError::NotInitialized);
    }
    let address = address
        .map(P2pAddress::parse)
        .transpose()
        .map_err(P2pError::from)?;
    let opts = ListenOptions {
        endpoint,
        address,
        limits,
        serve_for: serve_for.map(str::to_owned),
    };
    let dir = repo.work_dir().unwrap_or(repo.git_dir()).to_owned();
    if let Some(name) = serve_for {
        listen::check_served(&dir, name).map_err(|e| OperatorError::Served(e.to_string()))?;
    }
    let mut printed = Ok(());
    let served = listen::serve(&dir, &opts, |bound| {
        printed = writeln!(out, "listening on {bound}").and_then(|()| out.flush());
    });
    printed?;
    served.map_err(|e| P2pError::from(e).into())
}
