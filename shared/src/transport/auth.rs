//! P2P auth tokens and the files in `.git/annex/creds/` that hold them, in
//! git-annex's formats (`Utility/AuthToken.hs`, `P2P/Auth.hs`, `Creds.hs`).
//!
//! - `p2pauth`: the tokens this repository accepts, one a line, `TOKEN` (for
//!   tor) or `TOKEN p2p-annex::NET:ADDRESS` (only on that network);
//! - one file per peer (named by [`P2pAddress::creds_file_name`]) whose
//!   first line is the token we send to it; `GIT_ANNEX_P2P_AUTHTOKEN`
//!   overrides it.
//!
//! Files are written 0600, through a temporary file and a rename so a
//! reader never sees half a file.

use std::fs::OpenOptions;
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha512};

use super::p2paddr::P2pAddress;

pub const P2PAUTH_FILE: &str = "p2pauth";
pub const TOKEN_ENV: &str = "GIT_ANNEX_P2P_AUTHTOKEN";

/// Length of the tokens `git annex p2p --gen-addresses` makes.
pub const GENERATED_TOKEN_LEN: usize = 128;

/// Random bytes hashed into a token, as git-annex uses.
const TOKEN_ENTROPY: usize = 512;

/// An auth token: ASCII letters and digits, kept lower case.
///
/// git-annex also admits the empty token (and would accept it from an
/// empty line of `p2pauth`); we never do, so a stray blank line cannot let
/// anyone in.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthToken(String);

impl AuthToken {
    pub fn parse(s: &str) -> Option<AuthToken> {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric()))
            .then(|| AuthToken(s.to_ascii_lowercase()))
    }

    /// A new token of `len` (at most 128) characters: the start of the hex
    /// SHA-512 of fresh random bytes, as git-annex makes them.
    pub fn generate(len: usize) -> io::Result<AuthToken> {
        let mut seed = [0u8; TOKEN_ENTROPY];
        std::fs::File::open("/dev/urandom")?.read_exact(&mut seed)?;
        let hex = hex::encode(Sha512::digest(seed));
        Ok(AuthToken(hex[..len.min(hex.len())].to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Equality whose time does not depend on where the tokens differ.
    pub fn ct_eq(&self, other: &AuthToken) -> bool {
        let (a, b) = (self.0.as_bytes(), other.0.as_bytes());
        let mut diff = u8::from(a.len() != b.len());
        for i in 0..a.len().max(b.len()) {
            let x = a.get(i).copied().unwrap_or(0);
            let y = b.get(i).copied().unwrap_or(0);
            diff |= std::hint::black_box(x ^ y);
        }
        diff == 0
    }
}

/// Tokens are secrets: never in logs or panics.
impl std::fmt::Debug for AuthToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AuthToken(<{} chars>)", self.0.len())
    }
}

/// The tokens a listener accepts.
#[derive(Clone, Debug, Default)]
pub struct AllowedTokens(Vec<AuthToken>);

impl AllowedTokens {
    pub fn new(tokens: Vec<AuthToken>) -> AllowedTokens {
        AllowedTokens(tokens)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Compares against every allowed token, also after a match, so the
    /// time taken tells nothing about which one (if any) matched.
    pub fn allows(&self, token: &AuthToken) -> bool {
        self.0.iter().fold(false, |ok, t| t.ct_eq(token) | ok)
    }
}

/// A line of `p2pauth`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcceptedToken {
    pub token: AuthToken,
    /// `None`: accepted on tor (and by our listener when it is not told an
    /// address).
    pub address: Option<P2pAddress>,
}

#[derive(Debug, thiserror::Error)]
pub enum CredsError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{TOKEN_ENV} is not a valid auth token (letters and digits only)")]
    BadEnvToken,
}

/// The `annex/creds` directory of one repository.
#[derive(Clone, Debug)]
pub struct Creds {
    dir: PathBuf,
}

