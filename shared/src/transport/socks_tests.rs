use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;

/// A one-connection SOCKS5 proxy: checks the no-auth greeting, records the
/// CONNECT request, answers with `reply`, and on success echoes one line.
async fn fake_proxy(reply: u8) -> (SocketAddr, tokio::task::JoinHandle<(String, u16)>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.expect("accept");
        let mut greeting = [0u8; 2];
        s.read_exact(&mut greeting).await.expect("greeting");
        assert_eq!(greeting[0], 5);
        let mut methods = vec![0u8; usize::from(greeting[1])];
        s.read_exact(&mut methods).await.expect("methods");
        assert!(methods.contains(&0), "no-auth offered");
        s.write_all(&[5, 0]).await.expect("choose");
        let mut head = [0u8; 4];
        s.read_exact(&mut head).await.expect("request");
        assert_eq!(&head[..3], &[5, 1, 0], "CONNECT");
        assert_eq!(head[3], 3, "by domain name, not resolved locally");
        let mut len = [0u8; 1];
        s.read_exact(&mut len).await.expect("len");
        let mut name = vec![0u8; usize::from(len[0])];
        s.read_exact(&mut name).await.expect("name");
        let mut port = [0u8; 2];
        s.read_exact(&mut port).await.expect("port");
        s.write_all(&[5, reply, 0, 1, 0, 0, 0, 0, 0, 0])
            .await
            .expect("reply");
        if reply == 0 {
            let mut line = [0u8; 5];
            s.read_exact(&mut line).await.expect("payload");
            s.write_all(&line).await.expect("echo");
        }
        (
            String::from_utf8(name).expect("utf8"),
            u16::from_be_bytes(port),
        )
    });
    (addr, task)
}

#[tokio::test]
async fn connects_by_domain_name_and_carries_bytes() {
    let (proxy, seen) = fake_proxy(0).await;
    let mut s = connect(proxy, "abcdefg.onion", 5555)
        .await
        .expect("connect");
    s.write_all(b"ping\n").await.expect("write");
    let mut back = [0u8; 5];
    s.read_exact(&mut back).await.expect("read");
    assert_eq!(&back, b"ping\n");
    assert_eq!(
        seen.await.expect("join"),
        ("abcdefg.onion".to_owned(), 5555)
    );
}

#[tokio::test]
async fn a_refusing_proxy_is_refused_not_unreachable() {
    let (proxy, _seen) = fake_proxy(5).await;
    let err = connect(proxy, "x.onion", 1).await.expect_err("refused");
    assert!(matches!(err, SocksError::Refused { .. }), "{err}");
    assert!(err.to_string().contains("x.onion:1"), "{err}");
}

#[tokio::test]
async fn no_proxy_listening_is_unreachable() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let proxy = listener.local_addr().expect("addr");
    drop(listener);
    let err = connect(proxy, "x.onion", 1)
        .await
        .expect_err("nothing there");
    assert!(matches!(err, SocksError::Unreachable { .. }), "{err}");
    assert!(
        err.to_string().contains(SOCKS_ENV),
        "says how to point elsewhere: {err}"
    );
}

#[test]
fn proxy_setting_defaults_to_tor_and_takes_config() {
    if std::env::var_os(SOCKS_ENV).is_some() {
        return; // the environment wins over what is tested here
    }
    assert_eq!(tor_socks_proxy(None).expect("default"), DEFAULT_TOR_SOCKS);
    assert_eq!(DEFAULT_TOR_SOCKS.to_string(), "127.0.0.1:9050");
    assert_eq!(
        tor_socks_proxy(Some("127.0.0.1:1234"))
            .expect("config")
            .to_string(),
        "127.0.0.1:1234"
    );
    assert!(matches!(
        tor_socks_proxy(Some("nonsense")),
        Err(SocksError::BadProxy { .. })
    ));
}
