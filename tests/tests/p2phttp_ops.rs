//! `annexproxy p2phttp` under many requests: sessions kept between
//! requests, child processes reaped, the journal committed once idle.

use std::io::{BufReader, Write};
use std::time::{Duration, Instant};

use annexproxy_tests::http_raw::{self, read_reply, write_head};
use annexproxy_tests::p2phttp::{
    assert_children_reaped, children_of, most_children_while, HttpServer,
};

/// Many requests on one keep-alive connection, one after another.
fn keep_alive_posts(s: &HttpServer, server: &str, paths: &[String]) -> Vec<u16> {
    let conn = http_raw::connect(s.addr);
    let mut w = conn.try_clone().expect("clone stream");
    let mut r = BufReader::new(conn);
    let mut statuses = Vec::new();
    for p in paths {
        let target = format!("/git-annex/{server}/{p}");
        write_head(&mut w, "POST", &target, &[], Some(0));
        w.flush().expect("flush");
        statuses.push(read_reply(&mut r).status);
    }
    statuses
}

/// `clients` keep-alive clients at once, each with its share of `n`
/// checkpresent requests to `server`; the statuses and the most children
/// the server had meanwhile.
fn concurrent_checkpresent(
    s: &HttpServer,
    server: &str,
    n: usize,
    clients: usize,
) -> (Vec<u16>, usize) {
    let (key, _) = HttpServer::made_up_key(31, 10);
    let paths: Vec<String> = (0..n)
        .map(|_| format!("v4/checkpresent?key={key}&clientuuid=c1"))
        .collect();
    most_children_while(s.http.pid(), || {
        std::thread::scope(|sc| {
            let hs: Vec<_> = paths
                .chunks(n.div_ceil(clients))
                .map(|c| sc.spawn(|| keep_alive_posts(s, server, c)))
                .collect();
            hs.into_iter()
                .flat_map(|h| h.join().expect("client thread"))
                .collect()
        })
    })
}

/// A proxy with one node, served over HTTP with `args`: the server and
/// the node's UUID.
fn proxy_over_http(args: &[&str]) -> (HttpServer, String) {
    let env = annexproxy_tests::TestEnv::new(annexproxy_tests::ServerKind::Ours);
    let (proxy, nodes) = env.ours_proxy_with_nodes(&[("node1", "first node")]);
    env.annexproxy(&proxy, &["updateproxy"]).ok();
    let node_uuid = env.server_uuid(&nodes[0]);
    (HttpServer::serve(env, proxy, args, &[]), node_uuid)
}

/// 500 checkpresent requests to a proxied node: the node's session is
/// reused across them (a handful of node processes at most while they
/// run, not one per request), and none is left, running or zombie, once
/// the server is idle.
#[test]
fn many_proxied_requests_leave_no_child() {
    let (s, node_uuid) = proxy_over_http(&["--wideopen", "-J", "4"]);
    let (statuses, most) = concurrent_checkpresent(&s, &node_uuid, 500, 4);
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert!(
        most <= 8,
        "{most} children at once: node sessions are not reused"
    );
    assert_children_reaped(s.http.pid());
}

/// `--proxyconnections 1`: however many node sessions ran at once, one
/// stays open for later requests when they end (the pool would keep
/// `--jobs` of them for most of a second otherwise).
#[test]
fn proxyconnections_caps_the_node_sessions_kept() {
    let (s, node_uuid) = proxy_over_http(&["--wideopen", "-J", "4", "--proxyconnections", "1"]);
    let (statuses, most) = concurrent_checkpresent(&s, &node_uuid, 200, 4);
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert!(
        most >= 2,
        "the requests never ran at once ({most} node processes)"
    );
    // Those over the cap are closed at once; the pool would close idle
    // ones only after 750 ms.
    let pid = s.http.pid();
    let deadline = Instant::now() + Duration::from_millis(500);
    while children_of(pid).len() > 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let kept = children_of(pid);
    assert!(kept.len() <= 1, "node sessions kept: {kept:?}");
    assert_children_reaped(pid);
}

