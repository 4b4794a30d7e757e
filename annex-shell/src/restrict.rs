//! What a P2P session lets its client do ([`Rules`]), from the
//! restricted-shell variables read into a [`Policy`] by the front crate
//! (`annex_shell_front::restrict`), re-exported here for the server.

use annex::p2p::{Message, Service};
use annex::repo::Repo;

pub use annex_shell_front::restrict::{
    Policy, Refused, ServerMode, APPENDONLY, APPENDONLY_ERROR, DIRECTORY, LIMITED, READONLY,
    READONLY_ERROR,
};

/// `remote.<name>.annexproxy-git-relay`, on a proxy or cluster gateway:
/// relay git (CONNECT) to that repository also for clients under a
/// restriction variable. Our own extension, so off unless the operator
/// says so: the variables were set with the proxy's repository in mind.
pub const GIT_RELAY_CONFIG: &str = "annexproxy-git-relay";

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

    /// The rules of the P2P sessions `policy`'s invocation serves.
    pub fn of(policy: &Policy) -> Rules {
        Rules {
            mode: policy.server_mode(),
            limited: policy.limited,
            restricted: policy.readonly
                || policy.appendonly
                || policy.limited
                || policy.directory.is_some(),
        }
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(vars: &[(&str, &str)]) -> Policy {
        Policy::from_vars(vars)
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
            Rules::of(&policy(vars))
                .admit(msg)
                .err()
                .map(|r| (r.reason, r.ends_session))
        };
        assert_eq!(refusal(&[], &push), None);
        assert!(!Rules::of(&policy(&[])).restricted);
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
        assert!(Rules::of(&policy(&[(DIRECTORY, "/srv/a.git")])).restricted);
        assert_eq!(refusal(&[(DIRECTORY, "/srv/a.git")], &push), None);
    }
}
