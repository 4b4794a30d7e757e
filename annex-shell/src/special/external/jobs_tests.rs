//! A remote's program shared by concurrent requests: ASYNC programs
//! (python, for the threads) that check they get their jobs interleaved,
//! and ones that misbehave with jobs in flight.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use super::*;
use crate::special::external::pool::{shared, Program, ProgramId};
use crate::special::external::protocol::{Reply, Request};

/// The common part of the test programs: VERSION, ASYNC taken, PREPARE
/// answered (after a GETCONFIG of its own job), its pid and each line it
/// gets logged in `log`, and `on_line(job, words)` for every other line.
const PRELUDE: &str = r#"#!/usr/bin/python3
import os, sys, threading, time
log = open(sys.argv[0] + ".log", "a", buffering=1)
log.write("pid %d\n" % os.getpid())
lock = threading.Lock()
def send(line):
    with lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
send("VERSION 1")
sys.stdin.readline()
send("EXTENSIONS INFO ASYNC")
"#;

const MAIN: &str = r#"
for line in sys.stdin:
    words = line.split()
    log.write(line)
    if words[:1] != ["J"]:
        send("ERROR untagged " + line.strip())
        continue
    job = words[1]
    if words[2] == "PREPARE":
        send("J %s GETCONFIG greeting" % job)
    elif words[2] == "VALUE" and words[3:] == ["hi"] and job == "1":
        send("J 1 PREPARE-SUCCESS")
    else:
        on_line(job, words[2:])
"#;

fn program(dir: &Path, name: &str, body: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, format!("{PRELUDE}{body}{MAIN}")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.display().to_string()
}

fn start(dir: &Path, program: String, jobs: usize, reply: Duration) -> Arc<Program> {
    shared(ProgramId {
        program,
        cwd: dir.to_owned(),
        git_dir: dir.to_owned(),
        remote: "ext".into(),
        uuid: "u-1".into(),
        params: crate::special::config::Params::from([("greeting".into(), "hi".into())]),
        reply,
        jobs,
    })
}

async fn checkpresent(p: &Program, key: &str) -> Result<bool, ExternalError> {
    let want = key.to_owned();
    p.request(Request::CheckPresent(key.into()), move |r| match r {
        Reply::CheckPresentSuccess(k) if k == want => Some(Ok(true)),
        Reply::CheckPresentFailure(k) if k == want => Some(Ok(false)),
        _ => None,
    })
    .await
}

fn key(n: usize) -> String {
    format!("SHA256E-s{n}--k{n}")
}

/// What the program logged: its lines, and its pids.
fn logged(program: &str) -> (Vec<String>, usize) {
    let text = std::fs::read_to_string(format!("{program}.log")).unwrap_or_default();
    let pids = text.lines().filter(|l| l.starts_with("pid ")).count();
    (text.lines().map(str::to_owned).collect(), pids)
}

/// Holds every CHECKPRESENT until three are in flight, then asks each
/// job's own GETCONFIG and answers them last first: only a host that
/// runs the jobs together, and routes each line to its job, gets through.
const INTERLEAVED: &str = r#"
held = []
def on_line(job, words):
    if words[0] == "CHECKPRESENT":
        held.append((job, words[1]))
        if len(held) == 3:
            for j, k in reversed(held):
                send("J %s GETCONFIG greeting" % j)
    elif words[0] == "VALUE":
        k = [k for j, k in held if j == job][0]
        send("J %s CHECKPRESENT-%s %s" % (job, "SUCCESS" if words[1:] == ["hi"] else "FAILURE", k))
"#;

