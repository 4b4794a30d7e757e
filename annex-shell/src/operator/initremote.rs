//! `initremote NAME type=T k=v…`, `enableremote NAME k=v…` and
//! `verifyremote NAME [--safe]`: special remotes set up as git-annex
//! 10.20261026 sets them up, so either program uses what the other made.
//!
//! What `git annex initremote d type=directory directory=/p
//! encryption=none [chunk=…]` writes, and so what we write:
//! - `remote.log`: `<uuid> [chunk=…] encryption=none name=d
//!   type=directory timestamp=…` (parameters sorted and escaped, the
//!   directory left out: it may differ between hosts);
//! - `uuid.log`: the name as the description;
//! - git config `remote.d.annex-directory` (absolute), `annex-uuid`,
//!   `skipFetchAll=true`, `annex-verified=verified`;
//! - `annex/verified-remote.log`: the configuration this repository's
//!   user accepted. `enableremote` of a remote not accepted here leaves it
//!   `annex-verified=manual` until `verifyremote NAME --safe`, as git-annex
//!   does; the proxy serves only an accepted configuration.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use annex::branch::uuidlog::change_uuid_log;
use annex::branch::VectorClock;
use annex::repo::Repo;

use super::initremote_crypto::{self, CryptoSetupError};
use super::initremote_external::{self as ext, ExternalSetupError};
use super::initremote_s3::{self as s3, S3Setup, S3SetupError};
use super::{open_initialized, OperatorError};
use crate::special::chunks::{ChunkConfig, ChunkConfigError};
use crate::special::config::{
    config_escape, remote_log, verified_part, Params, REMOTE_LOG, VERIFIED_LOG,
};

const UUID_LOG: &str = "uuid.log";

#[derive(Debug, thiserror::Error)]
pub enum RemoteSetupError {
    #[error("{0:?} is not a parameter of the form key=value")]
    BadParam(String),
    #[error("Specify the type of remote with type=")]
    NoType,
    #[error(
        "special remote type {0} is not served by annexproxy yet (served: directory, S3, external)"
    )]
    UnsupportedType(String),
    #[error(transparent)]
    Crypto(#[from] CryptoSetupError),
    #[error("Specify directory=")]
    NoDirectory,
    #[error("Directory does not exist: {}", .0.display())]
    NoSuchDirectory(PathBuf),
    #[error(
        "There is already a special remote named \"{0}\". (Use enableremote to enable an existing special remote.)"
    )]
    AlreadyExists(String),
    #[error("There is already a git remote named \"{0}\".")]
    GitRemoteExists(String),
    #[error("There is no special remote named \"{0}\".")]
    NoSuchRemote(String),
    #[error(transparent)]
    Chunk(#[from] ChunkConfigError),
    #[error(transparent)]
    S3(Box<S3SetupError>),
    #[error(transparent)]
    External(Box<ExternalSetupError>),
    #[error("cannot enable both encryption and exporttree")]
    ExportEncrypted,
    #[error("cannot change exporttree of existing special remote")]
    ExportChanged,
    #[error("importtree=yes is not served by annexproxy")]
    Import,
}

impl From<ExternalSetupError> for RemoteSetupError {
    fn from(e: ExternalSetupError) -> RemoteSetupError {
        RemoteSetupError::External(Box::new(e))
    }
}

impl From<S3SetupError> for RemoteSetupError {
    fn from(e: S3SetupError) -> RemoteSetupError {
        RemoteSetupError::S3(Box::new(e))
    }
}

/// What a type needs beyond remote.log, once its parameters are checked.
enum TypeSetup {
    /// The directory, absolute (kept in git config, not remote.log).
    Directory(PathBuf),
    S3(Box<S3Setup>),
    External(Box<crate::special::external::ExternalSetup>),
}

