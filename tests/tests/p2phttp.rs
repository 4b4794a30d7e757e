//! `annexproxy p2phttp` against the real git-annex client (an
//! `annex+http://` remote it can reach no other way) and against raw
//! HTTP requests, for the replies the client relies on.

use std::io::{BufReader, Write};
use std::time::{Duration, Instant};

use annexproxy_tests::http_raw::{self, closed_within, read_reply, write_head};
use annexproxy_tests::p2phttp::HttpServer;
use annexproxy_tests::pseudo_random_bytes;

#[test]
fn real_client_copy_get_drop_fsck_move() {
    let s = HttpServer::start(&["--wideopen"], &[]);
    let env = &s.env;
    let cli = s.client("cli");
    let big = pseudo_random_bytes(1, 300_000);
    env.add_file(&cli, "big.bin", &big);
    env.add_file(&cli, "small.txt", b"small\n");
    let big_key = env.key_of(&cli, "big.bin");

    env.annex(&cli, &["copy", "--to", "origin", "big.bin", "small.txt"])
        .ok();
    assert!(env.server_has_content(&s.repo, &big_key));
    assert!(env.server_log_says_present(&s.repo, &big_key));

    // Dropping the only local copy locks the server's (lockcontent, then
    // keeplocked on the same connection until the drop is done).
    env.annex(&cli, &["drop", "big.bin"])
        .ok()
        .says("locking origin");
    env.annex(&cli, &["get", "--from", "origin", "big.bin"])
        .ok();
    assert_eq!(std::fs::read(cli.join("big.bin")).expect("read"), big);

    env.annex(&cli, &["fsck", "--fast", "--from", "origin"])
        .ok();
    // Content gone behind the client's back: checkpresent says so.
    let small_key = env.key_of(&cli, "small.txt");
    env.oracle_annex(&s.repo, &["dropkey", "--force", &small_key])
        .ok();
    env.annex(&cli, &["fsck", "--fast", "--from", "origin", "small.txt"])
        .fails();
    env.annex(&cli, &["copy", "--to", "origin", "small.txt"])
        .ok();
    env.annex(&cli, &["drop", "--from", "origin", "small.txt"])
        .ok();
    assert!(!env.server_has_content(&s.repo, &small_key));
    env.annex(&cli, &["move", "--from", "origin", "big.bin"])
        .ok();
    assert!(!env.server_has_content(&s.repo, &big_key));
    env.annex(&cli, &["move", "--to", "origin", "big.bin"]).ok();
    assert!(env.server_has_content(&s.repo, &big_key));
    env.assert_server_fsck_clean(&s.repo);
}

/// An upload cut short keeps what arrived; putoffset says how much, and a
/// put from there completes it.
#[test]
fn an_interrupted_upload_resumes() {
    let s = HttpServer::start(&["--wideopen"], &[]);
    let (key, content) = HttpServer::made_up_key(7, 100_000);

    // Says 100000, sends 50000, half-closes.
    let conn = put_begun(&s, &key, &content[..50_000], 100_000);
    conn.shutdown(std::net::Shutdown::Write)
        .expect("half-close");
    let cut = read_reply(&mut BufReader::new(conn));
    assert_eq!(cut.status, 200, "{cut:?}");
    assert_eq!(cut.json()["stored"], false);

    let off = s.post(&format!("v4/putoffset?key={key}&clientuuid=c1"), &[]);
    assert_eq!(off.json(), serde_json::json!({ "offset": 50_000 }));

    // From a little before what the server has: the overlap is skipped.
    let resume = format!(
        "/git-annex/{}/v4/put?key={key}&clientuuid=c1&offset=40000",
        s.uuid
    );
    let r = http_raw::request(
        s.addr,
        "POST",
        &resume,
        &[("X-git-annex-data-length", "60000")],
        &content[40_000..],
    );
    assert_eq!(
        r.json(),
        serde_json::json!({ "stored": true, "plusuuids": [] })
    );
    let got = s.get(&format!("v4/key/{key}?clientuuid=c1"));
    assert_eq!(got.header("x-git-annex-data-length"), Some("100000"));
    assert_eq!(got.body, content);

    // A resumed GET: the rest from the offset, and a length to match.
    let tail = s.get(&format!("v4/key/{key}?clientuuid=c1&offset=99000"));
    assert_eq!(tail.header("x-git-annex-data-length"), Some("1000"));
    assert_eq!(tail.body, &content[99_000..]);
}

