use super::*;

const KEY: &str =
    "SHA256E-s3--ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad.txt";

fn post(path: &str, q: &str) -> Result<Endpoint, RouteError> {
    parse(&Method::POST, path, Some(q))
}

#[test]
fn checkpresent_with_plain_and_base64_values() {
    let b64 = base64::engine::general_purpose::URL_SAFE.encode(KEY);
    let e = post(
        "/git-annex/srv-uuid/v4/checkpresent",
        &format!("key=[{b64}]&clientuuid=cli&bypass=b1&bypass=%5BYjI%3D%5D"),
    )
    .unwrap();
    assert_eq!(e.server, "srv-uuid");
    assert_eq!(e.version, Some(4));
    assert_eq!(e.client.as_deref(), Some("cli"));
    assert_eq!(e.bypass, vec!["b1".to_owned(), "b2".to_owned()]);
    assert_eq!(e.op, Op::CheckPresent(Key::parse(KEY).unwrap()));
}

#[test]
fn unknown_versions_are_404_so_the_client_falls_back() {
    let q = format!("key={KEY}&clientuuid=c");
    for (path, q) in [
        ("/git-annex/u/v5/checkpresent", q.as_str()),
        ("/git-annex/u/v2/gettimestamp", "clientuuid=c"),
        ("/git-annex/u/v0/putoffset", q.as_str()),
        ("/git-annex/u/vx/remove", q.as_str()),
        ("/git-annex/u/v4/nosuchop", q.as_str()),
    ] {
        assert_eq!(post(path, q), Err(RouteError::NotFound), "{path}");
    }
}

#[test]
fn clientuuid_is_required_except_for_keeplocked_and_the_plain_key() {
    let e = post("/git-annex/u/v4/checkpresent", &format!("key={KEY}"));
    assert_eq!(
        e,
        Err(RouteError::Bad(
            "Query parameter clientuuid is required".into()
        ))
    );
    let e = post("/git-annex/u/v4/remove", &format!("key={KEY}&clientuuid="));
    assert!(matches!(e, Err(RouteError::Bad(m)) if m.contains("empty UUID")));
    let e = post("/git-annex/u/v3/keeplocked", "lockid=abc").unwrap();
    assert_eq!(e.op, Op::KeepLocked("abc".into()));
    let e = parse(
        &Method::HEAD,
        &format!("/prefix/git-annex/u/key/{KEY}"),
        None,
    )
    .unwrap();
    assert_eq!(e.version, None);
    assert!(matches!(e.op, Op::Get { head: true, .. }));
}

#[test]
fn put_parameters() {
    let e = post(
        "/git-annex/u/v4/put",
        &format!(
            "key={KEY}&clientuuid=c&associatedfile=small%2Fs002&offset=60000&data-present=true"
        ),
    )
    .unwrap();
    assert_eq!(
        e.op,
        Op::Put {
            key: Key::parse(KEY).unwrap(),
            file: Some("small/s002".into()),
            offset: 60000,
            data_present: true,
        }
    );
    assert_eq!(e.op.class(), Class::Write);
    // data-present exists in v4 only.
    let e = post(
        "/git-annex/u/v3/put",
        &format!("key={KEY}&clientuuid=c&data-present=true"),
    );
    assert!(matches!(
        e.unwrap().op,
        Op::Put {
            data_present: false,
            ..
        }
    ));
}

#[test]
fn bad_keys_and_methods() {
    let e = post("/git-annex/u/v4/remove", "key=notakey&clientuuid=c");
    assert_eq!(
        e,
        Err(RouteError::Bad(
            "Error parsing query parameter key failed: key parse error".into()
        ))
    );
    let e = parse(
        &Method::GET,
        "/git-annex/u/v4/remove",
        Some("key=x&clientuuid=c"),
    );
    assert_eq!(e, Err(RouteError::Method));
    assert_eq!(post("/other/path", ""), Err(RouteError::NotFound));
}
