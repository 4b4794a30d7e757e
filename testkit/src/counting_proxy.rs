//! A loopback TCP forwarder that counts the bytes clients send through it,
//! and those the server sends back, so a test can check what went over
//! the wire (a resumed upload sending only what the server lacked, a
//! ranged read receiving only its range), not what the sender says it
//! sent.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Forwards every connection to `127.0.0.1:target`; lives as long as the
/// test process (its accept thread never ends).
pub struct CountingProxy {
    port: u16,
    sent: Arc<AtomicU64>,
    received: Arc<AtomicU64>,
}

impl CountingProxy {
    pub fn start(target: u16) -> CountingProxy {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a loopback port");
        let port = listener.local_addr().expect("bound address").port();
        let sent = Arc::new(AtomicU64::new(0));
        let received = Arc::new(AtomicU64::new(0));
        let counter = sent.clone();
        let back = received.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect((Ipv4Addr::LOCALHOST, target)) else {
                    continue;
                };
                let (c2, s2) = match (client.try_clone(), server.try_clone()) {
                    (Ok(c), Ok(s)) => (c, s),
                    _ => continue,
                };
                let up = counter.clone();
                let down = back.clone();
                std::thread::spawn(move || pipe(client, server, Some(up)));
                std::thread::spawn(move || pipe(s2, c2, Some(down)));
            }
        });
        CountingProxy {
            port,
            sent,
            received,
        }
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Bytes clients have sent so far (request lines and headers included).
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::SeqCst)
    }

    /// Bytes the server has sent back so far (status lines and headers
    /// included).
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::SeqCst)
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream, count: Option<Arc<AtomicU64>>) {
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some(c) = &count {
            c.fetch_add(n as u64, Ordering::SeqCst);
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}
