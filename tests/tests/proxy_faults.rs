//! A proxied node that dies in the middle of a transfer (issue 3): the
//! client's command fails naming the node, the proxy keeps serving the
//! other node, nothing is recorded that did not happen, and once the fault
//! is gone a retry succeeds.
//!
//! node1's `annex-shell` is a wrapper around our git-annex-shell that,
//! while a fault file exists, lets only a set number of bytes through one
//! direction and then SIGKILLs the shell: a node dying mid-PUT (it has
//! received part of the body) or mid-GET (it has sent part of it).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use annexproxy_tests::observe::{action_results, fsck_from, whereis, whereis_uuids};
use annexproxy_tests::run::Out;
use annexproxy_tests::standin::sh_quote;
use annexproxy_tests::{pseudo_random_bytes, tools, ServerKind, TestEnv};

/// Big enough that the cut lands inside the DATA body, whatever the
/// protocol lines before it.
const BIG: usize = 6 << 20;
/// Where the fault cuts the stream.
const CUT: usize = 1 << 20;

/// What node1's wrapper does while the fault file exists.
#[derive(Clone, Copy)]
enum Fault {
    /// The node reads only `CUT` bytes of its stdin, then is killed.
    CutInput,
    /// Only `CUT` bytes of the node's stdout get out, then it is killed.
    CutOutput,
    /// The node's shell refuses to start at all.
    Refuse,
}

struct World {
    env: TestEnv,
    proxy: PathBuf,
    nodes: Vec<PathBuf>,
    client: PathBuf,
    /// While this exists, node1's wrapper cuts the stream.
    fault: PathBuf,
}

impl World {
    fn arm(&self) {
        std::fs::write(&self.fault, b"").expect("create the fault file");
    }

    fn disarm(&self) {
        std::fs::remove_file(&self.fault).expect("remove the fault file");
    }

    fn node_uuid(&self, i: usize) -> String {
        self.env.server_uuid(&self.nodes[i])
    }

    /// The UUIDs the proxy's own git-annex branch lists for `key`.
    fn proxy_records(&self, key: &str) -> Vec<String> {
        let peek = self
            .env
            .oracle_peek(&self.proxy, &["whereis", "--json", "--key", key]);
        whereis_uuids(&peek.stdout)
    }
}

/// The wrapper script: runs `shell` with the arguments the proxy gives,
/// unless `fault` exists, in which case it does what `how` says: one
/// direction passes only `CUT` bytes and the shell is then SIGKILLed, or
/// the shell is not run at all.
fn wrapper(shell: &Path, fault: &Path, how: Fault) -> String {
    let (shell, fault) = (
        sh_quote(&shell.display().to_string()),
        sh_quote(&fault.display().to_string()),
    );
    // dd, not `head -c`: head holds small writes in a stdio buffer, and a
    // protocol line stuck there deadlocks the session.
    let pass = format!("dd bs=65536 count={CUT} iflag=count_bytes status=none");
    // Background jobs of a non-interactive sh get /dev/null as stdin
    // unless told otherwise, hence fd 4.
    let faulty = match how {
        Fault::Refuse => {
            return format!(
                "#!/bin/sh\n\
                 if [ ! -e {fault} ]; then exec {shell} \"$@\"; fi\n\
                 echo 'wrapper: out of service' >&2\n\
                 exit 1\n"
            )
        }
        Fault::CutInput => format!(
            "{shell} \"$@\" <\"$fifo\" &\n\
             pid=$!\n\
             # held open so that the shell sees no EOF, only its death\n\
             exec 3>\"$fifo\" 4<&0\n\
             {pass} <&4 >&3\n\
             # let the shell write out what it was given before it dies\n\
             sleep 1\n"
        ),
        Fault::CutOutput => format!(
            "exec 4<&0\n\
             {shell} \"$@\" <&4 >\"$fifo\" &\n\
             pid=$!\n\
             {pass} <\"$fifo\"\n"
        ),
    };
    format!(
        "#!/bin/sh\n\
         if [ ! -e {fault} ]; then exec {shell} \"$@\"; fi\n\
         fifo=$(mktemp -u)\n\
         mkfifo \"$fifo\" || exit 1\n\
         {faulty}\
         kill -9 \"$pid\"\n\
         rm -f \"$fifo\"\n\
         echo 'wrapper: killed the node on purpose' >&2\n\
         exit 137\n"
    )
}

/// Nodes `node1` (behind the faulty wrapper) and `node2`, a proxy for both
/// set up with our `annexproxy`, and a client that cloned the proxy.
fn world(how: Fault) -> World {
    let env = TestEnv::new(ServerKind::Ours);
    let (proxy, nodes) =
        env.ours_proxy_with_nodes(&[("node1", "first node"), ("node2", "second node")]);
    let fault = env.root().join("node1.fault");
    let script = env.root().join("node1-shell");
    std::fs::write(
        &script,
        wrapper(&tools::ours_bin_dir().join("git-annex-shell"), &fault, how),
    )
    .expect("write the wrapper");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))
        .expect("chmod the wrapper");
    env.oracle(
        &proxy,
        &[
            "config",
            "remote.node1.annex-shell",
            &script.display().to_string(),
        ],
    )
    .ok();
    env.annexproxy(&proxy, &["updateproxy"]).ok();
    let client = env.clone_client(&proxy, "client");
    env.annex(&client, &["sync"]).ok();
    World {
        env,
        proxy,
        nodes,
        client,
        fault,
    }
}

