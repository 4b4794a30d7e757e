//! annex-s3 and the real git-annex on the same bucket: what git-annex
//! stores (whole keys, keys under a `fileprefix`, chunk keys), annex-s3
//! finds and reads by git-annex's object names, with the parameters and
//! credentials git-annex wrote; what annex-s3 stores under a key's name,
//! git-annex's `fsck --from` and `get --from` accept.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use annex_s3::creds::{self, Env};
use annex_s3::{CredsSource, S3Config, S3Storage};
use testkit::moto;

use crate::{bytes, read_all};

/// A git-annex repository with S3 credentials in its environment only.
struct Repo {
    _tmp: tempfile::TempDir,
    home: PathBuf,
    dir: PathBuf,
}

impl Repo {
    fn new() -> Repo {
        let tmp = tempfile::tempdir().expect("tempdir");
        let home = tmp.path().join("home");
        let dir = tmp.path().join("repo");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::create_dir_all(&dir).unwrap();
        let r = Repo {
            _tmp: tmp,
            home,
            dir,
        };
        r.git(&["init", "-q"]);
        r.git(&["config", "user.name", "t"]);
        r.git(&["config", "user.email", "t@example.org"]);
        // git-annex refuses loopback addresses for S3 unless allowed.
        r.git(&["config", "annex.security.allowed-ip-addresses", "127.0.0.1"]);
        r.annex(&["init", "-q", "test"]);
        r
    }

    fn cmd(&self, program: &Path) -> Command {
        let mut c = Command::new(program);
        c.current_dir(&self.dir)
            .env_clear()
            .env("HOME", &self.home)
            .env("PATH", testkit::path_env())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("AWS_ACCESS_KEY_ID", moto::ACCESS_KEY_ID)
            .env("AWS_SECRET_ACCESS_KEY", moto::SECRET_ACCESS_KEY);
        if let Some(magic) = testkit::real_magic_db() {
            c.env("MAGIC", magic);
        }
        c
    }

