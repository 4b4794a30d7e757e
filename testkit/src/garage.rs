//! Garage, a real S3-compatible object store that checks every
//! signature (moto checks none), as a single node on loopback ports: its
//! configuration generated in a temporary directory, the layout assigned
//! and applied, a key made and allowed to create buckets, the way its
//! manual sets up a first node.
//!
//! The binary comes from `scripts/install-garage.sh` (`target/tools/bin`,
//! or `$GARAGE_BIN`); the tests that use it run behind a flag (see the
//! README's Testing), and fail, never skip, when it is missing.
//!
//! [`Garage::s3_region`] is the region Garage checks in each signature's
//! scope: the host name, `127.0.0.1`, as git-annex derives a region for a
//! host that is not AWS's, so a remote made with `host=127.0.0.1` and no
//! `region=` signs as Garage expects.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The version the tests were written against.
pub const VERSION: &str = "2.5.0";

/// A running single-node Garage; stopped when dropped.
pub struct Garage {
    child: std::sync::Mutex<Child>,
    /// The watcher's stdin: closing it stops the server.
    stdin: std::sync::Mutex<Option<std::process::ChildStdin>>,
    config: PathBuf,
    port: u16,
    /// The access key allowed to create buckets.
    pub key_id: String,
    pub secret: String,
}

/// The node of this test binary, started on first use.
pub fn shared() -> &'static Garage {
    static SHARED: OnceLock<Garage> = OnceLock::new();
    SHARED.get_or_init(Garage::start)
}

/// `$GARAGE_BIN`, else `<workspace>/target/tools/bin/garage`.
pub fn binary() -> PathBuf {
    let bin = match std::env::var_os("GARAGE_BIN") {
        Some(b) if !b.is_empty() => PathBuf::from(b),
        _ => crate::workspace_root().join("target/tools/bin/garage"),
    };
    let version = Command::new(&bin).arg("--version").output();
    let said = version
        .as_ref()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    assert!(
        said.contains(VERSION),
        "Garage {VERSION} is required by these tests and was not found at {} ({}).\n\
         Install it with `scripts/install-garage.sh` (from the workspace root), or point \
         GARAGE_BIN at a garage {VERSION} binary.",
        bin.display(),
        match &version {
            Ok(_) => format!("it says {said:?}"),
            Err(e) => e.to_string(),
        }
    );
    bin
}

impl Garage {
    /// Starts a node of its own (most tests want [`shared`]).
    pub fn start() -> Garage {
        let bin = binary();
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("garage-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temporary directory for Garage");
        let (port, rpc, admin) = (free_port(), free_port(), free_port());
        let config = dir.join("garage.toml");
        std::fs::write(&config, config_text(&dir, port, rpc, admin)).expect("writing garage.toml");
        // The server ends when our end of its watcher's stdin closes: with
        // the test process, however that ends (statics are never dropped).
        let mut child = Command::new("sh")
            .args([
                "-c",
                "\"$0\" -c \"$1\" server 2>\"$2\" </dev/null & read _; kill $!; wait; rm -rf \"$3\"",
            ])
            .arg(&bin)
            .arg(&config)
            .arg(dir.join("garage.log"))
            .arg(&dir)
            .env("RUST_LOG", "garage=warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
        let stdin = child.stdin.take();
        let mut g = Garage {
            child: std::sync::Mutex::new(child),
            stdin: std::sync::Mutex::new(stdin),
            config,
            port,
            key_id: String::new(),
            secret: String::new(),
        };
        g.wait_listening(port);
        g.set_up();
        g
    }

    /// The S3 API's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The region Garage checks in signatures.
    pub fn s3_region(&self) -> &'static str {
        "127.0.0.1"
    }

    /// Creates a bucket the key may read and write.
    pub fn create_bucket(&self, bucket: &str) {
        self.cli(&["bucket", "create", bucket]);
        self.cli(&[
            "bucket",
            "allow",
            "--read",
            "--write",
            "--owner",
            bucket,
            "--key",
            "annexproxy-tests",
        ]);
    }

    /// The bucket's object names, as another S3 client (boto3, from the
    /// venv where moto brought it) lists them, signing as Garage checks
    /// (botocore's check of region names, which allows no dots, is
    /// turned off: the region is the host's address).
    pub fn list_objects(&self, bucket: &str) -> Vec<String> {
        self.boto3(bucket, "list_objects_v2", "Contents", "Key")
    }

