//! The restricted-shell environment variables, read once into a [`Policy`].
//!
//! They keep git-annex's meaning: a variable counts as set when it is present
//! and non-empty. The rules a P2P session derives from a policy live with
//! the session (`annex_shell::restrict::Rules`).

use std::path::{Path, PathBuf};

use crate::args::Builtin;

pub const READONLY: &str = "GIT_ANNEX_SHELL_READONLY";
pub const APPENDONLY: &str = "GIT_ANNEX_SHELL_APPENDONLY";
pub const LIMITED: &str = "GIT_ANNEX_SHELL_LIMITED";
pub const DIRECTORY: &str = "GIT_ANNEX_SHELL_DIRECTORY";

/// git-annex's words for a refused write and a refused removal.
pub const READONLY_ERROR: &str = "this repository is read-only; write access denied";
pub const APPENDONLY_ERROR: &str = "this repository is append-only; removal denied";

/// What the P2P server lets a client do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerMode {
    ReadOnly,
    AppendOnly,
    ReadWrite,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    pub readonly: bool,
    pub appendonly: bool,
    pub limited: bool,
    pub directory: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Refused {
    #[error("Action blocked by {0}")]
    Blocked(&'static str),
    #[error("Only allowed to access {allowed} {}", match .requested {
        Some(d) => format!("not {d}"),
        None => "and could not determine directory from command line".to_owned(),
    })]
    Directory {
        allowed: String,
        requested: Option<String>,
    },
}

impl Policy {
    pub fn from_env() -> Policy {
        Policy::from_lookup(|k| std::env::var(k).ok())
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Policy {
        let set = |k: &str| get(k).is_some_and(|v| !v.is_empty());
        Policy {
            readonly: set(READONLY),
            appendonly: set(APPENDONLY),
            limited: set(LIMITED),
            directory: get(DIRECTORY),
        }
    }

    /// The policy of an environment holding just `vars` (as a forced
    /// command sets them).
    pub fn from_vars(vars: &[(&str, &str)]) -> Policy {
        Policy::from_lookup(|k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    pub fn server_mode(&self) -> ServerMode {
        if self.readonly {
            ServerMode::ReadOnly
        } else if self.appendonly {
            ServerMode::AppendOnly
        } else {
            ServerMode::ReadWrite
        }
    }

    pub fn check_builtin(&self, cmd: Builtin) -> Result<(), Refused> {
        if self.readonly && !cmd.allowed_readonly() {
            return Err(Refused::Blocked(READONLY));
        }
        if self.appendonly && !cmd.allowed_appendonly() {
            return Err(Refused::Blocked(APPENDONLY));
        }
        Ok(())
    }

    /// A git-shell command is refused under LIMITED; READONLY and
    /// APPENDONLY leave git's own services alone, as in git-annex (a
    /// forced command that must also stop pushes needs git's own hooks).
    pub fn check_git_shell(&self) -> Result<(), Refused> {
        if self.limited {
            return Err(Refused::Blocked(LIMITED));
        }
        Ok(())
    }

    /// GIT_ANNEX_SHELL_DIRECTORY: the requested directory must be the
    /// allowed one, compared textually first and then with `~/`, `/~/` and
    /// home-relative forms resolved.
    pub fn check_directory(&self, requested: Option<&str>, home: &str) -> Result<(), Refused> {
        let Some(allowed) = &self.directory else {
            return Ok(());
        };
        let Some(dir) = requested else {
            return Err(Refused::Directory {
                allowed: allowed.clone(),
                requested: None,
            });
        };
        if same_path(Path::new(allowed), Path::new(dir)) {
            return Ok(());
        }
        let a = canonical_form(allowed, home);
        let d = canonical_form(dir, home);
        if same_path(&a, &d) {
            Ok(())
        } else {
            Err(Refused::Directory {
                allowed: a.display().to_string(),
                requested: Some(d.display().to_string()),
            })
        }
    }
}

fn same_path(a: &Path, b: &Path) -> bool {
    // Component-wise, so `a//b/` and `a/b` are the same directory.
    a.components().eq(b.components())
}

/// The form git-annex compares: `~/x` kept, `/~/x` as `~/x`, anything else
/// made absolute from home and then shown relative to home as `~/…`.
fn canonical_form(d: &str, home: &str) -> PathBuf {
    if d.starts_with("~/") {
        return PathBuf::from(d);
    }
    if let Some(rest) = d.strip_prefix('/') {
        if rest.starts_with("~/") {
            return PathBuf::from(rest);
        }
    }
    let abs = Path::new(home).join(d);
    match abs.strip_prefix(home) {
        Ok(rel) if !rel.as_os_str().is_empty() => Path::new("~").join(rel),
        _ => abs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(vars: &[(&str, &str)]) -> Policy {
        Policy::from_vars(vars)
    }

    #[test]
    fn empty_variable_is_unset() {
        let p = policy(&[(READONLY, "")]);
        assert_eq!(p.server_mode(), ServerMode::ReadWrite);
        assert!(p.check_builtin(Builtin::DropKey).is_ok());
    }

    #[test]
    fn readonly_blocks_writes_with_git_annex_message() {
        let p = policy(&[(READONLY, "1")]);
        let err = p.check_builtin(Builtin::RecvKey).expect_err("blocked");
        assert_eq!(
            err.to_string(),
            "Action blocked by GIT_ANNEX_SHELL_READONLY"
        );
        assert!(p.check_builtin(Builtin::P2pStdio).is_ok());
        assert_eq!(p.server_mode(), ServerMode::ReadOnly);
    }

    #[test]
    fn appendonly_allows_recvkey_not_dropkey() {
        let p = policy(&[(APPENDONLY, "1")]);
        assert!(p.check_builtin(Builtin::RecvKey).is_ok());
        assert_eq!(
            p.check_builtin(Builtin::DropKey)
                .expect_err("blocked")
                .to_string(),
            "Action blocked by GIT_ANNEX_SHELL_APPENDONLY"
        );
    }

    #[test]
    fn directory_forms_are_equal() {
        let p = policy(&[(DIRECTORY, "/home/u/repo")]);
        assert!(p.check_directory(Some("/home/u/repo/"), "/home/u").is_ok());
        assert!(p.check_directory(Some("repo"), "/home/u").is_ok());
        assert!(p.check_directory(Some("/~/repo"), "/home/u").is_ok());
        let err = p
            .check_directory(Some("/srv/other"), "/home/u")
            .expect_err("refused");
        assert_eq!(
            err.to_string(),
            "Only allowed to access ~/repo not /srv/other"
        );
        assert!(p.check_directory(None, "/home/u").is_err());
    }
}