impl Creds {
    /// `annex_dir` is the repository's `.git/annex`.
    pub fn new(annex_dir: &Path) -> Creds {
        Creds {
            dir: annex_dir.join("creds"),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The lines of `p2pauth`. Lines git-annex would not read are skipped;
    /// so is a line whose address does not parse (git-annex would take it
    /// for a tor token, widening who may connect).
    pub fn accepted(&self) -> Result<Vec<AcceptedToken>, CredsError> {
        let Some(text) = self.read(P2PAUTH_FILE)? else {
            return Ok(Vec::new());
        };
        Ok(text.lines().filter_map(parse_p2pauth_line).collect())
    }

    /// The tokens accepted on `address`, or those without an address.
    pub fn allowed(&self, address: Option<&P2pAddress>) -> Result<AllowedTokens, CredsError> {
        let tokens = self
            .accepted()?
            .into_iter()
            .filter(|a| a.address.as_ref() == address)
            .map(|a| a.token)
            .collect();
        Ok(AllowedTokens(tokens))
    }

    /// Accept `token` (on `address`; a tor address is stored without one,
    /// as git-annex does). New lines go first; a line already there is
    /// not repeated.
    pub fn add_accepted(
        &self,
        token: &AuthToken,
        address: Option<&P2pAddress>,
    ) -> Result<(), CredsError> {
        let address = address
            .filter(|a| !matches!(a, P2pAddress::Tor { .. }))
            .cloned();
        let new = AcceptedToken {
            token: token.clone(),
            address,
        };
        let mut all = self.accepted()?;
        if all.contains(&new) {
            return Ok(());
        }
        all.insert(0, new);
        self.write(P2PAUTH_FILE, &format_p2pauth(&all))
    }

    /// Stop accepting `token` anywhere; false when it was not accepted.
    pub fn remove_accepted(&self, token: &AuthToken) -> Result<bool, CredsError> {
        let all = self.accepted()?;
        let kept: Vec<AcceptedToken> = all
            .iter()
            .filter(|a| !a.token.ct_eq(token))
            .cloned()
            .collect();
        if kept.len() == all.len() {
            return Ok(false);
        }
        self.write(P2PAUTH_FILE, &format_p2pauth(&kept))?;
        Ok(true)
    }

    /// The token to send to `address`: `GIT_ANNEX_P2P_AUTHTOKEN` if set,
    /// else the first line of its creds file.
    pub fn peer_token(&self, address: &P2pAddress) -> Result<Option<AuthToken>, CredsError> {
        if let Some(t) = env_token()? {
            return Ok(Some(t));
        }
        let text = self.read(&address.creds_file_name())?;
        Ok(text.and_then(|t| t.lines().next().and_then(AuthToken::parse)))
    }

    /// Remember the token to send to `address`.
    pub fn store_peer_token(
        &self,
        address: &P2pAddress,
        token: &AuthToken,
    ) -> Result<(), CredsError> {
        self.write(&address.creds_file_name(), token.as_str())
    }

    fn read(&self, name: &str) -> Result<Option<String>, CredsError> {
        let path = self.dir.join(name);
        match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(CredsError::Io { path, source }),
        }
    }

    fn write(&self, name: &str, text: &str) -> Result<(), CredsError> {
        let io_err = |path: &Path| {
            let path = path.to_owned();
            move |source| CredsError::Io { path, source }
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(io_err(&self.dir))?;
        let dest = self.dir.join(name);
        let tmp = self.dir.join(format!("{name}.new"));
        let _ = std::fs::remove_file(&tmp);
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io_err(&tmp))?;
        f.write_all(text.as_bytes()).map_err(io_err(&tmp))?;
        f.sync_all().map_err(io_err(&tmp))?;
        std::fs::rename(&tmp, &dest).map_err(io_err(&dest))
    }
}

/// The token `GIT_ANNEX_P2P_AUTHTOKEN` gives, if set.
pub fn env_token() -> Result<Option<AuthToken>, CredsError> {
    match std::env::var_os(TOKEN_ENV).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => {
            let v = v.to_str().ok_or(CredsError::BadEnvToken)?;
            AuthToken::parse(v).map(Some).ok_or(CredsError::BadEnvToken)
        }
    }
}

fn parse_p2pauth_line(line: &str) -> Option<AcceptedToken> {
    let (token, address) = line.split_once(' ').unwrap_or((line, ""));
    let token = AuthToken::parse(token)?;
    let address = if address.is_empty() {
        None
    } else {
        Some(P2pAddress::parse(address).ok()?)
    };
    Some(AcceptedToken { token, address })
}

fn format_p2pauth(all: &[AcceptedToken]) -> String {
    let mut out = String::new();
    for a in all {
        out.push_str(a.token.as_str());
        if let Some(addr) = &a.address {
            out.push(' ');
            out.push_str(&addr.to_string());
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
#[path = "auth_tests.rs"]
mod tests;
