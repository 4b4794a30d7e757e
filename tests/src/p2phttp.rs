//! `annexproxy p2phttp` run by a test, and clients of it: the real
//! git-annex client (an `annex+http://` remote) and raw requests.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::http_raw::{self, Reply};
use crate::serve_p2p::Listener;
use crate::{ServerKind, TestEnv};

/// A server repository initialised by `annexproxy init`, served by our
/// p2phttp on a free loopback port.
pub struct HttpServer {
    pub env: TestEnv,
    pub repo: PathBuf,
    pub uuid: String,
    pub http: Listener,
    pub addr: SocketAddr,
}

impl HttpServer {
    /// `annexproxy p2phttp --bind 127.0.0.1 --port 0 ARGS`, with `vars` in
    /// its environment.
    pub fn start(args: &[&str], vars: &[(&str, &str)]) -> HttpServer {
        let env = TestEnv::new(ServerKind::Ours);
        let repo = env.server_nonbare("server");
        env.annexproxy(&repo, &["init", "server"]).ok();
        HttpServer::serve(env, repo, args, vars)
    }

    /// Serves `repo` of `env`.
    pub fn serve(env: TestEnv, repo: PathBuf, args: &[&str], vars: &[(&str, &str)]) -> Self {
        let uuid = env.server_uuid(&repo);
        let mut all = vec!["--bind", "127.0.0.1", "--port", "0"];
        all.extend_from_slice(args);
        let http = Listener::start_command(&env, &repo, "p2phttp", &all, vars);
        let addr = http.bound.parse().expect("bound address");
        HttpServer {
            env,
            repo,
            uuid,
            http,
            addr,
        }
    }

    /// The URL a client's `remote.NAME.annexUrl` holds.
    pub fn annex_url(&self) -> String {
        format!("annex+http://{}/git-annex/", self.addr)
    }

    /// A client clone whose `origin` is reachable only over p2phttp: its
    /// git URL is made a dead one after cloning, so nothing can go by the
    /// local path.
    pub fn client(&self, name: &str) -> PathBuf {
        let dir = self.env.clone_url(&self.repo.display().to_string(), name);
        self.point_at_http(&dir, "origin");
        dir
    }

    /// Makes `remote` of `client` reachable only through this server.
    pub fn point_at_http(&self, client: &Path, remote: &str) {
        let set = |k: &str, v: &str| {
            self.env.git(client, &["config", k, v]).ok();
        };
        set(&format!("remote.{remote}.annexUrl"), &self.annex_url());
        set(
            &format!("remote.{remote}.url"),
            "http://127.0.0.1:9/dead.git",
        );
        // git-annex refuses loopback addresses for HTTP without this.
        set("annex.security.allowed-ip-addresses", "all");
    }

    /// `POST /git-annex/<uuid>/<path_and_query>` with no body.
    pub fn post(&self, path_and_query: &str, headers: &[(&str, &str)]) -> Reply {
        let target = format!("/git-annex/{}/{path_and_query}", self.uuid);
        http_raw::request(self.addr, "POST", &target, headers, b"")
    }

    /// `GET /git-annex/<uuid>/<path_and_query>`.
    pub fn get(&self, path_and_query: &str) -> Reply {
        let target = format!("/git-annex/{}/{path_and_query}", self.uuid);
        http_raw::request(self.addr, "GET", &target, &[], b"")
    }

    /// A key of `len` pseudo-random bytes (SHA256E, as git-annex names it)
    /// and its content.
    pub fn made_up_key(seed: u64, len: usize) -> (String, Vec<u8>) {
        use sha2::Digest;
        let content = crate::pseudo_random_bytes(seed, len);
        let hash = hex::encode(sha2::Sha256::digest(&content));
        (format!("SHA256E-s{len}--{hash}.bin"), content)
    }
}

/// Children of `pid` still there (running, or zombies nobody reaped).
pub fn children_of(pid: u32) -> Vec<(u32, char)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ...; comm may hold spaces, so from the ')'.
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next().and_then(|s| s.chars().next());
        let ppid = fields.next().and_then(|p| p.parse::<u32>().ok());
        let me = head.split_whitespace().next().and_then(|p| p.parse().ok());
        if let (Some(state), Some(ppid), Some(me)) = (state, ppid, me) {
            if ppid == pid {
                found.push((me, state));
            }
        }
    }
    found
}

/// Runs `f`, watching how many children `pid` has meanwhile: its result
/// and the most seen at once.
pub fn most_children_while<T>(pid: u32, f: impl FnOnce() -> T) -> (T, usize) {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let (most, done) = (AtomicUsize::new(0), AtomicBool::new(false));
    let out = std::thread::scope(|sc| {
        sc.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                most.fetch_max(children_of(pid).len(), Ordering::Relaxed);
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        });
        let out = f();
        done.store(true, Ordering::Relaxed);
        out
    });
    (out, most.into_inner())
}

/// Real `git annex p2phttp` on `repo`, for comparisons; killed when
/// dropped.
pub struct RealHttpServer {
    child: std::process::Child,
    pub addr: SocketAddr,
}

impl RealHttpServer {
    pub fn start(env: &TestEnv, repo: &Path, args: &[&str]) -> RealHttpServer {
        // A free port: git-annex cannot be told to pick one and say it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        // git-annex itself, not `git annex`: killing git would leave
        // git-annex running.
        let mut cmd = env.oracle_command("git-annex");
        cmd.current_dir(repo)
            .args(["p2phttp", "-J2", "--bind", "127.0.0.1", "--port"])
            .arg(port.to_string())
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null());
        let child = cmd.spawn().expect("start git annex p2phttp");
        let server = RealHttpServer { child, addr };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "git annex p2phttp is not listening"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        server
    }
}

impl Drop for RealHttpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits (up to 10 s) until `pid` has no child left, running or zombie.
#[track_caller]
pub fn assert_children_reaped(pid: u32) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let left = children_of(pid);
        if left.is_empty() {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "children of {pid} left: {left:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
