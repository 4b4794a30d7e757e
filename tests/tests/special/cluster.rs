//! A special remote as a cluster node (issues 13 and 14): through our
//! gateway, a cluster of one git-annex repository `node1` and one special
//! remote `d` (a directory, unchunked, with `chunk=`, encrypted; an S3
//! bucket, plain or `encryption=hybrid`; an external program, rclone's or
//! datalad's ora), set up as git-annex does it (`initremote`, then
//! `annex-cluster-node` on the special remote).

use std::fs;
use std::path::{Path, PathBuf};

use annexproxy_tests::observe::{json_lines, keys_held, whereis_uuids};
use annexproxy_tests::run::Out;
use annexproxy_tests::{pseudo_random_bytes, ServerKind, TestEnv};

use testkit::moto;

use super::gpg::{GpgKey, KEYID};
use super::world::{default_encryption, hashdir, stored_files};

pub(super) struct Mixed {
    pub(super) env: TestEnv,
    /// The server user's gpg key, for a remote encrypted to it.
    _key: Option<GpgKey>,
    pub(super) gateway: PathBuf,
    pub(super) node: PathBuf,
    pub(super) store: PathBuf,
    /// `d`'s bucket, when it is an S3 remote.
    pub(super) bucket: Option<String>,
    /// What `enableremote d` needs elsewhere on the server (a directory
    /// remote's `directory=`, which the git config keeps).
    pub(super) enable: Vec<String>,
    pub(super) client: PathBuf,
}

/// node1 (a git-annex repository) and `d` (a directory remote made by
/// real `initremote` with `extra`), both nodes of cluster `mycl` of a
/// gateway set up by our `annexproxy`; a client that cloned the gateway.
fn mixed(extra: &[&str]) -> Mixed {
    mixed_with(Store::Directory, extra)
}

/// What `d` keeps its objects in.
pub(super) enum Store {
    Directory,
    /// A fresh bucket in the tests' moto.
    S3,
    /// An external remote: git-annex-remote-rclone on a local directory.
    Rclone,
    /// An external remote: datalad's git-annex-remote-ora on a RIA store.
    Ora,
}

/// [`mixed`] with `d` of the kind `store`.
pub(super) fn mixed_with(store: Store, extra: &[&str]) -> Mixed {
    let env = TestEnv::new(ServerKind::Ours);
    // `keyid=` in `extra` names the key the test makes for the server.
    // With sharedpubkey, the gateway's user holds the public half alone.
    let key = extra.contains(&KEYID).then(|| {
        if extra.contains(&"encryption=sharedpubkey") {
            GpgKey::held_elsewhere(&env)
        } else {
            GpgKey::make(&env)
        }
    });
    let node = env.server_bare("node1.git");
    env.annexproxy(&node, &["init", "node 1"]).ok();
    let gateway = env.server_bare("gateway.git");
    env.annexproxy(&gateway, &["init", "gateway"]).ok();
    env.annexproxy(&gateway, &["initcluster", "mycl"]).ok();
    env.oracle(
        &gateway,
        &["remote", "add", "node1", &node.display().to_string()],
    )
    .ok();
    let dir = env.srv.join("dstore");
    let mut store_dir = dir.clone();
    let (params, bucket) = match store {
        Store::Directory => {
            fs::create_dir_all(&dir).expect("store dir");
            let params = vec![
                "type=directory".to_owned(),
                format!("directory={}", dir.display()),
            ];
            (params, None)
        }
        Store::S3 => {
            // git-annex refuses loopback addresses for S3 unless allowed.
            env.oracle(
                &gateway,
                &["config", "annex.security.allowed-ip-addresses", "127.0.0.1"],
            )
            .ok();
            let bucket = moto::unique_bucket("node");
            moto::shared().create_bucket(&bucket);
            let params = vec![
                "type=S3".to_owned(),
                "host=127.0.0.1".to_owned(),
                format!("port={}", moto::shared().port()),
                "protocol=http".to_owned(),
                "requeststyle=path".to_owned(),
                "signature=v4".to_owned(),
                format!("bucket={bucket}"),
            ];
            (params, Some(bucket))
        }
        Store::Rclone => (super::external::install_rclone(&env, &dir), None),
        Store::Ora => {
            let mut params = super::external::install_ora(&env, &dir);
            params.push("type=external".into());
            // Where the program keeps objects (beside its layout files).
            let id = super::external::ARCHIVE_ID;
            store_dir = dir.join(&id[..3]).join(&id[3..]).join("annex/objects");
            (params, None)
        }
    };
    let mut args = vec!["initremote", "d"];
    args.extend(default_encryption(extra));
    args.extend(params.iter().map(String::as_str));
    args.extend_from_slice(extra);
    let creds = [
        ("AWS_ACCESS_KEY_ID", moto::ACCESS_KEY_ID),
        ("AWS_SECRET_ACCESS_KEY", moto::SECRET_ACCESS_KEY),
    ];
    env.oracle_annex_with(&gateway, &args, &creds).ok();
    for name in ["node1", "d"] {
        let setting = format!("remote.{name}.annex-cluster-node");
        env.oracle(&gateway, &["config", &setting, "mycl"]).ok();
    }
    env.annexproxy(&gateway, &["updatecluster"])
        .ok()
        .says("Added node d to cluster: mycl\n")
        .says("Started proxying for d\n")
        .says("Added node node1 to cluster: mycl\n");
    let client = env.clone_client(&gateway, "client");
    fs::write(client.join("README"), "client\n").expect("README");
    env.git(&client, &["add", "README"]).ok();
    env.git(&client, &["commit", "-q", "-m", "start"]).ok();
    env.annex(&client, &["sync"]).ok();
    Mixed {
        env,
        _key: key,
        gateway,
        node,
        store: store_dir,
        enable: match bucket {
            None if params[0] == "type=directory" => vec![params[1].clone()],
            _ => Vec::new(),
        },
        bucket,
        client,
    }
}

