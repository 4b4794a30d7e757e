//! `annexproxy p2phttp --directory`: one server for every repository under
//! a root, found by the UUID the client puts in the URL or by the URL's
//! path, including a repository made after the server started.

use std::path::Path;

use annexproxy_tests::http_raw;
use annexproxy_tests::p2phttp::HttpServer;
use annexproxy_tests::{ServerKind, TestEnv};

/// `repo` (at `<root>/team/<name>`) initialised, and `--directory <root>`
/// served wide open.
fn serve_root_of(env: TestEnv, repo: &Path) -> HttpServer {
    env.annexproxy(repo, &["init", "first"]).ok();
    let root = repo
        .parent()
        .and_then(|p| p.parent())
        .expect("the root above team/")
        .display()
        .to_string();
    HttpServer::serve(
        env,
        repo.to_owned(),
        &["--wideopen", "--directory", &root],
        &[],
    )
}

#[test]
fn two_repositories_one_added_after_start() {
    let env = TestEnv::new(ServerKind::Ours);
    let a = env.server_nonbare("team/a");
    let s = serve_root_of(env, &a);
    let env = &s.env;

    let cli_a = s.client("cli-a");
    env.add_file(&cli_a, "a.txt", b"in a\n");
    let key_a = env.key_of(&cli_a, "a.txt");
    env.annex(&cli_a, &["copy", "--to", "origin", "a.txt"]).ok();
    assert!(env.server_has_content(&a, &key_a));

    // Made while the server runs: found on the first request for it.
    let b = env.server_nonbare("b");
    env.annexproxy(&b, &["init", "b"]).ok();
    let uuid_b = env.server_uuid(&b);
    let cli_b = env.clone_url(&b.display().to_string(), "cli-b");
    s.point_at_http(&cli_b, "origin");
    env.add_file(&cli_b, "b.txt", b"in b\n");
    let key_b = env.key_of(&cli_b, "b.txt");
    env.annex(&cli_b, &["copy", "--to", "origin", "b.txt"]).ok();
    assert!(env.server_has_content(&b, &key_b));
    assert!(!env.server_has_content(&a, &key_b));

    // By path: the URL's prefix names the repository.
    let cli_c = env.clone_url(&b.display().to_string(), "cli-c");
    s.point_at_http(&cli_c, "origin");
    // b.txt and its location log, from cli-b (whose origin is HTTP only).
    let from = cli_b.display().to_string();
    let refs = [
        "+HEAD:refs/remotes/clib/head",
        "+refs/heads/git-annex:refs/remotes/clib/git-annex",
    ];
    env.git(&cli_c, &["fetch", "-q", &from, refs[0], refs[1]])
        .ok();
    env.git(&cli_c, &["merge", "-q", "--ff-only", "clib/head"])
        .ok();
    let by_path = format!("annex+http://{}/b/git-annex/", s.addr);
    env.git(&cli_c, &["config", "remote.origin.annexUrl", &by_path])
        .ok();
    env.annex(&cli_c, &["get", "--from", "origin", "b.txt"])
        .ok();
    assert_eq!(std::fs::read(cli_c.join("b.txt")).expect("read"), b"in b\n");

    let check = |prefix: &str, uuid: &str| {
        let target = format!("{prefix}/git-annex/{uuid}/v4/checkpresent?key={key_b}&clientuuid=c1");
        http_raw::request(s.addr, "POST", &target, &[], b"")
    };
    assert_eq!(check("/b", &uuid_b).json()["present"], true);
    // A path and a UUID that disagree, a path that is no repository, an
    // escape from the root, an unknown UUID: no such repository.
    assert_eq!(check("/team/a", &uuid_b).status, 404);
    assert_eq!(check("/team", &uuid_b).status, 404);
    assert_eq!(check("/team/..", &uuid_b).status, 404);
    assert_eq!(check("", "no-such-uuid").status, 404);
}

/// git over HTTP under `--directory`: the URL's path names the repository,
/// and the `annex.url` its `/config` gives leads the client back to it.
#[test]
fn git_clone_by_path_then_annex_get() {
    let env = TestEnv::new(ServerKind::Ours);
    let x = env.server_bare("team/x.git");
    let s = serve_root_of(env, &x);
    let env = &s.env;
    let home = env.root().to_owned();
    env.git(
        &home,
        &[
            "config",
            "--global",
            "annex.security.allowed-ip-addresses",
            "all",
        ],
    )
    .ok();
    let url = format!("http://{}/team/x.git", s.addr);

    let writer = env.clone_url(&url, "writer");
    env.add_file(&writer, "x.txt", b"under a root\n");
    env.annex(&writer, &["copy", "--to", "origin", "x.txt"])
        .ok();
    let branch = env.oracle(&x, &["symbolic-ref", "HEAD"]).ok().stdout;
    let to_branch = format!("HEAD:{}", branch.trim());
    env.git(&writer, &["push", "-q", "origin", &to_branch]).ok();

    let reader = env.clone_url(&url, "reader");
    env.annex(&reader, &["get", "x.txt"]).ok();
    assert_eq!(
        std::fs::read(reader.join("x.txt")).expect("read"),
        b"under a root\n"
    );
    // A path that is no repository under the root.
    let nothing = format!("http://{}/team/y.git", s.addr);
    env.git(&home, &["ls-remote", &nothing]).fails();
}
