//! A special remote (a directory, chunked) as one node of the composite
//! gateway, beside an in-memory node: raw protocol bytes in, the exact
//! replies out.

use std::path::Path;

use super::composite_tests::{gateway_repo, greeting, key, session_of, Mem, KEY};
use super::node::Node;
use super::special::SpecialNode;
use crate::special::chunks::{chunk_log_path, ChunkConfig};
use crate::special::directory::Directory;
use crate::special::remote::Special;
use crate::special::{Kind, SpecialRemote};

/// `d`, a directory remote under `root` in chunks of 2 bytes ("hello" is
/// three chunks), its logs in the gateway's branch.
fn directory_node(root: &Path) -> Box<dyn Node> {
    let store = root.join("dstore");
    std::fs::create_dir_all(&store).expect("store");
    let remote = SpecialRemote {
        name: "d".into(),
        uuid: "d-uuid".into(),
        type_name: "directory".into(),
        params: Default::default(),
        kind: Kind::Directory(store.clone()),
        chunking: ChunkConfig::Fixed(2),
        encryption: None,
        export: None,
    };
    let repo = gateway_repo(root);
    let special = Special::new(Directory::new("d", store), &remote, repo.branch()).into_node();
    Box::new(SpecialNode::new(special))
}

fn chunk_log(root: &Path) -> String {
    let text = gateway_repo(root)
        .branch()
        .read_file(&chunk_log_path(&key()))
        .expect("read");
    String::from_utf8(text.unwrap_or_default()).expect("utf8")
}

#[tokio::test]
async fn put_fans_out_to_the_directory_and_get_reads_it_from_an_offset() {
    let t = tempfile::tempdir().expect("tempdir");
    let (a, _) = Mem::new("a");
    let nodes = vec![Box::new(a) as Box<dyn Node>, directory_node(t.path())];
    let input = format!("VERSION 2\nPUT f {KEY}\nDATA 5\nhelloVALID\n");
    let out = session_of(t.path(), nodes, input.as_bytes()).await;
    let replies = "VERSION 2\nPUT-FROM 0\nSUCCESS-PLUS a-uuid d-uuid\n";
    assert_eq!(out, format!("{}{replies}", greeting()));
    assert!(
        chunk_log(t.path()).contains("d-uuid:2 3"),
        "{}",
        chunk_log(t.path())
    );

    // From byte 3: the end of chunk 2 and chunk 3, one stream.
    let input = format!("VERSION 2\nGET 3 f {KEY}\nSUCCESS\n");
    let out = session_of(t.path(), vec![directory_node(t.path())], input.as_bytes()).await;
    assert_eq!(out, format!("{}VERSION 2\nDATA 2\nloVALID\n", greeting()));
}

#[tokio::test]
async fn a_body_that_does_not_match_leaves_nothing_on_the_directory() {
    let t = tempfile::tempdir().expect("tempdir");
    let nodes = vec![directory_node(t.path())];
    let input = format!("VERSION 2\nPUT f {KEY}\nDATA 5\nhellxVALID\n");
    let out = session_of(t.path(), nodes, input.as_bytes()).await;
    let replies = "VERSION 2\nPUT-FROM 0\nFAILURE\n";
    assert_eq!(out, format!("{}{replies}", greeting()));
    let left: Vec<_> = walk(&t.path().join("dstore"));
    assert!(left.iter().all(|p| p.contains("/tmp/")), "{left:?}");
    assert_eq!(chunk_log(t.path()), "");
}

fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p.display().to_string());
        }
    }
    out
}

/// What an upload cut after "hel" leaves: chunk 1 ("he") stored, "l"
/// staged for chunk 2.
async fn cut_after_hel(root: &Path) {
    use crate::special::storage::{StagedWrite, Storage};
    drop(directory_node(root));
    let store = Directory::new("d", root.join("dstore"));
    let mut first = store
        .begin_write(&key().chunk(2, 1), Some(2))
        .await
        .expect("begin");
    first.write(b"he").await.expect("write");
    first.commit().await.expect("commit");
    let mut second = store
        .begin_write(&key().chunk(2, 2), Some(2))
        .await
        .expect("begin");
    second.write(b"l").await.expect("write");
}

