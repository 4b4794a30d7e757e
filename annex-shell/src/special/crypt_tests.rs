//! The encryption layer over a directory, with gpg: what the framework
//! sees is plaintext, what the directory holds is gpg's output under
//! HMAC names.

use std::sync::Arc;

use tokio::io::AsyncReadExt;

use super::*;
use crate::special::crypto::MacKind;
use crate::special::directory::Directory;

/// A temporary directory whose gpg agent, if gpg started one, is stopped
/// with it.
struct Tmp(tempfile::TempDir);

impl Tmp {
    fn path(&self) -> &std::path::Path {
        self.0.path()
    }
}

impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::process::Command::new("gpgconf")
            .arg("--homedir")
            .arg(self.0.path().join("gnupg"))
            .args(["--kill", "gpg-agent"])
            .status();
    }
}

/// A directory in a temporary directory, gpg's home beside it.
fn crypt() -> (Tmp, Crypt<Directory>, Arc<Encryption>) {
    let tmp = Tmp(tempfile::tempdir().expect("tempdir"));
    let dir = Directory::new("d", tmp.path().join("store"));
    std::fs::create_dir(dir.root()).expect("store");
    let home = tmp.path().join("gnupg");
    std::fs::create_dir(&home).expect("gnupg home");
    let cipher = [b'c'; 300];
    let mut enc = Encryption::shared(&cipher, MacKind::Sha1);
    enc.gnupg_home = Some(home);
    let enc = Arc::new(enc);
    (tmp, Crypt::new(dir, Some(enc.clone())), enc)
}

async fn read_all(c: &Crypt<Directory>, name: &Key, offset: u64) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut r = c.read(name, offset).await.expect("read");
    r.read_to_end(&mut out).await?;
    Ok(out)
}

async fn store(c: &Crypt<Directory>, name: &Key, content: &[u8]) {
    let mut w = c.begin_write(name, None).await.expect("begin");
    for piece in content.chunks(100_000) {
        w.write(piece).await.expect("write");
    }
    w.commit().await.expect("commit");
}

fn content() -> Vec<u8> {
    (0..700_000u32).map(|i| (i * 7 % 251) as u8).collect()
}

#[tokio::test]
async fn stored_encrypted_read_back_plain() {
    let (_t, c, enc) = crypt();
    let content = content();
    let key = Key::parse("SHA256E-s700000--aa.bin").expect("key");
    store(&c, &key, &content).await;
    assert_eq!(c.stat(&key).await.expect("stat"), Some(700_000));
    assert_eq!(read_all(&c, &key, 0).await.expect("read"), content);
    assert_eq!(
        read_all(&c, &key, 650_000).await.expect("read"),
        &content[650_000..]
    );
    // The directory has it under its HMAC name only, not as plaintext.
    let hidden = enc.object_name(&key);
    assert_eq!(c.inner().stat(&key).await.expect("stat"), None);
    let mut raw = Vec::new();
    let mut r = c.inner().read(&hidden, 0).await.expect("object");
    r.read_to_end(&mut raw).await.expect("read");
    assert!(raw.len() < content.len(), "gpg compresses this content");
    assert!(c.local_file(&key).expect("local").is_none());
    c.remove(&key).await.expect("remove");
    assert_eq!(c.inner().stat(&hidden).await.expect("stat"), None);
}

/// A key without a size (a URL key) is decrypted to count its bytes.
#[tokio::test]
async fn size_of_a_key_without_one_is_counted() {
    let (_t, c, _) = crypt();
    let key = Key::parse("URL--http&c%%example.org%f").expect("key");
    store(&c, &key, b"twelve bytes").await;
    assert_eq!(c.stat(&key).await.expect("stat"), Some(12));
}

/// Altered ciphertext fails the read (gpg's integrity check), and an
/// aborted write leaves nothing.
#[tokio::test]
async fn altered_object_fails_and_abort_leaves_nothing() {
    let (t, c, enc) = crypt();
    let key = Key::parse("SHA256E-s700000--bb.bin").expect("key");
    store(&c, &key, &content()).await;
    let file = enc.object_name(&key).key_file();
    let path = walk(t.path(), &file).expect("stored object");
    let mut bytes = std::fs::read(&path).expect("object");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    let mut perms = std::fs::metadata(&path).expect("meta").permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(&path, perms).expect("chmod");
    std::fs::write(&path, bytes).expect("alter");
    assert!(read_all(&c, &key, 0).await.is_err());

    let other = Key::parse("SHA256E-s5--cc").expect("key");
    let mut w = c.begin_write(&other, None).await.expect("begin");
    w.write(b"hello").await.expect("write");
    w.abort().await.expect("abort");
    assert_eq!(c.stat(&other).await.expect("stat"), None);
}

fn walk(dir: &std::path::Path, name: &str) -> Option<std::path::PathBuf> {
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        let p = e.path();
        if p.is_dir() {
            if let Some(found) = walk(&p, name) {
                return Some(found);
            }
        } else if p.file_name().is_some_and(|n| n == name) {
            return Some(p);
        }
    }
    None
}

/// Symmetric content is written with a light S2K (the passphrase is
/// random): gpg's packet says 65536 bytes hashed, not its default.
#[tokio::test]
async fn symmetric_content_has_a_light_s2k() {
    let (t, c, enc) = crypt();
    let key = Key::parse("SHA256E-s5--dd").expect("key");
    store(&c, &key, b"hello").await;
    let path = walk(t.path(), &enc.object_name(&key).key_file()).expect("stored object");
    let mut gpg = std::process::Command::new(GPG);
    gpg.env("GNUPGHOME", t.path().join("gnupg"))
        .args(["--batch", "--passphrase-fd", "0", "--list-packets"])
        .arg(&path)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    let mut child = gpg.spawn().expect("gpg");
    let mut stdin = child.stdin.take().expect("piped");
    std::io::Write::write_all(&mut stdin, &enc.stdin_preamble()).expect("passphrase");
    drop(stdin);
    let out = child.wait_with_output().expect("gpg");
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(listed.contains(", count 65536 "), "{listed}");
}

/// Content this server cannot decrypt (a sharedpubkey remote without a
/// secret key): reads are refused with the reason, before gpg runs;
/// writes and presence go on.
#[tokio::test]
async fn undecryptable_content_is_stored_but_not_read() {
    let tmp = Tmp(tempfile::tempdir().expect("tempdir"));
    let dir = Directory::new("d", tmp.path().join("store"));
    std::fs::create_dir(dir.root()).expect("store");
    let mut enc = Encryption::shared(&[b'c'; 300], MacKind::Sha1);
    enc.gnupg_home = Some(tmp.path().join("gnupg"));
    std::fs::create_dir(tmp.path().join("gnupg")).expect("gnupg home");
    enc.undecryptable = Some("no secret key here".into());
    let c = Crypt::new(dir, Some(Arc::new(enc)));
    let key = Key::parse("SHA256E-s5--ee").expect("key");
    store(&c, &key, b"hello").await;
    assert_eq!(c.stat(&key).await.expect("stat"), Some(5));
    let refused = |e: StorageError| matches!(e, StorageError::Unreadable { why, .. } if why == "no secret key here");
    assert!(c.readable().is_err_and(refused));
    assert!(c.read(&key, 0).await.is_err_and(refused));
    assert!(!c.read_back_is_cheap());
}
