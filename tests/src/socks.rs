//! A loopback SOCKS5 server standing in for tor: it takes any CONNECT to a
//! `*.onion` name (by domain name, as tor clients send it) to one local TCP
//! port, the listener under test; other names are refused.
//!
//! Our helper is told where it is (`ANNEXPROXY_TOR_SOCKS`); the real
//! git-annex always uses 127.0.0.1:9050, so [`SocksServer::on_tor_port`]
//! binds that, holding a machine-wide lock first so two tests (in any test
//! process) never try at once.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::UnixListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// tor's SOCKS port, where git-annex looks.
pub const TOR_PORT: u16 = 9050;

/// Held while a test owns [`TOR_PORT`]: an abstract unix socket, which the
/// kernel releases when its process dies, however it dies.
const TOR_PORT_LOCK: &[u8] = b"annexproxy-tests-tor-socks-9050";

/// How long to wait for another test to give the port back.
const LOCK_WAIT: Duration = Duration::from_secs(600);

pub struct SocksServer {
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    _lock: Option<UnixListener>,
}

impl SocksServer {
    /// On a free loopback port.
    pub fn start(target_port: u16) -> SocksServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        SocksServer::serve(listener, target_port, None)
    }

    /// On 127.0.0.1:9050. Panics, saying so, when something else (a real
    /// tor?) has the port.
    pub fn on_tor_port(target_port: u16) -> SocksServer {
        let lock = take_lock();
        let listener = match TcpListener::bind(("127.0.0.1", TOR_PORT)) {
            Ok(l) => l,
            Err(e) => panic!(
                "127.0.0.1:{TOR_PORT} is taken by another program ({e}); the tests that run the real \
                 git-annex over tor need it for their SOCKS stand-in: stop whatever listens there"
            ),
        };
        SocksServer::serve(listener, target_port, Some(lock))
    }

    fn serve(listener: TcpListener, target_port: u16, lock: Option<UnixListener>) -> SocksServer {
        let addr = listener.local_addr().expect("bound address");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (seen, stopping) = (Arc::clone(&requests), Arc::clone(&stop));
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let seen = Arc::clone(&seen);
                std::thread::spawn(move || {
                    let _ = handle(conn, target_port, &seen);
                });
            }
        });
        SocksServer {
            addr,
            requests,
            stop,
            _lock: lock,
        }
    }

    /// `HOST:PORT` of every CONNECT so far.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

impl Drop for SocksServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag and closes the port.
        let _ = TcpStream::connect(self.addr);
    }
}

fn take_lock() -> UnixListener {
    let name = std::os::unix::net::SocketAddr::from_abstract_name(TOR_PORT_LOCK)
        .expect("abstract socket name");
    let start = Instant::now();
    loop {
        match UnixListener::bind_addr(&name) {
            Ok(l) => return l,
            Err(e) if start.elapsed() > LOCK_WAIT => {
                panic!("waited {LOCK_WAIT:?} for the lock on port {TOR_PORT}: {e}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// One client: RFC 1928 with no authentication, CONNECT only.
fn handle(mut c: TcpStream, target_port: u16, seen: &Mutex<Vec<String>>) -> std::io::Result<()> {
    let mut head = [0u8; 2];
    c.read_exact(&mut head)?;
    let mut methods = vec![0u8; usize::from(head[1])];
    c.read_exact(&mut methods)?;
    if head[0] != 5 || !methods.contains(&0) {
        return c.write_all(&[5, 0xff]);
    }
    c.write_all(&[5, 0])?;
    let mut req = [0u8; 4];
    c.read_exact(&mut req)?;
    let host = match req[3] {
        3 => {
            let mut len = [0u8; 1];
            c.read_exact(&mut len)?;
            let mut name = vec![0u8; usize::from(len[0])];
            c.read_exact(&mut name)?;
            String::from_utf8_lossy(&name).into_owned()
        }
        1 => {
            let mut ip = [0u8; 4];
            c.read_exact(&mut ip)?;
            std::net::Ipv4Addr::from(ip).to_string()
        }
        _ => return reply(&mut c, 8),
    };
    let mut port = [0u8; 2];
    c.read_exact(&mut port)?;
    if let Ok(mut s) = seen.lock() {
        s.push(format!("{host}:{}", u16::from_be_bytes(port)));
    }
    if req[1] != 1 {
        return reply(&mut c, 7);
    }
    if !host.ends_with(".onion") {
        return reply(&mut c, 4);
    }
    let upstream = match TcpStream::connect(("127.0.0.1", target_port)) {
        Ok(u) => u,
        Err(_) => return reply(&mut c, 5),
    };
    reply(&mut c, 0)?;
    splice(c, upstream)
}

fn reply(c: &mut TcpStream, code: u8) -> std::io::Result<()> {
    c.write_all(&[5, code, 0, 1, 0, 0, 0, 0, 0, 0])
}

/// Copies both ways until both sides are done, passing each EOF on.
fn splice(a: TcpStream, b: TcpStream) -> std::io::Result<()> {
    let (a2, b2) = (a.try_clone()?, b.try_clone()?);
    let one_way = std::thread::spawn(move || pump(a2, b2));
    pump(b, a);
    let _ = one_way.join();
    Ok(())
}

fn pump(mut from: TcpStream, mut to: TcpStream) {
    let _ = std::io::copy(&mut from, &mut to);
    let _ = to.shutdown(Shutdown::Write);
}
