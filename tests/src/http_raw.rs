//! HTTP/1.1 by hand over a TcpStream, for tests that must see status
//! codes, headers and bodies exactly as a client gets them, or behave as
//! no well-mannered client would (stop mid-header, hang up mid-body).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A response as read off the wire.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    /// Names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; panics with the reply when it is not.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {self:?} {}", self.text()))
    }
}

pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("set timeout");
    s
}

/// One request on a connection of its own, with `body` (and its
/// Content-Length) and the extra `headers`; the whole reply.
pub fn request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    let mut s = connect(addr);
    write_head(&mut s, method, target, headers, Some(body.len()));
    s.write_all(body).expect("send body");
    read_reply(&mut BufReader::new(s))
}

/// Writes a request head (with `Content-Length` when given).
pub fn write_head(
    s: &mut TcpStream,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    content_length: Option<usize>,
) {
    let mut head = format!("{method} {target} HTTP/1.1\r\nHost: localhost\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(n) = content_length {
        head.push_str(&format!("Content-Length: {n}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).expect("send head");
}

/// Reads one reply: status line, headers, then a chunked, sized or
/// to-EOF body.
pub fn read_reply<R: BufRead>(r: &mut R) -> Reply {
    let mut line = String::new();
    r.read_line(&mut line).expect("status line");
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {line:?}"));
    let mut headers = Vec::new();
    loop {
        line.clear();
        r.read_line(&mut line).expect("header line");
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (k, v) = l.split_once(':').expect("header with a colon");
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
    }
    let mut reply = Reply {
        status,
        headers,
        body: Vec::new(),
    };
    if reply.header("transfer-encoding") == Some("chunked") {
        reply.body = read_chunked(r);
    } else if let Some(n) = reply.header("content-length") {
        let n: usize = n.parse().expect("content-length");
        let mut body = vec![0; n];
        r.read_exact(&mut body).expect("body");
        reply.body = body;
    } else {
        r.read_to_end(&mut reply.body).expect("body to EOF");
    }
    reply
}

fn read_chunked<R: BufRead>(r: &mut R) -> Vec<u8> {
    let mut body = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            // Cut off: what arrived.
            return body;
        }
        let size = usize::from_str_radix(line.trim(), 16).expect("chunk size");
        if size == 0 {
            line.clear();
            let _ = r.read_line(&mut line);
            return body;
        }
        let mut chunk = vec![0; size + 2];
        if r.read_exact(&mut chunk).is_err() {
            return body;
        }
        body.extend_from_slice(&chunk[..size]);
    }
}

/// Whether the server closed `s` within `within` (reads EOF or a reset).
pub fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(within)).expect("set timeout");
    let mut buf = [0u8; 512];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return false,
            Err(_) => return true,
        }
    }
}
