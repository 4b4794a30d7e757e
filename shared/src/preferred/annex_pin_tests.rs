//! Our evaluation against the real git-annex's `matchexpression`, in a
//! scratch repository. These run the binary the project is judged by and
//! fail (not skip) when it is missing.

use std::collections::BTreeSet;
use std::path::Path;

use crate::branch::Branch;
use crate::key::Key;

use super::*;

/// The real git-annex, as a program name for [`run`]; the test fails when
/// it is missing.
fn git_annex() -> String {
    testkit::real_git_annex()
        .to_str()
        .expect("the venv path is UTF-8")
        .to_owned()
}

fn run(dir: &Path, program: &str, args: &[&str]) -> std::process::Output {
    testkit::command(program, dir)
        .args(args)
        .env("HOME", dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@t")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@t")
        .output()
        .expect("run git-annex")
}

fn ok(dir: &Path, program: &str, args: &[&str]) {
    let out = run(dir, program, args);
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn scratch() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    ok(dir.path(), "git", &["init", "-q"]);
    ok(dir.path(), &git_annex(), &["init", "-q", "here"]);
    dir
}

/// What the real git-annex says, for many (expression, args) at once on
/// a few threads (each run costs ~0.1 s).
fn real_answers(dir: &Path, cases: &[(String, Vec<String>)]) -> Vec<bool> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let answers = std::sync::Mutex::new(vec![None; cases.len()]);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some((expr, args)) = cases.get(i) else {
                    break;
                };
                let mut argv = vec!["matchexpression", expr.as_str()];
                argv.extend(args.iter().map(String::as_str));
                let out = run(dir, &git_annex(), &argv);
                let v = match out.status.code() {
                    Some(0) => true,
                    Some(1) => false,
                    _ => panic!("{argv:?}: {}", String::from_utf8_lossy(&out.stderr)),
                };
                answers.lock().expect("no panic while held")[i] = Some(v);
            });
        }
    });
    answers
        .into_inner()
        .expect("threads done")
        .into_iter()
        .map(|a| a.expect("every case answered"))
        .collect()
}

fn key(size: u64, n: u32) -> Key {
    Key::parse(&format!("SHA256E-s{size}--{n:064x}.txt")).expect("key")
}

#[test]
fn file_and_size_terms_match_git_annex() {
    let dir = scratch();
    let exprs = [
        "anything",
        "nothing",
        "include=*",
        "include=*.mp3",
        "exclude=*.mp3",
        "include=archive/*",
        "include=*/archive/*",
        "exclude=*/archive/* and exclude=archive/*",
        "largerthan=1kb",
        "smallerthan=1kb",
        "largerthan=0.5KiB or include=*.txt",
        "include=*.txt or include=*.mp3 and largerthan=999",
        "not include=*.txt smallerthan=1MiB",
        "(nothing (nothing or anything))",
        "nothing (nothing or anything)",
        "nothing or",
        "include=*.[mM][pP]3",
        "include=[!a]*",
        "include=[]a]*",
        "include=?.txt",
        "inpreferreddir",
        "securehash",
        "inbackend=SHA256E",
        "inbackend=MD5",
        "copies=0",
        "not (largerthan=1000 or exclude=*.txt)",
    ];
    let files = [
        ("a.txt", 999),
        ("archive/x.mp3", 1000),
        ("d/archive/y.MP3", 1001),
        ("x/public/q", 0),
    ];
    let mut cases = Vec::new();
    for e in exprs {
        for (i, (f, size)) in files.iter().enumerate() {
            let k = key(*size, i as u32);
            cases.push((
                e.to_owned(),
                vec!["--file".into(), (*f).into(), "--key".into(), k.to_string()],
            ));
        }
    }
    let real = real_answers(dir.path(), &cases);
    let facts = Facts::default();
    let holders = BTreeSet::new();
    for ((expr, args), want) in cases.iter().zip(real) {
        let k = Key::parse(&args[3]).expect("key");
        let info = KeyInfo {
            key: &k,
            file: Some(&args[1]),
            holders: &holders,
        };
        let e = parse(expr).expect("parses");
        let ours = eval_expr(&e, &facts, &RepoSizes::new(), "here", &info).expect("evaluates");
        assert_eq!(ours, want, "{expr} on {} {}", args[1], args[3]);
    }
}

