//! status against hand-made rows and a real repository's branch.

use super::render::{human, json_str, render_json, render_text};
use super::scan::{is_location_log, key_size, scan_location_logs, unescape_key_file};
use super::*;
use annex::branch::LogStatus;
use annex::key::Key;

const U1: &str = "11111111-0000-4000-8000-000000000001";
const U2: &str = "22222222-0000-4000-8000-000000000002";

#[test]
fn location_log_paths() {
    assert!(is_location_log("a1b/0f3/SHA256E-s6--ab.txt.log"));
    assert!(!is_location_log("a1b/0f3/SHA256E-s6--ab.txt.log.met"));
    assert!(!is_location_log("uuid.log"));
    assert!(!is_location_log("a1b/SHA256E-s6--ab.log"));
    assert!(!is_location_log("a1g/0f3/K.log"));
    assert!(!is_location_log("a1b/0f3/.log"));
}

#[test]
fn sizes_from_escaped_key_files() {
    for key in ["SHA256E-s5242880--abc.bin", "URL-s12--http://x/a%b&c"] {
        let k = Key::parse(key).expect("valid key");
        assert_eq!(unescape_key_file(&k.key_file()), key);
        let path = format!(
            "{}/{}.log",
            k.hash_dir_lower().trim_end_matches('/'),
            k.key_file()
        );
        assert!(is_location_log(&path), "{path}");
        assert_eq!(key_size(&path), k.size().expect("sized"));
    }
    assert_eq!(key_size("abc/def/URL--http&c%%x.log"), 0);
}

#[test]
fn human_sizes() {
    assert_eq!(human(0), "0 B");
    assert_eq!(human(1023), "1023 B");
    assert_eq!(human(1024), "1.0 KiB");
    assert_eq!(human(5 * 1024 * 1024), "5.0 MiB");
    assert_eq!(human(u64::MAX), "16.0 EiB");
}

fn row(name: &str, kind: Kind, uuid: &str, reach: Reach, keys: u64, bytes: u64) -> Row {
    let mut r = Row::new(name.into(), kind, uuid.into(), None);
    (r.reach, r.keys, r.bytes) = (reach, keys, bytes);
    r
}

fn sample() -> Vec<Row> {
    let mut here = row("here", Kind::Gateway, "g", Reach::Yes, 0, 0);
    here.free = Some(2048);
    let mut n2 = row(
        "n2",
        Kind::Node,
        U2,
        Reach::No("n2: no repository at /x\"".into()),
        1,
        100,
    );
    n2.lagging = vec!["refs/heads/main".into()];
    vec![
        here,
        row(
            "demo",
            Kind::Cluster,
            "ac",
            Reach::Nodes { up: 1, of: 2 },
            2,
            1100,
        ),
        row("n1", Kind::Node, U1, Reach::Yes, 2, 1100),
        n2,
    ]
}

#[test]
fn text_is_aligned_with_reasons_last() {
    let want = "\
NAME  KIND     UUID                                  REACHABLE  KEYS     SIZE  FREE     DETAIL
here  gateway  g                                     yes           0      0 B  2.0 KiB
demo  cluster  ac                                    1/2           2  1.1 KiB  -
  n1  node     11111111-0000-4000-8000-000000000001  yes           2  1.1 KiB  -
  n2  node     22222222-0000-4000-8000-000000000002  no            1    100 B  -        n2: no repository at /x\" / lacks the gateway's refs/heads/main
";
    assert_eq!(render_text(&sample()), want);
}

#[test]
fn json_nests_nodes_under_their_cluster() {
    let want = concat!(
        r#"{"repository":"/r \"q\"","here":{"name":"here","kind":"gateway","uuid":"g","reachable":true,"error":null,"keys":0,"bytes":0,"free":2048},"#,
        r#""proxied":[],"clusters":[{"name":"demo","kind":"cluster","uuid":"ac","reachable":true,"error":null,"keys":2,"bytes":1100,"free":null,"nodes_reachable":1,"node_count":2,"nodes":["#,
        r#"{"name":"n1","kind":"node","uuid":"11111111-0000-4000-8000-000000000001","reachable":true,"error":null,"keys":2,"bytes":1100,"free":null,"lacking_refs":[]},"#,
        r#"{"name":"n2","kind":"node","uuid":"22222222-0000-4000-8000-000000000002","reachable":false,"error":"n2: no repository at /x\"","keys":1,"bytes":100,"free":null,"lacking_refs":["refs/heads/main"]}]}]}"#,
        "\n"
    );
    assert_eq!(render_json("/r \"q\"", &sample()), want);
    assert_eq!(json_str("a\u{1}\n"), "\"a\\u0001\\n\"");
}

/// Committed logs and journal-only ones are both counted, the
/// journal's version winning, each log once.
#[test]
fn scan_reads_branch_and_journal() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("r.git");
    testkit::git(tmp.path(), &["init", "-q", "--bare", "r.git"]);
    let mut repo = Repo::open(&dir).expect("open");
    repo.init(Some("test")).expect("init");
    let branch = repo.branch();
    let k1 = Key::parse("SHA256E-s100--aa.txt").expect("key");
    let k2 = Key::parse("SHA256E-s1000--bb.bin").expect("key");
    let k3 = Key::parse("URL--http://x/y").expect("key");
    let log = |k: &Key, u: &str, st: LogStatus| {
        branch.log_key_location(k, u, st).expect("log");
    };
    log(&k1, U1, LogStatus::Present);
    log(&k1, U2, LogStatus::Present);
    log(&k2, U1, LogStatus::Present);
    branch.commit().expect("commit");
    // Now only in the journal: k1 gone from U2, k3 new on U2.
    log(&k1, U2, LogStatus::Missing);
    log(&k3, U2, LogStatus::Present);
    branch
        .change_file("aaa/bbb/K.log.met", |_| b"junk".to_vec())
        .expect("met");
    let mut seen = Vec::new();
    scan_location_logs(&repo, |size, log| {
        let present: Vec<String> = log.present().into_iter().map(str::to_owned).collect();
        seen.push((size, present));
    })
    .expect("scan");
    seen.sort();
    assert_eq!(
        seen,
        vec![
            (0, vec![U2.to_owned()]),
            (100, vec![U1.to_owned()]),
            (1000, vec![U1.to_owned()]),
        ]
    );
}

#[test]
fn members_follow_their_cluster() {
    let mut rows = sample();
    rows.insert(1, row("p", Kind::Proxied, "p", Reach::Yes, 0, 0));
    assert_eq!(
        cluster_members(&rows),
        vec![(2, [U1.to_owned(), U2.to_owned()].into_iter().collect())]
    );
}
