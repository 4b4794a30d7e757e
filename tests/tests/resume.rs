//! An upload of a 200 MB file is killed part-way; the server keeps the
//! partial object in `annex/tmp/<key>` and the rerun resumes from its size
//! (`PUT-FROM <partial size>`) instead of starting over.

use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use annexproxy_tests::observe::whereis;
use annexproxy_tests::on_both_servers;
use annexproxy_tests::{pseudo_random_bytes, ServerKind, TestEnv};

const SIZE: usize = 200 * 1000 * 1000;
const CHUNK: usize = 1 << 20;

fn write_big_file(path: &std::path::Path) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).expect("create big file"));
    let mut written = 0;
    let mut seed = 1;
    while written < SIZE {
        let n = CHUNK.min(SIZE - written);
        f.write_all(&pseudo_random_bytes(seed, n))
            .expect("write big file");
        written += n;
        seed += 1;
    }
    f.flush().expect("flush big file");
}

/// The offsets the server answered `PUT` with, from the client's
/// `--debug --debugfilter=P2P.IO` output. The filter also keeps the client
/// from passing `--debug` to the server.
fn put_from_offsets(stderr: &str) -> Vec<u64> {
    stderr
        .lines()
        .filter_map(|l| l.split_once("P2P < PUT-FROM ").map(|(_, n)| n))
        .filter_map(|n| n.trim().parse().ok())
        .collect()
}

fn interrupted_upload_resumes(kind: ServerKind) {
    let env = TestEnv::new(kind);
    let server = env.server_bare("server.git");
    let client = env.clone_client(&server, "client");
    write_big_file(&client.join("big.bin"));
    env.annex(&client, &["add", "big.bin"]).ok();
    env.git(&client, &["commit", "-q", "-m", "big"]).ok();
    env.annex(&client, &["sync"]).ok();
    let key = env.key_of(&client, "big.bin");
    let partial_path = server.join("annex/tmp").join(&key);

    // Run git-annex itself, not `git annex`, so the kill hits the process
    // that holds the connection to the server.
    let mut cmd = env.client_command("git-annex");
    cmd.args(["copy", "--to", "origin", "big.bin"])
        .current_dir(&client)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(env.root().join("killed-copy.stderr")).expect("stderr file"));
    let mut child = cmd.spawn().expect("start git-annex copy");
    let start = Instant::now();
    loop {
        let grown = std::fs::metadata(&partial_path)
            .map(|m| m.len())
            .unwrap_or(0);
        if grown > 0 {
            child.kill().expect("kill the uploading client");
            break;
        }
        if let Some(status) = child.try_wait().expect("poll client") {
            panic!(
                "copy ended ({status}) before any partial upload appeared at {}\n--- ssh log ---\n{}",
                partial_path.display(),
                env.ssh_log_text()
            );
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no upload progress within 120s"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    child.wait().expect("reap killed client");
    env.wait_server_idle();

    let partial = std::fs::metadata(&partial_path)
        .map(|m| m.len())
        .unwrap_or(0);
    assert!(
        partial > 0 && partial < SIZE as u64,
        "after the interruption the server should keep a partial object, has {partial} bytes at {}",
        partial_path.display()
    );
    assert!(
        !env.server_has_content(&server, &key),
        "interrupted upload must not count as stored"
    );
    let calls = env.ssh_calls();
    let last = calls.last().expect("the copy opened a session");
    assert!(last.command.contains("'p2pstdio'"), "{last:?}");
    // The real server exits 0 here: losing the client mid-DATA is not an
    // error it reports through its exit status.
    assert!(last.exit.is_some(), "{last:?}");
    eprintln!(
        "interrupted session: {last:?}\nkilled client's stderr:\n{}",
        std::fs::read_to_string(env.root().join("killed-copy.stderr")).unwrap_or_default()
    );

    let out = env
        .annex(
            &client,
            &[
                "copy",
                "--to",
                "origin",
                "big.bin",
                "--debug",
                "--debugfilter=P2P.IO",
            ],
        )
        .ok();
    let offsets = put_from_offsets(&out.stderr);
    assert_eq!(
        offsets,
        vec![partial],
        "the rerun should resume from the partial object:\n{out}"
    );
    assert!(env.server_has_content(&server, &key));
    assert!(
        !partial_path.exists(),
        "partial object should be gone once stored"
    );
    let seen = whereis(&env, &client);
    assert_eq!(seen["big.bin"].len(), 2, "{seen:?}");
    env.annex(&client, &["sync"]).ok();
    env.assert_server_fsck_clean(&server);
}

on_both_servers!(interrupted_upload_resumes);
