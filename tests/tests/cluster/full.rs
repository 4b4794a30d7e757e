//! A cluster with no room left for a key (issue 11, item 1): every node's
//! `maxsize` refuses a big file. The PUT of that key must fail alone, its
//! reason on the user's terminal, and the same `git annex copy` must go on
//! to store the next file, which fits.

use annexproxy_tests::observe::{action_results, expected_whereis};
use annexproxy_tests::ServerKind;

use crate::world::{cluster, keys_held, node_name, Setup};

/// Every node has a maxsize of 2000 bytes; `a-big.bin` (5000 bytes) fits
/// none, `b-small.txt` fits all. Ours only: git-annex's gateway answers
/// ALREADY-HAVE for a key no node takes (README), which we do not share.
#[test]
fn full_cluster_fails_one_key_and_goes_on() {
    let c = cluster(ServerKind::Ours, Setup::Ours, 2, |_, _| {});
    let (env, client) = (&c.env, &c.client);
    for i in 0..2 {
        let remote = format!("origin-{}", node_name(i));
        env.annex(client, &["maxsize", &remote, "2000"]).ok();
    }
    env.annex(client, &["sync"]).ok();
    let files = vec![
        ("a-big.bin".to_string(), vec![b'x'; 5000]),
        ("b-small.txt".to_string(), b"fits anywhere\n".to_vec()),
    ];
    env.add_files(client, &files);
    let out = env
        .annex(client, &["copy", "--json", "--to", &c.remote(), "."])
        .fails()
        .never_says("Lost connection");
    let results = action_results(&out.stdout);
    let verdicts: Vec<(&str, bool)> = results.iter().map(|r| (r.0.as_str(), r.1)).collect();
    assert_eq!(
        verdicts,
        vec![("a-big.bin", false), ("b-small.txt", true)],
        "{out}"
    );
    // The reason, from the gateway's stderr, reaches the user.
    let big = env.key_of(client, "a-big.bin");
    assert!(
        out.stderr.contains(&format!("{big}: no node can store it"))
            && out.stderr.contains("maxsize"),
        "{out}"
    );
    let small = env.key_of(client, "b-small.txt");
    for n in &c.nodes {
        let held = keys_held(n);
        assert!(held.contains(&small) && !held.contains(&big), "{held:?}");
    }
    env.annex(client, &["sync"]).ok();
    assert_eq!(
        c.client_view(client),
        expected_whereis(&[
            ("a-big.bin", &["here"]),
            ("b-small.txt", &["cluster", "node1", "node2", "here"]),
        ])
    );
    c.assert_whereis_true(client);
    c.fsck_nodes();
}
