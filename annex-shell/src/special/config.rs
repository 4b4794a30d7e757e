//! A special remote as git-annex records it.
//!
//! `git annex initremote NAME type=T k=v…` writes, in the git-annex
//! branch's `remote.log`, a line `<uuid> k=v… name=NAME type=T
//! timestamp=…` (values escaped: whitespace and `&` as `&<code>;`, see
//! `Logs/Remote/Pure.hs`), and in the git config `remote.NAME.annex-uuid`
//! plus what varies between hosts (a directory remote's
//! `remote.NAME.annex-directory`, not kept in the branch). Credentials of
//! remotes that need them live in `.git/annex/creds/<uuid>`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine;

use annex::branch::uuidlog::parse_remote_config;
use annex::branch::{BranchError, UuidLog};
use annex::repo::{RemoteConfig, Repo};

use super::chunks::{ChunkConfig, ChunkConfigError};
use super::crypto::Encryption;

pub const REMOTE_LOG: &str = "remote.log";

/// A special remote's parameters as remote.log records them (unescaped).
pub type Params = BTreeMap<String, String>;

/// git-annex 10.20261026's record, outside the branch, of the remote.log
/// configurations this repository's user accepted (`initremote` writes
/// it, `enableremote` does not; `verifyremote --safe` does).
pub const VERIFIED_LOG: &str = "verified-remote.log";

#[derive(Debug, thiserror::Error)]
pub enum SpecialError {
    #[error("{name}: remote.log in the git-annex branch has no special remote with UUID {uuid}")]
    NotRecorded { name: String, uuid: String },
    #[error(
        "{name}: special remote type {type_name} is not served by annexproxy yet (served: directory, S3, external)"
    )]
    UnsupportedType { name: String, type_name: String },
    #[error("{name}: {source}")]
    Crypto {
        name: String,
        #[source]
        source: super::crypto::CryptoError,
    },
    #[error(
        "{name}: this special remote's configuration (remote.log) is not verified in this repository; \
         check it and run `git annex verifyremote {name}` as git-annex asks"
    )]
    NotVerified { name: String },
    #[error("{name}: {setting} is not set")]
    MissingSetting { name: String, setting: String },
    #[error("{name}: {source}")]
    Chunk {
        name: String,
        #[source]
        source: ChunkConfigError,
    },
    #[error("{name}: {source}")]
    S3Config {
        name: String,
        #[source]
        source: annex_s3::ConfigError,
    },
    #[error("{name}: {source}")]
    S3Creds {
        name: String,
        #[source]
        source: annex_s3::CredsError,
    },
    #[error("{name}: externaltype={value} cannot name a git-annex-remote-* program")]
    BadExternalType { name: String, value: String },
    #[error("{name}: an external remote with exporttree=yes is not served by annexproxy")]
    ExternalExport { name: String },
    #[error("{name}: exporttree=yes with encryption is not possible (git-annex refuses it too)")]
    ExportEncrypted { name: String },
    #[error(transparent)]
    Branch(#[from] BranchError),
}

/// Where a kind of remote keeps its objects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    Directory(PathBuf),
    /// A bucket, and the credentials found for it (none for
    /// `signature=anonymous`, or none anywhere: the storage says so).
    S3 {
        config: Box<annex_s3::S3Config>,
        creds: Option<annex_s3::S3Credentials>,
    },
    /// A `git-annex-remote-NAME` program.
    External(Box<super::external::ExternalSetup>),
}

/// A special remote we can serve, resolved from its records.
#[derive(Clone, Debug)]
pub struct SpecialRemote {
    pub name: String,
    pub uuid: String,
    /// `type=` in remote.log.
    pub type_name: String,
    /// Every parameter remote.log records, unescaped.
    pub params: BTreeMap<String, String>,
    pub kind: Kind,
    pub chunking: ChunkConfig,
    /// The decrypted cipher of a remote with `encryption=` other than
    /// none.
    pub encryption: Option<Arc<Encryption>>,
    /// `exporttree=yes`: the remote holds a tree's files.
    pub export: Option<super::export::ExportConfig>,
}

