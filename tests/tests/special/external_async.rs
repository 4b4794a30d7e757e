//! An external program of ours that takes ASYNC (neither rclone's script
//! nor datalad's ora does) behind `annexproxy p2phttp --jobs 4`, proxied
//! and as a cluster's node: the real client's `-J4` copy and get reach
//! one process of it as interleaved jobs, and every transfer's file in
//! the proxy's `annex/tmp/external/` is one of at most as many as
//! transfers in flight.

use std::fs;
use std::path::PathBuf;

use annexproxy_tests::observe::worktree_bytes;
use annexproxy_tests::p2phttp::HttpServer;
use annexproxy_tests::pseudo_random_bytes;
use annexproxy_tests::{ServerKind, TestEnv};

use super::external::{external_world, no_transfer_files_in, Program};
use super::world::*;

/// A directory store that runs each request in a thread of its own. A
/// TRANSFER waits (up to 2 s) for another to be in flight, so that jobs
/// overlap when the host sends them together, then logs (in
/// `STORE.log`) its job, the transfers in flight and the files in the
/// proxy's `annex/tmp/external/`. A key named `*.boom` makes it exit
/// while it holds that job (and any other in flight).
pub const ASYNC_STORE: &str = r#"#!/usr/bin/python3
import os, queue, shutil, sys, threading
lock = threading.Lock()
cond = threading.Condition()
answers, conf, inflight = {}, {}, [0]

def send(line):
    with lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

def ask(job, query):
    q = queue.Queue()
    answers[job] = q
    send("J %s %s" % (job, query))
    return q.get()

def log(line):
    with lock, open(conf["store"] + ".log", "a") as f:
        f.write(line + "\n")

def files():
    tmp = os.path.join(conf["gitdir"], "annex", "tmp", "external")
    return sum(len(names) for _, _, names in os.walk(tmp))

def transfer(job, way, key, path):
    with cond:
        inflight[0] += 1
        cond.notify_all()
        cond.wait_for(lambda: inflight[0] >= 2, timeout=2)
        log("transfer %s %s %s inflight=%d files=%d pid=%d"
            % (job, way, key, inflight[0], files(), os.getpid()))
    if key.endswith(".boom"):
        sys.stderr.write("async store: boom on %s\n" % key)
        sys.stderr.flush()
        os._exit(5)
    stored = os.path.join(conf["store"], key)
    try:
        if way == "STORE":
            shutil.copyfile(path, stored + ".part")
            os.rename(stored + ".part", stored)
        else:
            shutil.copyfile(stored, path)
        said = "TRANSFER-SUCCESS %s %s" % (way, key)
    except OSError as e:
        said = "TRANSFER-FAILURE %s %s %s" % (way, key, e)
    with cond:
        inflight[0] -= 1
    send("J %s %s" % (job, said))

def handle(job, words):
    what = words[0]
    if what == "INITREMOTE":
        send("J %s INITREMOTE-SUCCESS" % job)
    elif what == "PREPARE":
        conf["store"] = ask(job, "GETCONFIG directory")
        conf["gitdir"] = ask(job, "GETGITDIR")
        send("J %s PREPARE-SUCCESS" % job)
    elif what == "CHECKPRESENT":
        there = os.path.exists(os.path.join(conf["store"], words[1]))
        send("J %s CHECKPRESENT-%s %s" % (job, "SUCCESS" if there else "FAILURE", words[1]))
    elif what == "TRANSFER":
        transfer(job, words[1], words[2], " ".join(words[3:]))
    elif what == "REMOVE":
        try:
            os.remove(os.path.join(conf["store"], words[1]))
        except FileNotFoundError:
            pass
        send("J %s REMOVE-SUCCESS %s" % (job, words[1]))
    else:
        send("J %s UNSUPPORTED-REQUEST" % job)

send("VERSION 1")
for line in sys.stdin:
    words = line.rstrip("\n").split(" ")
    if words[0] == "EXTENSIONS":
        send("EXTENSIONS ASYNC")
    elif words[0] == "J" and words[2] == "VALUE":
        answers.pop(words[1]).put(" ".join(words[3:]))
    elif words[0] == "J":
        threading.Thread(target=handle, args=(words[1], words[2:])).start()