/// The offsets node1 answered PUT with, from the client's
/// `--debug --debugfilter=P2P.IO` output.
fn put_from_offsets(stderr: &str) -> Vec<u64> {
    stderr
        .lines()
        .filter_map(|l| l.split_once("P2P < PUT-FROM ").map(|(_, n)| n))
        .filter_map(|n| n.trim().parse().ok())
        .collect()
}

#[track_caller]
fn says_node1(out: &Out) {
    assert!(!out.timed_out, "the client hung:\n{out}");
    assert!(
        out.stderr
            .contains("git-annex-shell: node1: connection lost"),
        "no word of node1:\n{out}"
    );
    assert!(!out.all().contains("panicked"), "{out}");
}

/// Real `git annex fsck` in `dir` (a node or the proxy) finds nothing
/// wrong, after learning what the client synced to the proxy.
fn fsck_server(wd: &World, dir: &Path) {
    if dir != wd.proxy {
        wd.env
            .oracle(
                dir,
                &[
                    "fetch",
                    "-q",
                    &wd.proxy.display().to_string(),
                    "+refs/heads/synced/git-annex:refs/remotes/proxy/git-annex",
                ],
            )
            .ok();
    }
    wd.env.assert_server_fsck_clean(dir);
}

#[test]
fn node_killed_mid_put() {
    let wd = world(Fault::CutInput);
    let (env, client) = (&wd.env, &wd.client);
    let content = pseudo_random_bytes(11, BIG);
    env.add_file(client, "big.bin", &content);
    env.add_file(client, "small.txt", b"for node2\n");
    env.add_file(client, "after.txt", b"after the fault\n");
    let key = env.key_of(client, "big.bin");

    wd.arm();
    let out = env.annex(
        client,
        &[
            "copy",
            "--to",
            "origin-node1",
            "big.bin",
            "after.txt",
            "--json",
        ],
    );
    let out = out.fails();
    says_node1(&out);
    let results = action_results(&out.stdout);
    assert_eq!(results[0].0, "big.bin");
    assert!(!results[0].1, "{out}");
    assert!(!env.server_has_content(&wd.nodes[0], &key));
    // The client retries the PUT on the same session, is told node1 is
    // gone, and gives the session up; whatever it then says of after.txt
    // must be what node1 holds.
    let after = env.key_of(client, "after.txt");
    assert_eq!(
        results[1],
        (
            "after.txt".to_string(),
            env.server_has_content(&wd.nodes[0], &after),
            vec![]
        ),
        "{out}"
    );
    let partial = wd.nodes[0].join("annex/tmp").join(&key);
    let partial_len = std::fs::metadata(&partial).map(|m| m.len()).unwrap_or(0);
    assert!(
        partial_len > 0 && (partial_len as usize) < CUT,
        "node1 should keep a partial object, has {partial_len} bytes"
    );
    assert!(
        !wd.proxy_records(&key).contains(&wd.node_uuid(0)),
        "the proxy recorded a PUT that failed"
    );

    // The same proxy keeps serving node2, and node1 for other requests.
    env.annex(
        client,
        &["copy", "--to", "origin-node2", "small.txt", "big.bin"],
    )
    .ok();
    let small = env.key_of(client, "small.txt");
    assert!(env.server_has_content(&wd.nodes[1], &small));
    assert!(env.server_has_content(&wd.nodes[1], &key));

    env.annex(client, &["sync"]).ok();
    let seen = whereis(env, client);
    assert!(
        !seen["big.bin"].iter().any(|l| l.contains("origin-node1")),
        "{seen:?}"
    );
    assert!(
        !wd.proxy_records(&key).contains(&wd.node_uuid(0)),
        "the proxy recorded a PUT that failed"
    );
    fsck_server(&wd, &wd.nodes[0]);
    fsck_server(&wd, &wd.proxy);

    // Without the fault the copy goes through, resuming from the part the
    // node kept.
    wd.disarm();
    let out = env
        .annex(
            client,
            &[
                "copy",
                "--to",
                "origin-node1",
                "big.bin",
                "after.txt",
                "--debug",
                "--debugfilter=P2P.IO",
            ],
        )
        .ok();
    assert_eq!(put_from_offsets(&out.stderr), vec![partial_len, 0], "{out}");
    assert!(env.server_has_content(&wd.nodes[0], &key));
    assert!(env.server_has_content(&wd.nodes[0], &after));
    assert!(wd.proxy_records(&key).contains(&wd.node_uuid(0)));
    let (ok, results) = fsck_from(env, client, "origin-node1");
    assert!(ok, "{results:?}");
    env.annex(client, &["sync"]).ok();
    for n in &wd.nodes {
        fsck_server(&wd, n);
    }
    fsck_server(&wd, &wd.proxy);
}

