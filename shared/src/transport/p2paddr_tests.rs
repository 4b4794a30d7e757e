use super::*;

fn tor(onion: &str, port: u16) -> P2pAddress {
    P2pAddress::Tor {
        onion: onion.into(),
        port,
    }
}

fn net(n: &str, a: &str) -> P2pAddress {
    P2pAddress::Net {
        net: n.into(),
        address: a.into(),
    }
}

const TOKEN: &str = "d75f2e5e9deb755e75d7f3749de1133f32b7637409b394d1a54351a403a0fd9e66b326b2d17520b4f216b8728c8c8dd5aa926663f40050fbf8c33a3fb84b8fa1";

#[test]
fn parses_and_formats_both_schemes() {
    for (text, addr) in [
        ("tor-annex::abcdefg.onion:5555", tor("abcdefg.onion", 5555)),
        ("p2p-annex::unixsock:srvaddr1", net("unixsock", "srvaddr1")),
        ("p2p-annex::foo:bar:baz", net("foo", "bar:baz")),
    ] {
        assert_eq!(P2pAddress::parse(text), Ok(addr.clone()), "{text}");
        assert_eq!(addr.to_string(), text);
    }
}

#[test]
fn refuses_bad_addresses() {
    for bad in [
        "tor-annex::abc.onion",
        "tor-annex::abc.onion:0",
        "tor-annex::abc.onion:70000",
        "tor-annex::abc.onion:12x",
        "tor-annex:::1234",
        "tor-annex::-x.onion:1234",
        "tor-annex::a b.onion:1234",
        "p2p-annex::",
        "p2p-annex::net",
        "p2p-annex::net:",
        "p2p-annex::ne/t:addr",
        "p2p-annex::-net:addr",
        "p2p-annex::net:-oProxy",
        "p2p-annex::net:a\nb",
        "ssh://host/path",
        "",
    ] {
        assert!(P2pAddress::parse(bad).is_err(), "{bad:?} accepted");
    }
}

#[test]
fn gen_addresses_lines_parse_with_their_token() {
    // What `git annex p2p --gen-addresses` printed.
    let line = format!("p2p-annex::foo:bar:{TOKEN}");
    let (addr, token) = P2pAddress::parse_with_token(&line).expect("parse");
    assert_eq!(addr, net("foo", "bar"));
    assert_eq!(token.as_str(), TOKEN);
    let line = format!("tor-annex::abcdefg.onion:5555:{TOKEN}");
    let (addr, token) = P2pAddress::parse_with_token(&line).expect("parse");
    assert_eq!(addr, tor("abcdefg.onion", 5555));
    assert_eq!(token.as_str(), TOKEN);
    assert!(P2pAddress::parse_with_token("tor-annex::abcdefg.onion:5555").is_err());
}

#[test]
fn trailing_token_is_optional() {
    let (a, t) = P2pAddress::parse_maybe_token("tor-annex::x.onion:80").expect("parse");
    assert_eq!((a, t), (tor("x.onion", 80), None));
    let (a, t) = P2pAddress::parse_maybe_token("tor-annex::x.onion:80:ABC").expect("parse");
    assert_eq!(a, tor("x.onion", 80));
    assert_eq!(t.expect("token").as_str(), "abc");
    // A short last field of a p2p-annex address is part of the address.
    let (a, t) = P2pAddress::parse_maybe_token("p2p-annex::foo:bar:baz").expect("parse");
    assert_eq!((a, t), (net("foo", "bar:baz"), None));
    let (a, t) =
        P2pAddress::parse_maybe_token(&format!("p2p-annex::foo:bar:{TOKEN}")).expect("parse");
    assert_eq!(a, net("foo", "bar"));
    assert_eq!(t.expect("token").as_str(), TOKEN);
    // Nothing but a token after the network name: no address left.
    let (a, t) = P2pAddress::parse_maybe_token(&format!("p2p-annex::foo:{TOKEN}")).expect("parse");
    assert_eq!((a, t), (net("foo", TOKEN), None));
}

#[test]
fn creds_file_names_escape_all_but_letters_and_digits() {
    assert_eq!(tor("abc.onion", 1).creds_file_name(), "abc%2Eonion");
    assert_eq!(
        net("unixsock", "srv/addr-1").creds_file_name(),
        "unixsock%3Asrv%2Faddr%2D1"
    );
}

#[tokio::test]
async fn authenticate_sends_auth_and_takes_the_uuid() {
    let (client, mut server) = tokio::io::duplex(4096);
    let (r, w) = tokio::io::split(client);
    let mut conn = Connection::new(r, w);
    let addr = tor("x.onion", 80);
    let token = AuthToken::parse("abc").expect("token");
    let peer = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut buf = vec![0u8; 10];
        server.read_exact(&mut buf).await.expect("read");
        server
            .write_all(b"AUTH-SUCCESS u-1\n")
            .await
            .expect("write");
        buf
    });
    let uuid = authenticate(&mut conn, &addr, "", &token)
        .await
        .expect("auth");
    assert_eq!(uuid, "u-1");
    assert_eq!(peer.await.expect("join"), b"AUTH  abc\n");
}

#[tokio::test]
async fn authenticate_reports_auth_failure() {
    let (client, mut server) = tokio::io::duplex(4096);
    let (r, w) = tokio::io::split(client);
    let mut conn = Connection::new(r, w);
    let token = AuthToken::parse("abc").expect("token");
    {
        use tokio::io::AsyncWriteExt;
        server.write_all(b"AUTH-FAILURE\n").await.expect("write");
    }
    let err = authenticate(&mut conn, &tor("x.onion", 80), "me", &token)
        .await
        .expect_err("refused");
    assert!(matches!(err, PeerError::AuthFailure { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "tor-annex::x.onion:80 refused our auth token (AUTH-FAILURE)"
    );
    drop(server);
    let err = authenticate(&mut conn, &tor("x.onion", 80), "me", &token)
        .await
        .expect_err("closed");
    assert!(
        matches!(err, PeerError::Closed { .. } | PeerError::Conn { .. }),
        "{err}"
    );
}