impl TypeSetup {
    /// The type's own git configs (`gitConfigSpecialRemote`'s).
    fn git_settings(&self) -> Vec<(&'static str, String)> {
        match self {
            TypeSetup::Directory(dir) => vec![("annex-directory", dir.display().to_string())],
            TypeSetup::S3(_) => vec![("annex-s3", "true".to_owned())],
            TypeSetup::External(e) => vec![("annex-externaltype", e.externaltype.clone())],
        }
    }
}

/// Parameters as typed: `k=v` each.
fn parse_params(params: &[String]) -> Result<BTreeMap<String, String>, RemoteSetupError> {
    params
        .iter()
        .map(|p| match p.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
            _ => Err(RemoteSetupError::BadParam(p.clone())),
        })
        .collect()
}

/// remote.log's value: `k=v` sorted by key, values escaped.
fn format_config(config: &BTreeMap<String, String>) -> String {
    let words: Vec<String> = config
        .iter()
        .map(|(k, v)| format!("{k}={}", config_escape(v)))
        .collect();
    words.join(" ")
}

/// The special remote recorded under `name`: its UUID and parameters.
fn find_by_name(repo: &Repo, name: &str) -> Result<Option<(String, Params)>, OperatorError> {
    Ok(remote_log(repo)?
        .into_iter()
        .find(|(_, p)| p.get("name").map(String::as_str) == Some(name)))
}

/// The checks a remote's parameters get before anything is written, and
/// what its type needs; `config` is left as remote.log records it (a
/// directory's path taken out, an S3 remote's defaults put in, a new
/// cipher in). `old`: an existing remote's recorded configuration. With
/// the setup, what git-annex says of the encryption set up.
fn check_type(
    repo: &Repo,
    base: &Path,
    name: &str,
    uuid: &str,
    config: &mut Params,
    old: Option<&Params>,
) -> Result<(TypeSetup, Option<String>), RemoteSetupError> {
    let kind = config.get("type").cloned();
    match kind.as_deref() {
        None => return Err(RemoteSetupError::NoType),
        Some("directory" | "S3" | "external") => {}
        Some(other) => return Err(RemoteSetupError::UnsupportedType(other.to_owned())),
    }
    ChunkConfig::from_params(
        config.get("chunk").map(String::as_str),
        config.get("chunksize").map(String::as_str),
    )?;
    check_export(config, old)?;
    let setup = if kind.as_deref() == Some("S3") {
        TypeSetup::S3(Box::new(s3::prepare(name, uuid, config)?))
    } else if kind.as_deref() == Some("external") {
        let cwd = crate::special::external::program_dir(repo.git_dir(), repo.work_dir());
        TypeSetup::External(Box::new(ext::prepare(repo.git_dir(), &cwd, config)?))
    } else {
        let dir = check_directory(base, config)?;
        config.remove("directory");
        TypeSetup::Directory(dir)
    };
    // Last: a new cipher is made only for a remote that will be made.
    let said = initremote_crypto::setup(config, old)?;
    Ok((setup, said))
}

/// git-annex's checks of `exporttree=` (`adjustExportImportRemoteType`):
/// no encryption with it, and no change of it by `enableremote`.
fn check_export(
    config: &BTreeMap<String, String>,
    old: Option<&BTreeMap<String, String>>,
) -> Result<(), RemoteSetupError> {
    use crate::special::export::ExportConfig;
    let export = ExportConfig::from_params(config).is_some();
    if config
        .get("importtree")
        .is_some_and(|v| v == "yes" || v == "true")
    {
        return Err(RemoteSetupError::Import);
    }
    match old {
        Some(old) if ExportConfig::from_params(old).is_some() != export => {
            Err(RemoteSetupError::ExportChanged)
        }
        None if export && config.get("encryption").is_some_and(|e| e != "none") => {
            Err(RemoteSetupError::ExportEncrypted)
        }
        _ => Ok(()),
    }
}

/// A directory remote's directory, absolute (a relative one is taken
/// from `base`, where the command runs, as `-C` says).
fn check_directory(
    base: &Path,
    config: &BTreeMap<String, String>,
) -> Result<PathBuf, RemoteSetupError> {
    let dir = config
        .get("directory")
        .ok_or(RemoteSetupError::NoDirectory)?;
    let abs = lexical_absolute(&base.join(dir));
    if !abs.is_dir() {
        return Err(RemoteSetupError::NoSuchDirectory(abs));
    }
    Ok(abs)
}

