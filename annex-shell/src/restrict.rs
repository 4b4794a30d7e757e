//! The restricted-shell environment variables, read once into a [`Policy`].
//!
//! They keep git-annex's meaning: a variable counts as set when it is present
//! and non-empty.

use std::path::{Path, PathBuf};

use annex::p2p::{Message, Service};
use annex::repo::Repo;

use crate::args::Builtin;

pub const READONLY: &str = "GIT_ANNEX_SHELL_READONLY";
pub const APPENDONLY: &str = "GIT_ANNEX_SHELL_APPENDONLY";
pub const LIMITED: &str = "GIT_ANNEX_SHELL_LIMITED";
pub const DIRECTORY: &str = "GIT_ANNEX_SHELL_DIRECTORY";

/// git-annex's words for a refused write and a refused removal.
pub const READONLY_ERROR: &str = "this repository is read-only; write access denied";
pub const APPENDONLY_ERROR: &str = "this repository is append-only; removal denied";

/// `remote.<name>.annexproxy-git-relay`, on a proxy or cluster gateway:
/// relay git (CONNECT) to that repository also for clients under a
/// restriction variable. Our own extension, so off unless the operator
/// says so: the variables were set with the proxy's repository in mind.
pub const GIT_RELAY_CONFIG: &str = "annexproxy-git-relay";

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

/// What one P2P session lets its client do. Every session (a local one,
/// a relay to a proxied node, a cluster's gateway) passes each message
/// through [`Rules::admit`] before acting on it or passing it on, so a
/// relay can never let through what a plain session would refuse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rules {
    pub mode: ServerMode,
    /// GIT_ANNEX_SHELL_LIMITED: no git, through git-shell or CONNECT.
    pub limited: bool,
    /// Some restriction variable is set: git goes on to repositories
    /// behind this one only where [`GIT_RELAY_CONFIG`] allows it.
    pub restricted: bool,
}

/// A message the rules do not let through: the ERROR the client gets,
/// and whether the session ends with it (a refused CONNECT ends it, as in
/// git-annex: the client was about to speak git, not the protocol).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub reason: String,
    pub ends_session: bool,
}

impl Rules {
    /// No restriction: what a P2P listener's authenticated peers get.
    pub const OPEN: Rules = Rules {
        mode: ServerMode::ReadWrite,
        limited: false,
        restricted: false,
    };

    pub fn admit(&self, msg: &Message) -> Result<(), Refusal> {
        let refuse = |reason: String, ends_session| {
            Err(Refusal {
                reason,
                ends_session,
            })
        };
        match (msg, self.mode) {
            (Message::Put { .. }, ServerMode::ReadOnly) => refuse(READONLY_ERROR.into(), false),
            (Message::Remove(_) | Message::RemoveBefore { .. }, ServerMode::ReadOnly) => {
                refuse(READONLY_ERROR.into(), false)
            }
            (Message::Remove(_) | Message::RemoveBefore { .. }, ServerMode::AppendOnly) => {
                refuse(APPENDONLY_ERROR.into(), false)
            }
            (Message::Connect(_), _) if self.limited => {
                refuse(Refused::Blocked(LIMITED).to_string(), true)
            }
            // Pushing can rewrite refs, which neither restricted mode allows.
            (Message::Connect(Service::ReceivePack), mode) if mode != ServerMode::ReadWrite => {
                refuse(READONLY_ERROR.into(), true)
            }
            _ => Ok(()),
        }
    }

    /// Whether git (CONNECT) may go on from `repo` to its remote `remote`,
    /// a proxied node or a cluster node.
    pub fn relays_git_to(&self, repo: &Repo, remote: &str) -> bool {
        !self.restricted
            || repo.config_bool(&format!("remote.{remote}.{GIT_RELAY_CONFIG}")) == Some(true)
    }

    /// Why git is not relayed to `remote`, for the client.
    pub fn git_relay_refusal(remote: &str) -> String {
        format!(
            "git is not relayed to {remote} under the restricted shell; the server's git config remote.{remote}.{GIT_RELAY_CONFIG}=true allows it"
        )
    }
}

/// The client hears a refusal as an ERROR with its reason.
impl From<Refusal> for Message {
    fn from(r: Refusal) -> Message {
        Message::Error(r.reason)
    }
}

impl From<ServerMode> for Rules {
    fn from(mode: ServerMode) -> Rules {
        Rules {
            mode,
            limited: false,
            restricted: mode != ServerMode::ReadWrite,
        }
    }
}

impl Policy {
    /// The rules of the P2P sessions this policy's invocation serves.
    pub fn rules(&self) -> Rules {
        Rules {
            mode: self.server_mode(),
            limited: self.limited,
            restricted: self.readonly
                || self.appendonly
                || self.limited
                || self.directory.is_some(),
        }
    }

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
        Policy::from_lookup(|k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        })
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
    fn rules_refuse_what_the_variables_forbid_in_every_session() {
        let key = annex::key::Key::parse("SHA256E-s1--aa").expect("key");
        let put = Message::Put {
            file: None,
            key: key.clone(),
        };
        let remove = Message::Remove(key);
        let fetch = Message::Connect(Service::UploadPack);
        let push = Message::Connect(Service::ReceivePack);
        let refusal = |vars: &[(&str, &str)], msg: &Message| {
            policy(vars)
                .rules()
                .admit(msg)
                .err()
                .map(|r| (r.reason, r.ends_session))
        };
        assert_eq!(refusal(&[], &push), None);
        assert!(!policy(&[]).rules().restricted);
        let limited = [(LIMITED, "1")];
        let blocked = Some(("Action blocked by GIT_ANNEX_SHELL_LIMITED".into(), true));
        assert_eq!(refusal(&limited, &fetch), blocked);
        assert_eq!(refusal(&limited, &push), blocked);
        assert_eq!(refusal(&limited, &put), None);
        let ro = [(READONLY, "1")];
        assert_eq!(refusal(&ro, &put), Some((READONLY_ERROR.into(), false)));
        assert_eq!(refusal(&ro, &remove), Some((READONLY_ERROR.into(), false)));
        assert_eq!(refusal(&ro, &fetch), None);
        assert_eq!(refusal(&ro, &push), Some((READONLY_ERROR.into(), true)));
        let ao = [(APPENDONLY, "1")];
        assert_eq!(refusal(&ao, &put), None);
        assert_eq!(
            refusal(&ao, &remove),
            Some((APPENDONLY_ERROR.into(), false))
        );
        assert!(policy(&[(DIRECTORY, "/srv/a.git")]).rules().restricted);
        assert_eq!(refusal(&[(DIRECTORY, "/srv/a.git")], &push), None);
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
