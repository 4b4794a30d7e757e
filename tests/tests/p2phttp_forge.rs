//! `annexproxy p2phttp --forge-headers`: a forge or reverse proxy on the
//! same host that authenticated the user hands over its mode for the
//! repository in `X-Annexproxy-Mode` (and the user in
//! `X-Annexproxy-User`); the server believes it only when told to, for
//! the annex API and git alike, from loopback peers or the `--socket`.

use annexproxy_tests::http_raw::{self, Reply};
use annexproxy_tests::p2phttp::HttpServer;
use annexproxy_tests::serve_p2p::Listener;
use annexproxy_tests::{ServerKind, TestEnv};

fn as_forge(s: &HttpServer, path_and_query: &str, mode: Option<&str>, body: &[u8]) -> Reply {
    let target = format!("/git-annex/{}/{path_and_query}", s.uuid);
    let len = body.len().to_string();
    let mut headers = vec![
        ("X-Annexproxy-User", "dora"),
        ("X-git-annex-data-length", len.as_str()),
    ];
    if let Some(m) = mode {
        headers.push(("X-Annexproxy-Mode", m));
    }
    http_raw::request(s.addr, "POST", &target, &headers, body)
}

#[test]
fn the_forge_decides_each_request_mode() {
    let s = HttpServer::start(&["--forge-headers"], &[]);
    let (key, content) = HttpServer::made_up_key(31, 3_000);
    let check = format!("v4/checkpresent?key={key}&clientuuid=c1");
    let put = format!("v4/put?key={key}&clientuuid=c1&offset=0");
    let remove = format!("v4/remove?key={key}&clientuuid=c1");

    // No word from the forge: the server's own auth, which lets nobody in.
    assert_eq!(as_forge(&s, &check, None, b"").status, 401);
    let ro = as_forge(&s, &check, Some("readonly"), b"");
    assert_eq!(ro.json()["present"], false, "{ro:?}");
    assert_eq!(as_forge(&s, &put, Some("readonly"), &content).status, 403);
    assert_eq!(as_forge(&s, &check, Some("none"), b"").status, 403);
    assert_eq!(as_forge(&s, &check, Some("admin"), b"").status, 403);

    let stored = as_forge(&s, &put, Some("appendonly"), &content);
    assert_eq!(stored.json()["stored"], true, "{stored:?}");
    assert_eq!(as_forge(&s, &remove, Some("appendonly"), b"").status, 403);
    let removed = as_forge(&s, &remove, Some("readwrite"), b"");
    assert_eq!(removed.json()["removed"], true, "{removed:?}");

    // git: a read-only user's push is refused, a writer's lands.
    let env = &s.env;
    let url = format!("http://{}/server", s.addr);
    let header = |m: &str| format!("http.extraHeader=X-Annexproxy-Mode: {m}");
    let root = env.root().to_owned();
    env.git(
        &root,
        &["-c", &header("readonly"), "clone", "-q", &url, "fcli"],
    )
    .ok();
    let cli = root.join("fcli");
    env.git(
        &cli,
        &["commit", "-q", "--allow-empty", "-m", "from the forge"],
    )
    .ok();
    let push = |m: &str| {
        env.git(
            &cli,
            &["-c", &header(m), "push", "origin", "HEAD:refs/heads/forge"],
        )
    };
    push("readonly").fails().says("403");
    push("readwrite").ok();
    // Append-only: no deleting a branch.
    env.git(
        &cli,
        &[
            "-c",
            &header("appendonly"),
            "push",
            "origin",
            ":refs/heads/forge",
        ],
    )
    .fails()
    .says("deletion prohibited");
    let head = env.git(&cli, &["rev-parse", "HEAD"]).ok().stdout;
    let there = env.oracle(&s.repo, &["rev-parse", "refs/heads/forge"]).ok();
    assert_eq!(there.stdout, head);
}

/// Without `--forge-headers` the headers are nobody's word.
#[test]
fn forge_headers_are_ignored_unless_trusted() {
    let s = HttpServer::start(&["--unauth-readonly"], &[]);
    let (key, content) = HttpServer::made_up_key(32, 1_000);
    let put = format!("v4/put?key={key}&clientuuid=c1&offset=0");
    assert_eq!(as_forge(&s, &put, Some("readwrite"), &content).status, 403);
    let check = format!("v4/checkpresent?key={key}&clientuuid=c1");
    assert_eq!(as_forge(&s, &check, Some("none"), b"").status, 200);
}

/// `--socket`: the server on a unix socket, whose peers (whoever the
/// socket's permissions let in) the forge headers are believed from.
#[test]
fn forge_on_a_unix_socket() {
    use std::io::{BufReader, Write};
    use std::os::unix::net::UnixStream;

    let env = TestEnv::new(ServerKind::Ours);
    let repo = env.server_nonbare("server");
    env.annexproxy(&repo, &["init", "server"]).ok();
    let uuid = env.server_uuid(&repo);
    let path = env.root().join("p2phttp.sock");
    let path_arg = path.display().to_string();
    let server = Listener::start_command(
        &env,
        &repo,
        "p2phttp",
        &["--socket", &path_arg, "--forge-headers"],
        &[],
    );
    assert_eq!(server.bound, path_arg);
    let (key, content) = HttpServer::made_up_key(33, 2_000);
    let ask = |op: &str, mode: Option<&str>, body: &[u8]| {
        let mut s = UnixStream::connect(&path).expect("connect to the socket");
        let mut head = format!(
            "POST /git-annex/{uuid}/v4/{op}?key={key}&clientuuid=c1&offset=0 HTTP/1.1\r\n\
             Host: localhost\r\nContent-Length: {}\r\nX-git-annex-data-length: {}\r\n",
            body.len(),
            body.len()
        );
        if let Some(m) = mode {
            head.push_str(&format!("X-Annexproxy-Mode: {m}\r\n"));
        }
        head.push_str("Connection: close\r\n\r\n");
        s.write_all(head.as_bytes()).expect("send head");
        // A request refused by its headers is answered, and the connection
        // closed, maybe before the body is sent (a broken pipe here, seen
        // in CI); the answer is read all the same.
        let _ = s.write_all(body);
        http_raw::read_reply(&mut BufReader::new(s))
    };
    assert_eq!(ask("checkpresent", None, b"").status, 401);
    assert_eq!(ask("put", Some("readonly"), &content).status, 403);
    let stored = ask("put", Some("appendonly"), &content);
    assert_eq!(stored.json()["stored"], true, "{stored:?}");
    let present = ask("checkpresent", Some("readonly"), b"");
    assert_eq!(present.json()["present"], true, "{present:?}");
}
