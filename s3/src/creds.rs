//! An S3 remote's credentials, found where git-annex looks for them
//! (`Creds.hs`, `getRemoteCredPair`), in its order:
//!
//! 1. `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` in the environment
//!    (both set), with `AWS_SESSION_TOKEN` when set;
//! 2. the local cache `.git/annex/creds/<uuid>`: the key id on the first
//!    line, the secret on the second;
//! 3. `s3creds=` in the remote's config (`embedcreds=yes`, or any
//!    encryption that embeds them): the same two lines, base64-encoded.
//!    When the remote has a `cipher=`, git-annex encrypted them with it
//!    through gpg; those we do not read (a typed error says so).

use std::path::{Path, PathBuf};

use base64::Engine as _;

/// An access key pair (and session token).
#[derive(Clone, PartialEq, Eq)]
pub struct S3Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for S3Credentials {
    // Never print the secret (tracing and error reports show Debug).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// Where credentials were found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredsSource {
    Environment,
    CacheFile(PathBuf),
    Embedded,
}

#[derive(Debug, thiserror::Error)]
pub enum CredsError {
    #[error("reading S3 credentials from {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("S3 credentials in {origin} are not two lines (key id, then secret)")]
    Malformed { origin: String },
    #[error("s3creds= in the remote's config is not base64: {0}")]
    Base64(#[from] base64::DecodeError),
    #[error(
        "s3creds= in the remote's config is encrypted with the remote's cipher (gpg), \
         which only the proxy's sessions decrypt: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY \
         or write .git/annex/creds/<uuid>"
    )]
    Encrypted,
}

/// The lookups credentials come from, so tests need not touch the
/// process environment.
pub trait Env {
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

/// `.git/annex/creds/<uuid>` of the repository whose git dir is `git_dir`.
pub fn creds_file(git_dir: &Path, uuid: &str) -> PathBuf {
    git_dir.join("annex").join("creds").join(uuid)
}

/// Finds the credentials of the remote `uuid` whose `remote.log` params
/// are `params`; `Ok(None)` when there are none anywhere (an anonymous
/// remote needs none).
pub fn find_credentials(
    env: &dyn Env,
    git_dir: &Path,
    uuid: &str,
    params: &std::collections::BTreeMap<String, String>,
) -> Result<Option<(S3Credentials, CredsSource)>, CredsError> {
    let token = env.var("AWS_SESSION_TOKEN").filter(|t| !t.is_empty());
    if let (Some(k), Some(s)) = (
        env.var("AWS_ACCESS_KEY_ID"),
        env.var("AWS_SECRET_ACCESS_KEY"),
    ) {
        let c = S3Credentials {
            access_key_id: k,
            secret_access_key: s,
            session_token: token,
        };
        return Ok(Some((c, CredsSource::Environment)));
    }
    let path = creds_file(git_dir, uuid);
    match std::fs::read(&path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let (k, s) = decode_pair(&text).ok_or_else(|| CredsError::Malformed {
                origin: path.display().to_string(),
            })?;
            let c = pair(k, s, token);
            return Ok(Some((c, CredsSource::CacheFile(path))));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => return Err(CredsError::Io { path, source }),
    }
    let Some(embedded) = params.get("s3creds") else {
        return Ok(None);
    };
    if params.contains_key("cipher") {
        return Err(CredsError::Encrypted);
    }
    let bytes = base64::engine::general_purpose::STANDARD.decode(embedded.trim())?;
    let text = String::from_utf8_lossy(&bytes);
    let (k, s) = decode_pair(&text).ok_or_else(|| CredsError::Malformed {
        origin: "s3creds=".into(),
    })?;
    Ok(Some((pair(k, s, token), CredsSource::Embedded)))
}

/// The content of `.git/annex/creds/<uuid>` for a key pair.
pub fn encode_pair(access_key_id: &str, secret_access_key: &str) -> String {
    format!("{access_key_id}\n{secret_access_key}\n")
}

/// The value of `s3creds=` git-annex embeds in remote.log (no cipher).
pub fn encode_embedded(access_key_id: &str, secret_access_key: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(encode_pair(access_key_id, secret_access_key))
}

/// Writes `.git/annex/creds/<uuid>` readable by its owner only, as
/// git-annex does.
pub fn write_creds_file(
    git_dir: &Path,
    uuid: &str,
    access_key_id: &str,
    secret_access_key: &str,
) -> Result<PathBuf, CredsError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let path = creds_file(git_dir, uuid);
    let io = |source| CredsError::Io {
        path: path.clone(),
        source,
    };
    let dir = path.parent().expect("the creds file is in a directory");
    std::fs::create_dir_all(dir).map_err(io)?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .map_err(io)?;
    f.write_all(encode_pair(access_key_id, secret_access_key).as_bytes())
        .map_err(io)?;
    Ok(path)
}

/// git-annex's `decodeCredPair`: exactly two lines (a `\r` before a line's
/// end is dropped, as git-annex's line reader does).
fn decode_pair(text: &str) -> Option<(&str, &str)> {
    let mut lines = text.lines().map(|l| l.strip_suffix('\r').unwrap_or(l));
    let k = lines.next()?;
    let s = lines.next()?;
    lines.next().is_none().then_some((k, s))
}

fn pair(k: &str, s: &str, token: Option<String>) -> S3Credentials {
    S3Credentials {
        access_key_id: k.to_string(),
        secret_access_key: s.to_string(),
        session_token: token,
    }
}

#[cfg(test)]
#[path = "creds_tests.rs"]
mod tests;
