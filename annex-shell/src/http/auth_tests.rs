use super::*;

fn users() -> Vec<(String, String)> {
    [
        ("GIT_ANNEX_P2PHTTP_PASSWORD_alice", "secret1"),
        ("GIT_ANNEX_P2PHTTP_PASSWORD_bob", "secret2"),
        ("GIT_ANNEX_P2PHTTP_PERMISSIONS_bob", "readonly"),
        ("GIT_ANNEX_P2PHTTP_PASSWORD_carol", "secret3"),
        ("GIT_ANNEX_P2PHTTP_PERMISSIONS_carol", "appendonly"),
        ("UNRELATED", "x"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

fn basic(user: &str, pass: &str) -> Vec<u8> {
    let b = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
    format!("Basic {b}").into_bytes()
}

/// Status codes for read, put, remove, lock (200 when served).
fn codes(cfg: &AuthConfig, auth: Option<&[u8]>) -> [u16; 4] {
    [Class::Read, Class::Write, Class::Remove, Class::Lock].map(|c| {
        match cfg.decide(false, auth, c) {
            Ok(_) => 200,
            Err(Denied::Unauthorized) => 401,
            Err(Denied::Forbidden) => 403,
        }
    })
}

fn config(authenv_http: bool, unauth: Option<ServerMode>) -> AuthConfig {
    let mut cfg = AuthConfig::default().with_users_from(users());
    cfg.authenv_http = authenv_http;
    cfg.unauth = unauth;
    cfg.unauth_locking = true;
    cfg
}

#[test]
fn authenv_http_table() {
    let cfg = config(true, None);
    assert_eq!(cfg.user_count(), 3);
    assert_eq!(codes(&cfg, None), [401; 4]);
    assert_eq!(codes(&cfg, Some(&basic("alice", "secret1"))), [200; 4]);
    assert_eq!(
        codes(&cfg, Some(&basic("bob", "secret2"))),
        [200, 403, 403, 403]
    );
    assert_eq!(
        codes(&cfg, Some(&basic("carol", "secret3"))),
        [200, 200, 403, 200]
    );
    assert_eq!(codes(&cfg, Some(&basic("alice", "wrong"))), [401; 4]);
    assert_eq!(codes(&cfg, Some(&basic("alice", "secret11"))), [401; 4]);
}

#[test]
fn authenv_is_for_https_only() {
    let mut cfg = AuthConfig::default().with_users_from(users());
    cfg.authenv = true;
    assert_eq!(codes(&cfg, Some(&basic("alice", "secret1"))), [401; 4]);
    let over_tls = cfg.decide(true, Some(&basic("alice", "secret1")), Class::Write);
    assert_eq!(over_tls, Ok(ServerMode::ReadWrite));
}

#[test]
fn unauth_modes() {
    let ro = config(false, Some(ServerMode::ReadOnly));
    assert_eq!(codes(&ro, None), [200, 403, 403, 200]);
    // Credentials are not looked at without --authenv*.
    assert_eq!(
        codes(&ro, Some(&basic("alice", "secret1"))),
        [200, 403, 403, 200]
    );
    let ao = config(false, Some(ServerMode::AppendOnly));
    assert_eq!(codes(&ao, None), [200, 200, 403, 200]);
    let open = config(false, Some(ServerMode::ReadWrite));
    assert_eq!(codes(&open, None), [200; 4]);
    let mut nolock = config(false, Some(ServerMode::ReadOnly));
    nolock.unauth_locking = false;
    assert_eq!(codes(&nolock, None), [200, 403, 403, 403]);
    assert_eq!(codes(&config(false, None), None), [401; 4]);
}

/// git-annex answers a wrong password here with 403 for writes, so the
/// client keeps the bad credential; a 401 makes it reject it.
#[test]
fn wrong_password_under_unauth_readonly_is_401() {
    let cfg = config(true, Some(ServerMode::ReadOnly));
    assert_eq!(codes(&cfg, None), [200, 401, 401, 200]);
    assert_eq!(
        codes(&cfg, Some(&basic("alice", "nope"))),
        [200, 401, 401, 200]
    );
    assert_eq!(codes(&cfg, Some(&basic("alice", "secret1"))), [200; 4]);
    assert_eq!(
        codes(&cfg, Some(&basic("bob", "secret2"))),
        [200, 403, 403, 403]
    );
    assert_eq!(
        codes(&cfg, Some(&basic("carol", "secret3"))),
        [200, 200, 403, 200]
    );
}