    /// The object names with an unfinished multipart upload.
    pub fn list_uploads(&self, bucket: &str) -> Vec<String> {
        self.boto3(bucket, "list_multipart_uploads", "Uploads", "Key")
    }

    fn boto3(&self, bucket: &str, call: &str, list: &str, field: &str) -> Vec<String> {
        let script = format!(
            "import sys, boto3, botocore.session, botocore.utils\n\
             from botocore.config import Config\n\
             botocore.session.validate_region_name = botocore.utils.validate_region_name = lambda r: None\n\
             s3 = boto3.client('s3', endpoint_url='http://127.0.0.1:{port}', region_name='{region}',\n\
                 aws_access_key_id=sys.argv[1], aws_secret_access_key=sys.argv[2],\n\
                 config=Config(s3={{'addressing_style': 'path'}}))\n\
             for page in s3.get_paginator('{call}').paginate(Bucket=sys.argv[3]):\n\
             \x20   for o in page.get('{list}', []):\n\
             \x20       print(o['{field}'])\n",
            port = self.port,
            region = self.s3_region(),
        );
        let python = crate::venv_dir().join("bin/python");
        let out = Command::new(&python)
            .args(["-c", &script, &self.key_id, &self.secret, bucket])
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", python.display()));
        assert!(
            out.status.success(),
            "boto3 {call} of {bucket}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut names: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        names.sort();
        names
    }

    /// `garage ARGS` against this node, which must succeed; its stdout.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "garage {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(binary())
            .arg("-c")
            .arg(&self.config)
            .args(args)
            .env("RUST_LOG", "garage=warn")
            .output()
            .expect("running garage")
    }

    fn wait_listening(&self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
            let exited = self.child.lock().expect("child").try_wait().ok().flatten();
            if let Some(status) = exited {
                panic!("garage server exited ({status}): {}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "garage did not listen on {port} within 60 s: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.config.with_file_name("garage.log")).unwrap_or_default()
    }

    /// The first node's layout (one zone, 1 GB), and a key that may
    /// create buckets.
    fn set_up(&mut self) {
        let node = self.cli(&["node", "id", "-q"]);
        let id = node
            .trim()
            .split('@')
            .next()
            .unwrap_or_default()
            .to_string();
        self.cli(&["layout", "assign", "-z", "dc1", "-c", "1G", &id]);
        self.cli(&["layout", "apply", "--version", "1"]);
        let made = self.cli(&["key", "create", "annexproxy-tests"]);
        self.key_id = field(&made, "Key ID");
        self.secret = field(&made, "Secret key");
        self.cli(&["key", "allow", "--create-bucket", "annexproxy-tests"]);
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        drop(self.stdin.lock().unwrap_or_else(|e| e.into_inner()).take());
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        let _ = child.wait();
    }
}

/// One node, nothing replicated, every port on loopback.
fn config_text(dir: &Path, port: u16, rpc: u16, admin: u16) -> String {
    let secret: String = (0..32)
        .map(|i| format!("{:02x}", (std::process::id() as usize * 31 + i * 7) % 256))
        .collect();
    format!(
        "metadata_dir = \"{meta}\"\n\
         data_dir = \"{data}\"\n\
         db_engine = \"lmdb\"\n\
         replication_factor = 1\n\
         rpc_bind_addr = \"127.0.0.1:{rpc}\"\n\
         rpc_public_addr = \"127.0.0.1:{rpc}\"\n\
         rpc_secret = \"{secret}\"\n\
         \n\
         [s3_api]\n\
         s3_region = \"127.0.0.1\"\n\
         api_bind_addr = \"127.0.0.1:{port}\"\n\
         root_domain = \".s3.garage.localhost\"\n\
         \n\
         [admin]\n\
         api_bind_addr = \"127.0.0.1:{admin}\"\n",
        meta = dir.join("meta").display(),
        data = dir.join("data").display(),
    )
}

/// The value after `name:` on a line of `garage key create`'s report.
fn field(report: &str, name: &str) -> String {
    report
        .lines()
        .find_map(|l| l.trim().strip_prefix(name)?.trim().strip_prefix(':'))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| panic!("no {name} in garage's report:\n{report}"))
}

fn free_port() -> u16 {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a loopback port");
    l.local_addr().expect("bound address").port()
}