#[tokio::test]
async fn one_async_program_serves_concurrent_requests_as_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let path = program(dir.path(), "interleaved", INTERLEAVED);
    let p = start(dir.path(), path.clone(), 8, Duration::from_secs(20));
    // Another user of the same remote shares the program.
    let same = start(dir.path(), path.clone(), 8, Duration::from_secs(20));
    assert!(Arc::ptr_eq(&p, &same));
    let (k1, k2, k3) = (key(1), key(2), key(3));
    let (a, b, c) = tokio::join!(
        checkpresent(&p, &k1),
        checkpresent(&same, &k2),
        checkpresent(&p, &k3)
    );
    assert!(a.unwrap() && b.unwrap() && c.unwrap());
    let (lines, pids) = logged(&path);
    assert_eq!(pids, 1, "one process: {lines:?}");
    let prepares = lines.iter().filter(|l| l.ends_with(" PREPARE")).count();
    assert_eq!(prepares, 1, "{lines:?}");
    let jobs: std::collections::BTreeSet<_> = lines
        .iter()
        .filter(|l| l.contains("CHECKPRESENT"))
        .map(|l| l.split(' ').nth(1).unwrap().to_owned())
        .collect();
    assert_eq!(jobs.len(), 3, "a job number each: {lines:?}");
}

/// Answers each CHECKPRESENT a little later, logging how many it holds.
const SLOW: &str = r#"
inflight = [0]
def answer(job, k):
    time.sleep(0.3)
    with lock:
        inflight[0] -= 1
    send("J %s CHECKPRESENT-FAILURE %s" % (job, k))
def on_line(job, words):
    if words[0] == "CHECKPRESENT":
        with lock:
            inflight[0] += 1
            log.write("inflight %d\n" % inflight[0])
        threading.Thread(target=answer, args=(job, words[1])).start()
"#;

#[tokio::test]
async fn at_most_the_cap_of_jobs_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = program(dir.path(), "slow", SLOW);
    let p = start(dir.path(), path.clone(), 2, Duration::from_secs(20));
    let keys: Vec<String> = (1..=5).map(key).collect();
    let all = futures_util::future::join_all(keys.iter().map(|k| checkpresent(&p, k))).await;
    assert!(all.into_iter().all(|r| r.is_ok_and(|present| !present)));
    let (lines, pids) = logged(&path);
    assert_eq!(pids, 1);
    let most = lines
        .iter()
        .filter_map(|l| l.strip_prefix("inflight "))
        .map(|n| n.parse::<u32>().unwrap())
        .max();
    assert_eq!(most, Some(2), "{lines:?}");
}

/// Misbehaves once two CHECKPRESENTs are in flight, in the way named by
/// the program's name; a third CHECKPRESENT (the program started again)
/// is answered.
const WAYWARD: &str = r#"
import os.path
held = []
again = os.path.exists(sys.argv[0] + ".again")
def on_line(job, words):
    if words[0] != "CHECKPRESENT":
        return
    if again:
        send("J %s CHECKPRESENT-FAILURE %s" % (job, words[1]))
        return
    held.append(job)
    if len(held) < 2:
        return
    open(sys.argv[0] + ".again", "w").close()
    how = os.path.basename(sys.argv[0])
    if how == "stranger":
        send("J 99 CHECKPRESENT-SUCCESS %s" % words[1])
    elif how == "dies":
        sys.stderr.write("dies: out of luck\n")
        sys.stderr.flush()
        os._exit(3)
    elif how == "error":
        send("ERROR all is lost")
    elif how == "untagged":
        send("CHECKPRESENT-SUCCESS %s" % words[1])
"#;

#[tokio::test]
async fn a_misbehaving_async_program_fails_every_job_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("stranger", "answered for job 99, which it was not given"),
        ("dies", "exited (its last words: dies: out of luck)"),
        ("error", "external special remote error: all is lost"),
        ("untagged", "with no job number"),
        ("silent", "did not answer"),
    ];
    for (name, says) in cases {
        let path = program(dir.path(), name, WAYWARD);
        let p = start(dir.path(), path.clone(), 8, Duration::from_secs(2));
        let (k1, k2) = (key(1), key(2));
        let (a, b) = tokio::join!(checkpresent(&p, &k1), checkpresent(&p, &k2));
        for e in [a.unwrap_err(), b.unwrap_err()] {
            assert!(e.to_string().contains(says), "{name}: {e}");
        }
        // The next request starts the program again.
        assert!(!checkpresent(&p, &key(3)).await.unwrap(), "{name}");
        assert_eq!(logged(&path).1, 2, "{name}: started again");
    }
}