/// Every special remote `remote.log` records: UUID to parameters.
pub fn remote_log(repo: &Repo) -> Result<BTreeMap<String, BTreeMap<String, String>>, BranchError> {
    let text = repo.branch().read_file(REMOTE_LOG)?.unwrap_or_default();
    let log = UuidLog::parse(&text);
    Ok(log
        .entries
        .into_iter()
        .map(|(uuid, e)| (uuid, unescape_all(parse_remote_config(&e.value))))
        .collect())
}

fn unescape_all(params: BTreeMap<String, String>) -> BTreeMap<String, String> {
    params
        .into_iter()
        .map(|(k, v)| (k, config_unescape(&v)))
        .collect()
}

/// `configUnEscape`: `&<decimal>;` is that character; any other `&` is
/// itself.
pub fn config_unescape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let mut rest = v;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        let decoded = (digits > 0 && after[digits..].starts_with(';'))
            .then(|| after[..digits].parse::<u32>().ok().and_then(char::from_u32))
            .flatten();
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &after[digits + 1..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// `configEscape`: whitespace and `&` as `&<decimal>;`.
pub fn config_escape(v: &str) -> String {
    v.chars()
        .map(|c| {
            if c.is_whitespace() || c == '&' {
                format!("&{};", u32::from(c))
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Whether git-annex would take the remote for a special remote: it has
/// no url, and its UUID is in remote.log.
pub fn is_special(remote: &RemoteConfig, log: &BTreeMap<String, BTreeMap<String, String>>) -> bool {
    remote.url().is_none() && remote.annex_uuid().is_some_and(|u| log.contains_key(u))
}

impl SpecialRemote {
    /// The remote named by `remote`'s git config, as remote.log records
    /// it; an error names what we cannot serve (its type, encryption, a
    /// missing setting).
    pub fn load(
        repo: &Repo,
        remote: &RemoteConfig,
        log: &BTreeMap<String, BTreeMap<String, String>>,
    ) -> Result<SpecialRemote, SpecialError> {
        let name = remote.name.clone();
        let uuid = remote.annex_uuid().unwrap_or_default().to_owned();
        let Some(recorded) = log.get(&uuid) else {
            return Err(SpecialError::NotRecorded { name, uuid });
        };
        // A client can push any remote.log; like git-annex, serve only
        // a configuration the operator accepted.
        let Some(params) = verified_config(repo, &uuid, recorded) else {
            return Err(SpecialError::NotVerified { name });
        };
        let type_name = params.get("type").cloned().unwrap_or_default();
        if !matches!(type_name.as_str(), "directory" | "S3" | "external") {
            return Err(SpecialError::UnsupportedType { name, type_name });
        }
        let encryption = Encryption::from_params(&params)
            .map_err(|source| SpecialError::Crypto {
                name: name.clone(),
                source,
            })?
            .map(Arc::new);
        let kind = match type_name.as_str() {
            "S3" => s3_of(repo, &name, &uuid, &params, encryption.as_deref())?,
            "external" => external_of(repo, remote, &params)?,
            _ => Kind::Directory(directory_of(repo, remote)?),
        };
        let mut chunking = ChunkConfig::from_params(
            params.get("chunk").map(String::as_str),
            params.get("chunksize").map(String::as_str),
        )
        .map_err(|source| SpecialError::Chunk {
            name: name.clone(),
            source,
        })?;
        let export = super::export::ExportConfig::from_params(&params);
        if export.is_some() {
            if encryption.is_some() {
                return Err(SpecialError::ExportEncrypted { name });
            }
            // An export stores whole files (`storeExport`), chunk= or not.
            chunking = ChunkConfig::Whole;
        }
        Ok(SpecialRemote {
            name,
            uuid,
            type_name,
            params,
            kind,
            chunking,
            encryption,
            export,
        })
    }

    /// Where git-annex keeps this remote's credentials (`Creds.hs`), for
    /// the kinds that need them.
    pub fn creds_path(&self, repo: &Repo) -> PathBuf {
        repo.annex_dir().join("creds").join(&self.uuid)
    }
}

/// The configuration of `uuid` that `annex/verified-remote.log` accepted,
/// if any.
fn accepted(repo: &Repo, uuid: &str) -> Option<Params> {
    let text = std::fs::read(repo.annex_dir().join(VERIFIED_LOG)).ok()?;
    let log = UuidLog::parse(&text);
    log.get(uuid).map(|v| unescape_all(parse_remote_config(v)))
}

/// Whether `annex/verified-remote.log` accepted exactly this
/// configuration of `uuid`.
pub fn is_verified(repo: &Repo, uuid: &str, params: &BTreeMap<String, String>) -> bool {
    accepted(repo, uuid).is_some_and(|v| v == verified_part(params))
}

/// The configuration to use for `uuid`, given what `remote.log` records:
/// that one when it is the accepted one; else, as git-annex 10.20261026
/// does ("the previously verified configuration of the remote will
/// continue to be used"), the accepted one, with the cipher fields that
/// `verified-remote.log` leaves out taken from `remote.log`. `None` when
/// no configuration of it was ever accepted here.
pub fn verified_config(repo: &Repo, uuid: &str, recorded: &Params) -> Option<Params> {
    let accepted = accepted(repo, uuid)?;
    if accepted == verified_part(recorded) {
        return Some(recorded.clone());
    }
    tracing::info!(
        uuid,
        "remote.log changed since verified: the verified configuration is used"
    );
    let mut params = accepted;
    for field in UNVERIFIED_FIELDS {
        if let Some(v) = recorded.get(field) {
            params.insert(field.to_owned(), v.clone());
        }
    }
    Some(params)
}

/// What `verified-remote.log` does not record (see [`verified_part`]).
const UNVERIFIED_FIELDS: [&str; 4] = ["cipher", "cipherkeys", "pubkeys", "mac"];

/// The parameters `verified-remote.log` records: git-annex 10.20261026
/// leaves out the cipher and how objects are named from it (`cipher=`,
/// `cipherkeys=`, `pubkeys=`, `mac=`), so only where the data goes is
/// accepted.
pub fn verified_part(params: &Params) -> Params {
    let mut p = params.clone();
    for field in UNVERIFIED_FIELDS {
        p.remove(field);
    }
    p
}

/// The git config (`remote.NAME.…`) of how old an S3 remote's unfinished
/// upload of a key must be to be aborted as abandoned.
pub const STALE_UPLOAD_AGE: &str = "annexproxy-s3-stale-upload-age";

/// An S3 remote's bucket and credentials, found where git-annex looks
/// (the environment, `annex/creds/<uuid>`, embedded `s3creds=`, which
/// git-annex encrypts with the cipher of a hybrid or pubkey remote).
fn s3_of(
    repo: &Repo,
    name: &str,
    uuid: &str,
    params: &Params,
    enc: Option<&Encryption>,
) -> Result<Kind, SpecialError> {
    let bad = |source| SpecialError::S3Config {
        name: name.to_owned(),
        source,
    };
    // Internet Archive's munged names are not git-annex's usual ones.
    if let Some(v) = params.get("mungekeys") {
        return Err(bad(annex_s3::ConfigError::Unsupported {
            param: "mungekeys",
            value: v.clone(),
            reason: "objects are named by their key, unmunged",
        }));
    }
    let mut config = annex_s3::S3Config::from_params(params).map_err(bad)?;
    let age_setting = format!("remote.{name}.{STALE_UPLOAD_AGE}");
    if let Some(v) = repo.config_get(&age_setting) {
        config.stale_upload_age = annex_s3::config::parse_age(&v).ok_or_else(|| {
            bad(annex_s3::ConfigError::Invalid {
                param: STALE_UPLOAD_AGE,
                value: v,
                reason: "not an age (seconds, or a number with s, m, h or d)",
            })
        })?;
    }
    let find = |params: &Params| {
        annex_s3::find_credentials(&annex_s3::creds::ProcessEnv, repo.git_dir(), uuid, params)
    };
    let found = match (find(params), enc, params.get("s3creds")) {
        (Err(annex_s3::CredsError::Encrypted), Some(enc), Some(embedded)) => {
            let plain = enc
                .decrypt_value(embedded)
                .map_err(|source| SpecialError::Crypto {
                    name: name.to_owned(),
                    source,
                })?;
            let mut decrypted = params.clone();
            decrypted.remove("cipher");
            let b64 = base64::engine::general_purpose::STANDARD.encode(plain);
            decrypted.insert("s3creds".into(), b64);
            find(&decrypted)
        }
        (found, _, _) => found,
    };
    let found = found.map_err(|source| SpecialError::S3Creds {
        name: name.to_owned(),
        source,
    })?;
    if let Some((_, source)) = &found {
        tracing::debug!(remote = name, ?source, "S3 credentials found");
    }
    Ok(Kind::S3 {
        config: Box::new(config),
        creds: found.map(|(c, _)| c),
    })
}

/// Default of `annexproxy.externaltimeout`, in seconds.
pub const EXTERNAL_TIMEOUT_SECS: u64 = 120;

/// An external remote's program (`externaltype=`, which git-annex's
/// `remote.NAME.annex-externaltype` overrides) and where it runs.
fn external_of(repo: &Repo, remote: &RemoteConfig, params: &Params) -> Result<Kind, SpecialError> {
    let name = remote.name.clone();
    let value = remote
        .get("annex-externaltype")
        .or(params.get("externaltype").map(String::as_str))
        .unwrap_or_default()
        .to_owned();
    if value.is_empty() {
        return Err(SpecialError::MissingSetting {
            name,
            setting: "externaltype".into(),
        });
    }
    if params.get("exporttree").map(String::as_str) == Some("yes") {
        return Err(SpecialError::ExternalExport { name });
    }
    // `readonly` is git-annex's own web-only mode, not a program.
    if value == "readonly" || !super::external::valid_externaltype(&value) {
        return Err(SpecialError::BadExternalType { name, value });
    }
    let secs = repo
        .config_get("annexproxy.externaltimeout")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|s| *s > 0)
        .unwrap_or(EXTERNAL_TIMEOUT_SECS);
    let jobs = repo
        .config_get("annexproxy.externaljobs")
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or(super::external::DEFAULT_JOBS);
    Ok(Kind::External(Box::new(super::external::ExternalSetup {
        externaltype: value,
        git_dir: repo.git_dir().to_owned(),
        cwd: super::external::program_dir(repo.git_dir(), repo.work_dir()),
        reply_timeout: std::time::Duration::from_secs(secs),
        jobs,
    })))
}

/// `remote.NAME.annex-directory`, relative paths taken from the
/// repository (git-annex stores it absolute).
fn directory_of(repo: &Repo, remote: &RemoteConfig) -> Result<PathBuf, SpecialError> {
    let Some(dir) = remote.get("annex-directory").filter(|d| !d.is_empty()) else {
        return Err(SpecialError::MissingSetting {
            name: remote.name.clone(),
            setting: format!("remote.{}.annex-directory", remote.name),
        });
    };
    let base: &Path = repo.work_dir().unwrap_or(repo.git_dir());
    Ok(base.join(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_as_git_annex() {
        assert_eq!(config_escape("a b&c"), "a&32;b&38;c");
        assert_eq!(config_unescape("a&32;b&38;c"), "a b&c");
        // Not an entity: kept as it is.
        assert_eq!(config_unescape("x&y;&;&12"), "x&y;&;&12");
        for s in ["/srv/with space", "tab\there", "amp&;", ""] {
            assert_eq!(config_unescape(&config_escape(s)), s);
        }
    }
}
