//! `configlist` answered by the front itself, when its answer is sure to
//! be byte for byte what the full server prints: a plain repository of
//! the effective user with `annex.uuid` set and no remote, config files in
//! the syntax [`crate::gitconfig`] reads, and nothing in the environment
//! that changes how gix finds or reads them. Every other call is handed
//! to the full server ([`HandOn`] says why), which serves every case.

use std::ffi::{OsStr, OsString};
use std::io;
use std::path::{Path, PathBuf};

use crate::args::{self, Builtin, Invocation};
use crate::gitconfig::{self, Found, Unsure};
use crate::location::{Location, Unplain};
use crate::restrict::{Policy, Refused};

/// Why the front hands a call to the full server.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HandOn {
    #[error("not a configlist call the front parses")]
    NotConfiglist,
    #[error("an argument is not UTF-8")]
    NotUtf8,
    #[error("{0} is set")]
    Env(String),
    #[error("HOME is unset, empty or relative")]
    Home,
    #[error(transparent)]
    Refused(#[from] Refused),
    #[error(transparent)]
    Location(#[from] Unplain),
    #[error("{path}: {source}")]
    Config {
        path: PathBuf,
        #[source]
        source: Unsure,
    },
    #[error("{path}: {kind}")]
    Unreadable { path: PathBuf, kind: io::ErrorKind },
    #[error("annex.uuid is not set (the full server may initialise the repository)")]
    NoUuid,
    #[error("--uuid names another repository (perhaps one this one proxies for)")]
    OtherUuid,
}

/// The environment as the front sees it: every variable, in a form tests
/// can build.
#[derive(Clone, Debug, Default)]
pub struct Env {
    vars: Vec<(OsString, OsString)>,
}

impl Env {
    pub fn from_process() -> Env {
        Env {
            vars: std::env::vars_os().collect(),
        }
    }

    pub fn from_pairs<K: Into<OsString>, V: Into<OsString>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Env {
        Env {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    pub fn get(&self, name: &str) -> Option<&OsStr> {
        // The last one wins, as getenv finds it.
        self.vars
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_os_str())
    }

    /// A variable as `std::env::var` reads it (unset when not UTF-8), as
    /// the full server reads the restriction variables and HOME.
    fn get_str(&self, name: &str) -> Option<String> {
        self.get(name).and_then(|v| v.to_str()).map(str::to_owned)
    }
}

/// What the full server prints for `argv` (without argv[0]), or why the
/// front cannot be sure of it.
pub fn answer(argv: &[OsString], env: &Env, euid: u32) -> Result<String, HandOn> {
    let argv: Vec<String> = argv
        .iter()
        .map(|a| a.to_str().map(str::to_owned).ok_or(HandOn::NotUtf8))
        .collect::<Result<_, _>>()?;
    let call = match args::parse(&argv) {
        Ok(Invocation::Builtin(call)) if call.cmd == Builtin::ConfigList => call,
        _ => return Err(HandOn::NotConfiglist),
    };
    let files = ConfigFiles::from_env(env)?;
    // The full server's checks, in its order (annex_shell::run).
    let policy = Policy::from_lookup(|k| env.get_str(k));
    policy.check_builtin(call.cmd)?;
    policy.check_directory(Some(&call.dir), &files.home)?;
    let dir = args::resolve_dir(&call.dir, &files.home);
    let location = Location::find(&dir, euid)?;
    let found = files.read(&location)?;
    let uuid = found.uuid.filter(|u| !u.is_empty()).ok_or(HandOn::NoUuid)?;
    if call.expected_uuid.is_some_and(|e| e != uuid) {
        return Err(HandOn::OtherUuid);
    }
    let gcrypt = found.gcrypt_id.unwrap_or_default();
    Ok(format!("annex.uuid={uuid}\ncore.gcrypt-id={gcrypt}\n"))
}

/// The config files gix reads for a repository, in its order (system,
/// XDG, `~/.gitconfig`, the repository's), from the environment it takes
/// their places from.
struct ConfigFiles {
    home: String,
    system: bool,
    xdg: PathBuf,
}

impl ConfigFiles {
    fn from_env(env: &Env) -> Result<ConfigFiles, HandOn> {
        if env.get("ANNEXPROXY_LOG").is_some() {
            // The full server logs what it does; the front logs nothing.
            return Err(HandOn::Env("ANNEXPROXY_LOG".into()));
        }
        for (name, _) in &env.vars {
            let name = name.to_string_lossy();
            // GIT_CONFIG_GLOBAL, _SYSTEM, _COUNT/_KEY_n/_VALUE_n,
            // _PARAMETERS, GIT_CONFIG itself: config from elsewhere.
            let moves_config = name.starts_with("GIT_CONFIG") && name != "GIT_CONFIG_NOSYSTEM";
            if moves_config || matches!(&*name, "GIT_DIR" | "GIT_WORK_TREE" | "GIT_COMMON_DIR") {
                return Err(HandOn::Env(name.into_owned()));
            }
        }
        // gix reads GIT_CONFIG_NOSYSTEM as a git boolean.
        let system = match env.get("GIT_CONFIG_NOSYSTEM").map(|v| v.to_str()) {
            None => true,
            Some(Some(v)) if v.is_empty() || gitconfig::is_boolean(v) => {
                !matches!(v.to_ascii_lowercase().as_str(), "true" | "yes" | "on" | "1")
            }
            Some(_) => return Err(HandOn::Env("GIT_CONFIG_NOSYSTEM".into())),
        };
        let home = env
            .get_str("HOME")
            .filter(|h| Path::new(h).is_absolute())
            .ok_or(HandOn::Home)?;
        let xdg = match env.get("XDG_CONFIG_HOME") {
            None => Path::new(&home).join(".config"),
            Some(x) if Path::new(x).is_absolute() => PathBuf::from(x),
            Some(_) => return Err(HandOn::Env("XDG_CONFIG_HOME".into())),
        };
        Ok(ConfigFiles {
            system,
            xdg: xdg.join("git/config"),
            home,
        })
    }

    fn read(&self, location: &Location) -> Result<Found, HandOn> {
        let mut found = Found::default();
        let system = self.system.then(|| PathBuf::from("/etc/gitconfig"));
        let globals = [
            system,
            Some(self.xdg.clone()),
            Some(Path::new(&self.home).join(".gitconfig")),
        ];
        for path in globals.into_iter().flatten() {
            read_file(&mut found, &path, true)?;
        }
        read_file(&mut found, &location.config_path(), false)?;
        Ok(found)
    }
}

/// Read one file into `found`; a missing global file is skipped, as gix
/// skips it.
fn read_file(found: &mut Found, path: &Path, may_be_missing: bool) -> Result<(), HandOn> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if may_be_missing && e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(HandOn::Unreadable {
                path: path.to_owned(),
                kind: e.kind(),
            })
        }
    };
    let unsure = |source| HandOn::Config {
        path: path.to_owned(),
        source,
    };
    let text = String::from_utf8(bytes).map_err(|_| unsure(Unsure::Syntax(0)))?;
    found.read(&text).map_err(unsure)
}

#[cfg(test)]
mod tests;