/// The path made absolute with `.` and `..` resolved by name, symlinks
/// kept, as git-annex's `absPath` gives it.
fn lexical_absolute(p: &Path) -> PathBuf {
    use std::path::Component;
    let abs = std::path::absolute(p).unwrap_or_else(|_| p.to_owned());
    let mut out = PathBuf::new();
    for c in abs.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// Record in `annex/verified-remote.log` that this repository's user
/// accepted `config` for `uuid`.
fn record_verified(repo: &Repo, uuid: &str, config: &Params) -> Result<(), OperatorError> {
    let config = format_config(&verified_part(config));
    let path = repo.annex_dir().join(VERIFIED_LOG);
    let old = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    let new = change_uuid_log(&old, uuid, &config, VectorClock::candidate_now());
    std::fs::create_dir_all(repo.annex_dir())?;
    let tmp = path.with_extension("log.tmp");
    std::fs::write(&tmp, new)?;
    std::fs::rename(&tmp, &path)?;
    Ok(())
}

/// The git configs git-annex's `gitConfigSpecialRemote` and its verifier
/// write.
fn set_git_config(
    repo: &mut Repo,
    name: &str,
    uuid: &str,
    setup: &TypeSetup,
    verified: bool,
) -> Result<(), OperatorError> {
    for (k, v) in setup.git_settings() {
        repo.set_config(&format!("remote.{name}.{k}"), &v)?;
    }
    repo.set_config(&format!("remote.{name}.annex-uuid"), uuid)?;
    repo.set_config(&format!("remote.{name}.skipFetchAll"), "true")?;
    let state = if verified { "verified" } else { "manual" };
    repo.set_config(&format!("remote.{name}.annex-verified"), state)?;
    Ok(())
}

pub fn initremote(
    dir: &Path,
    name: &str,
    params: &[String],
    out: &mut dyn Write,
) -> Result<(), OperatorError> {
    let (mut repo, _) = open_initialized(dir)?;
    let mut config = parse_params(params)?;
    if find_by_name(&repo, name)?.is_some() {
        return Err(RemoteSetupError::AlreadyExists(name.to_owned()).into());
    }
    if repo.remotes().iter().any(|r| r.name == name) {
        return Err(RemoteSetupError::GitRemoteExists(name.to_owned()).into());
    }
    config.insert("name".into(), name.to_owned());
    let uuid = uuid::Uuid::new_v4().to_string();
    let (setup, said) = check_type(&repo, dir, name, &uuid, &mut config, None)?;
    let export = crate::special::export::ExportConfig::from_params(&config).is_some();
    if let TypeSetup::S3(s3_setup) = &setup {
        // git-annex leaves an export's bucket without `annex-uuid`
        // (`writeUUIDFile`): it holds a tree's files alone.
        if !export {
            s3::claim_bucket(name, &uuid, repo.git_dir(), &config, s3_setup)
                .map_err(RemoteSetupError::from)?;
        }
        s3::cache_creds(repo.git_dir(), &uuid, s3_setup).map_err(RemoteSetupError::from)?;
    }
    if let TypeSetup::External(e) = &setup {
        ext::init(name, &uuid, &mut config, e).map_err(RemoteSetupError::from)?;
    }
    let value = format_config(&config);
    let now = VectorClock::candidate_now();
    let branch = repo.branch();
    branch.change_file(REMOTE_LOG, |old| {
        change_uuid_log(old.unwrap_or_default(), &uuid, &value, now)
    })?;
    branch.change_file(UUID_LOG, |old| {
        change_uuid_log(old.unwrap_or_default(), &uuid, name, now)
    })?;
    set_git_config(&mut repo, name, &uuid, &setup, true)?;
    record_verified(&repo, &uuid, &config)?;
    branch.commit()?;
    tracing::info!(remote = name, %uuid, "initremote");
    let encryption = said.map_or(String::new(), |s| format!(" (encryption setup) {s}"));
    match setup {
        // git-annex's words while it checks (or makes) the bucket.
        TypeSetup::S3(_) => writeln!(out, "initremote {name}{encryption} (checking bucket...) ok")?,
        TypeSetup::Directory(_) | TypeSetup::External(_) => {
            writeln!(out, "initremote {name}{encryption} ok")?
        }
    }
    writeln!(out, "(recording state in git...)")?;
    Ok(())
}

pub fn enableremote(
    dir: &Path,
    name: &str,
    params: &[String],
    out: &mut dyn Write,
) -> Result<(), OperatorError> {
    let (mut repo, _) = open_initialized(dir)?;
    let Some((uuid, old)) = find_by_name(&repo, name)? else {
        return Err(RemoteSetupError::NoSuchRemote(name.to_owned()).into());
    };
    let given = parse_params(params)?;
    let mut config = old.clone();
    config.extend(given);
    let (setup, _) = check_type(&repo, dir, name, &uuid, &mut config, Some(&old))?;
    if let TypeSetup::S3(s3_setup) = &setup {
        s3::cache_creds(repo.git_dir(), &uuid, s3_setup).map_err(RemoteSetupError::from)?;
    }
    if let TypeSetup::External(e) = &setup {
        ext::init(name, &uuid, &mut config, e).map_err(RemoteSetupError::from)?;
    }
    // A configuration already accepted here stays accepted with what its
    // user changed now; one never accepted waits for verifyremote.
    let verified = crate::special::config::is_verified(&repo, &uuid, &old);
    let value = format_config(&config);
    if config != old {
        let now = VectorClock::candidate_now();
        repo.branch().change_file(REMOTE_LOG, |log| {
            change_uuid_log(log.unwrap_or_default(), &uuid, &value, now)
        })?;
    }
    set_git_config(&mut repo, name, &uuid, &setup, verified)?;
    if verified {
        record_verified(&repo, &uuid, &config)?;
    }
    repo.branch().commit()?;
    writeln!(out, "enableremote {name} ")?;
    if !verified {
        ask_verification(name, &config, out)?;
    }
    writeln!(out, "ok")?;
    Ok(())
}

/// `verifyremote NAME`: show the configuration; with `--safe`, accept it.
pub fn verifyremote(
    dir: &Path,
    name: &str,
    safe: bool,
    out: &mut dyn Write,
) -> Result<(), OperatorError> {
    let (mut repo, _) = open_initialized(dir)?;
    let Some((uuid, config)) = find_by_name(&repo, name)? else {
        return Err(RemoteSetupError::NoSuchRemote(name.to_owned()).into());
    };
    if !safe {
        return ask_verification(name, &config, out);
    }
    record_verified(&repo, &uuid, &config)?;
    repo.set_config(&format!("remote.{name}.annex-verified"), "verified")?;
    writeln!(out, "verifyremote {name} ok")?;
    Ok(())
}

/// git-annex's question: the configuration (type first, no name), and
/// how to accept it.
fn ask_verification(
    name: &str,
    config: &BTreeMap<String, String>,
    out: &mut dyn Write,
) -> Result<(), OperatorError> {
    let mut words = vec![format!(
        "type={}",
        config.get("type").map(String::as_str).unwrap_or_default()
    )];
    // What is verified only: not the cipher (git-annex shows the same).
    words.extend(
        verified_part(config)
            .iter()
            .filter(|(k, _)| *k != "type" && *k != "name")
            .map(|(k, v)| format!("{k}={}", config_escape(v))),
    );
    writeln!(out, "  This is the configuration of the remote:")?;
    writeln!(out, "  \t{}", words.join(" "))?;
    writeln!(out, "  ")?;
    writeln!(out, "  Is this a location that you expected to be using?")?;
    writeln!(out, "  If so, run:  annexproxy verifyremote {name} --safe")?;
    Ok(())
}
