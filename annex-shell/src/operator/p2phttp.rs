//! `annexproxy p2phttp`: git-annex's `git annex p2phttp` options, as
//! typed, resolved into what [`crate::http`] serves.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::http::auth::AuthConfig;
use crate::http::{self, HttpError, Limits, Options};
use crate::restrict::ServerMode;

/// The command line, as typed.
#[derive(Clone, Debug, Default)]
pub struct P2pHttpArgs {
    pub bind: Option<String>,
    pub port: Option<u16>,
    pub jobs: Option<usize>,
    pub authenv: bool,
    pub authenv_http: bool,
    pub unauth_readonly: bool,
    pub unauth_appendonly: bool,
    pub unauth_nolocking: bool,
    pub wideopen: bool,
    pub locked_files: Option<usize>,
    pub max_connections: Option<usize>,
    pub queue: Option<usize>,
    pub header_timeout: Option<u64>,
    pub idle_timeout: Option<u64>,
    pub certfile: Option<PathBuf>,
    pub privatekeyfile: Option<PathBuf>,
    pub chainfile: Vec<PathBuf>,
    pub directory: Vec<PathBuf>,
    pub forge_headers: bool,
    pub socket: Option<PathBuf>,
    pub grace: Option<u64>,
    pub proxy_connections: Option<usize>,
    pub cluster_jobs: Option<usize>,
    pub git_timeout: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum P2pHttpError {
    #[error("--bind {0}: not an IP address")]
    BadBind(String),
    #[error("--certfile and --privatekeyfile go together")]
    HalfTls,
    #[error("{0} must be at least 1")]
    Zero(&'static str),
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("starting the runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

/// The resolved options, with the users from the environment.
pub fn resolve(dir: &Path, a: &P2pHttpArgs) -> Result<Options, P2pHttpError> {
    let ip = match a.bind.as_deref() {
        // Both IPv6 and IPv4, as git-annex's "*".
        None => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        Some("localhost") => IpAddr::V4(Ipv4Addr::LOCALHOST),
        Some(b) => b
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .map_err(|_| P2pHttpError::BadBind(b.to_owned()))?,
    };
    let defaults = Limits::default();
    let positive = |v: Option<usize>, flag, default| match v {
        Some(0) => Err(P2pHttpError::Zero(flag)),
        Some(n) => Ok(n),
        None => Ok(default),
    };
    let limits = Limits {
        jobs: positive(a.jobs, "--jobs", defaults.jobs)?,
        max_connections: positive(
            a.max_connections,
            "--max-connections",
            defaults.max_connections,
        )?,
        queue: a.queue.unwrap_or(defaults.queue),
        header_timeout: a
            .header_timeout
            .map_or(defaults.header_timeout, Duration::from_secs),
        idle_timeout: a
            .idle_timeout
            .map_or(defaults.idle_timeout, Duration::from_secs),
        proxy_connections: a.proxy_connections,
        cluster_jobs: a
            .cluster_jobs
            .map(|n| positive(Some(n), "--clusterjobs", 1))
            .transpose()?,
        git_deadline: a
            .git_timeout
            .map_or(defaults.git_deadline, Duration::from_secs),
    };
    // The broadest of the unauth modes given wins, as in git-annex.
    let unauth = if a.wideopen {
        Some(ServerMode::ReadWrite)
    } else if a.unauth_appendonly {
        Some(ServerMode::AppendOnly)
    } else if a.unauth_readonly {
        Some(ServerMode::ReadOnly)
    } else {
        None
    };
    let mut auth = AuthConfig::default().with_users_from(std::env::vars());
    auth.authenv = a.authenv;
    auth.authenv_http = a.authenv_http;
    auth.unauth = unauth;
    auth.unauth_locking = !a.unauth_nolocking;
    Ok(Options {
        dir: dir.to_owned(),
        addr: SocketAddr::new(ip, a.port.unwrap_or(http::DEFAULT_PORT)),
        auth,
        limits,
        locked_files: positive(a.locked_files, "--lockedfiles", http::DEFAULT_LOCKED_FILES)?,
        lock_retention: http::RETENTION,
        tls: tls_files(a)?,
        directory: a.directory.clone(),
        forge_headers: a.forge_headers,
        socket: a.socket.clone(),
        grace: a.grace.map_or(http::DEFAULT_GRACE, Duration::from_secs),
    })
}

/// HTTPS when given a certificate and its key (chain files only with them).
fn tls_files(a: &P2pHttpArgs) -> Result<Option<http::tls::TlsFiles>, P2pHttpError> {
    match (&a.certfile, &a.privatekeyfile) {
        (Some(cert), Some(key)) => Ok(Some(http::tls::TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
            chain: a.chainfile.clone(),
        })),
        (None, None) if a.chainfile.is_empty() => Ok(None),
        _ => Err(P2pHttpError::HalfTls),
    }
}

/// Serve until killed; says where it listens on `out` once it does.
pub fn run(dir: &Path, a: &P2pHttpArgs, out: &mut dyn Write) -> Result<(), P2pHttpError> {
    let opts = resolve(dir, a)?;
    warn_about(&opts);
    // Each session runs on a thread of the blocking pool: one per
    // connection at most, one per content lock held, and one per session
    // kept open between requests (at most --jobs), so the pool never makes
    // a session wait for a thread.
    let threads = opts.limits.max_connections + opts.locked_files + opts.limits.jobs + 16;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .max_blocking_threads(threads)
        .enable_all()
        .build()
        .map_err(P2pHttpError::Runtime)?;
    let ready = |addr| {
        let _ = writeln!(out, "listening on {addr}");
        let _ = out.flush();
    };
    runtime.block_on(async {
        let stop = stop_signal().await?;
        http::serve(opts, ready, stop)
            .await
            .map_err(P2pHttpError::from)
    })?;
    // Sessions cut off after the grace period are not waited for: what
    // they received stays on disk for a resume.
    runtime.shutdown_timeout(Duration::from_millis(100));
    Ok(())
}

/// Resolves at the first SIGTERM or SIGINT.
async fn stop_signal() -> Result<impl std::future::Future<Output = ()>, P2pHttpError> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).map_err(P2pHttpError::Runtime)?;
    let mut int = signal(SignalKind::interrupt()).map_err(P2pHttpError::Runtime)?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}

fn warn_about(opts: &Options) {
    let auth = &opts.auth;
    if auth.unauth.is_none() && !auth.authenv_http && !opts.forge_headers {
        // As git-annex: it starts, and answers 401 to everything.
        tracing::warn!(
            "no --wideopen, --unauth-* or --authenv-http: every request will be refused (401)"
        );
    }
    if (auth.authenv || auth.authenv_http) && auth.user_count() == 0 {
        tracing::warn!(
            "no GIT_ANNEX_P2PHTTP_PASSWORD_<user> in the environment: no user can log in"
        );
    }
}
