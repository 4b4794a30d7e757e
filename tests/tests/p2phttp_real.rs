//! The same raw requests against real `git annex p2phttp` and ours, where
//! we chose to answer what git-annex's design (and its client) needs
//! rather than what its server does. Each difference is one row of the
//! README's compatibility table.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use annexproxy_tests::http_raw::{self, write_head};
use annexproxy_tests::p2phttp::{HttpServer, RealHttpServer};
use annexproxy_tests::{ServerKind, TestEnv};

#[derive(Debug, PartialEq, Eq)]
struct Seen {
    /// `gettimestamp` in v2, which has none.
    missing_version: u16,
    /// `remove` while locked: status and body.
    remove_locked: (u16, String),
    /// Whether `remove` succeeds once a keeplocked connection broke off.
    removed_after_broken_keeplocked: bool,
}

fn observe(addr: SocketAddr, uuid: &str) -> Seen {
    let post = |path: &str| {
        let target = format!("/git-annex/{uuid}/{path}");
        http_raw::request(addr, "POST", &target, &[], b"")
    };
    let (key, content) = HttpServer::made_up_key(30, 4_000);
    let put = format!("/git-annex/{uuid}/v4/put?key={key}&clientuuid=c1&offset=0");
    let r = http_raw::request(
        addr,
        "POST",
        &put,
        &[("X-git-annex-data-length", "4000")],
        &content,
    );
    assert_eq!(r.json()["stored"], true, "{}", r.text());
    let missing_version = post("v2/gettimestamp?clientuuid=c1").status;

    let lock = post(&format!("v4/lockcontent?key={key}&clientuuid=c1"));
    let id = lock.json()["lockid"].as_str().expect("lockid").to_owned();
    let rm = post(&format!("v4/remove?key={key}&clientuuid=c1"));
    let remove_locked = (rm.status, rm.text());

    let mut conn = http_raw::connect(addr);
    let target = format!("/git-annex/{uuid}/v4/keeplocked?lockid={id}&clientuuid=c1");
    write_head(
        &mut conn,
        "POST",
        &target,
        &[("Transfer-Encoding", "chunked")],
        None,
    );
    conn.write_all(b"10\r\n{\"unlock\":false}\r\n1\r\n\n\r\n")
        .expect("keep");
    std::thread::sleep(Duration::from_millis(300));
    drop(conn);
    std::thread::sleep(Duration::from_millis(700));
    let rm = post(&format!("v4/remove?key={key}&clientuuid=c1"));
    Seen {
        missing_version,
        remove_locked,
        removed_after_broken_keeplocked: rm.status == 200 && rm.json()["removed"] == true,
    }
}

#[test]
fn where_we_answer_otherwise_than_git_annex() {
    let env = TestEnv::new(ServerKind::Real);
    let repo = env.server_nonbare("real");
    env.server_annex_init(&repo, "real");
    let uuid = env.server_uuid(&repo);
    let real = RealHttpServer::start(&env, &repo, &["--wideopen"]);
    let theirs = observe(real.addr, &uuid);
    drop(real);

    let ours = HttpServer::start(&["--wideopen"], &[]);
    let mine = observe(ours.addr, &ours.uuid);

    assert_eq!(theirs.missing_version, 400, "git-annex: bad version");
    assert_eq!(mine.missing_version, 404, "ours: the client falls back");
    assert_eq!(theirs.remove_locked.0, 500, "{theirs:?}");
    assert_eq!(
        mine.remove_locked,
        (200, r#"{"plusuuids":[],"removed":false}"#.to_owned())
    );
    assert!(
        theirs.removed_after_broken_keeplocked,
        "git-annex drops the lock"
    );
    assert!(!mine.removed_after_broken_keeplocked, "ours keeps it");
}