impl Mixed {
    /// The objects `d` holds: files under its objects' directory, or the bucket's
    /// objects but the one git-annex keeps the UUID in.
    pub(super) fn stored(&self) -> Vec<String> {
        match &self.bucket {
            None => stored_files(&self.store),
            Some(bucket) => {
                let mut names = moto::shared().list_objects(bucket);
                names.retain(|n| n != "annex-uuid");
                names
            }
        }
    }

    pub(super) fn d_uuid(&self) -> String {
        let out = self
            .env
            .oracle(&self.gateway, &["config", "remote.d.annex-uuid"]);
        out.ok().stdout.trim().to_string()
    }

    /// The UUIDs the client's whereis names for `file`, after a sync,
    /// untrusted ones (an export remote is) included.
    pub(super) fn holders(&self, file: &str) -> Vec<String> {
        self.env.annex(&self.client, &["sync"]).ok();
        let out = self.env.annex(&self.client, &["whereis", "--json", file]);
        let mut uuids = whereis_uuids(&out.stdout);
        for v in json_lines(&out.stdout) {
            let untrusted = v["untrusted"].as_array().cloned().unwrap_or_default();
            uuids.extend(
                untrusted
                    .iter()
                    .filter_map(|w| w["uuid"].as_str().map(str::to_owned)),
            );
        }
        uuids
    }

    /// Real `git annex fsck --from d` in the gateway's repository (it
    /// reads the directory itself), and real fsck in the node's.
    pub(super) fn real_fscks(&self) {
        self.real_fsck_of_d();
        self.env.assert_server_fsck_clean(&self.node);
    }

    /// Real `git annex fsck --from d` in the gateway's repository.
    fn real_fsck_of_d(&self) {
        self.env.wait_server_idle();
        let out = self
            .env
            .oracle_annex(&self.gateway, &["fsck", "--from", "d", "--all"]);
        assert!(out.success() && !out.all().contains("failed"), "{out}");
    }

    /// Content real git-annex stored in `d` itself (from a clone of the
    /// gateway on the server) is read through the cluster (node1 lacks
    /// it: from `d`), fsck'd there and dropped from it.
    fn real_stored_read_through_the_cluster(&self) {
        let before = self.stored().len();
        let via = "origin-mycl";
        let enable: Vec<&str> = self.enable.iter().map(String::as_str).collect();
        super::world::real_stored_read_via(&self.env, &self.gateway, &self.client, via, &enable);
        assert_eq!(self.stored().len(), before, "{:?}", self.stored());
        assert!(!self.holders("theirs.bin").contains(&self.d_uuid()));
    }

    fn copy(&self, file: &str) -> Out {
        self.env
            .annex(&self.client, &["copy", "--to", "origin-mycl", file])
    }

