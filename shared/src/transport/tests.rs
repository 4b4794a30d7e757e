//! Transports against scripted stand-ins for git-annex-shell and ssh: what
//! argv they get, the handshake, and how failures are reported.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::node::STDERR_TAIL;
use super::*;

const NODE: &str = "e0bc0cf7-0000-4000-8000-000000000002";
const ME: &str = "8539dd90-0000-4000-8000-000000000491";

fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}")).expect("write script");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    p
}

fn local_node(dir: &Path, shell: &Path) -> NodeRemote {
    NodeRemote {
        name: "node1".into(),
        uuid: NODE.into(),
        location: Location::Local(dir.to_owned()),
        annex_shell: Some(shell.display().to_string()),
        ssh_options: vec![],
    }
}

/// A shell that records its argv, greets as NODE and answers VERSION with
/// `reply`, then echoes one request line back as an ERROR.
fn greeter(dir: &Path, uuid: &str, reply: &str) -> PathBuf {
    let argv = dir.join("argv");
    script(
        dir,
        "fake-shell",
        &format!(
            "printf '%s\\n' \"$@\" > '{}'\necho 'AUTH-SUCCESS {uuid}'\nread v\necho '{reply}'\n\
             read req\necho \"ERROR got $req\"\n",
            argv.display()
        ),
    )
}

fn opts() -> ConnectOptions {
    ConnectOptions::new(PathBuf::from("/nonexistent/git-annex-shell"))
}

#[tokio::test]
async fn local_handshake_negotiates_the_lower_version() {
    let t = tempfile::tempdir().expect("tempdir");
    let shell = greeter(t.path(), NODE, "VERSION 2");
    let node = local_node(t.path(), &shell);
    let mut nc = connect(&node, ME, 4, &opts()).await.expect("connect");
    assert_eq!(nc.version, 2);
    let argv = std::fs::read_to_string(t.path().join("argv")).expect("argv");
    assert_eq!(argv, format!("p2pstdio\n{}\n{ME}\n", t.path().display()));
    nc.conn
        .write_message(&Message::GetTimestamp)
        .await
        .expect("send");
    assert_eq!(
        nc.conn.read_message().await.expect("read"),
        Some(Message::Error("got GETTIMESTAMP".into()))
    );
    assert_eq!(nc.close().await, Some(0));
}

#[tokio::test]
async fn version_is_capped_by_what_we_asked() {
    let t = tempfile::tempdir().expect("tempdir");
    let shell = greeter(t.path(), NODE, "VERSION 9");
    let nc = connect(&local_node(t.path(), &shell), ME, 1, &opts())
        .await
        .expect("connect");
    assert_eq!(nc.version, 1);
    nc.close().await;
    // A server that knows no VERSION answers ERROR and speaks version 0.
    let shell = greeter(t.path(), NODE, "ERROR unknown command");
    let nc = connect(&local_node(t.path(), &shell), ME, 4, &opts())
        .await
        .expect("connect");
    assert_eq!(nc.version, 0);
    nc.close().await;
}

