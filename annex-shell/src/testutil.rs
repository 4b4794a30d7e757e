//! What the unit tests of relays and gateways share: repositories served
//! by the REAL git-annex-shell as nodes, and a client over an in-memory
//! pipe.

use std::path::{Path, PathBuf};

use annex::p2p::{Connection, Message};
use annex::repo::Repo;
use tokio::io::DuplexStream;

pub type Client = Connection<DuplexStream, DuplexStream>;

/// The real git-annex binary, under the name git-annex-shell.
pub fn real_shell(dir: &Path) -> PathBuf {
    let lib = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/lib");
    let real = std::fs::read_dir(&lib)
        .expect("venv lib: run scripts/install-git-annex.sh")
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("site-packages/git_annex/git-annex"))
        .find(|p| p.is_file())
        .expect("real git-annex in the venv: run scripts/install-git-annex.sh");
    let link = dir.join("git-annex-shell");
    std::os::unix::fs::symlink(real, &link).expect("symlink");
    link
}

pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
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
