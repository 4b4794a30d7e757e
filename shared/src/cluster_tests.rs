use std::path::Path;

use super::*;

const C: &str = "ac15440a-d31a-8d6e-a592-60d4fcf6a0f2";
const OTHER_C: &str = "acffffff-d31a-8d6e-a592-60d4fcf6a0f2";
const N1: &str = "11111111-1111-4111-8111-111111111111";
const N2: &str = "22222222-2222-4222-8222-222222222222";
const N3: &str = "33333333-3333-4333-8333-333333333333";
const N4: &str = "44444444-4444-4444-8444-444444444444";
const G2: &str = "99999999-9999-4999-8999-999999999999";

fn git(dir: &Path, args: &[&str]) {
    testkit::git(dir, args);
}

fn gateway_repo() -> (tempfile::TempDir, Repo) {
    let t = tempfile::tempdir().expect("tempdir");
    git(t.path(), &["init", "-q", "--bare", "gw"]);
    let dir = t.path().join("gw");
    git(&dir, &["config", "user.name", "T"]);
    git(&dir, &["config", "user.email", "t@example.org"]);
    let mut repo = Repo::open(&dir).expect("open");
    repo.init(Some("gateway")).expect("init");
    (t, repo)
}

/// `git config KEY VALUE`, then reopen: a Repo reads its config once.
fn set(repo: &mut Repo, key: &str, value: &str) {
    git(repo.git_dir(), &["config", key, value]);
    *repo = Repo::open(repo.git_dir()).expect("reopen");
}

fn remote(repo: &mut Repo, name: &str, url: &str, uuid: &str) {
    set(repo, &format!("remote.{name}.url"), url);
    set(repo, &format!("remote.{name}.annex-uuid"), uuid);
}

fn write_log(repo: &Repo, path: &str, content: &str) {
    let b = repo.branch();
    b.change_file(path, |_| content.as_bytes().to_vec())
        .expect("write log");
    b.commit().expect("commit");
}

fn names(rs: &[RemoteConfig]) -> Vec<&str> {
    rs.iter().map(|r| r.name.as_str()).collect()
}

#[test]
fn cluster_uuids_have_the_marker() {
    // What git-annex makes of a v4 UUID: `ac` first, `8` at offset 14.
    assert_eq!(
        cluster_uuid_from("e0bc0cf7-5d9d-43c4-88d6-9e826b82e791").as_deref(),
        Some("acbc0cf7-5d9d-83c4-88d6-9e826b82e791")
    );
    assert_eq!(cluster_uuid_from("short"), None);
    let a = gen_cluster_uuid();
    let b = gen_cluster_uuid();
    assert!(is_cluster_uuid(&a) && is_cluster_uuid(&b), "{a} {b}");
    assert_eq!(a.len(), 36);
    assert_ne!(a, b);
    assert!(uuid::Uuid::parse_str(&a).is_ok());
}

#[test]
fn configured_clusters_lowercases_names_and_skips_plain_uuids() {
    let (_t, mut repo) = gateway_repo();
    assert!(configured_clusters(&repo).expect("read").is_empty());
    set(&mut repo, "annex.cluster.MyCluster", C);
    set(&mut repo, "annex.cluster.bogus", N1);
    set(&mut repo, "annex.other", C);
    set(&mut repo, "annex.cluster.a.B", OTHER_C);
    let got = configured_clusters(&repo).expect("read");
    assert_eq!(
        got.into_iter().collect::<Vec<_>>(),
        vec![
            ("a.b".to_owned(), OTHER_C.to_owned()),
            ("mycluster".to_owned(), C.to_owned())
        ]
    );
}

#[test]
fn node_and_gateway_config_words() {
    let r = RemoteConfig {
        name: "n".into(),
        settings: [
            ("annex-cluster-node".to_owned(), "c1  -bad c2".to_owned()),
            ("annex-cluster-gateway".to_owned(), format!("{C} {N1}")),
        ]
        .into_iter()
        .collect(),
    };
    assert_eq!(cluster_node_names(&r), Some(vec!["c1".into(), "c2".into()]));
    assert_eq!(cluster_gateway_uuids(&r), vec![C.to_owned()]);
    let bare = RemoteConfig {
        name: "x".into(),
        settings: Default::default(),
    };
    assert_eq!(cluster_node_names(&bare), None);
    assert!(cluster_gateway_uuids(&bare).is_empty());
}

