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