/// Wrong bytes of the full length are not stored, and leave nothing to
/// resume from.
#[test]
fn a_corrupt_upload_is_refused_and_forgotten() {
    let s = HttpServer::start(&["--wideopen"], &[]);
    let (key, mut content) = HttpServer::made_up_key(8, 20_000);
    content[10] ^= 1;
    let target = format!(
        "/git-annex/{}/v4/put?key={key}&clientuuid=c1&offset=0",
        s.uuid
    );
    let r = http_raw::request(
        s.addr,
        "POST",
        &target,
        &[("X-git-annex-data-length", "20000")],
        &content,
    );
    assert_eq!(r.json()["stored"], false);
    let off = s.post(&format!("v4/putoffset?key={key}&clientuuid=c1"), &[]);
    assert_eq!(off.json(), serde_json::json!({ "offset": 0 }));
    let no_length = http_raw::request(s.addr, "POST", &target, &[], &content);
    assert_eq!(no_length.status, 400, "{}", no_length.text());
}

/// The choices where git-annex's server differs from its design: a
/// missing key, an unknown version, removing locked content.
#[test]
fn missing_content_unknown_versions_and_locked_removal() {
    let s = HttpServer::start(&["--wideopen"], &[]);
    let (key, content) = HttpServer::made_up_key(9, 5_000);

    // Missing: 200 and length 0 for the client (no fallback storm), 404
    // for plain HTTP clients.
    let missing = s.get(&format!("v4/key/{key}?clientuuid=c1"));
    assert_eq!(missing.status, 200);
    assert_eq!(missing.header("x-git-annex-data-length"), Some("0"));
    assert!(missing.body.is_empty());
    assert_eq!(s.get(&format!("key/{key}")).status, 404);

    // 404 for versions an op lacks, so the client retries lower.
    assert_eq!(
        s.post("v5/checkpresent?key=x&clientuuid=c1", &[]).status,
        404
    );
    assert_eq!(s.post("v2/gettimestamp?clientuuid=c1", &[]).status, 404);
    let ts = s.post("v3/gettimestamp?clientuuid=c1", &[]);
    assert!(ts.json()["timestamp"].is_u64(), "{}", ts.text());
    let other = http_raw::request(
        s.addr,
        "POST",
        "/git-annex/no-such-uuid/v4/gettimestamp?clientuuid=c1",
        &[],
        b"",
    );
    assert_eq!(other.status, 404);

    let target = format!("/git-annex/{}/v1/put?key={key}&clientuuid=c1", s.uuid);
    let put = http_raw::request(
        s.addr,
        "POST",
        &target,
        &[("X-git-annex-data-length", "5000")],
        &content,
    );
    assert_eq!(
        put.json(),
        serde_json::json!({ "stored": true }),
        "v1: no plusuuids"
    );
    let plain = s.get(&format!("key/{key}"));
    assert_eq!(plain.body, content);

    let lock = s.post(&format!("v4/lockcontent?key={key}&clientuuid=c1"), &[]);
    assert_eq!(lock.json()["locked"], true, "{}", lock.text());
    // Locked: removed false (git-annex: 500), so the client reports a
    // failed drop rather than a server error.
    let rm = s.post(&format!("v4/remove?key={key}&clientuuid=c1"), &[]);
    assert_eq!(rm.status, 200, "{}", rm.text());
    assert_eq!(
        rm.json(),
        serde_json::json!({ "removed": false, "plusuuids": [] })
    );
    let v0 = s.post(&format!("v0/remove?key={key}&clientuuid=c1"), &[]);
    assert_eq!(v0.json(), serde_json::json!({ "removed": false }));
}

