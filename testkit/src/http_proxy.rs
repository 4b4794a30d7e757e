//! A loopback HTTP/1.1 forwarder that sees each request: it records the
//! request lines (so a test can count the S3 actions a session sent), and
//! fails chosen requests the way a troubled server does (a 503 SlowDown
//! answer, or the connection closed before any answer) so a test can
//! check that the client retries them.
//!
//! Requests are read one at a time per connection (head, then a
//! `Content-Length` body: what reqwest sends for a body in memory);
//! answers are copied back untouched. A failed request closes its
//! connection, so nothing of it reaches the server.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// How a request is failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// `503 Slow Down` with S3's `SlowDown` error document.
    SlowDown,
    /// `500 Internal Server Error` with S3's `InternalError` document.
    InternalError,
    /// The connection is closed without an answer.
    Reset,
}

#[derive(Default)]
struct State {
    /// Request lines seen (method and target), failed ones included.
    seen: Vec<String>,
    /// Faults still to inject: the fault, and what the request line must
    /// contain for it.
    armed: Vec<(Fault, String)>,
    /// Requests failed so far.
    failed: usize,
}

/// Forwards every connection to `127.0.0.1:target`; lives as long as the
/// test process (its accept thread never ends).
pub struct HttpProxy {
    port: u16,
    state: Arc<Mutex<State>>,
}

impl HttpProxy {
    pub fn start(target: u16) -> HttpProxy {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a loopback port");
        let port = listener.local_addr().expect("bound address").port();
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let state = shared.clone();
                std::thread::spawn(move || serve(client, target, &state));
            }
        });
        HttpProxy { port, state }
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Fails the next `count` requests whose request line contains
    /// `matching` ("" for any) with `fault`.
    pub fn fail_next(&self, count: usize, fault: Fault, matching: &str) {
        let mut s = self.lock();
        s.armed
            .extend(std::iter::repeat_n((fault, matching.to_string()), count));
    }

    /// Faults armed and not yet injected.
    pub fn armed(&self) -> usize {
        self.lock().armed.len()
    }

    /// Requests failed so far.
    pub fn failed(&self) -> usize {
        self.lock().failed
    }

    /// Every request line so far (`METHOD target`), in arrival order.
    pub fn requests(&self) -> Vec<String> {
        self.lock().seen.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Whether a request line (`METHOD /bucket/object?query HTTP/1.1`) is
/// S3's ListMultipartUploads: a GET on the bucket with `uploads` in the
/// query (a ListParts names an `uploadId`, a CreateMultipartUpload is a
/// POST).
pub fn is_list_uploads(line: &str) -> bool {
    let Some(query) = line.strip_prefix("GET ").and_then(|t| t.split_once('?')) else {
        return false;
    };
    let params: Vec<&str> = query.1.split(['&', ' ']).collect();
    params
        .iter()
        .any(|p| *p == "uploads" || p.starts_with("uploads="))
        && !params.iter().any(|p| p.starts_with("uploadId="))
}

fn serve(client: TcpStream, target: u16, state: &Mutex<State>) {
    let Ok(server) = TcpStream::connect((Ipv4Addr::LOCALHOST, target)) else {
        return;
    };
    let (Ok(mut to_client), Ok(mut from_server)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    // Answers go back as they come.
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from_server, &mut to_client);
        let _ = to_client.shutdown(Shutdown::Write);
    });
    let mut reader = BufReader::new(client);
    let mut server = server;
    while let Some((head, len)) = read_head(&mut reader) {
        let line = head.lines().next().unwrap_or_default().to_string();
        let fault = {
            let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
            s.seen.push(line.trim_end_matches(" HTTP/1.1").to_string());
            let hit = s.armed.iter().position(|(_, m)| line.contains(m.as_str()));
            let fault = hit.map(|i| s.armed.remove(i).0);
            s.failed += usize::from(fault.is_some());
            fault
        };
        if let Some(fault) = fault {
            inject(reader.get_mut(), fault);
            let _ = server.shutdown(Shutdown::Both);
            return;
        }
        if server.write_all(head.as_bytes()).is_err()
            || std::io::copy(&mut (&mut reader).take(len), &mut server).is_err()
        {
            break;
        }
    }
    let _ = server.shutdown(Shutdown::Write);
}

/// The next request's head (through the blank line) and its body length;
/// `None` at the end of the connection.
fn read_head(reader: &mut BufReader<TcpStream>) -> Option<(String, u64)> {
    let mut head = String::new();
    let mut len = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                len = value.trim().parse().ok()?;
            }
            assert!(
                !name.eq_ignore_ascii_case("transfer-encoding"),
                "http_proxy reads Content-Length bodies only"
            );
        }
        let end = line == "\r\n";
        head.push_str(&line);
        if end {
            return Some((head, len));
        }
    }
}

fn inject(client: &mut TcpStream, fault: Fault) {
    let (status, code) = match fault {
        Fault::SlowDown => ("503 Slow Down", "SlowDown"),
        Fault::InternalError => ("500 Internal Server Error", "InternalError"),
        Fault::Reset => {
            let _ = client.shutdown(Shutdown::Both);
            return;
        }
    };
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code>\
         <Message>injected by the test</Message></Error>"
    );
    let answer = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = client.write_all(answer.as_bytes());
    let _ = client.shutdown(Shutdown::Both);
}

#[cfg(test)]
mod tests {
    use super::is_list_uploads;

    #[test]
    fn list_uploads_is_told_from_its_neighbours() {
        assert!(is_list_uploads(
            "GET /b/?prefix=k&uploads=&X-Amz-Date=1 HTTP/1.1"
        ));
        assert!(is_list_uploads("GET /b/?uploads HTTP/1.1"));
        assert!(!is_list_uploads("POST /b/k?uploads=&X-Amz-Date=1 HTTP/1.1"));
        assert!(!is_list_uploads(
            "GET /b/k?uploadId=u&X-Amz-Date=1 HTTP/1.1"
        ));
        assert!(!is_list_uploads("GET /b/k?X-Amz-Date=1 HTTP/1.1"));
    }
}
