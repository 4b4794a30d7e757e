//! git-annex's encryption of special remotes (`Crypto.hs`,
//! `Remote/Helper/Encryptable.hs`), as remote.log records it:
//!
//! - `encryption=shared`: `cipher=` is the base64 of the cipher itself
//!   (git-annex makes it with `gpg --gen-random --armor 2 512`: 684
//!   base64 characters and a newline);
//! - `encryption=hybrid`: `cipher=` is the base64 of that cipher
//!   encrypted to the gpg keys `cipherkeys=`; the server user's gpg
//!   secret key decrypts it;
//! - `encryption=pubkey`: the same, but the cipher (of 256 random bytes)
//!   only names objects; content is encrypted to the keys themselves;
//! - `encryption=sharedpubkey`: the cipher (of 512 random bytes) is
//!   recorded as it is and only names objects; content is encrypted to
//!   the keys of `pubkeys=`, so anyone can store but only the holders of
//!   a secret key retrieve (a server without one refuses GETs, saying so).
//!
//! An object's name on the remote is `GPG<MAC>--<hex>`, the HMAC
//! (`mac=`, HMACSHA1 when unset) of the key's (or chunk key's) text,
//! keyed with the cipher's first 256 bytes (all of a pubkey cipher). Its
//! content is gpg's: `--symmetric` with the rest of the cipher as the
//! passphrase, or `--encrypt` to the `cipherkeys=`. We run gpg as a
//! subprocess for both (see README "Dependencies"): its output is what
//! real git-annex decrypts, and a server needs gpg for the hybrid and
//! pubkey ciphers anyway.

use std::io::Write;
use std::process::{Command, Stdio};

use annex::key::Key;
use base64::Engine;
use hmac::Hmac;

use super::config::Params;

/// How many bytes of a symmetric cipher key the HMAC (`cipherBeginning`).
const MAC_PART: usize = 256;

/// gpg's S2K iterations for the symmetric content key: 65536 bytes
/// hashed, where gpg's default is 65011712 (0.04 s a gpg instead of
/// 0.15 s here).
const S2K_COUNT: &str = "65536";

/// The gpg program (`gpg.program` is not read: git-annex's default).
pub const GPG: &str = "gpg";

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("encryption={0} is not one of none, shared, hybrid, pubkey, sharedpubkey")]
    Method(String),
    #[error("mac={0} is not one of HMACSHA1, HMACSHA224, HMACSHA256, HMACSHA384, HMACSHA512")]
    Mac(String),
    #[error("encryption={method} but remote.log has no {field}=")]
    Missing {
        method: &'static str,
        field: &'static str,
    },
    #[error("cipher= is not base64: {0}")]
    Base64(#[from] base64::DecodeError),
    #[error("gpg {what}: {why}")]
    Gpg { what: &'static str, why: String },
}

/// `encryption=` of a remote that encrypts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Shared,
    Hybrid,
    PubKey,
    SharedPubKey,
}

impl Method {
    pub fn parse(v: &str) -> Result<Option<Method>, CryptoError> {
        match v {
            "none" => Ok(None),
            "shared" => Ok(Some(Method::Shared)),
            "hybrid" => Ok(Some(Method::Hybrid)),
            "pubkey" => Ok(Some(Method::PubKey)),
            "sharedpubkey" => Ok(Some(Method::SharedPubKey)),
            other => Err(CryptoError::Method(other.to_owned())),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Method::Shared => "shared",
            Method::Hybrid => "hybrid",
            Method::PubKey => "pubkey",
            Method::SharedPubKey => "sharedpubkey",
        }
    }
}

/// `mac=`: the HMAC that names objects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum MacKind {
    #[default]
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

