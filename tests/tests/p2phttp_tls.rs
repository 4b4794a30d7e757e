//! `annexproxy p2phttp` over HTTPS (`--certfile`, `--privatekeyfile`,
//! `--chainfile`): the real client on an `annex+https://` remote that
//! trusts only a test CA, and `--authenv`, which accepts passwords over
//! HTTPS alone.
//!
//! How git-annex 10.20261026's HTTP client finds CAs (tried): it honours
//! `GIT_SSL_CAINFO` in its environment, but neither `http.sslCAInfo` in
//! git config nor `SSL_CERT_FILE`; otherwise it uses the system store.

use std::path::Path;
use std::process::Command;

use annexproxy_tests::http_raw;
use annexproxy_tests::p2phttp::HttpServer;
use annexproxy_tests::pseudo_random_bytes;
use annexproxy_tests::run::{run, Out};
use annexproxy_tests::tls::TestCa;

fn start(ca: &TestCa, mode: &[&str], vars: &[(&str, &str)]) -> HttpServer {
    let tls = ca.server_args();
    let mut args: Vec<&str> = mode.to_vec();
    args.extend(tls.iter().map(String::as_str));
    HttpServer::start(&args, vars)
}

/// `git annex ARGS` in `dir`, trusting `ca` (or not).
fn annex(s: &HttpServer, dir: &Path, ca: Option<&Path>, args: &[&str]) -> Out {
    let mut cmd = s.env.client_command("git");
    cmd.arg("annex").args(args);
    if let Some(ca) = ca {
        cmd.env("GIT_SSL_CAINFO", ca);
    }
    run(cmd, dir)
}

#[test]
fn real_client_over_https_with_a_chain_to_a_private_ca() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let ca = TestCa::new(tmp.path());
    let s = start(&ca, &["--wideopen"], &[]);
    let cli = s.client("cli");
    let url = format!("annex+https://{}/git-annex/", s.addr);
    s.env
        .git(&cli, &["config", "remote.origin.annexUrl", &url])
        .ok();
    let content = pseudo_random_bytes(21, 200_000);
    s.env.add_file(&cli, "f.bin", &content);
    let key = s.env.key_of(&cli, "f.bin");
    let root = Some(ca.root.as_path());

    annex(&s, &cli, root, &["copy", "--to", "origin", "f.bin"]).ok();
    assert!(s.env.server_has_content(&s.repo, &key));
    // The only local copy: dropping it locks the server's, over HTTPS.
    annex(&s, &cli, root, &["drop", "f.bin"])
        .ok()
        .says("locking origin");
    // The certificate is checked: a client that does not trust the CA
    // gets nothing.
    annex(&s, &cli, None, &["get", "--from", "origin", "f.bin"])
        .fails()
        .says("unknown CA");
    annex(&s, &cli, root, &["get", "--from", "origin", "f.bin"]).ok();
    assert_eq!(std::fs::read(cli.join("f.bin")).expect("read"), content);
}

/// `--authenv` takes passwords over HTTPS (and only there); plain HTTP on
/// the HTTPS port is answered 426, as git-annex's server does.
#[test]
fn authenv_works_over_https_and_plain_http_gets_426() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let ca = TestCa::new(tmp.path());
    let s = start(
        &ca,
        &["--authenv"],
        &[("GIT_ANNEX_P2PHTTP_PASSWORD_alice", "pw1")],
    );
    let url = format!(
        "https://{}/git-annex/{}/v4/gettimestamp?clientuuid=c1",
        s.addr, s.uuid
    );
    let curl = |user: Option<&str>| {
        let mut c = Command::new("curl");
        c.args(["-sS", "-X", "POST", "-w", "\n%{http_code}", "--cacert"])
            .arg(&ca.root)
            .arg(&url);
        if let Some(u) = user {
            c.args(["-u", u]);
        }
        let out = c.output().expect("run curl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, status) = text.rsplit_once('\n').expect("status line");
        (status.to_owned(), body.to_owned())
    };
    let (status, body) = curl(Some("alice:pw1"));
    assert_eq!(status, "200", "{body}");
    assert!(body.contains("\"timestamp\""), "{body}");
    assert_eq!(curl(None).0, "401");
    assert_eq!(curl(Some("alice:wrong")).0, "401");

    let target = format!("/git-annex/{}/v4/gettimestamp?clientuuid=c1", s.uuid);
    let plain = http_raw::request(s.addr, "POST", &target, &[], b"");
    assert_eq!(plain.status, 426, "{plain:?}");
}