/// keeplocked: `{"unlock":true}` lets go at once; a keeplocked connection
/// that breaks off keeps the lock (to its retention time), since the
/// client counts on it until then.
#[test]
fn keeplocked_unlocks_on_request_and_holds_when_broken_off() {
    let s = HttpServer::start(&["--wideopen"], &[]);
    let (key, content) = HttpServer::made_up_key(10, 3_000);
    let put = format!("/git-annex/{}/v4/put?key={key}&clientuuid=c1", s.uuid);
    let stored = http_raw::request(
        s.addr,
        "POST",
        &put,
        &[("X-git-annex-data-length", "3000")],
        &content,
    );
    assert_eq!(stored.json()["stored"], true);

    let lock = |s: &HttpServer| {
        let r = s.post(&format!("v4/lockcontent?key={key}&clientuuid=c1"), &[]);
        r.json()["lockid"].as_str().expect("a lockid").to_owned()
    };
    let keeplocked = |s: &HttpServer, id: &str| {
        let mut conn = http_raw::connect(s.addr);
        let target = format!(
            "/git-annex/{}/v4/keeplocked?lockid={id}&clientuuid=c1",
            s.uuid
        );
        write_head(
            &mut conn,
            "POST",
            &target,
            &[
                ("Transfer-Encoding", "chunked"),
                ("Content-Type", "application/json;charset=utf-8"),
            ],
            None,
        );
        conn.write_all(b"10\r\n{\"unlock\":false}\r\n1\r\n\n\r\n")
            .expect("keep");
        conn
    };
    let removed = |s: &HttpServer| {
        let r = s.post(&format!("v4/remove?key={key}&clientuuid=c1"), &[]);
        r.json()["removed"].as_bool().expect("removed")
    };

    // Broken off: still locked.
    let id = lock(&s);
    let conn = keeplocked(&s, &id);
    std::thread::sleep(Duration::from_millis(200));
    drop(conn);
    std::thread::sleep(Duration::from_millis(300));
    assert!(!removed(&s), "the lock outlives a broken keeplocked");

    // An unknown lock id: locked false at once.
    let r = s.post(
        "v4/keeplocked?lockid=00000000-0000-0000-0000-000000000000",
        &[],
    );
    assert_eq!(r.json(), serde_json::json!({ "locked": false }));

    // The same lock, unlocked properly this time (a new keeplocked on
    // the id that is still held), answers only then.
    let mut conn = keeplocked(&s, &id);
    conn.write_all(b"f\r\n{\"unlock\":true}\r\n1\r\n\n\r\n0\r\n\r\n")
        .expect("unlock");
    let r = read_reply(&mut BufReader::new(conn));
    assert_eq!(r.json(), serde_json::json!({ "locked": false }));
    assert!(removed(&s), "unlocked: the content can go");
}

