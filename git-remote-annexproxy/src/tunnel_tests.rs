use std::time::Duration;

use tokio::io::{duplex, AsyncReadExt, AsyncWriteExt, DuplexStream};

use super::*;

/// The server's end of a fake transport: what it reads is what the helper
/// sent, what it writes is what the helper receives.
struct FakeServer {
    from_client: DuplexStream,
    to_client: DuplexStream,
}

/// A tunnel whose transport is two in-memory pipes of `buf` bytes each.
fn pipes(buf: usize) -> (DuplexStream, DuplexStream, FakeServer) {
    let (client_reads, to_client) = duplex(buf);
    let (client_writes, from_client) = duplex(buf);
    (
        client_reads,
        client_writes,
        FakeServer {
            from_client,
            to_client,
        },
    )
}

impl FakeServer {
    async fn say(&mut self, bytes: &[u8]) {
        self.to_client.write_all(bytes).await.expect("client reads");
    }

    /// Reads until `want` has arrived; returns everything read.
    async fn read_until(&mut self, got: &mut Vec<u8>, want: &[u8]) {
        let mut buf = [0u8; 4096];
        while !got.windows(want.len()).any(|w| w == want) {
            let n = self
                .from_client
                .read(&mut buf)
                .await
                .expect("read from client");
            assert!(
                n > 0,
                "client hung up before sending {:?}; sent {:?}",
                want,
                String::from_utf8_lossy(got)
            );
            got.extend_from_slice(&buf[..n]);
        }
    }

    async fn read_to_end(&mut self, got: &mut Vec<u8>) {
        self.from_client
            .read_to_end(got)
            .await
            .expect("read from client");
    }
}

async fn within<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), f)
        .await
        .expect("no deadlock")
}

#[tokio::test]
async fn upload_pack_transcript() {
    let (r, w, mut srv) = pipes(4096);
    let server = tokio::spawn(async move {
        srv.say(b"AUTH-SUCCESS 8f99040c-c5ea-4ad6-b9a2-6d84c3e7f096\n")
            .await;
        let mut got = Vec::new();
        srv.read_until(&mut got, b"CONNECT git-upload-pack\n").await;
        srv.say(b"DATA 8\n0000ref\n").await;
        srv.read_until(&mut got, b"0009done\n").await;
        srv.say(b"DATA 4\npackCONNECTDONE 0\n").await;
        srv.read_to_end(&mut got).await;
        got
    });
    let tunnel = within(Tunnel::start(r, w)).await.expect("session starts");
    assert_eq!(tunnel.server_uuid(), "8f99040c-c5ea-4ad6-b9a2-6d84c3e7f096");
    let mut out = Vec::new();
    let code = within(tunnel.relay(Service::UploadPack, &b"0009done\n"[..], &mut out))
        .await
        .expect("relay");
    assert_eq!(code, 0);
    assert_eq!(out, b"0000ref\npack");
    let sent = server.await.expect("fake server");
    // no VERSION: protocol 0, as git-annex's own helpers; CONNECTDONE echoed
    assert_eq!(
        String::from_utf8_lossy(&sent),
        "CONNECT git-upload-pack\nDATA 9\n0009done\nCONNECTDONE 0\n"
    );
}

#[tokio::test]
async fn service_exit_status_is_returned() {
    let (r, w, mut srv) = pipes(4096);
    let server = tokio::spawn(async move {
        srv.say(b"AUTH-SUCCESS u\n").await;
        let mut got = Vec::new();
        srv.read_until(&mut got, b"CONNECT git-receive-pack\n")
            .await;
        srv.say(b"CONNECTDONE 128\n").await;
        srv.read_to_end(&mut got).await;
        got
    });
    let tunnel = Tunnel::start(r, w).await.expect("session starts");
    // git keeps its end open; the status must not wait for it
    let (git_in, _keep_open) = duplex(64);
    let code = within(tunnel.relay(Service::ReceivePack, git_in, Vec::new()))
        .await
        .expect("relay");
    assert_eq!(code, 128);
    let sent = server.await.expect("fake server");
    assert_eq!(
        String::from_utf8_lossy(&sent),
        "CONNECT git-receive-pack\nCONNECTDONE 128\n"
    );
}

