//! What the unit tests of relays and gateways share: repositories served
//! by the REAL git-annex-shell as nodes, and a client over an in-memory
//! pipe.

use std::path::{Path, PathBuf};

use annex::p2p::{Connection, Message};
use annex::repo::Repo;
use tokio::io::DuplexStream;

pub type Client = Connection<DuplexStream, DuplexStream>;

pub use testkit::git;

/// The real git-annex binary, under the name git-annex-shell.
pub fn real_shell(dir: &Path) -> PathBuf {
    let link = dir.join("git-annex-shell");
    std::os::unix::fs::symlink(testkit::real_annex_binary(), &link).expect("symlink");
    link
}

pub fn new_repo(root: &Path, name: &str, desc: &str) -> (PathBuf, String) {
    git(root, &["init", "-q", "--bare", name]);
    let dir = root.join(name);
    git(&dir, &["config", "user.name", "T"]);
    git(&dir, &["config", "user.email", "t@example.org"]);
    let uuid = Repo::open(&dir)
        .expect("open")
        .init(Some(desc))
        .expect("init");
    (dir, uuid)
}

pub async fn say(c: &mut Client, m: Message) {
    c.write_message(&m).await.expect("client write");
}

pub async fn hear(c: &mut Client) -> Message {
    c.read_message()
        .await
        .expect("client read")
        .expect("not EOF")
}

/// Runs one session over `backend` under `rules` with `input` from the
/// client, then EOF; everything the session sent (the reply bytes).
pub async fn run_session<B: crate::backend::Backend>(
    backend: B,
    rules: crate::restrict::Rules,
    input: &[u8],
) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (client_end, server_end) = tokio::io::duplex(1 << 20);
    let (server_r, server_w) = tokio::io::split(server_end);
    let (mut client_r, mut client_w) = tokio::io::split(client_end);
    client_w.write_all(input).await.expect("write");
    client_w.shutdown().await.expect("shutdown");
    let conn = Connection::new(server_r, server_w);
    let run = crate::session::Session::new(conn, backend, rules).run();
    let read = async {
        let mut out = Vec::new();
        client_r.read_to_end(&mut out).await.expect("read");
        out
    };
    // The session's end drops its connection: the reader sees EOF.
    let (result, out) = tokio::join!(run, read);
    result.expect("session");
    String::from_utf8(out).expect("utf-8")
}