/// The 401 carries the realm the client's credential helper is asked
/// about; a wrong password is a 401 wherever auth is possible.
#[test]
fn auth_modes_answer_the_status_codes_the_client_relies_on() {
    let users = [
        ("GIT_ANNEX_P2PHTTP_PASSWORD_alice", "secret1"),
        ("GIT_ANNEX_P2PHTTP_PASSWORD_bob", "secret2"),
        ("GIT_ANNEX_P2PHTTP_PERMISSIONS_bob", "readonly"),
    ];
    let s = HttpServer::start(&["--authenv-http", "--unauth-readonly"], &users);
    let (key, _) = HttpServer::made_up_key(11, 10);
    let basic = |up: &str| format!("Basic {}", base64_std(up.as_bytes()));
    let code = |path: &str, auth: Option<&str>| {
        let h: Vec<(&str, &str)> = auth.map(|a| ("Authorization", a)).into_iter().collect();
        s.post(&format!("{path}?key={key}&clientuuid=c1"), &h)
            .status
    };
    let (alice, bob, wrong) = (
        basic("alice:secret1"),
        basic("bob:secret2"),
        basic("alice:x"),
    );
    let table: Vec<(&str, Option<&str>, [u16; 3])> = vec![
        ("anonymous", None, [200, 401, 401]),
        ("alice", Some(&alice), [200, 200, 200]),
        ("bob", Some(&bob), [200, 403, 403]),
        ("wrong password", Some(&wrong), [200, 401, 401]),
    ];
    for (who, auth, want) in table {
        let got = [
            code("v4/checkpresent", auth),
            code("v4/putoffset", auth),
            code("v4/remove", auth),
        ];
        assert_eq!(got, want, "{who}: checkpresent, putoffset, remove");
    }
    let r = s.post(&format!("v4/remove?key={key}&clientuuid=c1"), &[]);
    assert_eq!(
        r.header("www-authenticate"),
        Some("Basic realm=\"git-annex\", charset=\"UTF-8\"")
    );

    // The real client: alice's credentials from a helper work; a wrong
    // password fails the copy with the 401.
    let env = &s.env;
    let cli = s.client("cli");
    env.add_file(&cli, "f.txt", b"for alice\n");
    let helper = |user: &str, pass: &str| {
        format!("!f() {{ test \"$1\" = get && printf 'username={user}\\npassword={pass}\\n'; }}; f")
    };
    env.git(
        &cli,
        &["config", "credential.helper", &helper("alice", "nope")],
    )
    .ok();
    env.annex(&cli, &["copy", "--to", "origin", "f.txt"])
        .fails()
        .says("401");
    env.git(
        &cli,
        &["config", "credential.helper", &helper("alice", "secret1")],
    )
    .ok();
    env.annex(&cli, &["copy", "--to", "origin", "f.txt"]).ok();
    let key = env.key_of(&cli, "f.txt");
    assert!(env.server_has_content(&s.repo, &key));
}

#[test]
fn without_a_mode_everything_is_401() {
    let s = HttpServer::start(&[], &[]);
    let r = s.post("v4/gettimestamp?clientuuid=c1", &[]);
    assert_eq!(r.status, 401);
}

/// A client that never finishes its headers is disconnected at the
/// header deadline, not kept (git-annex keeps such connections open).
#[test]
fn slow_headers_are_cut_off_at_the_deadline() {
    let s = HttpServer::start(&["--wideopen", "--header-timeout", "1"], &[]);
    let mut slow = http_raw::connect(s.addr);
    slow.write_all(b"POST /git-annex/").expect("part of a head");
    // Closed, whenever exactly: the deadline counts from the server's
    // side, and a loaded machine delays this thread by a fair part of it.
    assert!(
        closed_within(&mut slow, Duration::from_secs(5)),
        "still open"
    );
    // Silent from the start: the same.
    let mut silent = http_raw::connect(s.addr);
    assert!(
        closed_within(&mut silent, Duration::from_secs(5)),
        "still open"
    );
    let r = s.post("v3/gettimestamp?clientuuid=c1", &[]);
    assert_eq!(r.status, 200);
}

/// Connections over the cap get a 503 at once; a freed slot serves again.
#[test]
fn connections_over_the_cap_get_503() {
    let s = HttpServer::start(&["--wideopen", "--max-connections", "2"], &[]);
    let held: Vec<_> = (0..2).map(|_| http_raw::connect(s.addr)).collect();
    std::thread::sleep(Duration::from_millis(100));
    let started = Instant::now();
    let r = s.post("v3/gettimestamp?clientuuid=c1", &[]);
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(started.elapsed() < Duration::from_secs(2));
    drop(held);
    std::thread::sleep(Duration::from_millis(100));
    let r = s.post("v3/gettimestamp?clientuuid=c1", &[]);
    assert_eq!(r.status, 200);
}