#[test]
fn location_terms_match_git_annex() {
    let dir = scratch();
    let d = dir.path();
    let uuids: Vec<String> = (1..=4)
        .map(|i| format!("aaaaaaaa-0000-4000-8000-00000000000{i}"))
        .collect();
    let [a, b, c, u] = [&uuids[0], &uuids[1], &uuids[2], &uuids[3]];
    // git-annex only names repositories it knows from uuid.log.
    let branch = Branch::open(d).expect("branch");
    branch
        .change_file("uuid.log", |old| {
            let mut v = old.unwrap_or_default().to_vec();
            for (i, x) in uuids.iter().enumerate() {
                v.extend(format!("{x} r{i} timestamp=1700000000s\n").bytes());
            }
            v
        })
        .expect("uuid.log");
    let here = String::from_utf8(run(d, "git", &["config", "annex.uuid"]).stdout)
        .expect("utf8")
        .trim()
        .to_owned();
    for x in [a, b, c, &here] {
        ok(d, &git_annex(), &["group", x, "arch"]);
    }
    ok(d, &git_annex(), &["trust", a, "--force"]);
    ok(d, &git_annex(), &["dead", c]);
    ok(d, &git_annex(), &["untrust", u]);
    ok(d, &git_annex(), &["maxsize", a, "5000"]);
    ok(d, &git_annex(), &["maxsize", &here, "4000"]);
    ok(d, &git_annex(), &["numcopies", "2"]);
    let keys = [key(1000, 1), key(2000, 2), key(3000, 3), key(500, 4)];
    let present: [&[&String]; 4] = [&[a, c, u], &[], &[a, b], &[b]];
    for (k, on) in keys.iter().zip(present) {
        for x in on {
            ok(d, &git_annex(), &["setpresentkey", &k.to_string(), x, "1"]);
        }
    }
    let exprs = [
        "copies=1",
        "copies=2",
        "copies=3",
        "copies=arch:2",
        "copies=trusted:1",
        "copies=semitrusted+:2",
        "copies=untrusted:1",
        "copies=dead:1",
        "lackingcopies=1",
        "lackingcopies=2",
        "approxlackingcopies=1",
        "inallgroup=arch",
        "onlyingroup=arch",
        "inallgroup=none",
        "onlyingroup=none",
        "fullybalanced=arch",
        "fullybalanced=arch:2",
        "fullybalanced=arch:lackingcopies",
        "fullysizebalanced=arch",
        "fullysizebalanced=arch:2",
        "balanced=arch",
        "sizebalanced=arch:2",
        "balanced=arch:lackingcopies",
        "not copies=arch:1",
    ];
    let mut cases = Vec::new();
    for e in exprs {
        for k in &keys {
            cases.push((e.to_owned(), vec!["--key".into(), k.to_string()]));
        }
    }
    let real = real_answers(d, &cases);

    let facts = Facts::load(&Branch::open(d).expect("branch")).expect("facts");
    assert_eq!(facts.numcopies(), 2);
    assert_eq!(facts.trust_of(c), TrustLevel::Dead);
    assert_eq!(facts.maxsize.get(a), Some(&5000));
    let mut sizes = RepoSizes::new();
    for (k, on) in keys.iter().zip(present) {
        for x in on {
            *sizes.entry((*x).clone()).or_default() += k.size().expect("sized");
        }
    }
    for ((expr, args), want) in cases.iter().zip(real) {
        let k = Key::parse(&args[1]).expect("key");
        let holders: BTreeSet<String> = branch
            .key_locations(&k)
            .expect("locations")
            .into_iter()
            .collect();
        let info = KeyInfo {
            key: &k,
            file: None,
            holders: &holders,
        };
        let e = parse(expr).expect("parses");
        let ours = eval_expr(&e, &facts, &sizes, &here, &info).expect("evaluates");
        assert_eq!(ours, want, "{expr} for {k} held by {holders:?}");
    }
}

#[test]
fn parse_errors_match_git_annex() {
    let dir = scratch();
    for (expr, bad) in [
        ("in=here", true),
        ("ingroup=x", true),
        ("copies=2.5", true),
        ("copies=2abc", false),
        ("copies=0x1", false),
        ("copies=1e", false),
        ("largerthan=1 kb", true),
        ("largerthan=-5", false),
        ("metadata=-x=1", true),
        ("metadata=tag=*", false),
        ("balanced=g:2:3", true),
        ("fullysizebalanced=g:lackingcopies", false),
        ("standard=x", true),
    ] {
        let out = run(
            dir.path(),
            &git_annex(),
            &[
                "matchexpression",
                expr,
                "--key",
                "SHA256E-s5--aa",
                "--file",
                "f",
            ],
        );
        let theirs = out.status.code() == Some(42)
            && String::from_utf8_lossy(&out.stderr).contains("bad expression");
        assert_eq!(
            theirs,
            bad,
            "git-annex on {expr}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(parse(expr).is_err(), bad, "ours on {expr}");
    }
}
