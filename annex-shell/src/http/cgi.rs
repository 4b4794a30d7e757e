//! `git http-backend` as a CGI child of the p2phttp server: the request
//! body streams to its stdin and its stdout streams back as the response,
//! through small bounded buffers either way, each step bounded by the
//! idle deadline and the whole run by a total one, so a client that
//! trickles its bytes cannot keep the child (and the `--jobs` slot it
//! holds) for ever. The child is always waited for (killed first when the
//! client goes away or a deadline passes), so none is left a zombie.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::http::request::Parts;
use hyper::{Response, StatusCode};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use super::reply::{self, Body, BodySender};
use crate::restrict::ServerMode;

/// The most a CGI response's header block may take.
const MAX_HEAD: usize = 64 * 1024;
/// Bytes read from the child at a time.
const CHUNK: usize = 32 * 1024;

/// One run of http-backend.
pub struct Cgi<'a> {
    pub dir: PathBuf,
    /// PATH_INFO below the repository (`info/refs`, `git-upload-pack`, …).
    pub tail: &'static str,
    pub parts: &'a Parts,
    pub body: Incoming,
    pub mode: ServerMode,
    pub limit: Limit,
    /// The `--jobs` slot the run holds until the child is reaped.
    pub slot: OwnedSemaphorePermit,
}

/// How long each step may make no progress, and when the run must end.
#[derive(Clone, Copy, Debug)]
pub struct Limit {
    pub idle: Duration,
    pub deadline: Instant,
}

impl Limit {
    /// `f`, or `None` if it made no progress within the idle time or the
    /// run's deadline came first.
    async fn within<F: std::future::Future>(&self, f: F) -> Option<F::Output> {
        let by = self.deadline.min(Instant::now() + self.idle);
        tokio::time::timeout_at(by, f).await.ok()
    }
}