/// A request given up before its answer leaves its job to be drained:
/// the program's late answer does not end it, and the next request
/// shares the same process.
const LATE: &str = r#"
def late(job, k):
    time.sleep(1)
    send("J %s CHECKPRESENT-SUCCESS %s" % (job, k))
def on_line(job, words):
    if words[0] == "CHECKPRESENT" and words[1].endswith("k1"):
        threading.Thread(target=late, args=(job, words[1])).start()
    elif words[0] == "CHECKPRESENT":
        send("J %s CHECKPRESENT-FAILURE %s" % (job, words[1]))
"#;

#[tokio::test]
async fn a_job_given_up_is_drained_and_the_program_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = program(dir.path(), "late", LATE);
    let p = start(dir.path(), path.clone(), 8, Duration::from_secs(10));
    // Started and prepared, so that the request given up is a job.
    assert!(!checkpresent(&p, &key(2)).await.unwrap());
    let k1 = key(1);
    let gave_up = tokio::time::timeout(Duration::from_millis(200), checkpresent(&p, &k1)).await;
    assert!(gave_up.is_err());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!checkpresent(&p, &key(2)).await.unwrap());
    assert_eq!(logged(&path).1, 1, "the same process");
}

/// A program without ASYNC runs once per request in flight.
#[tokio::test]
async fn a_program_without_async_runs_once_per_request_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plain");
    std::fs::write(
        &path,
        "#!/bin/sh\necho VERSION 1\necho pid >> \"$0.log\"\nwhile read -r line; do\nset -- $line\n\
         case \"$1\" in\nEXTENSIONS) echo EXTENSIONS ;;\nPREPARE) echo PREPARE-SUCCESS ;;\n\
         CHECKPRESENT) sleep 0.5; echo CHECKPRESENT-FAILURE \"$2\" ;;\n\
         *) echo UNSUPPORTED-REQUEST ;;\nesac\ndone\n",
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    let p = start(
        dir.path(),
        path.display().to_string(),
        8,
        Duration::from_secs(10),
    );
    let (k1, k2) = (key(1), key(2));
    let (a, b) = tokio::join!(checkpresent(&p, &k1), checkpresent(&p, &k2));
    assert!(!a.unwrap() && !b.unwrap());
    // Kept for the next request: no third process.
    assert!(!checkpresent(&p, &key(3)).await.unwrap());
    let log = std::fs::read_to_string(format!("{}.log", path.display())).unwrap();
    assert_eq!(log.lines().count(), 2, "{log}");
}

/// A request that waits for one of `annexproxy.externaljobs`'s slots
/// waits no longer than the program may stay silent: one held by a
/// program that keeps talking (DEBUG) without ending its request does not
/// hold the others' requests for ever.
#[tokio::test]
async fn a_request_waiting_for_a_slot_has_a_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chatty");
    std::fs::write(
        &path,
        "#!/bin/sh\necho VERSION 1\nwhile read -r line; do\nset -- $line\n\
         case \"$1\" in\nEXTENSIONS) echo EXTENSIONS ;;\nPREPARE) echo PREPARE-SUCCESS ;;\n\
         CHECKPRESENT) for i in 1 2 3 4 5 6 7 8; do sleep 0.4; echo DEBUG checking; done;\
          echo CHECKPRESENT-FAILURE \"$2\" ;;\n\
         *) echo UNSUPPORTED-REQUEST ;;\nesac\ndone\n",
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    let p = start(
        dir.path(),
        path.display().to_string(),
        1,
        Duration::from_secs(1),
    );
    let (k1, k2) = (key(1), key(2));
    let waiting = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        tokio::time::timeout(Duration::from_millis(2500), checkpresent(&p, &k2)).await
    };
    let (held, waited) = tokio::join!(checkpresent(&p, &k1), waiting);
    assert!(!held.unwrap(), "the chatty request itself is not cut off");
    match waited {
        Ok(Err(ExternalError::Busy { jobs: 1, .. })) => {}
        other => panic!("the waiting request: {other:?}"),
    }
}