#[test]
fn options_that_cannot_work_fail_at_start() {
    let env = annexproxy_tests::TestEnv::new(annexproxy_tests::ServerKind::Ours);
    let repo = env.server_nonbare("server");
    env.annexproxy(&repo, &["init", "server"]).ok();
    for (opt, says) in [
        (&["--certfile", "c.pem"][..], "go together"),
        (&["--clusterjobs", "0"], "--clusterjobs must be at least 1"),
        (
            &["--directory", "/no/such/root"],
            "--directory /no/such/root",
        ),
        (
            &[
                "--socket",
                "s",
                "--certfile",
                "c.pem",
                "--privatekeyfile",
                "k.pem",
            ],
            "c.pem",
        ),
    ] {
        let mut args = vec!["p2phttp", "--wideopen", "--port", "0"];
        args.extend_from_slice(opt);
        env.annexproxy(&repo, &args).fails().says(says);
    }
}

fn base64_std(b: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in b.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(char::from(A[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A remote the server proxies for, reached over HTTP by its own UUID:
/// the same relay as over ssh, and every node process reaped after.
#[test]
fn a_proxied_node_over_http() {
    let env = annexproxy_tests::TestEnv::new(annexproxy_tests::ServerKind::Ours);
    let (proxy, nodes) = env.ours_proxy_with_nodes(&[("node1", "first node")]);
    env.annexproxy(&proxy, &["updateproxy"])
        .ok()
        .says("Started proxying for node1");
    // The client learns of the proxied node from the proxy's branch.
    let cli = env.clone_url(&proxy.display().to_string(), "cli");
    env.annex(&cli, &["sync", "-q"]).ok();
    let s = HttpServer::serve(env, proxy, &["--wideopen"], &[]);
    let env = &s.env;
    s.point_at_http(&cli, "origin");
    let content = pseudo_random_bytes(3, 200_000);
    env.add_file(&cli, "n.bin", &content);
    let key = env.key_of(&cli, "n.bin");

    env.annex(&cli, &["copy", "--to", "origin-node1", "n.bin"])
        .ok();
    assert!(env.server_has_content(&nodes[0], &key));
    assert!(!env.server_has_content(&s.repo, &key), "stored on the node");
    env.annex(&cli, &["drop", "n.bin"])
        .ok()
        .says("locking origin-node1");
    env.annex(&cli, &["get", "--from", "origin-node1", "n.bin"])
        .ok();
    assert_eq!(std::fs::read(cli.join("n.bin")).expect("read"), content);
    env.annex(&cli, &["fsck", "--fast", "--from", "origin-node1"])
        .ok();
    env.annex(&cli, &["drop", "--from", "origin-node1", "n.bin"])
        .ok();
    assert!(!env.server_has_content(&nodes[0], &key));

    annexproxy_tests::p2phttp::assert_children_reaped(s.http.pid());
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

/// Readers that stop reading hold their GETs, not the server: with more
/// of them than --jobs, other requests are still answered at once.
#[test]
fn stalled_readers_do_not_block_other_clients() {
    let s = HttpServer::start(&["--wideopen", "-J", "2"], &[]);
    let (big, content) = HttpServer::made_up_key(20, 32 << 20);
    put_raw(&s, &big, &content);
    drop(content);
    let (small, small_content) = HttpServer::made_up_key(21, 1000);
    put_raw(&s, &small, &small_content);

    let stalled: Vec<_> = (0..3)
        .map(|_| {
            let mut c = http_raw::connect(s.addr);
            let target = format!("/git-annex/{}/v4/key/{big}?clientuuid=c1", s.uuid);
            write_head(&mut c, "GET", &target, &[], None);
            c
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    for _ in 0..5 {
        let started = Instant::now();
        let r = s.get(&format!("v4/key/{small}?clientuuid=c1"));
        assert_eq!(r.body, small_content);
        let took = started.elapsed();
        assert!(took < Duration::from_secs(2), "a GET took {took:?}");
    }
    drop(stalled);
}

/// An upload whose body stops mid-way is ended after the idle deadline,
/// and what arrived is kept for a resume.
#[test]
fn a_stalled_upload_is_cut_off_and_resumable() {
    let s = HttpServer::start(&["--wideopen", "--idle-timeout", "1"], &[]);
    let (key, content) = HttpServer::made_up_key(22, 100_000);
    let conn = put_begun(&s, &key, &content[..30_000], 100_000);
    let started = Instant::now();
    let r = read_reply(&mut BufReader::new(conn));
    let took = started.elapsed();
    assert_eq!(r.json()["stored"], false);
    assert!(took < Duration::from_secs(5), "answered after {took:?}");
    let off = s.post(&format!("v4/putoffset?key={key}&clientuuid=c1"), &[]);
    assert_eq!(off.json(), serde_json::json!({ "offset": 30_000 }));
}

/// A keep-alive connection that goes quiet after its request is closed
/// at the idle deadline, so idle clients cannot hold every slot.
#[test]
fn quiet_keep_alive_connections_are_closed() {
    let s = HttpServer::start(&["--wideopen", "--idle-timeout", "1"], &[]);
    let mut conn = http_raw::connect(s.addr);
    let target = format!("/git-annex/{}/v3/gettimestamp?clientuuid=c1", s.uuid);
    write_head(&mut conn, "POST", &target, &[], Some(0));
    let mut reader = BufReader::new(conn.try_clone().expect("clone"));
    assert_eq!(read_reply(&mut reader).status, 200);
    // Closed, whenever exactly: the deadline counts from the server's
    // side, and a loaded machine delays this thread by a fair part of it.
    assert!(
        closed_within(&mut conn, Duration::from_secs(5)),
        "still open"
    );
}

/// With every --jobs slot busy and the queue full, a request gets a 503
/// at once rather than waiting; once the slot frees, it is served.
#[test]
fn a_full_queue_answers_503() {
    let s = HttpServer::start(&["--wideopen", "-J", "1", "--queue", "0"], &[]);
    let (key, content) = HttpServer::made_up_key(23, 10_000);
    // An upload that has not finished its body holds the one slot.
    let mut busy = put_begun(&s, &key, &content[..100], 10_000);
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let r = s.post("v3/gettimestamp?clientuuid=c1", &[]);
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(started.elapsed() < Duration::from_secs(2));
    busy.write_all(&content[100..]).expect("send the rest");
    let done = read_reply(&mut BufReader::new(busy));
    assert_eq!(done.json()["stored"], true);
    let r = s.post("v3/gettimestamp?clientuuid=c1", &[]);
    assert_eq!(r.status, 200);
}

/// A raw v4 put of `key` from offset 0 that announces `len` bytes and has
/// sent only `part` so far: the connection, to go on with or leave.
fn put_begun(s: &HttpServer, key: &str, part: &[u8], len: usize) -> std::net::TcpStream {
    let target = format!(
        "/git-annex/{}/v4/put?key={key}&clientuuid=c1&offset=0",
        s.uuid
    );
    let mut conn = http_raw::connect(s.addr);
    let length = len.to_string();
    write_head(
        &mut conn,
        "POST",
        &target,
        &[("X-git-annex-data-length", &length)],
        Some(len),
    );
    conn.write_all(part).expect("send part of the body");
    conn
}

/// Small answers go out at once (TCP_NODELAY): a GET's last piece (the
/// chunked body's end) written after the rest would otherwise wait for
/// the client's delayed ACK, about 40 ms per request on one keep-alive
/// connection.
#[test]
fn small_gets_on_one_connection_do_not_wait_for_delayed_acks() {
    let s = HttpServer::start(&["--wideopen"], &[]);
    let (key, content) = HttpServer::made_up_key(29, 2048);
    put_raw(&s, &key, &content);
    let target = format!("/git-annex/{}/v4/key/{key}?clientuuid=c1", s.uuid);
    let mut conn = http_raw::connect(s.addr);
    let mut reader = BufReader::new(conn.try_clone().expect("clone"));
    let mut took: Vec<Duration> = (0..30)
        .map(|_| {
            let started = Instant::now();
            write_head(&mut conn, "GET", &target, &[], None);
            let r = read_reply(&mut reader);
            assert_eq!(r.body, content);
            started.elapsed()
        })
        .collect();
    took.sort();
    assert!(took[15] < Duration::from_millis(25), "{took:?}");
}
