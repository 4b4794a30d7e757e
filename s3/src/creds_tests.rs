use std::collections::{BTreeMap, HashMap};

use super::*;

struct FakeEnv(HashMap<&'static str, &'static str>);

impl Env for FakeEnv {
    fn var(&self, name: &str) -> Option<String> {
        self.0.get(name).map(|v| v.to_string())
    }
}

fn env(pairs: &[(&'static str, &'static str)]) -> FakeEnv {
    FakeEnv(pairs.iter().copied().collect())
}

const UUID: &str = "3f0cdd10-0000-4000-8000-000000000001";

#[test]
fn environment_wins_then_cache_file_then_embedded() {
    let dir = tempfile::tempdir().unwrap();
    let mut params = BTreeMap::new();
    params.insert("s3creds".to_string(), encode_embedded("EMB", "embsecret"));

    let (c, src) = find_credentials(&env(&[]), dir.path(), UUID, &params)
        .unwrap()
        .unwrap();
    assert_eq!(
        (c.access_key_id.as_str(), src),
        ("EMB", CredsSource::Embedded)
    );
    assert_eq!(c.secret_access_key, "embsecret");

    let path = write_creds_file(dir.path(), UUID, "FILE", "filesecret").unwrap();
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "FILE\nfilesecret\n"
    );
    let (c, src) = find_credentials(&env(&[]), dir.path(), UUID, &params)
        .unwrap()
        .unwrap();
    assert_eq!(c.access_key_id, "FILE");
    assert_eq!(src, CredsSource::CacheFile(path));

    // Only one of the pair in the environment: not taken from there.
    let one = env(&[("AWS_ACCESS_KEY_ID", "ENV")]);
    let (c, _) = find_credentials(&one, dir.path(), UUID, &params)
        .unwrap()
        .unwrap();
    assert_eq!(c.access_key_id, "FILE");

    let both = env(&[
        ("AWS_ACCESS_KEY_ID", "ENV"),
        ("AWS_SECRET_ACCESS_KEY", "envsecret"),
        ("AWS_SESSION_TOKEN", "tok"),
    ]);
    let (c, src) = find_credentials(&both, dir.path(), UUID, &params)
        .unwrap()
        .unwrap();
    assert_eq!(src, CredsSource::Environment);
    assert_eq!(c.session_token.as_deref(), Some("tok"));
}

#[test]
fn none_anywhere_is_none() {
    let dir = tempfile::tempdir().unwrap();
    assert!(
        find_credentials(&env(&[]), dir.path(), UUID, &BTreeMap::new())
            .unwrap()
            .is_none()
    );
}

#[test]
fn malformed_and_encrypted_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let mut params = BTreeMap::new();
    params.insert("s3creds".to_string(), "bm90IHR3byBsaW5lcw==".to_string());
    assert!(matches!(
        find_credentials(&env(&[]), dir.path(), UUID, &params),
        Err(CredsError::Malformed { .. })
    ));
    params.insert("cipher".to_string(), "abc".to_string());
    assert!(matches!(
        find_credentials(&env(&[]), dir.path(), UUID, &params),
        Err(CredsError::Encrypted)
    ));
}

#[test]
fn debug_never_shows_the_secret() {
    let c = S3Credentials {
        access_key_id: "AKID".into(),
        secret_access_key: "hunter2".into(),
        session_token: Some("tok".into()),
    };
    let shown = format!("{c:?}");
    assert!(shown.contains("AKID") && !shown.contains("hunter2") && !shown.contains("tok\""));
}
