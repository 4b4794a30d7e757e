use super::*;

const A: &str = "1111111111111111111111111111111111111111";
const B: &str = "2222222222222222222222222222222222222222";
const Z: &str = "0000000000000000000000000000000000000000";

fn up(old: &str, new: &str, name: &str) -> RefUpdate {
    RefUpdate::new(old, new, name)
}

#[test]
fn push_args_force_only_under_a_lease() {
    let main = up(A, B, "refs/heads/main");
    let tag = up(Z, A, "refs/tags/v1");
    let gone = up(B, Z, "refs/heads/gone");
    let args = push_args("node1", &[&main, &tag, &gone], |_| true);
    assert_eq!(
        args,
        [
            "push",
            "--porcelain",
            &format!("--force-with-lease=refs/heads/gone:{B}"),
            "node1",
            &format!("{B}:refs/heads/main"),
            &format!("{A}:refs/tags/v1"),
            ":refs/heads/gone",
        ]
    );
    // a forced update is forced only where the node still had the old value
    let args = push_args("node1", &[&main], |_| false);
    assert_eq!(
        args,
        [
            "push",
            "--porcelain",
            &format!("--force-with-lease=refs/heads/main:{A}"),
            "node1",
            &format!("{B}:refs/heads/main"),
        ]
    );
}

#[test]
fn porcelain_separates_taken_from_refused_refs() {
    let out = format!(
        "To /srv/n2.git\n\
         =\trefs/heads/a:refs/heads/a\t[up to date]\n\
         *\t{A}:refs/tags/v1\t[new tag]\n\
         -\t:refs/heads/gone\t[deleted]\n\
         !\t{B}:refs/heads/main\t[remote rejected] (pre-receive hook declined)\n\
         Done\n"
    );
    let (done, refused) = porcelain(&out);
    assert_eq!(done, ["refs/heads/a", "refs/tags/v1", "refs/heads/gone"]);
    assert_eq!(
        refused,
        ["refs/heads/main [remote rejected] (pre-receive hook declined)"]
    );
}

/// The node answers as git does, writing all it has to say before it
/// reads again (and only once the client's bytes are on their way), while
/// the client (our remote helper) writes and reads at once. A relay that served one way at a time sat writing the client's
/// bytes to a node that was not reading, never reading the node's: both
/// waited forever once the pipes were full.
#[tokio::test]
async fn relay_moves_both_ways_at_once() {
    use std::time::Duration;

    use annex::transport::{connect, ConnectOptions, NodeRemote};
    use tokio::io::duplex;

    const BIG: usize = 8 << 20;
    const NODE: &str = "0a0a0a0a-0000-4000-8000-000000000001";
    const ME: &str = "0b0b0b0b-0000-4000-8000-000000000002";
    let t = tempfile::tempdir().expect("tempdir");
    let script = t.path().join("node-shell");
    let client_bytes = BIG + format!("DATA {BIG}\n").len();
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho 'AUTH-SUCCESS {NODE}'\nread v\necho 'VERSION 4'\nread c\nsleep 0.5\n\
             printf 'DATA {BIG}\\n'\nhead -c {BIG} /dev/zero\n\
             head -c {client_bytes} >/dev/null\necho 'CONNECTDONE 0'\n"
        ),
    )
    .expect("script");
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let node = NodeRemote {
        name: "n1".into(),
        uuid: NODE.into(),
        location: annex::transport::Location::Local(t.path().to_owned()),
        annex_shell: Some(script.display().to_string()),
        ssh_options: vec![],
    };
    let mut nc = connect(&node, ME, 4, &ConnectOptions::new(script.clone()))
        .await
        .expect("node up");
    nc.conn
        .write_message(&Message::Connect(Service::UploadPack))
        .await
        .expect("CONNECT");
    let (c_read, s_write) = duplex(1 << 16);
    let (s_read, c_write) = duplex(1 << 16);
    let mut gateway_side = Connection::new(s_read, s_write);
    let mut client = Connection::new(c_read, c_write);
    let peer = async {
        let mut halves = client.split();
        let (r, w) = (&mut halves.reading, &mut halves.writing);
        let body = vec![1u8; BIG];
        let mut src = body.as_slice();
        let send = w.send_data(BIG as u64, &mut src);
        let recv = async {
            let mut got = 0;
            while got < BIG as u64 {
                match r.read_message().await.expect("read") {
                    Some(Message::Data(len)) => {
                        r.relay_data(len, &mut tokio::io::sink())
                            .await
                            .expect("body");
                        got += len;
                    }
                    other => panic!("DATA expected, got {other:?}"),
                }
            }
        };
        let (sent, ()) = tokio::join!(send, recv);
        sent.expect("client's DATA sent");
    };
    let both = async { tokio::join!(relay(&mut gateway_side, &mut nc, |_| {}), peer).0 };
    let relayed = tokio::time::timeout(Duration::from_secs(20), both)
        .await
        .expect("the relay moved both ways without waiting on itself");
    assert_eq!(relayed.expect("relayed"), Relayed::Done(0));
}