    /// The client gets `what` from the cluster; `file` holds `content`.
    fn get_back(&self, what: &str, file: &str, content: &[u8]) {
        let (env, client) = (&self.env, &self.client);
        env.annex(client, &["get", "--from", "origin-mycl", what])
            .ok();
        assert_eq!(fs::read(client.join(file)).expect(file), content);
    }

    /// `f` run with node1's repository out of the way, then back.
    fn without_node1<T>(&self, f: impl FnOnce() -> T) -> T {
        let away = self.node.with_extension("away");
        fs::rename(&self.node, &away).expect("hide node1");
        let out = f();
        fs::rename(&away, &self.node).expect("node1 back");
        out
    }
}

const BIG: usize = 700 * 1024;

/// Copy stores on both nodes, from one read of the client's stream; get
/// comes back (also with node1 gone: from d, from an offset when
/// resumed); `fsck --from` the cluster; real fsck on both sides; drop
/// reaches both.
fn flow(extra: &[&str]) -> Mixed {
    flow_with(Store::Directory, extra)
}

/// [`flow`] with `d` of the kind `store`.
fn flow_with(store: Store, extra: &[&str]) -> Mixed {
    flow_in(mixed_with(store, extra))
}

/// [`flow`] in the cluster `m`.
fn flow_in(m: Mixed) -> Mixed {
    let (env, client) = (&m.env, &m.client);
    let big = pseudo_random_bytes(13, BIG);
    env.add_file(client, "big.bin", &big);
    env.add_file(client, "small.txt", b"small content\n");
    m.copy(".").ok();
    let d = m.d_uuid();
    let node = env.server_uuid(&m.node);
    for f in ["big.bin", "small.txt"] {
        let holders = m.holders(f);
        assert!(holders.contains(&d), "{f} on d: {holders:?}");
        assert!(holders.contains(&node), "{f} on node1: {holders:?}");
    }
    assert_eq!(keys_held(&m.node).len(), 2);
    assert!(!m.stored().is_empty());
    m.real_fscks();

    let fsck_drop_get = || {
        env.annex(client, &["fsck", "--from", "origin-mycl"]).ok();
        env.annex(client, &["drop", "."]).ok();
        m.get_back(".", "big.bin", &big);
    };
    fsck_drop_get();
    // node1 gone: the cluster falls over to d, for fsck and get.
    m.without_node1(fsck_drop_get);

    env.annex(client, &["drop", "--from", "origin-mycl", "."])
        .ok();
    assert!(keys_held(&m.node).is_empty());
    assert_eq!(m.stored(), Vec::<String>::new());
    let holders = m.holders("big.bin");
    assert!(!holders.contains(&d), "{holders:?}");
    m
}

#[test]
fn directory_node_in_a_cluster() {
    flow(&[]);
}

/// The same with `d` encrypted (`encryption=shared`, in chunks): the
/// gateway's one hash of the client's stream verifies the plaintext the
/// node encrypts on its way.
#[test]
fn encrypted_directory_node_in_a_cluster() {
    let m = flow(&["encryption=shared", "chunk=256KiB"]);
    m.real_stored_read_through_the_cluster();
}

/// The same with `d` an S3 remote (moto), chunked: both nodes get each
/// key from the one read of the client's stream, the cluster falls over
/// to the bucket, and drops empty it.
#[test]
fn s3_node_in_a_cluster() {
    let m = flow_with(Store::S3, &["chunk=256KiB"]);
    assert!(m.bucket.is_some());
}

/// The same with `d` an external remote (git-annex-remote-rclone),
/// chunked: fan-out into the program's store, fail-over to it, drops
/// empty it, real git-annex in the gateway reads it through the program.
#[test]
fn external_node_in_a_cluster() {
    let m = flow_with(Store::Rclone, &["chunk=256KiB"]);
    assert!(m.bucket.is_none());
    m.real_stored_read_through_the_cluster();
    assert_eq!(
        fs::read_dir(m.gateway.join("annex/tmp/external"))
            .map(|d| d.count())
            .unwrap_or(0),
        0,
        "transfer files left"
    );
}

