//! moto's standalone S3 server, the bucket store of the S3 tests: started
//! from the tests' venv (where `scripts/install-moto.sh` puts it) on a free
//! loopback port. A test fails, never skips, when moto is missing.
//!
//! [`shared`] starts one server per test binary (moto takes about a
//! second to start); each test uses buckets of its own. The server reads
//! its stdin and exits when it closes, so it ends with the test process
//! however that ends (statics are never dropped).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// A running moto server; stopped when dropped.
pub struct Moto {
    child: Mutex<Child>,
    // Held open: moto exits when it closes.
    _stdin: Mutex<ChildStdin>,
    port: u16,
}

/// The credentials tests hand to clients (moto accepts any).
pub const ACCESS_KEY_ID: &str = "AKIAMOTOTESTKEY00000";
pub const SECRET_ACCESS_KEY: &str = "motosecretmotosecretmotosecretmotosecret";

/// The server of this test binary, started on first use.
pub fn shared() -> &'static Moto {
    static SHARED: OnceLock<Moto> = OnceLock::new();
    SHARED.get_or_init(Moto::start)
}

/// A bucket name no other test of this process uses.
pub fn unique_bucket(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The venv's python, which must have moto.
fn moto_python() -> PathBuf {
    let python = crate::venv_dir().join("bin/python");
    let ok = Command::new(&python)
        .args(["-c", "import moto.server, flask"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "moto's S3 server is required by the S3 tests and was not found in {}.\n\
         Install it with `scripts/install-moto.sh` (from the workspace root), or point \
         ANNEX_VENV at a venv that has moto[server].",
        python.display()
    );
    python
}

/// Runs moto's server, and a thread that ends the process when stdin
/// closes (our end of the pipe closes with the test process).
const LAUNCHER: &str = "import os, sys, threading\n\
threading.Thread(target=lambda: (sys.stdin.read(), os._exit(0)), daemon=True).start()\n\
from moto.server import main\n\
main(sys.argv[1:])\n";

impl Moto {
    /// Starts a server of its own (most tests want [`shared`]).
    pub fn start() -> Moto {
        let python = moto_python();
        let mut last_err = String::new();
        // A port found free can be taken before moto binds it: retry.
        for _ in 0..5 {
            let port = free_port();
            let mut child = Command::new(&python)
                .args(["-c", LAUNCHER, "-H", "127.0.0.1", "-p", &port.to_string()])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("starting moto ({}): {e}", python.display()));
            let stdin = child.stdin.take().expect("stdin is piped");
            match wait_ready(&mut child, port) {
                Ok(()) => {
                    // moto logs every request on stderr: drain it so it
                    // never blocks on a full pipe.
                    let mut err = child.stderr.take().expect("stderr is piped");
                    std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
                    return Moto {
                        child: Mutex::new(child),
                        _stdin: Mutex::new(stdin),
                        port,
                    };
                }
                Err(e) => last_err = e,
            }
        }
        panic!("moto's S3 server did not start: {last_err}");
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Creates a bucket (path-style, unsigned: moto checks no signature).
    pub fn create_bucket(&self, bucket: &str) {
        let (status, body) = self.request("PUT", &format!("/{bucket}"));
        assert!(
            status == 200,
            "creating bucket {bucket}: HTTP {status}: {body}"
        );
    }

    /// The bucket's object names, as ListObjectsV2 gives them.
    pub fn list_objects(&self, bucket: &str) -> Vec<String> {
        let (status, body) = self.request("GET", &format!("/{bucket}?list-type=2"));
        assert!(
            status == 200,
            "listing bucket {bucket}: HTTP {status}: {body}"
        );
        elements(&body, "Key")
    }

    /// The object names with an in-progress multipart upload.
    pub fn list_uploads(&self, bucket: &str) -> Vec<String> {
        let (status, body) = self.request("GET", &format!("/{bucket}?uploads"));
        assert!(
            status == 200,
            "listing uploads of {bucket}: HTTP {status}: {body}"
        );
        elements(&body, "Key")
    }

    /// Begins a multipart upload of `object` (as an attempt that is then
    /// abandoned); its upload id.
    pub fn begin_upload(&self, bucket: &str, object: &str) -> String {
        let (status, body) = self.request("POST", &format!("/{bucket}/{object}?uploads"));
        assert!(status == 200, "beginning an upload: HTTP {status}: {body}");
        elements(&body, "UploadId")
            .pop()
            .unwrap_or_else(|| panic!("no UploadId in {body}"))
    }

    /// Deletes the bucket and every object in it. moto refuses anonymous
    /// deletes of what a signed request wrote: these name the tests' key
    /// (moto checks no signature).
    pub fn delete_bucket(&self, bucket: &str) {
        let auth = format!(
            "Authorization: AWS4-HMAC-SHA256 Credential={ACCESS_KEY_ID}/20261206/us-east-1/s3/aws4_request, \
             SignedHeaders=host, Signature=00\r\n"
        );
        for object in self.list_objects(bucket) {
            let path = format!("/{bucket}/{object}");
            let (status, body) = self.request_with("DELETE", &path, &auth);
            assert!(status == 204, "deleting {object}: HTTP {status}: {body}");
        }
        let (status, body) = self.request_with("DELETE", &format!("/{bucket}"), &auth);
        assert!(
            status == 204,
            "deleting bucket {bucket}: HTTP {status}: {body}"
        );
    }

    /// Puts an object (unsigned), as a client uploading to the bucket
    /// itself does.
    pub fn put_object(&self, bucket: &str, name: &str, body: &[u8]) {
        let (status, reply) = self.request_full("PUT", &format!("/{bucket}/{name}"), "", body);
        assert!(status == 200, "putting {name}: HTTP {status}: {reply}");
    }

    /// A bodiless HTTP/1.1 request; the status and the body.
    pub fn request(&self, method: &str, path: &str) -> (u16, String) {
        self.request_with(method, path, "")
    }

    /// [`Self::request`] with more header lines (each ending in CRLF).
    pub fn request_with(&self, method: &str, path: &str, headers: &str) -> (u16, String) {
        self.request_full(method, path, headers, b"")
    }

    /// An HTTP/1.1 request with more header lines and `body`; the status
    /// and the reply's body.
    pub fn request_full(
        &self,
        method: &str,
        path: &str,
        headers: &str,
        body: &[u8],
    ) -> (u16, String) {
        let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).expect("connect to moto");
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: {}\r\n\
             {headers}Connection: close\r\n\r\n",
            self.port,
            body.len()
        );
        s.write_all(req.as_bytes()).expect("send to moto");
        s.write_all(body).expect("send to moto");
        let mut resp = Vec::new();
        s.read_to_end(&mut resp).expect("read from moto");
        let text = String::from_utf8_lossy(&resp).into_owned();
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("not an HTTP response from moto: {text:?}"));
        let body = text
            .split_once("\r\n\r\n")
            .map_or("", |(_, b)| b)
            .to_string();
        (status, body)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        let _ = child.kill();
        let _ = child.wait();
    }
}

fn free_port() -> u16 {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a loopback port");
    l.local_addr().expect("bound address").port()
}

fn wait_ready(child: &mut Child, port: u16) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            return Err(format!("moto exited ({status}): {err}"));
        }
        if TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("not listening on port {port} after 60 s"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The text of every `<name>` element (unescaped enough for object names).
fn elements(body: &str, name: &str) -> Vec<String> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let mut out = Vec::new();
    let mut rest = body;
    while let Some(i) = rest.find(&open) {
        rest = &rest[i + open.len()..];
        let Some(j) = rest.find(&close) else { break };
        out.push(rest[..j].replace("&amp;", "&"));
        rest = &rest[j + close.len()..];
    }
    out
}
