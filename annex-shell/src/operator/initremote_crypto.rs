//! `encryption=` for `initremote` and `enableremote`, recorded as git-annex
//! 10.20261026 records it (`Remote/Helper/Encryptable.hs:
//! encryptionSetup`):
//!
//! - `shared`: `cipher=` the base64 of `gpg --gen-random --armor 2 512`'s
//!   output;
//! - `hybrid keyid=K`: the same cipher encrypted to K's public key
//!   (`cipher=`, and `cipherkeys=` K's long key id);
//! - `pubkey keyid=K`: a cipher of 256 random bytes (used only to name
//!   objects) encrypted the same way;
//! - `sharedpubkey keyid=K`: a cipher of 512 random bytes (used only to
//!   name objects) recorded as it is, and `pubkeys=` K's long key ids, to
//!   which content is encrypted;
//! - `keyid=` and `highRandomQuality=` are used, not recorded; `mac=` is
//!   checked and kept.
//!
//! An existing remote keeps its cipher; its encryption cannot change.

use base64::Engine;

use crate::special::config::Params;
use crate::special::crypto::{gpg_pipe, CryptoError, MacKind, Method};

#[derive(Debug, thiserror::Error)]
pub enum CryptoSetupError {
    #[error(
        "Specify encryption=hybrid or encryption=none or encryption=pubkey or encryption=shared or encryption=sharedpubkey."
    )]
    NoEncryption,
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error("Specify keyid=...")]
    NoKeyId,
    #[error("gpg has no public key {0}")]
    NoSuchKey(String),
    #[error("Cannot set encryption type of existing remotes.")]
    CannotChange,
    #[error("{0}= is not served by annexproxy (change a remote's gpg keys with git-annex)")]
    KeyChange(&'static str),
}

/// Set up `config`'s encryption (for an existing remote, `old` is its
/// recorded configuration); what git-annex says of it, when encrypted.
pub fn setup(
    config: &mut Params,
    old: Option<&Params>,
) -> Result<Option<String>, CryptoSetupError> {
    for change in ["keyid+", "keyid-"] {
        if config.contains_key(change) {
            return Err(CryptoSetupError::KeyChange(change));
        }
    }
    if let Some(mac) = config.get("mac") {
        MacKind::parse(mac)?;
    }
    let method = match config.get("encryption") {
        Some(v) => Method::parse(v)?,
        None if old.is_some() => None,
        None => return Err(CryptoSetupError::NoEncryption),
    };
    let keyid = config.remove("keyid");
    let quality = match config.remove("highRandomQuality").as_deref() {
        Some("false") => 1,
        _ => 2,
    };
    if let Some(old) = old {
        let was = old
            .get("encryption")
            .map_or(Ok(None), |v| Method::parse(v))?;
        if was != method {
            return Err(CryptoSetupError::CannotChange);
        }
        // The recorded cipher stays.
        return Ok(None);
    }
    let Some(method) = method else {
        return Ok(None);
    };
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    if method == Method::Shared {
        config.insert("cipher".into(), b64(&random(quality, 512)?));
        return Ok(Some("(encryption key stored in git repository)".into()));
    }
    let keyid = keyid.ok_or(CryptoSetupError::NoKeyId)?;
    let mut keys = public_keys(&keyid)?;
    if method == Method::SharedPubKey {
        // Not encrypted: anyone who can write the remote names objects
        // with it; only content is encrypted, to the keys.
        config.insert("cipher".into(), b64(&random(quality, 512)?));
        config.insert("pubkeys".into(), keys.join(","));
        return Ok(Some(format!("(to gpg keys: {})", keys.join(" "))));
    }
    // gpg complains of a recipient named twice.
    keys.sort();
    keys.dedup();
    let size = if method == Method::Hybrid { 512 } else { 256 };
    let cipher = random(quality, size)?;
    let mut args = vec![
        "--encrypt",
        "--no-encrypt-to",
        "--no-default-recipient",
        "--force-mdc",
        "--no-textmode",
    ];
    for k in &keys {
        args.extend(["--recipient", k]);
    }
    let encrypted = gpg_pipe("encrypt the cipher", &args, &cipher)?;
    config.insert("cipher".into(), b64(&encrypted));
    config.insert("cipherkeys".into(), keys.join(","));
    Ok(Some(format!("(to gpg keys: {})", keys.join(" "))))
}

/// `gpg --gen-random --armor`: base64 text and a newline.
fn random(quality: u8, bytes: usize) -> Result<Vec<u8>, CryptoError> {
    let (q, n) = (quality.to_string(), bytes.to_string());
    gpg_pipe("--gen-random", &["--gen-random", "--armor", &q, &n], b"")
}

/// The long key ids of the public keys `keyid` names (`findPubKeys`), in
/// gpg's order.
fn public_keys(keyid: &str) -> Result<Vec<String>, CryptoSetupError> {
    let listed = gpg_pipe(
        "--list-public-keys",
        &["--with-colons", "--list-public-keys", keyid],
        b"",
    )
    .map_err(|_| CryptoSetupError::NoSuchKey(keyid.to_owned()))?;
    let keys: Vec<String> = String::from_utf8_lossy(&listed)
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.first() == Some(&"pub")).then(|| f.get(4).map(|s| (*s).to_owned()))?
        })
        .collect();
    if keys.is_empty() {
        return Err(CryptoSetupError::NoSuchKey(keyid.to_owned()));
    }
    Ok(keys)
}
