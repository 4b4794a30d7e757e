use std::os::unix::fs::PermissionsExt;

use super::*;

fn tok(s: &str) -> AuthToken {
    AuthToken::parse(s).expect("valid token")
}

/// `p2pauth` as git-annex 10.20261026 wrote it after `git annex p2p
/// --gen-addresses` with a p2p-annex and a tor address in `p2paddrs`.
const REAL_P2PAUTH: &str = "1e729f8f0d5bae34ee0a9aa730780eb7fefd49cb7b4413bd3d5f5c458ec70b70c1133823499cdd4bb889d8068b8a46d8c7c79dde02b7c05bbce1781bb0f732e6\n\
d75f2e5e9deb755e75d7f3749de1133f32b7637409b394d1a54351a403a0fd9e66b326b2d17520b4f216b8728c8c8dd5aa926663f40050fbf8c33a3fb84b8fa1 p2p-annex::foo:bar\n";

#[test]
fn tokens_are_lowercased_letters_and_digits() {
    assert_eq!(tok("AbC123").as_str(), "abc123");
    assert!(AuthToken::parse("").is_none());
    assert!(AuthToken::parse("ab-c").is_none());
    assert!(AuthToken::parse("ab c").is_none());
    assert!(AuthToken::parse("é").is_none());
}

#[test]
fn generated_tokens_are_128_lowercase_hex_and_differ() {
    let a = AuthToken::generate(GENERATED_TOKEN_LEN).expect("urandom");
    let b = AuthToken::generate(GENERATED_TOKEN_LEN).expect("urandom");
    assert_eq!(a.as_str().len(), 128);
    assert!(a
        .as_str()
        .bytes()
        .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)));
    assert_ne!(a, b);
    assert_eq!(AuthToken::generate(64).expect("urandom").as_str().len(), 64);
}

#[test]
fn debug_does_not_show_the_token() {
    let shown = format!("{:?}", tok("secretvalue"));
    assert!(!shown.contains("secret"), "{shown}");
}

#[test]
fn ct_eq_compares_whole_tokens() {
    assert!(tok("abc").ct_eq(&tok("ABC")));
    assert!(!tok("abc").ct_eq(&tok("abd")));
    assert!(!tok("abc").ct_eq(&tok("abcd")));
    assert!(!tok("abcd").ct_eq(&tok("abc")));
}

#[test]
fn allowed_tokens_match_any_and_nothing_else() {
    let allowed = AllowedTokens::new(vec![tok("one"), tok("two")]);
    assert!(allowed.allows(&tok("two")));
    assert!(allowed.allows(&tok("ONE")));
    assert!(!allowed.allows(&tok("three")));
    assert!(!AllowedTokens::default().allows(&tok("one")));
}

#[test]
fn reads_git_annex_p2pauth_and_scopes_tokens_by_address() {
    let dir = tempfile::tempdir().expect("tempdir");
    let creds = Creds::new(dir.path());
    std::fs::create_dir_all(creds.dir()).expect("mkdir");
    std::fs::write(creds.dir().join(P2PAUTH_FILE), REAL_P2PAUTH).expect("write");
    let all = creds.accepted().expect("read");
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].address, None);
    let foo = P2pAddress::parse("p2p-annex::foo:bar").expect("addr");
    assert_eq!(all[1].address.as_ref(), Some(&foo));

    let tor_token = tok(&REAL_P2PAUTH[..128]);
    let foo_token = tok(&REAL_P2PAUTH[129..257]);
    let for_tor = creds.allowed(None).expect("read");
    assert!(for_tor.allows(&tor_token));
    assert!(!for_tor.allows(&foo_token));
    let for_foo = creds.allowed(Some(&foo)).expect("read");
    assert!(for_foo.allows(&foo_token));
    assert!(!for_foo.allows(&tor_token));
}

#[test]
fn skips_blank_and_unparseable_lines() {
    let dir = tempfile::tempdir().expect("tempdir");
    let creds = Creds::new(dir.path());
    std::fs::create_dir_all(creds.dir()).expect("mkdir");
    std::fs::write(
        creds.dir().join(P2PAUTH_FILE),
        "\nbad-token\nok1 nonsense\nok2\n",
    )
    .expect("write");
    let all = creds.accepted().expect("read");
    assert_eq!(
        all,
        vec![AcceptedToken {
            token: tok("ok2"),
            address: None
        }]
    );
    assert!(!creds.allowed(None).expect("read").allows(&tok("ok1")));
}

#[test]
fn add_writes_git_annex_format_0600_newest_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    let creds = Creds::new(dir.path());
    let foo = P2pAddress::parse("p2p-annex::foo:bar").expect("addr");
    let tor = P2pAddress::parse("tor-annex::abcdefg.onion:5555").expect("addr");
    creds
        .add_accepted(&tok(&REAL_P2PAUTH[129..257]), Some(&foo))
        .expect("add");
    // A tor address is stored without it, as git-annex does.
    creds
        .add_accepted(&tok(&REAL_P2PAUTH[..128]), Some(&tor))
        .expect("add");
    creds
        .add_accepted(&tok(&REAL_P2PAUTH[..128]), None)
        .expect("add again");
    let path = creds.dir().join(P2PAUTH_FILE);
    assert_eq!(std::fs::read_to_string(&path).expect("read"), REAL_P2PAUTH);
    let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn remove_drops_every_line_of_the_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let creds = Creds::new(dir.path());
    let foo = P2pAddress::parse("p2p-annex::foo:bar").expect("addr");
    creds.add_accepted(&tok("aaa"), None).expect("add");
    creds.add_accepted(&tok("aaa"), Some(&foo)).expect("add");
    creds.add_accepted(&tok("bbb"), None).expect("add");
    assert!(creds.remove_accepted(&tok("AAA")).expect("remove"));
    assert!(!creds.remove_accepted(&tok("aaa")).expect("remove"));
    let left: Vec<_> = creds
        .accepted()
        .expect("read")
        .into_iter()
        .map(|a| a.token)
        .collect();
    assert_eq!(left, vec![tok("bbb")]);
}

#[test]
fn peer_token_is_the_first_line_of_the_escaped_creds_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let creds = Creds::new(dir.path());
    let addr = P2pAddress::parse("tor-annex::abc.onion:99").expect("addr");
    if std::env::var_os(TOKEN_ENV).is_some() {
        return; // the environment would override the file
    }
    assert_eq!(creds.peer_token(&addr).expect("read"), None);
    creds
        .store_peer_token(&addr, &tok("secret1"))
        .expect("store");
    assert!(creds.dir().join("abc%2Eonion").is_file());
    std::fs::write(creds.dir().join("abc%2Eonion"), "Secret2\nignored\n").expect("write");
    assert_eq!(creds.peer_token(&addr).expect("read"), Some(tok("secret2")));
}