    fn git(&self, args: &[&str]) -> String {
        let out = testkit::run_ok(self.cmd(Path::new("git")).args(args));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn annex(&self, args: &[&str]) -> String {
        let out = testkit::run_ok(self.cmd(&testkit::real_git_annex()).args(args));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `git annex initremote NAME type=S3 …` against moto, path-style, v4,
    /// on a bucket made first: git-annex signs with the host as the region,
    /// and moto refuses to create a bucket in that "region" with no
    /// location constraint.
    fn initremote(&self, name: &str, bucket: &str, extra: &[&str]) {
        moto::shared().create_bucket(bucket);
        let port = format!("port={}", moto::shared().port());
        let bucket = format!("bucket={bucket}");
        let mut args = vec![
            "initremote",
            name,
            "type=S3",
            "host=127.0.0.1",
            &port,
            "protocol=http",
            "requeststyle=path",
            "signature=v4",
            "encryption=none",
            &bucket,
        ];
        args.extend_from_slice(extra);
        self.annex(&args);
    }

    /// A new annexed file; its key.
    fn add(&self, file: &str, content: &[u8]) -> String {
        std::fs::write(self.dir.join(file), content).unwrap();
        self.annex(&["add", "-q", file]);
        self.git(&["commit", "-qm", file]);
        self.annex(&["lookupkey", file]).trim().to_string()
    }

    fn uuid_of(&self, remote: &str) -> String {
        self.git(&["config", &format!("remote.{remote}.annex-uuid")])
            .trim()
            .to_string()
    }

    /// The remote's parameters as remote.log holds them.
    fn params_of(&self, remote: &str) -> BTreeMap<String, String> {
        let uuid = self.uuid_of(remote);
        let log = self.git(&["show", "git-annex:remote.log"]);
        let line = log
            .lines()
            .find(|l| l.starts_with(&uuid))
            .unwrap_or_else(|| panic!("{uuid} not in remote.log:\n{log}"));
        line.split_whitespace()
            .skip(1)
            .filter_map(|kv| kv.split_once('='))
            .filter(|(k, _)| *k != "timestamp")
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Our storage for `remote`, with the parameters and the credentials
    /// git-annex left (its creds cache, no environment).
    fn storage(&self, remote: &str) -> S3Storage {
        let params = self.params_of(remote);
        let config = S3Config::from_params(&params).expect("git-annex's params");
        let (creds, source) = creds::find_credentials(
            &NoEnv,
            &self.dir.join(".git"),
            &self.uuid_of(remote),
            &params,
        )
        .expect("creds")
        .expect("git-annex cached the credentials");
        assert!(matches!(source, CredsSource::CacheFile(_)), "{source:?}");
        S3Storage::new(remote, config, Some(creds)).expect("storage")
    }
}

struct NoEnv;

impl Env for NoEnv {
    fn var(&self, _: &str) -> Option<String> {
        None
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_git_annex_stores_are_found_by_their_key_names() {
    let repo = Repo::new();
    let bucket = moto::unique_bucket("ga");
    let prefixed = moto::unique_bucket("gp");
    repo.initremote("s3", &bucket, &[]);
    repo.initremote("s3p", &prefixed, &["fileprefix=annex/"]);
    let data = bytes(70_000, 10);
    let key = repo.add("f.bin", &data);
    repo.annex(&["copy", "-q", "--to", "s3", "f.bin"]);
    repo.annex(&["copy", "-q", "--to", "s3p", "f.bin"]);

    // Keys are the object names; git-annex's annex-uuid is beside them.
    assert_eq!(
        moto::shared().list_objects(&bucket),
        [key.as_str(), "annex-uuid"]
    );
    assert_eq!(
        moto::shared().list_objects(&prefixed),
        [format!("annex/{key}"), "annex/annex-uuid".into()]
    );
    for remote in ["s3", "s3p"] {
        let s = repo.storage(remote);
        let uuid = read_all(&s, S3Storage::UUID_OBJECT, 0).await;
        assert_eq!(String::from_utf8(uuid).unwrap(), repo.uuid_of(remote));
        assert_eq!(s.stat(&key).await.unwrap(), Some(70_000), "{remote}");
        assert_eq!(read_all(&s, &key, 0).await, data, "{remote}");
        assert_eq!(read_all(&s, &key, 65_536).await, &data[65_536..]);
    }
}

/// A chunked remote stores chunk keys: the key with `-S<chunk size>-C<n>`
/// before its `--`, each holding one chunk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunks_git_annex_stores_are_found_by_their_chunk_key_names() {
    let repo = Repo::new();
    let bucket = moto::unique_bucket("gc");
    repo.initremote("s3c", &bucket, &["chunk=100KiB"]);
    let data = bytes(250_000, 11);
    let key = repo.add("c.bin", &data);
    repo.annex(&["copy", "-q", "--to", "s3c", "c.bin"]);

    let (head, tail) = key.split_once("--").expect("a key has --");
    let chunk = |n: u32| format!("{head}-S102400-C{n}--{tail}");
    let mut listed = moto::shared().list_objects(&bucket);
    listed.sort();
    assert_eq!(listed, [chunk(1), chunk(2), chunk(3), "annex-uuid".into()]);
    let s = repo.storage("s3c");
    let mut joined = Vec::new();
    for n in 1..=3 {
        joined.extend(read_all(&s, &chunk(n), 0).await);
    }
    assert_eq!(joined, data);
}

/// What annex-s3 writes under a key's name is the key for git-annex:
/// `fsck --from` finds it intact, and `get --from` retrieves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_we_store_are_read_back_by_git_annex() {
    let repo = Repo::new();
    let bucket = moto::unique_bucket("gw");
    repo.initremote("s3", &bucket, &[]);
    // Over one part (8 MiB without partsize=): the multipart path.
    let data = bytes(9 << 20, 12);
    let key = repo.add("w.bin", &data);

    let s = repo.storage("s3");
    let mut w = s.begin_write(&key, Some(data.len() as u64)).await.unwrap();
    for piece in data.chunks(1 << 20) {
        w.write(piece).await.unwrap();
    }
    w.commit().await.unwrap();

    repo.annex(&["fsck", "-q", "--from", "s3", "w.bin"]);
    let whereis = repo.annex(&["whereis", "w.bin"]);
    assert!(whereis.contains("s3"), "fsck did not record s3: {whereis}");
    repo.annex(&["drop", "-q", "w.bin"]);
    assert!(std::fs::read(repo.dir.join("w.bin")).is_err(), "dropped");
    repo.annex(&["get", "-q", "--from", "s3", "w.bin"]);
    assert_eq!(std::fs::read(repo.dir.join("w.bin")).unwrap(), data);
}

/// `embedcreds=yes`: git-annex's `s3creds=` in remote.log decodes to the
/// credentials it was given.
#[test]
fn embedded_creds_git_annex_writes_are_read() {
    let repo = Repo::new();
    let bucket = moto::unique_bucket("ge");
    repo.initremote("s3e", &bucket, &["embedcreds=yes"]);
    let params = repo.params_of("s3e");
    assert!(params.contains_key("s3creds"), "{params:?}");
    let empty = tempfile::tempdir().unwrap();
    let (c, source) = creds::find_credentials(&NoEnv, empty.path(), "none", &params)
        .unwrap()
        .unwrap();
    assert_eq!(source, CredsSource::Embedded);
    assert_eq!(c.access_key_id, moto::ACCESS_KEY_ID);
    assert_eq!(c.secret_access_key, moto::SECRET_ACCESS_KEY);
}