#[tokio::test]
async fn an_interrupted_upload_resumes_on_the_directory_from_what_it_holds() {
    let t = tempfile::tempdir().expect("tempdir");
    cut_after_hel(t.path()).await;
    let input = format!("VERSION 2\nPUT f {KEY}\nDATA 2\nloVALID\n");
    let out = session_of(t.path(), vec![directory_node(t.path())], input.as_bytes()).await;
    let replies = "VERSION 2\nPUT-FROM 3\nSUCCESS-PLUS d-uuid\n";
    assert_eq!(out, format!("{}{replies}", greeting()));

    // Beside a node that needs all of it: the client sends from 0, the
    // directory keeps only what it lacks, and verifies the whole.
    let t = tempfile::tempdir().expect("tempdir");
    cut_after_hel(t.path()).await;
    let (a, _) = Mem::new("a");
    let nodes = vec![Box::new(a) as Box<dyn Node>, directory_node(t.path())];
    let input = format!("VERSION 2\nPUT f {KEY}\nDATA 5\nhelloVALID\n");
    let out = session_of(t.path(), nodes, input.as_bytes()).await;
    let replies = "VERSION 2\nPUT-FROM 0\nSUCCESS-PLUS a-uuid d-uuid\n";
    assert_eq!(out, format!("{}{replies}", greeting()));
    assert!(chunk_log(t.path()).contains("d-uuid:2 3"));
}

/// `d` encrypted (a shared cipher, unchunked), gpg's home under `root`.
fn encrypted_node(root: &Path) -> Box<dyn Node> {
    use crate::special::crypt::Crypt;
    use crate::special::crypto::{Encryption, MacKind};
    let store = root.join("dstore");
    std::fs::create_dir_all(&store).expect("store");
    let home = root.join("gnupg");
    std::fs::create_dir_all(&home).expect("gnupg home");
    let mut enc = Encryption::shared(&[b'k'; 300], MacKind::Sha1);
    enc.gnupg_home = Some(home);
    let remote = SpecialRemote {
        name: "d".into(),
        uuid: "d-uuid".into(),
        type_name: "directory".into(),
        params: Default::default(),
        kind: Kind::Directory(store.clone()),
        chunking: ChunkConfig::Whole,
        encryption: Some(std::sync::Arc::new(enc)),
        export: None,
    };
    let storage = Crypt::new(Directory::new("d", store), remote.encryption.clone());
    let repo = gateway_repo(root);
    Box::new(SpecialNode::new(
        Special::new(storage, &remote, repo.branch()).into_node(),
    ))
}

/// Ciphertext altered in gpg's integrity check only (its last byte):
/// all of "hello" comes out of gpg, then gpg fails; the node's DATA
/// source fails before its last byte, so the client never gets it whole
/// (the gateway ends the session, as for any node whose read fails
/// mid-DATA) instead of hearing VALID.
#[tokio::test]
async fn altered_ciphertext_on_an_encrypted_node_is_never_sent_whole() {
    let t = tempfile::tempdir().expect("tempdir");
    let input = format!("VERSION 2\nPUT f {KEY}\nDATA 5\nhelloVALID\n");
    let out = session_of(t.path(), vec![encrypted_node(t.path())], input.as_bytes()).await;
    let replies = "VERSION 2\nPUT-FROM 0\nSUCCESS-PLUS d-uuid\n";
    assert_eq!(out, format!("{}{replies}", greeting()));
    let [object] = <[String; 1]>::try_from(walk(&t.path().join("dstore"))).expect("one object");
    let path = Path::new(&object);
    for p in [path.parent().expect("dir"), path] {
        let mode = if p == path { 0o644 } else { 0o755 };
        let perms = std::os::unix::fs::PermissionsExt::from_mode(mode);
        std::fs::set_permissions(p, perms).expect("chmod");
    }
    let mut bytes = std::fs::read(path).expect("object");
    *bytes.last_mut().expect("not empty") ^= 1;
    std::fs::write(path, bytes).expect("alter");
    let input = format!("VERSION 2\nGET 0 f {KEY}\nFAILURE\n");
    let root = t.path().to_owned();
    let session = tokio::spawn(async move {
        session_of(&root, vec![encrypted_node(&root)], input.as_bytes()).await
    });
    let ended = session.await;
    let _ = std::process::Command::new("gpgconf")
        .arg("--homedir")
        .arg(t.path().join("gnupg"))
        .args(["--kill", "gpg-agent"])
        .status();
    let panic = ended.expect_err("the session fails").into_panic();
    let said = panic.downcast_ref::<String>().expect("a message");
    assert!(said.contains("reading the DATA source failed"), "{said}");
}