/// The same with `d` an S3 remote (moto) with `encryption=hybrid` (the
/// cipher encrypted to the gateway user's gpg key), chunked: the bucket
/// holds only HMAC names, and real git-annex in the gateway decrypts what
/// the node stored.
#[test]
fn hybrid_encrypted_s3_node_in_a_cluster() {
    let m = flow_with(Store::S3, &["encryption=hybrid", KEYID, "chunk=256KiB"]);
    m.copy("big.bin").ok();
    let names = m.stored();
    assert_eq!(names.len(), 3, "{names:?}");
    let hmac = |n: &String| n.starts_with("GPGHMACSHA1--");
    assert!(names.iter().all(hmac), "{names:?}");
    m.real_fsck_of_d();
    m.real_stored_read_through_the_cluster();
}

/// `d` with `encryption=sharedpubkey` to a key whose secret half the
/// gateway lacks: the copy stores on both nodes, a get comes from node1
/// (d refused before any byte, so the gateway goes on to node1 whatever
/// the order), and with node1 gone the get fails, d saying why.
#[test]
fn sharedpubkey_node_without_the_secret_key_in_a_cluster() {
    let m = mixed(&["encryption=sharedpubkey", KEYID]);
    let (env, client) = (&m.env, &m.client);
    let content = pseudo_random_bytes(19, BIG);
    env.add_file(client, "f.bin", &content);
    m.copy("f.bin").ok();
    let holders = m.holders("f.bin");
    assert!(holders.contains(&m.d_uuid()), "{holders:?}");
    assert_eq!(m.stored().len(), 1);
    // d first: the node the gateway tries before the others.
    for _ in 0..2 {
        env.annex(client, &["drop", "--force", "f.bin"]).ok();
        m.get_back("f.bin", "f.bin", &content);
    }
    let out = m.without_node1(|| {
        env.annex(client, &["drop", "--force", "f.bin"]).ok();
        env.annex(client, &["get", "--from", "origin-mycl", "f.bin"])
            .fails()
    });
    let why = "d: encryption=sharedpubkey: content is encrypted to gpg keys";
    assert!(out.all().contains(why), "{out}");
    assert!(out.all().contains("holds no secret key"), "{out}");
}

/// The same with `d` datalad's ora on a RIA store, unchunked.
#[test]
fn ora_node_in_a_cluster() {
    let m = flow_with(Store::Ora, &[]);
    assert!(m.store.ends_with("annex/objects"));
    m.real_stored_read_through_the_cluster();
}

/// Our `updatecluster` writes git-annex's records: real git-annex's sees
/// nothing to change, and proxies the remote for the cluster as we do.
#[test]
fn records_are_git_annex_records() {
    let m = mixed(&[]);
    m.env
        .oracle_annex(&m.gateway, &["updatecluster"])
        .ok()
        .says("No cluster node changes for cluster: mycl");
    let log = m
        .env
        .oracle(&m.gateway, &["show", "git-annex:proxy.log"])
        .ok();
    assert!(log.stdout.contains(&format!("{}:d", m.d_uuid())), "{log}");
    // status lists d among the cluster's nodes, reachable, as a special
    // remote.
    let out = m.env.annexproxy(&m.gateway, &["status", "--json"]).ok();
    let status = &json_lines(&out.stdout)[0];
    let nodes = status["clusters"][0]["nodes"].as_array().expect("nodes");
    let d = nodes.iter().find(|n| n["name"] == "d");
    let d = d.unwrap_or_else(|| panic!("no node d in {out}"));
    assert_eq!(d["kind"], "special", "{out}");
    assert_eq!(d["reachable"], true, "{out}");
    assert_eq!(status["clusters"][0]["nodes_reachable"], 2, "{out}");
}

#[test]
fn chunked_directory_node_in_a_cluster() {
    let m = flow(&["chunk=256KiB"]);
    // The chunk log is git-annex's: real git-annex found the chunks
    // (its fsck --from d above), and the log names d's chunk size.
    let log = m
        .env
        .oracle(&m.gateway, &["log", "-p", "git-annex", "--", "*.log.cnk"])
        .ok();
    assert!(
        log.stdout.contains(&format!("{}:262144", m.d_uuid())),
        "{log}"
    );
}

/// The path under `store` where `key`'s object directory goes.
fn object_dir(m: &Mixed, key: &str) -> PathBuf {
    m.store.join(hashdir(&m.env, &m.client, key)).join(key)
}

fn key_of(env: &TestEnv, client: &Path, file: &str) -> String {
    let out = env.annex(client, &["lookupkey", file]).ok();
    out.stdout.trim().to_string()
}

