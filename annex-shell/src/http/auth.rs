//! Who may do what over HTTP: git-annex's p2phttp auth modes
//! (`Command/P2PHttp.hs: mkGetServerMode`, `P2P/Http/State.hs:
//! checkAuthActionClass`), decided once per request before any session.
//!
//! Users come from the environment: `GIT_ANNEX_P2PHTTP_PASSWORD_<user>`,
//! with `GIT_ANNEX_P2PHTTP_PERMISSIONS_<user>` = `readonly` or
//! `appendonly` (read-write otherwise). `--authenv` accepts them over
//! HTTPS only, `--authenv-http` over plain HTTP too. Anonymous requests get
//! what `--wideopen`, `--unauth-appendonly` or `--unauth-readonly` allow
//! (locking too, unless `--unauth-nolocking`), and nothing without one of
//! them.
//!
//! One deliberate difference: a wrong password is answered 401 wherever
//! authentication is possible, where git-annex answers 403 for what the
//! anonymous mode does not allow (its fallback forgets that auth was
//! possible). On a 401 the client rejects the stored credential, so the
//! next run prompts again; a 403 leaves the bad one in place.

use base64::Engine;

use super::route::Class;
use crate::restrict::ServerMode;

/// Why a request is not served.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// 401 with `WWW-Authenticate`: the client may ask for credentials.
    #[error("authentication required")]
    Unauthorized,
    /// 403: no credentials would help.
    #[error("forbidden")]
    Forbidden,
}

#[derive(Clone)]
struct User {
    name: String,
    password: String,
    mode: ServerMode,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never a password in a log.
        write!(f, "User({}, {:?})", self.name, self.mode)
    }
}

/// The server's auth options, resolved.
#[derive(Clone, Debug, Default)]
pub struct AuthConfig {
    users: Vec<User>,
    /// `--authenv`: users over HTTPS.
    pub authenv: bool,
    /// `--authenv-http`: users over plain HTTP too.
    pub authenv_http: bool,
    /// What anonymous requests may do: `--wideopen`, `--unauth-appendonly`,
    /// `--unauth-readonly`.
    pub unauth: Option<ServerMode>,
    /// `--unauth-nolocking` turns this off.
    pub unauth_locking: bool,
}

/// What a request turned out to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Who {
    mode: Option<ServerMode>,
    unauth_locking: bool,
    /// A 401 could help (git-annex's `authenticationAllowed`).
    can_auth: bool,
}

impl AuthConfig {
    /// Users from environment variables (`vars` as `std::env::vars`).
    pub fn with_users_from(mut self, vars: impl IntoIterator<Item = (String, String)>) -> Self {
        const PASSWORD: &str = "GIT_ANNEX_P2PHTTP_PASSWORD_";
        const PERMISSIONS: &str = "GIT_ANNEX_P2PHTTP_PERMISSIONS_";
        let vars: Vec<(String, String)> = vars.into_iter().collect();
        let perms = |user: &str| {
            vars.iter()
                .find(|(k, _)| k.strip_prefix(PERMISSIONS) == Some(user))
                .and_then(|(_, v)| match v.as_str() {
                    "readonly" => Some(ServerMode::ReadOnly),
                    "appendonly" => Some(ServerMode::AppendOnly),
                    _ => None,
                })
                .unwrap_or(ServerMode::ReadWrite)
        };
        self.users = vars
            .iter()
            .filter_map(|(k, v)| {
                let name = k.strip_prefix(PASSWORD)?;
                Some(User {
                    name: name.to_owned(),
                    password: v.clone(),
                    mode: perms(name),
                })
            })
            .collect();
        self
    }

    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    /// The mode a request of `class` is served in, given its
    /// `Authorization` header and whether it came over TLS.
    pub fn decide(
        &self,
        secure: bool,
        authorization: Option<&[u8]>,
        class: Class,
    ) -> Result<ServerMode, Denied> {
        let who = self.identify(secure, authorization);
        match (who.mode, class) {
            (Some(ServerMode::ReadWrite), _) => Ok(ServerMode::ReadWrite),
            (Some(_), Class::Lock) if who.unauth_locking => Ok(ServerMode::ReadOnly),
            (Some(ServerMode::AppendOnly), Class::Remove) => Err(who.refusal()),
            (Some(ServerMode::AppendOnly), _) => Ok(ServerMode::AppendOnly),
            (Some(ServerMode::ReadOnly), Class::Read) => Ok(ServerMode::ReadOnly),
            (Some(ServerMode::ReadOnly), _) => Err(who.refusal()),
            (None, _) => Err(Denied::Unauthorized),
        }
    }

    fn identify(&self, secure: bool, authorization: Option<&[u8]>) -> Who {
        let accepts = (secure && self.authenv) || self.authenv_http;
        let can_auth = self.authenv || self.authenv_http;
        if accepts {
            if let Some(user) = authorization.and_then(|a| self.user(a)) {
                return Who {
                    mode: Some(user.mode),
                    unauth_locking: false,
                    can_auth: false,
                };
            }
        }
        Who {
            mode: self.unauth,
            unauth_locking: self.unauth_locking,
            // --wideopen leaves nothing to authenticate for.
            can_auth: can_auth && self.unauth != Some(ServerMode::ReadWrite),
        }
    }

    /// The user whose `Basic` credentials these are.
    fn user(&self, authorization: &[u8]) -> Option<&User> {
        let text = std::str::from_utf8(authorization).ok()?;
        let (scheme, b64) = text.trim().split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return None;
        }
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .ok()?;
        let pair = String::from_utf8(raw).ok()?;
        let (name, password) = pair.split_once(':')?;
        // Every user's password is compared, in constant time each, so the
        // timing says nothing about which names exist.
        let mut found = None;
        for u in &self.users {
            let ok = u.name == name && constant_time_eq(u.password.as_bytes(), password.as_bytes());
            if ok && found.is_none() {
                found = Some(u);
            }
        }
        found
    }
}

impl Who {
    fn refusal(&self) -> Denied {
        if self.can_auth {
            Denied::Unauthorized
        } else {
            Denied::Forbidden
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    for (i, x) in a.iter().enumerate() {
        diff |= x ^ b.get(i).copied().unwrap_or(!x);
    }
    diff == 0
}

#[cfg(test)]
#[path = "auth_tests.rs"]
mod tests;
