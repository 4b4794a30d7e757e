//! git over HTTP from `annexproxy p2phttp`: real `git clone` of an
//! `http://` URL, then real `git annex get`, against this one server and
//! nothing else (git http-backend is run by it); pushes authorised by the
//! same users and modes as the annex API.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use annexproxy_tests::http_raw::{self, closed_within, write_head};
use annexproxy_tests::p2phttp::{assert_children_reaped, HttpServer};
use annexproxy_tests::{ServerKind, TestEnv};

/// Answers every credential question with `user`'s.
fn as_user(env: &TestEnv, client: &Path, user: &str, password: &str) {
    let helper = format!(
        "!f() {{ test \"$1\" = get && printf 'username={user}\\npassword={password}\\n'; }}; f"
    );
    env.git(client, &["config", "credential.helper", &helper])
        .ok();
}

#[test]
fn clone_then_annex_get_and_pushes_by_mode() {
    let env = TestEnv::new(ServerKind::Ours);
    let repo = env.server_bare("repo.git");
    env.annexproxy(&repo, &["init", "srv"]).ok();
    let s = HttpServer::serve(
        env,
        repo.clone(),
        &["--authenv-http", "--unauth-readonly"],
        &[
            ("GIT_ANNEX_P2PHTTP_PASSWORD_alice", "pw1"),
            ("GIT_ANNEX_P2PHTTP_PASSWORD_bob", "pw2"),
            ("GIT_ANNEX_P2PHTTP_PERMISSIONS_bob", "readonly"),
        ],
    );
    let env = &s.env;
    let root = env.root().to_owned();
    env.git(
        &root,
        &[
            "config",
            "--global",
            "annex.security.allowed-ip-addresses",
            "all",
        ],
    )
    .ok();
    let url = format!("http://{}/repo.git", s.addr);

    // alice (read-write): clone anonymously, learn annex.url from /config,
    // then add content over the API (the server logs where it is) and push
    // the branch over git.
    let alice = env.clone_url(&url, "alice");
    let annex_url = env.git(&alice, &["config", "remote.origin.annexurl"]).ok();
    assert_eq!(
        annex_url.stdout.trim(),
        format!("annex+http://{}/repo.git/git-annex/", s.addr)
    );
    as_user(env, &alice, "alice", "pw1");
    env.add_file(&alice, "f.txt", b"over http\n");
    let key = env.key_of(&alice, "f.txt");
    env.annex(&alice, &["copy", "--to", "origin", "f.txt"]).ok();
    assert!(env.server_has_content(&repo, &key));
    // To the branch the server's HEAD names, which clones check out.
    let branch = env.oracle(&repo, &["symbolic-ref", "HEAD"]).ok().stdout;
    let branch = branch.trim();
    let to_branch = format!("HEAD:{branch}");
    env.git(&alice, &["push", "-q", "origin", &to_branch]).ok();
    let pushed = env.git(&alice, &["rev-parse", "HEAD"]).ok().stdout;

    // Anyone (--unauth-readonly): git clone, then git annex get.
    let carol = env.clone_url(&url, "carol");
    env.annex(&carol, &["get", "f.txt"]).ok();
    assert_eq!(
        std::fs::read(carol.join("f.txt")).expect("read"),
        b"over http\n"
    );

    // bob (read-only) may fetch but not push.
    let bob = env.clone_url(&url, "bob");
    as_user(env, &bob, "bob", "pw2");
    env.add_file(&bob, "g.txt", b"not to be pushed\n");
    env.git(&bob, &["push", "origin", &to_branch])
        .fails()
        .says("403");
    let server_master = env.oracle(&repo, &["rev-parse", branch]).ok();
    assert_eq!(server_master.stdout, pushed);
    // Every git http-backend it ran was waited for.
    assert_children_reaped(s.http.pid());
}

/// A git client that sends part of its request and stalls holds one of
/// the `--jobs` while git http-backend runs for it (with -J1 and no queue
/// an annex request is then answered 503), and only until the git
/// deadline: then its child is killed and reaped, and the slot is back.
#[test]
fn a_stalled_git_request_holds_a_job_until_its_deadline() {
    let env = TestEnv::new(ServerKind::Ours);
    let repo = env.server_bare("repo.git");
    env.annexproxy(&repo, &["init", "srv"]).ok();
    let args = ["--wideopen", "-J1", "--queue", "0", "--git-timeout", "2"];
    let s = HttpServer::serve(env, repo, &args, &[]);
    let started = Instant::now();
    let mut git = http_raw::connect(s.addr);
    let kind = ("Content-Type", "application/x-git-upload-pack-request");
    write_head(&mut git, "POST", "/git-upload-pack", &[kind], Some(1000));
    git.write_all(b"0032want ").expect("send a part");
    git.flush().expect("flush");
    std::thread::sleep(Duration::from_millis(300));
    let (key, _) = HttpServer::made_up_key(5, 10);
    let checkpresent = &format!("v4/checkpresent?key={key}&clientuuid=c1");
    assert_eq!(s.post(checkpresent, &[]).status, 503, "git holds no job");

    let status = loop {
        let status = s.post(checkpresent, &[]).status;
        if status != 503 || started.elapsed() > Duration::from_secs(10) {
            break status;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status, 200, "the job is still held after 10 s");
    assert!(started.elapsed() >= Duration::from_millis(1500));
    assert!(closed_within(&mut git, Duration::from_secs(5)));
    assert_children_reaped(s.http.pid());
}