impl MacKind {
    pub fn parse(v: &str) -> Result<MacKind, CryptoError> {
        Ok(match v {
            "HMACSHA1" => MacKind::Sha1,
            "HMACSHA224" => MacKind::Sha224,
            "HMACSHA256" => MacKind::Sha256,
            "HMACSHA384" => MacKind::Sha384,
            "HMACSHA512" => MacKind::Sha512,
            other => return Err(CryptoError::Mac(other.to_owned())),
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            MacKind::Sha1 => "HMACSHA1",
            MacKind::Sha224 => "HMACSHA224",
            MacKind::Sha256 => "HMACSHA256",
            MacKind::Sha384 => "HMACSHA384",
            MacKind::Sha512 => "HMACSHA512",
        }
    }

    /// The lowercase hex HMAC of `msg` keyed with `key`.
    pub fn hex(self, key: &[u8], msg: &[u8]) -> String {
        fn run<M: hmac::Mac + hmac::digest::KeyInit>(key: &[u8], msg: &[u8]) -> String {
            let mut m = <M as hmac::digest::KeyInit>::new_from_slice(key)
                .expect("HMAC takes a key of any length");
            m.update(msg);
            hex::encode(m.finalize().into_bytes())
        }
        match self {
            MacKind::Sha1 => run::<Hmac<sha1::Sha1>>(key, msg),
            MacKind::Sha224 => run::<Hmac<sha2::Sha224>>(key, msg),
            MacKind::Sha256 => run::<Hmac<sha2::Sha256>>(key, msg),
            MacKind::Sha384 => run::<Hmac<sha2::Sha384>>(key, msg),
            MacKind::Sha512 => run::<Hmac<sha2::Sha512>>(key, msg),
        }
    }
}

/// What a remote's content goes through on its way to the remote.
pub enum Content {
    /// `gpg --symmetric` with this passphrase (no newline).
    Symmetric(Vec<u8>),
    /// `gpg --encrypt` to these key ids.
    PubKey(Vec<String>),
}

/// An encrypting remote's cipher, decrypted.
pub struct Encryption {
    pub method: Method,
    pub mac: MacKind,
    mac_key: Vec<u8>,
    pub content: Content,
    /// Why content cannot be decrypted here, if it cannot: a
    /// `sharedpubkey` remote's content is encrypted to keys whose secret
    /// half this server may not hold.
    pub undecryptable: Option<String>,
    /// gpg's home directory when not the user's (`GNUPGHOME`; tests).
    pub gnupg_home: Option<std::path::PathBuf>,
}

/// The cipher stays out of logs.
impl std::fmt::Debug for Encryption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encryption")
            .field("method", &self.method)
            .field("mac", &self.mac)
            .finish_non_exhaustive()
    }
}

impl Encryption {
    /// The remote's encryption from its remote.log parameters: `None` for
    /// `encryption=none` (or unset with no cipher). A hybrid or pubkey
    /// cipher is decrypted here with gpg, with the server user's keys.
    pub fn from_params(params: &Params) -> Result<Option<Encryption>, CryptoError> {
        let method = match params.get("encryption") {
            Some(v) => Method::parse(v)?,
            // git-annex takes a cipher without encryption= for hybrid.
            None if params.contains_key("cipher") => Some(Method::Hybrid),
            None => None,
        };
        let Some(method) = method else {
            return Ok(None);
        };
        let mac = params
            .get("mac")
            .map_or(Ok(MacKind::default()), |v| MacKind::parse(v))?;
        let missing = |field| CryptoError::Missing {
            method: method.name(),
            field,
        };
        let stored = params.get("cipher").ok_or_else(|| missing("cipher"))?;
        let stored = base64::engine::general_purpose::STANDARD.decode(stored.trim())?;
        // A sharedpubkey remote names its keys `pubkeys=`.
        let field = match method {
            Method::SharedPubKey => "pubkeys",
            _ => "cipherkeys",
        };
        let keys = || -> Result<Vec<String>, CryptoError> {
            let ks = params.get(field).ok_or_else(|| missing(field))?;
            Ok(ks.split(',').map(str::to_owned).collect())
        };
        let cipher = match method {
            Method::Shared | Method::SharedPubKey => stored,
            Method::Hybrid | Method::PubKey => {
                keys()?;
                gpg_pipe("decrypt the cipher", &["--decrypt"], &stored)?
            }
        };
        let mut enc = Encryption::new(method, mac, cipher, keys)?;
        if method == Method::SharedPubKey {
            enc.undecryptable = undecryptable(&keys()?);
        }
        Ok(Some(enc))
    }

    fn new(
        method: Method,
        mac: MacKind,
        cipher: Vec<u8>,
        keys: impl Fn() -> Result<Vec<String>, CryptoError>,
    ) -> Result<Encryption, CryptoError> {
        Ok(match method {
            // The whole cipher names objects (git-annex's MacOnlyCipher).
            Method::PubKey | Method::SharedPubKey => Encryption {
                method,
                mac,
                mac_key: cipher,
                content: Content::PubKey(keys()?),
                undecryptable: None,
                gnupg_home: None,
            },
            Method::Shared | Method::Hybrid => {
                let split = MAC_PART.min(cipher.len());
                let mut pass = cipher[split..].to_vec();
                // gpg reads a passphrase up to its first newline.
                if let Some(nl) = pass.iter().position(|&b| b == b'\n') {
                    pass.truncate(nl);
                }
                Encryption {
                    method,
                    mac,
                    mac_key: cipher[..split].to_vec(),
                    content: Content::Symmetric(pass),
                    undecryptable: None,
                    gnupg_home: None,
                }
            }
        })
    }

