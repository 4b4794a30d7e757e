//! The directory remote `d` behind the proxy, reached by the real client
//! over HTTP: `annexproxy p2phttp` serves it by its UUID like a proxied
//! repository (`origin-d` through `origin`'s `annexUrl`).

use annexproxy_tests::observe::worktree_bytes;
use annexproxy_tests::p2phttp::{assert_children_reaped, HttpServer};
use annexproxy_tests::pseudo_random_bytes;

use super::world::*;

#[test]
fn directory_remote_over_http() {
    let World {
        env,
        proxy,
        store,
        client,
        ..
    } = world(&[]);
    let s = HttpServer::serve(env, proxy, &["--wideopen"], &[]);
    let env = &s.env;
    s.point_at_http(&client, "origin");
    let content = pseudo_random_bytes(9, 200_000);
    env.add_file(&client, "f.bin", &content);
    let key = env.key_of(&client, "f.bin");
    env.annex(&client, &["copy", "--to", "origin-d", "f.bin"])
        .ok();
    let dir = hashdir(env, &client, &key);
    let stored = std::fs::read(object_path(&store, &key, &dir)).expect("stored in d");
    assert_eq!(stored, content);

    env.annex(&client, &["drop", "--force", "f.bin"]).ok();
    env.annex(&client, &["get", "--from", "origin-d", "f.bin"])
        .ok();
    assert_eq!(worktree_bytes(&client, "f.bin"), content);
    env.annex(&client, &["drop", "--from", "origin-d", "f.bin"])
        .ok();
    assert!(
        stored_files(&store).is_empty(),
        "{:?}",
        stored_files(&store)
    );
    assert_children_reaped(s.http.pid());
}