#[tokio::test]
async fn both_directions_flow_at_once() {
    // Small pipes and a server that writes everything before reading
    // anything: a relay that only reads while it is not writing would
    // deadlock here.
    const SIZE: usize = 1 << 20;
    let (r, w, mut srv) = pipes(4096);
    let down: Vec<u8> = (0..SIZE).map(|i| (i % 251) as u8).collect();
    let up: Vec<u8> = (0..SIZE).map(|i| (i % 241) as u8).collect();
    let down2 = down.clone();
    let server = tokio::spawn(async move {
        srv.say(b"AUTH-SUCCESS u\n").await;
        for chunk in down2.chunks(10_000) {
            srv.say(format!("DATA {}\n", chunk.len()).as_bytes()).await;
            srv.say(chunk).await;
        }
        // the client's DATA headers add bytes; read until its body count is met
        let mut conn = Connection::new(&mut srv.from_client, tokio::io::sink());
        let mut body = Vec::new();
        assert_eq!(
            conn.read_message().await.expect("read"),
            Some(Message::Connect(Service::ReceivePack))
        );
        while body.len() < SIZE {
            match conn.read_message().await.expect("read") {
                Some(Message::Data(n)) => {
                    conn.recv_data(n, &mut body).await.expect("body");
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        srv.to_client
            .write_all(b"CONNECTDONE 0\n")
            .await
            .expect("write");
        body
    });
    let tunnel = Tunnel::start(r, w).await.expect("session starts");
    let mut out = Vec::new();
    let code = within(tunnel.relay(Service::ReceivePack, &up[..], &mut out))
        .await
        .expect("relay");
    assert_eq!(code, 0);
    assert!(
        out == down,
        "git got {} bytes, not the server's {}",
        out.len(),
        down.len()
    );
    let body = within(server).await.expect("fake server");
    assert!(
        body == up,
        "server got {} bytes, not git's {}",
        body.len(),
        up.len()
    );
}

#[tokio::test]
async fn server_error_after_connect() {
    let (r, w, mut srv) = pipes(4096);
    tokio::spawn(async move {
        srv.say(b"AUTH-SUCCESS u\nERROR this repository is read-only; write access denied\n")
            .await;
        let mut got = Vec::new();
        srv.read_to_end(&mut got).await;
    });
    let tunnel = Tunnel::start(r, w).await.expect("session starts");
    let err = within(tunnel.relay(Service::ReceivePack, &b""[..], Vec::new()))
        .await
        .expect_err("refused");
    assert_eq!(
        err.to_string(),
        "server said: this repository is read-only; write access denied"
    );
}

#[tokio::test]
async fn hangup_before_connectdone() {
    let (r, w, mut srv) = pipes(4096);
    tokio::spawn(async move {
        srv.say(b"AUTH-SUCCESS u\nDATA 3\nabc").await;
        // dropping both ends: the server went away
    });
    let tunnel = Tunnel::start(r, w).await.expect("session starts");
    let mut out = Vec::new();
    let err = within(tunnel.relay(Service::UploadPack, &b""[..], &mut out))
        .await
        .expect_err("closed");
    assert!(
        matches!(
            err,
            TunnelError::Closed {
                stage: Stage::BeforeConnectDone
            }
        ),
        "{err:?}"
    );
    assert_eq!(out, b"abc", "what did arrive was passed on");
}

#[tokio::test]
async fn session_must_start_with_auth_success() {
    let (r, w, mut srv) = pipes(4096);
    srv.say(b"VERSION 1\n").await;
    let err = Tunnel::start(r, w).await.err().expect("refused");
    assert!(
        matches!(
            err,
            TunnelError::Unexpected {
                verb: "VERSION",
                stage: Stage::BeforeAuth
            }
        ),
        "{err:?}"
    );

    let (r, w, srv) = pipes(4096);
    drop(srv);
    let err = Tunnel::start(r, w).await.err().expect("refused");
    assert!(
        matches!(
            err,
            TunnelError::Closed {
                stage: Stage::BeforeAuth
            }
        ),
        "{err:?}"
    );

    let (r, w, mut srv) = pipes(4096);
    srv.say(b"ERROR not today\n").await;
    let err = Tunnel::start(r, w).await.err().expect("refused");
    assert_eq!(err.to_string(), "server said: not today");
}

#[tokio::test]
async fn git_going_away_is_an_output_error() {
    let (r, w, mut srv) = pipes(4096);
    tokio::spawn(async move {
        srv.say(b"AUTH-SUCCESS u\nDATA 3\nabc").await;
        let mut got = Vec::new();
        srv.read_to_end(&mut got).await;
    });
    let tunnel = Tunnel::start(r, w).await.expect("session starts");
    let (git_out, reader) = duplex(64);
    drop(reader);
    let (git_in, _keep) = duplex(64);
    let err = within(tunnel.relay(Service::UploadPack, git_in, git_out))
        .await
        .expect_err("git gone");
    assert!(matches!(err, TunnelError::GitOutput(_)), "{err:?}");
}

#[tokio::test]
async fn transport_exit_status_explains_an_early_close() {
    // a stand-in transport that fails the way ssh does when it cannot connect
    let mut std_cmd = std::process::Command::new("sh");
    std_cmd.args(["-c", "exit 255"]);
    let mut child = tokio::process::Command::from(std_cmd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("sh runs");
    let out = child.stdout.take().expect("piped");
    let inp = child.stdin.take().expect("piped");
    let err = Tunnel::start(out, inp).await.err().expect("no session");
    let err = explain_exit(err, "ssh", &mut child).await;
    assert_eq!(
        err.to_string(),
        "ssh ended (exit status: 255) before the P2P session started (no AUTH-SUCCESS)"
    );
}

fn argv(cmd: &std::process::Command) -> Vec<String> {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect()
}

#[test]
fn ssh_command_line() {
    let t = Target::Ssh {
        user: Some("me".into()),
        host: "h".into(),
        port: Some(2222),
        dir: "/srv/it's.git".into(),
    };
    let cmd = transport_command(
        &t,
        Family::Ipv6,
        "dd955513-8c88-41d0-92cb-f983fd146535",
        None,
    )
    .expect("ssh");
    assert_eq!(
        argv(&cmd),
        [
            "ssh",
            "-p",
            "2222",
            "-6",
            "-T",
            "me@h",
            "git-annex-shell 'p2pstdio' '/srv/it'\"'\"'s.git' 'dd955513-8c88-41d0-92cb-f983fd146535'"
        ]
    );
    let t = Target::Ssh {
        user: None,
        host: "localhost".into(),
        port: None,
        dir: "/~/r".into(),
    };
    // no annex.uuid: an empty argument, which git-annex-shell accepts
    assert_eq!(
        argv(&transport_command(&t, Family::Any, "", None).expect("local")),
        [
            "ssh",
            "-T",
            "localhost",
            "git-annex-shell 'p2pstdio' '/~/r' ''"
        ]
    );
}

#[test]
fn local_command_line_drops_the_clients_repository_env() {
    let t = Target::Local {
        path: "/srv/r.git".into(),
    };
    let cmd = transport_command(&t, Family::Ipv4, "u1", None).expect("ssh");
    assert_eq!(
        argv(&cmd),
        ["git-annex-shell", "p2pstdio", "/srv/r.git", "u1"]
    );
    let removed: Vec<String> = cmd
        .get_envs()
        .filter(|(_, v)| v.is_none())
        .map(|(k, _)| k.to_string_lossy().into_owned())
        .collect();
    for var in [
        "GIT_DIR",
        "GIT_WORK_TREE",
        "GIT_INDEX_FILE",
        "GIT_OBJECT_DIRECTORY",
        "GIT_COMMON_DIR",
    ] {
        assert!(
            removed.iter().any(|r| r == var),
            "{var} not removed: {removed:?}"
        );
    }
}

#[test]
fn client_uuid_comes_from_annex_uuid() {
    let dir = tempfile::tempdir().expect("temp dir");
    let git = |args: &[&str]| {
        let st = std::process::Command::new("git")
            .args(args)
            .current_dir(dir.path())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("HOME", dir.path())
            .status()
            .expect("git runs");
        assert!(st.success(), "git {args:?}");
    };
    git(&["init", "-q", "."]);
    let git_dir = dir.path().join(".git");
    assert_eq!(client_uuid(Some(&git_dir)), "");
    git(&[
        "config",
        "annex.uuid",
        "c0ffee00-0000-4000-8000-000000000001",
    ]);
    assert_eq!(
        client_uuid(Some(&git_dir)),
        "c0ffee00-0000-4000-8000-000000000001"
    );
    assert_eq!(client_uuid(None), "");
    assert_eq!(client_uuid(Some(&dir.path().join("missing"))), "");
}

#[test]
fn a_node_is_asked_for_with_uuid_as_git_annex_asks() {
    let node = "8f99040c-c5ea-4ad6-b9a2-6d84c3e7f096";
    let t = Target::Ssh {
        user: None,
        host: "h".into(),
        port: None,
        dir: "/~/srv/server".into(),
    };
    assert_eq!(
        argv(&transport_command(&t, Family::Any, "u1", Some(node)).expect("ssh")),
        [
            "ssh",
            "-T",
            "h",
            "git-annex-shell 'p2pstdio' '/~/srv/server' 'u1' '--uuid' '8f99040c-c5ea-4ad6-b9a2-6d84c3e7f096'"
        ]
    );
    let t = Target::Local {
        path: "/srv/r.git".into(),
    };
    assert_eq!(
        argv(&transport_command(&t, Family::Any, "u1", Some(node)).expect("local")),
        [
            "git-annex-shell",
            "p2pstdio",
            "/srv/r.git",
            "u1",
            "--uuid",
            node
        ]
    );
    assert_eq!(
        argv(&shell_command(&t, Family::Any, "configlist", &[]).expect("local")),
        ["git-annex-shell", "configlist", "/srv/r.git"]
    );
}