"#;

/// One logged transfer.
struct Logged {
    way: String,
    inflight: u32,
    files: u32,
    pid: String,
}

fn logged(wd_store: &std::path::Path) -> Vec<Logged> {
    let text = fs::read_to_string(format!("{}.log", wd_store.display())).unwrap_or_default();
    let field = |l: &str, name: &str| {
        l.split(' ')
            .find_map(|w| w.strip_prefix(name))
            .unwrap_or_default()
            .to_owned()
    };
    text.lines()
        .map(|l| Logged {
            way: l.split(' ').nth(2).unwrap_or_default().to_owned(),
            inflight: field(l, "inflight=").parse().unwrap_or(0),
            files: field(l, "files=").parse().unwrap_or(u32::MAX),
            pid: field(l, "pid="),
        })
        .collect()
}

/// What the program saw of `way`'s transfers: the most in flight at once,
/// the most transfer files at once, and its processes.
fn seen(log: &[Logged], way: &str) -> (u32, u32, usize) {
    let of: Vec<_> = log.iter().filter(|l| l.way == way).collect();
    let pids: std::collections::BTreeSet<_> = of.iter().map(|l| l.pid.clone()).collect();
    let most = |f: fn(&Logged) -> u32| of.iter().map(|l| f(l)).max().unwrap_or(0);
    (most(|l| l.inflight), most(|l| l.files), pids.len())
}

/// The client's `copy -J4 --to REMOTE` of `names`: each stored in
/// `store` by one process of the program, with jobs interleaved; the
/// most transfer files the program saw at once.
fn copy_with_four_jobs(
    env: &TestEnv,
    client: &std::path::Path,
    remote: &str,
    names: &[String],
    store: &std::path::Path,
) -> u32 {
    let mut copy = vec!["copy", "-J4", "--to", remote];
    copy.extend(names.iter().map(String::as_str));
    env.annex(client, &copy).ok();
    for name in names {
        let key = env.key_of(client, name);
        assert!(store.join(&key).is_file(), "{name} stored");
    }
    let (most, files, pids) = seen(&logged(store), "STORE");
    assert_eq!(pids, 1, "one process for every session");
    assert!(most >= 2, "jobs interleaved: at most {most} in flight");
    files
}

/// The ASYNC program of ours as proxied remote `d`, the proxy served by
/// p2phttp with four jobs and the client's `origin` pointed at it: the
/// server, the proxy, the program's store and the client.
fn async_over_http() -> (HttpServer, PathBuf, PathBuf, PathBuf) {
    let World {
        env,
        proxy,
        store,
        client,
        ..
    } = external_world(Setup::Ours, Program::Async, &[]);
    let s = HttpServer::serve(env, proxy.clone(), &["--wideopen", "--jobs", "4"], &[]);
    s.point_at_http(&client, "origin");
    (s, proxy, store, client)
}

#[test]
fn async_program_serves_p2phttp_jobs_from_one_process() {
    let (s, proxy, store, client) = async_over_http();
    let env = &s.env;
    let names: Vec<String> = (0..6).map(|i| format!("f{i}.bin")).collect();
    let contents: Vec<Vec<u8>> = (0..6)
        .map(|i| pseudo_random_bytes(40 + i, 150_000))
        .collect();
    for (name, bytes) in names.iter().zip(&contents) {
        env.add_file(&client, name, bytes);
    }
    let files = copy_with_four_jobs(env, &client, "origin-d", &names, &store);
    // One file per transfer: never more than the client's four jobs.
    assert!((1..=4).contains(&files), "{files} transfer files at once");
    no_transfer_files_in(&proxy);
    // Real git-annex in the proxy speaks ASYNC to the same program and
    // reads back what we stored (so the program is git-annex's protocol,
    // not only ours).
    env.wait_server_idle();
    let fsck = env.oracle_annex(&proxy, &["fsck", "-J2", "--from", "d", "--all"]);
    assert!(fsck.success() && !fsck.all().contains("failed"), "{fsck}");
    // What follows is our proxy's alone.
    fs::remove_file(format!("{}.log", store.display())).expect("log");

    let mut drop = vec!["drop", "--force"];
    drop.extend(names.iter().map(String::as_str));
    env.annex(&client, &drop).ok();
    let mut get = vec!["get", "-J4", "--from", "origin-d"];
    get.extend(names.iter().map(String::as_str));
    env.annex(&client, &get).ok();
    for (name, bytes) in names.iter().zip(&contents) {
        assert_eq!(&worktree_bytes(&client, name), bytes, "{name}");
    }
    let (most, files, pids) = seen(&logged(&store), "RETRIEVE");
    assert_eq!(pids, 1);
    assert!(
        most >= 2,
        "retrievals interleaved: at most {most} in flight"
    );
    assert!(files <= 4, "{files} transfer files at once");
    no_transfer_files_in(&proxy);
}