#[test]
fn gateway_nodes_follow_config_cluster_log_trust_and_bypass() {
    let (t, mut repo) = gateway_repo();
    let local = |n: &str| t.path().join(n).display().to_string();
    set(&mut repo, "annex.cluster.c", C);
    set(&mut repo, "annex.cluster.d", OTHER_C);
    // n2 is dearer than n1 (ssh), n1 is listed second in git's order.
    remote(&mut repo, "n2", "ssh://host/~/n2", N2);
    set(&mut repo, "remote.n2.annex-cost", "150");
    set(&mut repo, "remote.n2.annex-cluster-node", "c");
    remote(&mut repo, "n1", &local("n1"), N1);
    set(&mut repo, "remote.n1.annex-cluster-node", "d c");
    // Configured but not in cluster.log: not a node yet.
    remote(&mut repo, "n3", &local("n3"), N3);
    set(&mut repo, "remote.n3.annex-cluster-node", "c");
    // Listed, but dead.
    remote(&mut repo, "n4", &local("n4"), N4);
    set(&mut repo, "remote.n4.annex-cluster-node", "c");
    // Another gateway of the same cluster, reached over ssh.
    remote(&mut repo, "gw2", "ssh://other/~/gw", G2);
    set(&mut repo, "remote.gw2.annex-cluster-gateway", C);
    write_log(
        &repo,
        CLUSTER_LOG,
        &format!("1s {C} {N1} {N2} {N4}\n1s {OTHER_C} {N1}\n"),
    );
    write_log(&repo, TRUST_LOG, &format!("{N4} X timestamp=1s\n"));
    write_log(&repo, PROXY_LOG, &format!("1s {G2} {C}:c {N3}:x3\n"));

    let none = BTreeSet::new();
    let got = gateway_nodes(&repo, C, &none).expect("nodes");
    assert_eq!(names(&got), vec!["n1", "n2", "gw2-c"]);
    let via = &got[2];
    assert_eq!(via.annex_uuid(), Some(C));
    assert_eq!(via.get("annex-proxied-by"), Some(G2));
    assert_eq!(via.url(), Some("ssh://other/~/gw"));

    // A client that came through gw2 must not be sent back there.
    let bypass: BTreeSet<String> = [G2.to_owned()].into();
    assert_eq!(
        names(&gateway_nodes(&repo, C, &bypass).expect("nodes")),
        vec!["n1", "n2"]
    );
    assert_eq!(
        names(&gateway_nodes(&repo, OTHER_C, &none).expect("nodes")),
        vec!["n1"]
    );

    // Once gw2 is no longer a gateway for the cluster, its view is no node.
    set(&mut repo, "remote.gw2.annex-cluster-gateway", OTHER_C);
    assert_eq!(
        names(&gateway_nodes(&repo, C, &none).expect("nodes")),
        vec!["n1", "n2"]
    );
    // A configured remote of that name hides the synthesised one.
    set(&mut repo, "remote.gw2.annex-cluster-gateway", C);
    set(&mut repo, "remote.gw2-c.annex-sync", "false");
    assert_eq!(
        names(&gateway_nodes(&repo, C, &none).expect("nodes")),
        vec!["n1", "n2"]
    );
}

#[test]
fn a_cluster_node_config_excludes_the_via_gateway_rule() {
    let (_t, mut repo) = gateway_repo();
    set(&mut repo, "annex.cluster.c", C);
    remote(&mut repo, "gw2", "ssh://other/~/gw", G2);
    set(&mut repo, "remote.gw2.annex-cluster-gateway", C);
    remote(&mut repo, "viagw", "ssh://other/~/gw", C);
    set(&mut repo, "remote.viagw.annex-proxied-by", G2);
    let none = BTreeSet::new();
    assert_eq!(
        names(&gateway_nodes(&repo, C, &none).expect("nodes")),
        vec!["viagw"]
    );
    set(&mut repo, "remote.viagw.annex-cluster-node", "nosuch");
    assert!(gateway_nodes(&repo, C, &none).expect("nodes").is_empty());
}

#[test]
fn proxied_remotes_inherit_and_nodes_of_proxied_clusters_cost_more() {
    let (t, mut repo) = gateway_repo();
    remote(&mut repo, "origin", "ssh://host/~/gw", G2);
    set(&mut repo, "remote.origin.annex-ssh-options", "-p 2222");
    set(&mut repo, "remote.origin.annex-cluster-node", "c");
    // Local remotes cannot proxy.
    remote(
        &mut repo,
        "loc",
        &t.path().join("l").display().to_string(),
        N3,
    );
    write_log(&repo, CLUSTER_LOG, &format!("1s {C} {N1}\n"));
    write_log(
        &repo,
        PROXY_LOG,
        &format!("1s {G2} {C}:c {N1}:n1 {N2}:n2\n1s {N3} {N4}:n4\n"),
    );
    let all = remotes_with_proxied(&repo).expect("remotes");
    // In proxy.log order (by UUID), as git-annex lists them.
    assert_eq!(
        names(&all),
        vec!["origin-n1", "origin-n2", "origin-c", "loc", "origin"]
    );
    let n1 = &all[0];
    assert_eq!(n1.get("annex-ssh-options"), Some("-p 2222"));
    assert_eq!(n1.get("annex-cluster-node"), None);
    assert_eq!(n1.get("annex-sync"), Some("false"));
    assert_eq!(remote_cost(n1, repo.git_dir()), 200.1);
    assert_eq!(remote_cost(&all[1], repo.git_dir()), 200.0);
    assert_eq!(all[1].get("annex-sync"), None);
    assert_eq!(remote_cost(&all[3], repo.git_dir()), 100.0);
}

#[test]
fn dead_and_recorded() {
    let (_t, repo) = gateway_repo();
    write_log(
        &repo,
        TRUST_LOG,
        &format!("{N1} X timestamp=1s\n{N2} X timestamp=1s\n{N2} 1 timestamp=2s\n"),
    );
    write_log(
        &repo,
        CLUSTER_LOG,
        &format!("1s {C} {N1} {N2}\n1s {N3} {N1}\n"),
    );
    assert_eq!(dead_uuids(&repo).expect("dead"), [N1.to_owned()].into());
    let rec = recorded_clusters(&repo).expect("clusters");
    assert_eq!(rec.len(), 1);
    assert_eq!(rec[C], [N1.to_owned(), N2.to_owned()].into());
}