#[derive(Debug, thiserror::Error)]
enum CgiError {
    #[error("git http-backend: {0}")]
    Io(#[from] std::io::Error),
    #[error("git http-backend made no progress in time, or ran past its deadline")]
    Deadline,
    #[error("git http-backend answered no header block")]
    BadHead,
}

pub async fn http_backend(c: Cgi<'_>) -> Response<Body> {
    let mut child = match command(&c).spawn() {
        Ok(child) => child,
        Err(e) => {
            tracing::warn!("git http-backend: {e}");
            return reply::text(StatusCode::INTERNAL_SERVER_ERROR, "git is not available");
        }
    };
    let (Some(stdin), Some(stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        reap(child).await;
        return reply::text(StatusCode::INTERNAL_SERVER_ERROR, "git http-backend");
    };
    tokio::spawn(feed(c.body, stdin, c.limit));
    tokio::spawn(log_stderr(stderr));
    let mut stdout = BufReader::new(stdout);
    let head = match c.limit.within(read_head(&mut stdout)).await {
        Some(Ok(h)) => Ok(h),
        Some(Err(e)) => Err(e),
        None => Err(CgiError::Deadline),
    };
    let head = match head {
        Ok(h) => h,
        Err(e) => {
            tracing::warn!("{e}");
            reap(child).await;
            return reply::text(StatusCode::BAD_GATEWAY, "git http-backend failed");
        }
    };
    let (sender, body) = reply::channel_body(4);
    let response = head.into_response(body.boxed());
    let (limit, slot) = (c.limit, c.slot);
    tokio::spawn(async move {
        pump(stdout, sender, child, limit).await;
        drop(slot);
    });
    response
}

fn command(c: &Cgi<'_>) -> Command {
    let p = c.parts;
    let header = |name: &str| p.headers.get(name).and_then(|v| v.to_str().ok());
    let mut cmd = Command::new("git");
    cmd.arg("http-backend")
        .current_dir(&c.dir)
        .env("GIT_PROJECT_ROOT", &c.dir)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("PATH_INFO", format!("/{}", c.tail))
        .env("REQUEST_METHOD", p.method.as_str())
        .env("QUERY_STRING", p.uri.query().unwrap_or(""))
        .env("SERVER_PROTOCOL", "HTTP/1.1")
        .env("GATEWAY_INTERFACE", "CGI/1.1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (cgi, name) in [
        ("CONTENT_TYPE", "content-type"),
        ("CONTENT_LENGTH", "content-length"),
        ("HTTP_CONTENT_ENCODING", "content-encoding"),
        ("GIT_PROTOCOL", "git-protocol"),
    ] {
        if let Some(v) = header(name) {
            cmd.env(cgi, v);
        }
    }
    // http-backend takes pushes only from an authenticated user; the
    // mode was decided before, so say who may.
    if matches!(c.mode, ServerMode::ReadWrite | ServerMode::AppendOnly) {
        cmd.env("REMOTE_USER", "annexproxy");
    }
    let mut config = vec![("http.getanyfile", "false")];
    if c.mode == ServerMode::AppendOnly {
        // Adding, never taking away.
        config.extend([
            ("receive.denyDeletes", "true"),
            ("receive.denyNonFastForwards", "true"),
        ]);
    }
    if c.mode == ServerMode::ReadOnly {
        config.push(("http.receivepack", "false"));
    }
    cmd.env("GIT_CONFIG_COUNT", config.len().to_string());
    for (i, (k, v)) in config.iter().enumerate() {
        cmd.env(format!("GIT_CONFIG_KEY_{i}"), k)
            .env(format!("GIT_CONFIG_VALUE_{i}"), v);
    }
    cmd
}

/// The request body into the child's stdin, then EOF.
async fn feed(mut body: Incoming, mut stdin: ChildStdin, limit: Limit) {
    loop {
        let frame = match limit.within(body.frame()).await {
            Some(Some(Ok(f))) => f,
            Some(None) => break,
            Some(Some(Err(e))) => {
                tracing::debug!("git request body: {e}");
                return;
            }
            None => {
                tracing::debug!("git request body: {}", CgiError::Deadline);
                return;
            }
        };
        if let Ok(data) = frame.into_data() {
            let wrote = limit.within(stdin.write_all(&data)).await;
            if !matches!(wrote, Some(Ok(()))) {
                return;
            }
        }
    }
    let _ = stdin.shutdown().await;
}

async fn log_stderr(stderr: tokio::process::ChildStderr) {
    let mut lines = BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        tracing::info!("git http-backend: {line}");
    }
}

/// A CGI response head: the status and the headers to pass on.
struct Head {
    status: StatusCode,
    headers: Vec<(String, String)>,
}

impl Head {
    fn into_response(self, body: Body) -> Response<Body> {
        let mut r = Response::builder().status(self.status);
        for (k, v) in &self.headers {
            r = r.header(k.as_str(), v.as_str());
        }
        r.body(body).unwrap_or_else(|e| {
            tracing::warn!("git http-backend header: {e}");
            reply::empty(StatusCode::BAD_GATEWAY)
        })
    }
}

async fn read_head(out: &mut BufReader<ChildStdout>) -> Result<Head, CgiError> {
    let mut head = Head {
        status: StatusCode::OK,
        headers: Vec::new(),
    };
    let mut taken = 0;
    loop {
        let mut line = String::new();
        let n = out.read_line(&mut line).await?;
        taken += n;
        if n == 0 || taken > MAX_HEAD {
            return Err(CgiError::BadHead);
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            return Ok(head);
        }
        let (k, v) = line.split_once(':').ok_or(CgiError::BadHead)?;
        let v = v.trim();
        if k.eq_ignore_ascii_case("status") {
            let code = v.split(' ').next().and_then(|c| c.parse::<u16>().ok());
            head.status = code
                .and_then(|c| StatusCode::from_u16(c).ok())
                .ok_or(CgiError::BadHead)?;
        } else {
            head.headers.push((k.to_owned(), v.to_owned()));
        }
    }
}

/// The rest of the child's stdout into the response body; the body is
/// complete only if the child exits well.
async fn pump(mut out: BufReader<ChildStdout>, sender: BodySender, child: Child, limit: Limit) {
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = match limit.within(out.read(&mut buf)).await {
            Some(Ok(n)) => n,
            Some(Err(e)) => {
                tracing::warn!("git http-backend output: {e}");
                return reap(child).await;
            }
            None => {
                tracing::warn!("{}", CgiError::Deadline);
                return reap(child).await;
            }
        };
        if n == 0 {
            break;
        }
        let chunk = Bytes::copy_from_slice(&buf[..n]);
        // A client that stops reading for the whole deadline is let go.
        let sent = limit.within(sender.tx.send(chunk)).await;
        if !matches!(sent, Some(Ok(()))) {
            return reap(child).await;
        }
    }
    if wait(child, limit).await {
        sender.complete();
    }
}

/// Waits for the child to exit (killing it when the limit comes);
/// whether it exited well.
async fn wait(mut child: Child, limit: Limit) -> bool {
    match limit.within(child.wait()).await {
        Some(Ok(status)) => {
            if !status.success() {
                tracing::warn!("git http-backend exited with {status}");
            }
            status.success()
        }
        _ => {
            reap(child).await;
            false
        }
    }
}

/// Kills the child and waits for it, so it leaves no zombie.
async fn reap(mut child: Child) {
    let _ = child.start_kill();
    let _ = child.wait().await;
}