/// The program exits while it holds one or more jobs: those keys fail,
/// nothing is left in `annex/tmp/external/`, and the same copy run again
/// (without the key that kills it) stores what is left with a new
/// process.
#[test]
fn async_program_dying_fails_its_jobs_in_flight() {
    let (s, proxy, store, client) = async_over_http();
    let env = &s.env;
    let names = ["a.bin", "b.bin", "c.bin", "x.boom"];
    for name in names {
        env.add_file(&client, name, format!("content of {name}\n").as_bytes());
    }
    let mut copy = vec!["copy", "-J4", "--to", "origin-d"];
    copy.extend(names);
    let out = env.annex(&client, &copy);
    // Over HTTP the client hears no reason (the server logs it); the
    // unit tests of `jobs` check the reason each job gets.
    assert!(!out.success(), "{out}");
    assert!(
        out.all().contains("failed to send content to remote"),
        "{out}"
    );
    no_transfer_files_in(&proxy);
    let again = env.annex(&client, &copy[..copy.len() - 1]);
    assert!(again.success(), "{again}");
    // A request after the crash starts the program again.
    env.add_file(&client, "y.bin", b"after the crash\n");
    env.annex(&client, &["copy", "--to", "origin-d", "y.bin"])
        .ok();
    for name in ["a.bin", "b.bin", "c.bin", "y.bin"] {
        let key = env.key_of(&client, name);
        assert!(store.join(&key).is_file(), "{name} stored");
    }
    let pids: std::collections::BTreeSet<_> = logged(&store).into_iter().map(|l| l.pid).collect();
    assert!(pids.len() >= 2, "started again: {pids:?}");
    no_transfer_files_in(&proxy);
}

/// The same program as the only node of a cluster the gateway serves
/// over p2phttp: the gateway's fan-out for the client's four jobs reaches
/// one process of it, as interleaved jobs.
#[test]
fn async_program_as_a_cluster_node_serves_the_gateways_jobs() {
    let env = TestEnv::new(ServerKind::Ours);
    let gateway = env.server_bare("gateway.git");
    env.annexproxy(&gateway, &["init", "gateway"]).ok();
    env.annexproxy(&gateway, &["initcluster", "mycl"]).ok();
    let store = env.srv.join("astore");
    let mut args = vec!["initremote", "d", "type=external", "encryption=none"];
    let params = super::external::install_async(&env, &store);
    args.extend(params.iter().map(String::as_str));
    env.annexproxy(&gateway, &args).ok();
    env.oracle(&gateway, &["config", "remote.d.annex-cluster-node", "mycl"])
        .ok();
    env.annexproxy(&gateway, &["updatecluster"])
        .ok()
        .says("Added node d to cluster: mycl");
    let client = env.clone_client(&gateway, "client");
    env.annex(&client, &["sync"]).ok();
    let s = HttpServer::serve(env, gateway, &["--wideopen", "--jobs", "4"], &[]);
    let env = &s.env;
    s.point_at_http(&client, "origin");
    let names: Vec<String> = (0..6).map(|i| format!("g{i}.bin")).collect();
    for (i, name) in names.iter().enumerate() {
        env.add_file(&client, name, &pseudo_random_bytes(60 + i as u64, 100_000));
    }
    let files = copy_with_four_jobs(env, &client, "origin-mycl", &names, &store);
    assert!(files <= 4, "{files} transfer files at once");
}
