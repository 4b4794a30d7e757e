//! `annexproxy p2phttp` on SIGTERM: no new connection, the transfers in
//! flight finish within `--grace`, and one cut off after it is resumable.

use std::io::{BufReader, Write};
use std::time::Duration;

use annexproxy_tests::http_raw::{self, read_reply, write_head};
use annexproxy_tests::p2phttp::HttpServer;

/// Starts a put of `content` under `key` and sends the first `part` bytes.
fn start_put(s: &HttpServer, key: &str, content: &[u8], part: usize) -> std::net::TcpStream {
    let target = format!("/git-annex/{}/v4/put?key={key}&clientuuid=c1", s.uuid);
    let len = content.len().to_string();
    let mut conn = http_raw::connect(s.addr);
    write_head(
        &mut conn,
        "POST",
        &target,
        &[("X-git-annex-data-length", &len)],
        Some(content.len()),
    );
    conn.write_all(&content[..part]).expect("first part");
    conn.flush().expect("flush");
    conn
}

/// An upload in flight when SIGTERM comes finishes and is stored and
/// logged; meanwhile nothing new is accepted; then the server exits 0.
#[test]
fn sigterm_lets_an_upload_in_flight_finish() {
    let mut s = HttpServer::start(&["--wideopen", "--grace", "20"], &[]);
    let (key, content) = HttpServer::made_up_key(50, 400_000);
    let mut conn = start_put(&s, &key, &content, 100_000);
    std::thread::sleep(Duration::from_millis(300));
    s.http.terminate();
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        std::net::TcpStream::connect(s.addr).is_err(),
        "a new connection was accepted after SIGTERM"
    );
    conn.write_all(&content[100_000..]).expect("the rest");
    let r = read_reply(&mut BufReader::new(conn));
    assert_eq!(r.json()["stored"], true, "{}", r.text());
    let status = s.http.exited_within(Duration::from_secs(10));
    assert!(status.is_some_and(|st| st.success()), "{status:?}");
    assert!(s.env.server_has_content(&s.repo, &key));
    assert!(s.env.server_log_says_present(&s.repo, &key));
    let journal = std::fs::read_dir(s.repo.join(".git/annex/journal"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(journal, 0, "the journal is committed before exit");
}

/// An upload that does not finish within the grace period is cut off;
/// what arrived stays, and a server started again resumes from there.
#[test]
fn an_upload_cut_off_by_shutdown_resumes() {
    let mut s = HttpServer::start(&["--wideopen", "--grace", "1"], &[]);
    let (key, content) = HttpServer::made_up_key(51, 400_000);
    let _conn = start_put(&s, &key, &content, 150_000);
    std::thread::sleep(Duration::from_millis(300));
    s.http.terminate();
    let status = s.http.exited_within(Duration::from_secs(10));
    assert!(
        status.is_some(),
        "still running 10 s after SIGTERM, grace 1 s"
    );
    let HttpServer {
        env, repo, http, ..
    } = s;
    drop(http);
    let s = HttpServer::serve(env, repo, &["--wideopen"], &[]);
    let off = s.post(&format!("v4/putoffset?key={key}&clientuuid=c1"), &[]);
    assert_eq!(off.json(), serde_json::json!({ "offset": 150_000 }));
    let target = format!(
        "/git-annex/{}/v4/put?key={key}&clientuuid=c1&offset=150000",
        s.uuid
    );
    let r = http_raw::request(
        s.addr,
        "POST",
        &target,
        &[("X-git-annex-data-length", "250000")],
        &content[150_000..],
    );
    assert_eq!(r.json()["stored"], true, "{}", r.text());
    assert_eq!(s.get(&format!("v4/key/{key}?clientuuid=c1")).body, content);
}