/// A stored key's location is in the journal when put answers, and in
/// the git-annex branch about a second after the server goes idle, with
/// one commit for many puts rather than one each.
#[test]
fn puts_share_a_branch_commit() {
    let s = HttpServer::start(&["--wideopen"], &[]);
    let branch_commits = || s.env.branch_commits(&s.repo);
    let before = branch_commits();
    for i in 0..20 {
        let (key, content) = HttpServer::made_up_key(100 + i, 2048);
        let target = format!("/git-annex/{}/v4/put?key={key}&clientuuid=c1", s.uuid);
        let conn = http_raw::connect(s.addr);
        let mut w = conn.try_clone().expect("clone");
        write_head(
            &mut w,
            "POST",
            &target,
            &[("X-git-annex-data-length", "2048")],
            Some(2048),
        );
        w.write_all(&content).expect("body");
        let r = read_reply(&mut BufReader::new(conn));
        assert_eq!(r.json()["stored"], true, "{}", r.text());
        assert!(s.env.server_log_says_present(&s.repo, &key));
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::fs::read_dir(s.repo.join(".git/annex/journal"))
        .map(|d| d.count() > 0)
        .unwrap_or(false)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "journal not committed"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let made = branch_commits() - before;
    assert!(made <= 3, "{made} commits for 20 puts");
}

/// Puts `content` under `key` with one raw request.
fn put_raw(s: &HttpServer, key: &str, content: &[u8]) {
    let target = format!("/git-annex/{}/v4/put?key={key}&clientuuid=c1", s.uuid);
    let len = content.len().to_string();
    let r = http_raw::request(
        s.addr,
        "POST",
        &target,
        &[("X-git-annex-data-length", &len)],
        content,
    );
    assert_eq!(r.json()["stored"], true, "{}", r.text());
}

/// A raw HEAD (the connection closed after it): the head's lines and
/// whatever came after them, which must be nothing.
fn head_raw(s: &HttpServer, target: &str) -> (String, Vec<u8>) {
    use std::io::Read;
    let mut conn = http_raw::connect(s.addr);
    write_head(&mut conn, "HEAD", target, &[("Connection", "close")], None);
    let mut all = Vec::new();
    conn.read_to_end(&mut all).expect("read to EOF");
    let end = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of head")
        + 4;
    let head = String::from_utf8_lossy(&all[..end]).to_ascii_lowercase();
    (head, all[end..].to_vec())
}

/// The unversioned `key` endpoint, as a browser or datalad-fuse uses it:
/// HEAD tells the size, GET has a Content-Length, and one range comes
/// back as 206 (or 416 past the end); several ranges get the whole.
#[test]
fn plain_clients_get_head_length_and_ranges() {
    let s = HttpServer::start(&["--wideopen"], &[]);
    let (key, content) = HttpServer::made_up_key(40, 300_000);
    put_raw(&s, &key, &content);
    let target = format!("/git-annex/{}/key/{key}", s.uuid);

    let (head, rest) = head_raw(&s, &target);
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("content-length: 300000\r\n"), "{head}");
    assert!(head.contains("accept-ranges: bytes\r\n"), "{head}");
    assert!(rest.is_empty());

    let get = |range: Option<&str>| {
        let h: Vec<(&str, &str)> = range.map(|r| ("Range", r)).into_iter().collect();
        http_raw::request(s.addr, "GET", &target, &h, b"")
    };
    let all = get(None);
    assert_eq!(all.status, 200);
    assert_eq!(all.header("content-length"), Some("300000"));
    assert_eq!(all.body, content);

    let part = get(Some("bytes=1000-1999"));
    assert_eq!(part.status, 206, "{part:?}");
    assert_eq!(part.header("content-range"), Some("bytes 1000-1999/300000"));
    assert_eq!(part.body, &content[1000..2000]);
    let tail = get(Some("bytes=-100"));
    assert_eq!(tail.status, 206);
    assert_eq!(tail.body, &content[299_900..]);
    let from = get(Some("bytes=250000-"));
    assert_eq!(from.body, &content[250_000..]);

    let past = get(Some("bytes=300000-"));
    assert_eq!(past.status, 416);
    assert_eq!(past.header("content-range"), Some("bytes */300000"));
    let several = get(Some("bytes=0-1,5-6"));
    assert_eq!(several.status, 200);
    assert_eq!(several.body, content);

    // After ranges cut sessions short, the whole content is still served.
    assert_eq!(get(None).body, content);
}