#[tokio::test]
async fn another_repository_is_refused() {
    let t = tempfile::tempdir().expect("tempdir");
    let shell = greeter(
        t.path(),
        "11111111-2222-4333-8444-555555555555",
        "VERSION 4",
    );
    let err = connect(&local_node(t.path(), &shell), ME, 4, &opts())
        .await
        .err()
        .expect("must fail");
    assert!(matches!(err, TransportError::WrongUuid { .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with("node1: expected repository UUID"),
        "{err}"
    );
}

#[tokio::test]
async fn a_dying_shell_is_reported_with_its_stderr() {
    let t = tempfile::tempdir().expect("tempdir");
    let shell = script(
        t.path(),
        "dies",
        "echo 'git-annex-shell: Not a git-annex or gcrypt repository.' >&2\nexit 1\n",
    );
    let err = connect(&local_node(t.path(), &shell), ME, 4, &opts())
        .await
        .err()
        .expect("must fail");
    assert!(matches!(err, TransportError::Closed { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.starts_with("node1: "), "{msg}");
    assert!(
        msg.contains("Not a git-annex or gcrypt repository."),
        "{msg}"
    );
}

#[tokio::test]
async fn missing_directory_names_the_node() {
    let t = tempfile::tempdir().expect("tempdir");
    let gone = t.path().join("gone");
    let node = local_node(&gone, Path::new("/bin/true"));
    let err = connect(&node, ME, 4, &opts())
        .await
        .err()
        .expect("must fail");
    assert_eq!(
        err.to_string(),
        format!("node1: no repository at {}", gone.display())
    );
}

#[tokio::test]
async fn stderr_is_drained_while_the_protocol_runs() {
    // 256 KiB on stderr before greeting: more than a pipe holds, so a
    // transport that did not drain stderr would hang here.
    let t = tempfile::tempdir().expect("tempdir");
    let shell = script(
        t.path(),
        "chatty",
        &format!(
            "head -c 262144 /dev/zero | tr '\\0' x >&2\necho 'AUTH-SUCCESS {NODE}'\nread v\necho 'VERSION 4'\nread x\n"
        ),
    );
    let nc = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        connect(&local_node(t.path(), &shell), ME, 4, &opts()),
    )
    .await
    .expect("no hang")
    .expect("connect");
    // The drain runs beside the protocol, so it may still be catching up
    // with what the node wrote before its greeting.
    let mut tail = nc.stderr_tail();
    for _ in 0..200 {
        if tail.len() == STDERR_TAIL {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        tail = nc.stderr_tail();
    }
    assert!(
        tail.len() == STDERR_TAIL && tail.ends_with("xxx"),
        "{}",
        tail.len()
    );
    nc.close().await;
}

#[tokio::test]
async fn ssh_argv_and_unreachable_host() {
    let t = tempfile::tempdir().expect("tempdir");
    let log = t.path().join("ssh-argv");
    let ssh = script(
        t.path(),
        "ssh",
        &format!("printf '%s\\n' \"$@\" > '{}'\necho 'ssh: connect to host h port 22: Connection refused' >&2\nexit 255\n", log.display()),
    );
    let node = NodeRemote {
        name: "far".into(),
        uuid: NODE.into(),
        location: Location::Ssh(SshLocation {
            host: "h".into(),
            port: Some(2222),
            dir: "/~/n1".into(),
        }),
        annex_shell: None,
        ssh_options: vec!["-o".into(), "BatchMode=yes".into()],
    };
    let mut o = opts();
    o.ssh = ssh;
    let err = connect(&node, ME, 4, &o).await.err().expect("must fail");
    assert!(matches!(err, TransportError::Unreachable { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "far: unable to connect: ssh: connect to host h port 22: Connection refused"
    );
    let argv = std::fs::read_to_string(&log).expect("argv");
    assert_eq!(
        argv,
        format!("-o\nBatchMode=yes\n-p\n2222\n-T\nh\ngit-annex-shell 'p2pstdio' '/~/n1' '{ME}' --uuid {NODE}\n")
    );
    // configlist over the same ssh
    let err = discover_uuid(&node, &o).expect_err("unreachable");
    assert!(matches!(err, TransportError::Unreachable { .. }), "{err}");
    let argv = std::fs::read_to_string(&log).expect("argv");
    assert!(
        argv.ends_with("-n\n-T\nh\ngit-annex-shell 'configlist' '/~/n1'\n"),
        "{argv}"
    );
}

#[test]
fn configlist_output_gives_the_uuid() {
    let t = tempfile::tempdir().expect("tempdir");
    let ssh = script(
        t.path(),
        "ssh",
        &format!("echo 'annex.uuid={NODE}'\necho 'core.gcrypt-id='\n"),
    );
    let node = NodeRemote {
        name: "far".into(),
        uuid: String::new(),
        location: Location::Ssh(SshLocation {
            host: "h".into(),
            port: None,
            dir: "/r".into(),
        }),
        annex_shell: None,
        ssh_options: vec![],
    };
    let mut o = opts();
    o.ssh = ssh;
    assert_eq!(discover_uuid(&node, &o).expect("ok"), Some(NODE.to_owned()));
}

#[test]
fn node_from_git_config() {
    let mut settings = std::collections::BTreeMap::new();
    settings.insert("url".to_owned(), "localhost:/srv/n2".to_owned());
    settings.insert("annex-uuid".to_owned(), NODE.to_owned());
    settings.insert("annex-ssh-options".to_owned(), " -p  2200 -4 ".to_owned());
    settings.insert(
        "annex-shell".to_owned(),
        "/opt/bin/git-annex-shell".to_owned(),
    );
    let rc = RemoteConfig {
        name: "n2".into(),
        settings,
    };
    let n = NodeRemote::from_config(&rc, Path::new("/base")).expect("node");
    assert_eq!(n.ssh_options, ["-p", "2200", "-4"]);
    assert_eq!(n.annex_shell.as_deref(), Some("/opt/bin/git-annex-shell"));
    assert_eq!(n.uuid, NODE);
    assert!(matches!(n.location, Location::Ssh(ref s) if s.dir == "/srv/n2"));
}