/// d's storage fails mid-PUT (its second chunk cannot be stored): d is
/// not named among the holders, the client hears that d failed, node1
/// keeps the key, and d holds nothing of it (its first chunk went).
#[test]
fn node_whose_storage_fails_mid_put_is_not_reported() {
    let m = mixed(&["chunk=256KiB"]);
    let (env, client) = (&m.env, &m.client);
    env.add_file(client, "big.bin", &pseudo_random_bytes(7, BIG));
    let key = key_of(env, client, "big.bin");
    let second = key.replacen("--", "-S262144-C2--", 1);
    let blocked = object_dir(&m, &second);
    fs::create_dir_all(blocked.parent().expect("hash dir")).expect("mkdir");
    fs::write(&blocked, "in the way\n").expect("block");

    let out = m.copy("big.bin").ok();
    let told = format!("{key}: d: store {second}: ");
    assert!(
        out.all().contains(&told),
        "the client hears d failed:\n{out}"
    );
    let holders = m.holders("big.bin");
    assert!(!holders.contains(&m.d_uuid()), "{holders:?}");
    assert!(holders.contains(&env.server_uuid(&m.node)), "{holders:?}");
    assert_eq!(keys_held(&m.node).len(), 1);
    fs::remove_file(&blocked).expect("unblock");
    assert_eq!(stored_files(&m.store), Vec::<String>::new());
    env.annex(client, &["fsck", "--from", "origin-mycl", "big.bin"])
        .ok();
}

/// d's directory is gone before the copy: the same, at the offer.
#[test]
fn node_whose_directory_is_gone_is_not_reported() {
    let m = mixed(&[]);
    let (env, client) = (&m.env, &m.client);
    env.add_file(client, "f.txt", b"some content\n");
    fs::remove_dir_all(&m.store).expect("remove store");
    let out = m.copy("f.txt").ok();
    let told = format!("{}: d: directory ", key_of(env, client, "f.txt"));
    assert!(
        out.all().contains(&told),
        "the client hears d failed:\n{out}"
    );
    assert!(out.all().contains("not accessible"), "{out}");
    let holders = m.holders("f.txt");
    assert!(!holders.contains(&m.d_uuid()), "{holders:?}");
    assert!(holders.contains(&env.server_uuid(&m.node)), "{holders:?}");
}

/// The gateway places by the special remote's preferred content and
/// maxsize, set by the client as for any repository.
#[test]
fn placement_applies_to_the_special_node() {
    let m = mixed(&[]);
    let (env, client) = (&m.env, &m.client);
    let (d, node) = (m.d_uuid(), env.server_uuid(&m.node));
    env.annex(client, &["wanted", &d, "include=*.txt"]).ok();
    env.annex(client, &["maxsize", &d, "40"]).ok();
    env.annex(client, &["sync"]).ok();
    env.add_file(client, "big.bin", &pseudo_random_bytes(3, 4096));
    env.add_file(client, "small.txt", b"small content\n");
    m.copy(".").ok();
    let big = m.holders("big.bin");
    assert!(!big.contains(&d) && big.contains(&node), "{big:?}");
    let small = m.holders("small.txt");
    assert!(small.contains(&d) && small.contains(&node), "{small:?}");
    // 14 bytes on d already: 30 more would pass its maxsize of 40.
    env.add_file(client, "more.txt", &[b'x'; 30]);
    m.copy("more.txt").ok();
    let more = m.holders("more.txt");
    assert!(!more.contains(&d) && more.contains(&node), "{more:?}");
    assert_eq!(stored_files(&m.store).len(), 1);
}

/// d's configuration is no longer the verified one: d is down for the
/// session with that reason, and node1 alone is named.
#[test]
fn node_whose_configuration_is_unverified_is_not_reported() {
    let m = mixed(&[]);
    let (env, client) = (&m.env, &m.client);
    env.add_file(client, "f.txt", b"other content\n");
    fs::remove_file(m.gateway.join("annex/verified-remote.log")).expect("unverify");
    let out = m.copy("f.txt").ok();
    assert!(
        out.all().contains("d: this special remote's configuration"),
        "{out}"
    );
    let holders = m.holders("f.txt");
    assert!(!holders.contains(&m.d_uuid()), "{holders:?}");
    assert!(holders.contains(&env.server_uuid(&m.node)), "{holders:?}");
    assert_eq!(stored_files(&m.store), Vec::<String>::new());
}