/// Bodies of more than 64 KiB are written by the HTTP front-end straight
/// from the object file the session hands it: byte-exact from any offset
/// (a resumed get), for any range, across the front-end's read chunks
/// (256 KiB), and the session goes on serving after each.
#[test]
fn bodies_from_the_object_file_are_exact_from_any_offset() {
    let s = HttpServer::start(&["--wideopen"], &[]);
    let size = 700_001;
    let (key, content) = HttpServer::made_up_key(41, size);
    put_raw(&s, &key, &content);
    for offset in [0, 1, 123_457, 262_144, 635_000, 700_000] {
        let got = s.get(&format!("v4/key/{key}?clientuuid=c1&offset={offset}"));
        let want = &content[offset..];
        assert_eq!(
            got.header("x-git-annex-data-length"),
            Some(want.len().to_string().as_str()),
            "from {offset}"
        );
        assert!(got.body == want, "from {offset}: {} bytes", got.body.len());
    }
    let target = format!("/git-annex/{}/key/{key}", s.uuid);
    for (start, end) in [(262_143, 524_289), (1, 699_999), (650_000, 700_000)] {
        let range = format!("bytes={start}-{end}");
        let part = http_raw::request(s.addr, "GET", &target, &[("Range", &range)], b"");
        assert_eq!(part.status, 206, "{range}");
        let last = end.min(size - 1);
        assert!(part.body == content[start..=last], "{range}");
    }
    // v0 has no verdict after the body.
    let v0 = format!("/git-annex/{}/v0/key/{key}?clientuuid=c1", s.uuid);
    assert!(http_raw::request(s.addr, "GET", &v0, &[], b"").body == content);
}

/// Health and metrics, beside the API and without auth: requests by op
/// and status, content bytes each way.
#[test]
fn health_and_metrics_count_requests_and_bytes() {
    let s = HttpServer::start(
        &["--authenv-http"],
        &[("GIT_ANNEX_P2PHTTP_PASSWORD_u", "pw")],
    );
    let health = http_raw::request(s.addr, "GET", "/.well-known/annexproxy/health", &[], b"");
    assert_eq!((health.status, health.text().as_str()), (200, "ok\n"));
    // 401: no credentials.
    let (key, _) = HttpServer::made_up_key(60, 10);
    let denied = s.post(&format!("v4/checkpresent?key={key}&clientuuid=c1"), &[]);
    assert_eq!(denied.status, 401);
    let metrics = http_raw::request(s.addr, "GET", "/.well-known/annexproxy/metrics", &[], b"");
    assert_eq!(metrics.status, 200);
    let text = metrics.text();
    assert!(
        text.contains("annexproxy_http_requests_total{op=\"checkpresent\",status=\"401\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("annexproxy_http_active_transfers 0\n"),
        "{text}"
    );
    assert!(
        text.contains("annexproxy_http_received_bytes_total 0\n"),
        "{text}"
    );
}

/// Bytes in and out are counted as content moves.
#[test]
fn metrics_count_content_bytes() {
    let s = HttpServer::start(&["--wideopen"], &[]);
    let (key, content) = HttpServer::made_up_key(61, 70_000);
    put_raw(&s, &key, &content);
    assert_eq!(s.get(&format!("v4/key/{key}?clientuuid=c1")).body, content);
    let text = http_raw::request(s.addr, "GET", "/.well-known/annexproxy/metrics", &[], b"").text();
    assert!(
        text.contains("annexproxy_http_received_bytes_total 70000\n"),
        "{text}"
    );
    assert!(
        text.contains("annexproxy_http_sent_bytes_total 70000\n"),
        "{text}"
    );
    assert!(
        text.contains("annexproxy_http_requests_total{op=\"put\",status=\"200\"} 1\n"),
        "{text}"
    );
}

/// The real client asks putoffset before each put; that request ends its
/// session, which must not commit the pooled sessions' lines each time:
/// 20 copies make a commit or two, not 20.
#[test]
fn real_client_copies_share_a_branch_commit() {
    let s = HttpServer::start(&["--wideopen"], &[]);
    let cli = s.client("cli");
    for i in 0..20u64 {
        let content = annexproxy_tests::pseudo_random_bytes(200 + i, 2048);
        s.env.add_file(&cli, &format!("f{i}"), &content);
    }
    let count = || s.env.branch_commits(&s.repo);
    let before = count();
    s.env.annex(&cli, &["copy", "--to", "origin", "."]).ok();
    let made = count() - before;
    assert!(made <= 2, "{made} commits for 20 copies");
}
