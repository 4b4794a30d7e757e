//! Server set-up without git-annex: `annexproxy initremote`,
//! `enableremote` and `verifyremote` write the records git-annex writes,
//! so real git-annex takes over a remote we set up; `annexproxy status`
//! shows the remote.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use annexproxy_tests::observe::fsck_from;
use annexproxy_tests::{ServerKind, TestEnv};

use super::world::*;

/// `remote.d.*` settings, with the UUID replaced.
pub(super) fn remote_settings(env: &TestEnv, repo: &Path) -> BTreeMap<String, String> {
    let uuid = env
        .oracle(repo, &["config", "remote.d.annex-uuid"])
        .ok()
        .stdout
        .trim()
        .to_string();
    env.oracle(repo, &["config", "--get-regexp", "^remote\\.d\\."])
        .ok()
        .stdout
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k.to_owned(), v.replace(&uuid, "UUID")))
        .collect()
}

/// A log's line for the remote, with its UUID and timestamp replaced.
fn log_line(text: &str, uuid: &str) -> String {
    let line = text
        .lines()
        .find(|l| l.starts_with(uuid))
        .unwrap_or_else(|| panic!("no line for {uuid} in {text:?}"));
    let line = line.replace(uuid, "UUID");
    match line.rfind(" timestamp=") {
        Some(i) => line[..i].to_owned(),
        None => line,
    }
}

/// What initremote left: settings, remote.log, uuid.log and
/// verified-remote.log lines for `d`.
pub(super) fn records(env: &TestEnv, repo: &Path) -> Vec<String> {
    let uuid = env
        .oracle(repo, &["config", "remote.d.annex-uuid"])
        .ok()
        .stdout
        .trim()
        .to_string();
    let show = |f: &str| {
        env.oracle(repo, &["show", &format!("git-annex:{f}")])
            .ok()
            .stdout
    };
    let verified = fs::read_to_string(repo.join("annex/verified-remote.log")).expect("verified");
    vec![
        format!("{:?}", remote_settings(env, repo)),
        log_line(&show("remote.log"), &uuid),
        log_line(&show("uuid.log"), &uuid),
        log_line(&verified, &uuid),
    ]
}

#[test]
fn initremote_writes_what_git_annex_writes() {
    let env = TestEnv::new(ServerKind::Ours);
    let store = env.srv.join("store");
    fs::create_dir_all(&store).expect("mkdir");
    let dir_param = format!("directory={}", store.display());
    let args = [
        "initremote",
        "d",
        "type=directory",
        &dir_param,
        "encryption=none",
        "chunk=1MiB",
    ];
    let ours = env.server_bare("ours.git");
    env.annexproxy(&ours, &["init", "ours"]).ok();
    let said = env.annexproxy(&ours, &args).ok().stdout;
    let real = env.server_bare("real.git");
    env.annexproxy(&real, &["init", "real"]).ok();
    let real_said = env.oracle_annex(&real, &args).ok().stdout;
    assert_eq!(said, real_said);
    assert_eq!(records(&env, &ours), records(&env, &real));
    // Ours refuses what git-annex refuses, and what we do not serve.
    env.annexproxy(&ours, &args)
        .fails()
        .says("There is already a special remote named \"d\"");
    env.annexproxy(&ours, &["initremote", "s", "type=rsync", "encryption=none"])
        .fails()
        .says("special remote type rsync is not served by annexproxy yet");
    let missing = format!("directory={}", env.srv.join("nowhere").display());
    env.annexproxy(
        &ours,
        &[
            "initremote",
            "e",
            "type=directory",
            &missing,
            "encryption=none",
        ],
    )
    .fails()
    .says("Directory does not exist");
}

/// The client's flow through our proxy to a remote our initremote made,
/// then real git-annex inside the proxy uses it as its own.
#[test]
fn remote_set_up_by_us_is_used_by_real_git_annex() {
    let wd = world_by(Setup::Ours, &["chunk=100000"]);
    let (env, client) = (&wd.env, &wd.client);
    env.add_file(
        client,
        "f.bin",
        &annexproxy_tests::pseudo_random_bytes(2, 250_000),
    );
    env.annex(client, &["copy", "--to", "origin-d", "f.bin"])
        .ok();
    let (ok, results) = fsck_from(env, client, "origin-d");
    assert!(ok, "{results:?}");
    env.annex(client, &["sync", "--no-content"]).ok();
    server_fsck_from_d(&wd);
}

/// A non-bare repository of the server enables the remote with our
/// enableremote; it is not used until verified (ours says how), and then
/// real git-annex stores into it.
#[test]
fn enableremote_then_verifyremote() {
    let wd = world(&[]);
    let env = &wd.env;
    let side = server_clone(&wd, "side");
    let dir_param = format!("directory={}", wd.store.display());
    env.annexproxy(&side, &["enableremote", "d", &dir_param])
        .ok()
        .says("enableremote d")
        .says("annexproxy verifyremote d --safe");
    let real_side = server_clone(&wd, "real-side");
    env.oracle_annex(&real_side, &["enableremote", "d", &dir_param])
        .ok();
    assert_eq!(
        remote_settings(env, &side),
        remote_settings(env, &real_side)
    );
    fs::write(side.join("x.txt"), b"x\n").expect("write");
    env.oracle_annex(&side, &["add", "x.txt"]).ok();
    env.oracle_annex(&side, &["copy", "--to", "d", "x.txt"])
        .fails()
        .says("verifyremote");
    env.annexproxy(&side, &["verifyremote", "d", "--safe"])
        .ok()
        .says("verifyremote d ok");
    env.oracle_annex(&side, &["copy", "--to", "d", "x.txt"])
        .ok();
}

#[test]
fn status_shows_the_special_remote() {
    let wd = world(&[]);
    status_row_of_d_after_a_copy(&wd);
    let env = &wd.env;
    // Its directory gone: not reachable, and why.
    fs::rename(&wd.store, wd.store.with_extension("moved")).expect("rename");
    let out = env.annexproxy(&wd.proxy, &["status"]).ok();
    assert!(out.stdout.contains("is not accessible"), "{out}");
}