#[test]
fn node_killed_mid_get() {
    let wd = world(Fault::CutOutput);
    let (env, client) = (&wd.env, &wd.client);
    let content = pseudo_random_bytes(12, BIG);
    env.add_file(client, "big.bin", &content);
    env.add_file(client, "small.txt", b"from node2\n");
    env.add_file(client, "after.txt", b"after the fault\n");
    env.annex(
        client,
        &["copy", "--to", "origin-node1", "big.bin", "after.txt"],
    )
    .ok();
    env.annex(client, &["copy", "--to", "origin-node2", "small.txt"])
        .ok();
    env.annex(client, &["drop", "big.bin", "small.txt", "after.txt"])
        .ok();
    let key = env.key_of(client, "big.bin");

    wd.arm();
    let out = env.annex(
        client,
        &[
            "get",
            "--from",
            "origin-node1",
            "big.bin",
            "after.txt",
            "--json",
        ],
    );
    let out = out.fails();
    says_node1(&out);
    // The client resumed the GET a few times on fresh sessions, each cut
    // again; after.txt, smaller than the cut, came through one.
    let results = action_results(&out.stdout);
    let outcome: Vec<(&str, bool)> = results.iter().map(|r| (r.0.as_str(), r.1)).collect();
    assert_eq!(outcome, [("big.bin", false), ("after.txt", true)], "{out}");
    assert_eq!(
        std::fs::read(client.join("after.txt")).unwrap_or_default(),
        b"after the fault\n"
    );
    assert!(
        std::fs::read(client.join("big.bin")).is_err(),
        "the client has content it never fully got"
    );
    let out = env.annex(client, &["fsck", "--json"]);
    assert!(out.success(), "client fsck after the failed get:\n{out}");

    // node2 keeps serving; node1 still holds its copy.
    env.annex(client, &["get", "--from", "origin-node2", "small.txt"])
        .ok();
    assert_eq!(
        std::fs::read(client.join("small.txt")).unwrap_or_default(),
        b"from node2\n"
    );
    assert!(env.server_has_content(&wd.nodes[0], &key));

    wd.disarm();
    env.annex(client, &["get", "--from", "origin-node1", "big.bin"])
        .ok();
    assert!(
        std::fs::read(client.join("big.bin")).unwrap_or_default() == content,
        "big.bin changed on its way"
    );
    env.annex(client, &["fsck"]).ok();
    env.annex(client, &["sync"]).ok();
    assert!(wd.proxy_records(&key).contains(&wd.node_uuid(0)));
    for n in &wd.nodes {
        fsck_server(&wd, n);
    }
    fsck_server(&wd, &wd.proxy);
}

/// node1's shell will not start: each request of it fails naming it,
/// node2 is served meanwhile, and nothing is recorded for node1.
#[test]
fn node_refusing_fails_alone() {
    let wd = world(Fault::Refuse);
    let (env, client) = (&wd.env, &wd.client);
    env.add_file(client, "r.txt", b"refused\n");
    env.add_file(client, "kept.txt", b"kept on node1\n");
    env.annex(client, &["copy", "--to", "origin-node1", "kept.txt"])
        .ok();
    env.annex(client, &["drop", "kept.txt"]).ok();

    wd.arm();
    let out = env
        .annex(client, &["copy", "--to", "origin-node1", "r.txt"])
        .fails();
    assert!(!out.timed_out, "{out}");
    // The ERROR naming node1 comes through the protocol, so the client
    // shows it as the reason; the node's own words come on stderr.
    assert!(
        out.stdout
            .contains("node1: connection closed before the P2P session started"),
        "{out}"
    );
    out.says("wrapper: out of service");
    let out = env
        .annex(client, &["get", "--from", "origin-node1", "kept.txt"])
        .fails();
    assert!(!out.timed_out, "{out}");
    assert!(std::fs::read(client.join("kept.txt")).is_err());
    env.annex(client, &["copy", "--to", "origin-node2", "r.txt"])
        .ok();
    let r = env.key_of(client, "r.txt");
    assert!(env.server_has_content(&wd.nodes[1], &r));
    assert!(!env.server_has_content(&wd.nodes[0], &r));
    env.annex(client, &["sync"]).ok();
    let recorded = wd.proxy_records(&r);
    assert!(recorded.contains(&wd.node_uuid(1)), "{recorded:?}");
    assert!(!recorded.contains(&wd.node_uuid(0)), "{recorded:?}");

    wd.disarm();
    env.annex(client, &["get", "--from", "origin-node1", "kept.txt"])
        .ok();
    assert_eq!(
        std::fs::read(client.join("kept.txt")).unwrap_or_default(),
        b"kept on node1\n"
    );
    for n in &wd.nodes {
        fsck_server(&wd, n);
    }
    fsck_server(&wd, &wd.proxy);
}