    /// A shared cipher given as it is (tests, and keys real git-annex
    /// named with a known cipher).
    pub fn shared(cipher: &[u8], mac: MacKind) -> Encryption {
        Encryption::new(Method::Shared, mac, cipher.to_vec(), || Ok(Vec::new()))
            .expect("a shared cipher needs no keys")
    }

    /// The name `key`'s object has on the remote (`encryptKey`).
    pub fn object_name(&self, key: &Key) -> Key {
        let hex = self.mac.hex(&self.mac_key, key.to_string().as_bytes());
        Key::parse(&format!("GPG{}--{hex}", self.mac.name())).expect("GPG<mac>--<hex> is a key")
    }

    /// A small value git-annex encrypted with this cipher, in base64
    /// (embedded credentials, `s3creds=`).
    pub fn decrypt_value(&self, b64: &str) -> Result<Vec<u8>, CryptoError> {
        let data = base64::engine::general_purpose::STANDARD.decode(b64.trim())?;
        let mut input = self.stdin_preamble();
        input.extend_from_slice(&data);
        let args = self.decrypt_args();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        gpg_pipe("decrypt s3creds=", &args, &input)
    }

    /// gpg's arguments to encrypt content; a symmetric passphrase comes
    /// first on its stdin (`--passphrase-fd 0`).
    pub fn encrypt_args(&self) -> Vec<String> {
        let mut args: Vec<String> = match &self.content {
            // The passphrase is the cipher's rest, some 2500 random bits:
            // stretching it (gpg's default S2K hashes 65 MB, 0.1 s of CPU
            // per object, so per chunk) adds no strength, so ours is
            // light. gpg reads the count from the object to decrypt it.
            Content::Symmetric(_) => vec![
                "--passphrase-fd".into(),
                "0".into(),
                "--s2k-count".into(),
                S2K_COUNT.into(),
                "--symmetric".into(),
            ],
            Content::PubKey(keys) => {
                let mut a = vec![
                    "--encrypt".into(),
                    "--no-encrypt-to".into(),
                    "--no-default-recipient".into(),
                ];
                for k in keys {
                    a.push("--recipient".into());
                    a.push(k.clone());
                }
                a
            }
        };
        // git-annex's stdEncryptionParams.
        args.extend(["--force-mdc".into(), "--no-textmode".into()]);
        args
    }

    /// gpg's arguments to decrypt content.
    pub fn decrypt_args(&self) -> Vec<String> {
        match &self.content {
            Content::Symmetric(_) => vec!["--passphrase-fd".into(), "0".into(), "--decrypt".into()],
            Content::PubKey(_) => vec!["--decrypt".into()],
        }
    }

    /// What goes to gpg's stdin before the data: the passphrase line.
    pub fn stdin_preamble(&self) -> Vec<u8> {
        match &self.content {
            Content::Symmetric(p) => {
                let mut line = p.clone();
                line.push(b'\n');
                line
            }
            Content::PubKey(_) => Vec::new(),
        }
    }
}

/// Why content encrypted to `keys` cannot be decrypted with the server
/// user's gpg: `None` when it holds the secret key of one of them.
fn undecryptable(keys: &[String]) -> Option<String> {
    let held = keys.iter().any(|k| {
        let listed = gpg_pipe(
            "--list-secret-keys",
            &["--with-colons", "--list-secret-keys", k],
            b"",
        );
        listed.is_ok_and(|out| out.starts_with(b"sec:") || out.windows(5).any(|w| w == b"\nsec:"))
    });
    (!held).then(|| {
        format!(
            "encryption=sharedpubkey: content is encrypted to gpg keys {} and this server's gpg holds \
             no secret key of them, so it can store and drop but not retrieve content",
            keys.join(" ")
        )
    })
}

/// gpg's arguments every call starts with (git-annex's `stdParams`, in
/// batch mode; the symmetric key is not cached in the user's agent).
pub fn base_args() -> [&'static str; 5] {
    [
        "--batch",
        "--quiet",
        "--trust-model",
        "always",
        "--no-symkey-cache",
    ]
}

/// Run gpg on a small input, returning its output.
pub fn gpg_pipe(what: &'static str, args: &[&str], input: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let fail = |why: String| CryptoError::Gpg { what, why };
    let mut child = Command::new(GPG)
        .args(base_args())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(format!("cannot run {GPG}: {e}")))?;
    let mut stdin = child.stdin.take().expect("piped");
    let input = input.to_vec();
    // Fed from a thread: gpg may write before it has read everything.
    let feeder = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().map_err(|e| fail(e.to_string()))?;
    let fed = feeder.join().unwrap_or(Ok(()));
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(fail(format!("{} ({})", err.trim(), out.status)));
    }
    fed.map_err(|e| fail(e.to_string()))?;
    Ok(out.stdout)
}

#[cfg(test)]
#[path = "crypto_tests.rs"]
mod tests;
