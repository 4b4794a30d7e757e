//! git over HTTP from the p2phttp server: git's smart HTTP protocol for
//! the served repositories (through `git http-backend`, see [`super::cgi`]),
//! and the `/config` that git-annex's client reads from an `http(s)://`
//! remote to learn its UUID and `annex.url`, so that
//! `git clone http://host/repo.git` then `git annex get` works against
//! this one server.
//!
//! Requests are authorised by the same [`super::auth`] modes as the
//! annex endpoints: fetching and `/config` are reads, pushing is a write
//! (so a read-only user's push is refused before git runs, and an
//! append-only user may not delete or rewind branches).

use std::path::PathBuf;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::http::request::Parts;
use hyper::{Method, Response, StatusCode};

use super::reply::{self, Body};
use super::route::Class;
use super::State;

/// What git asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    /// Fetch and clone: `info/refs` and `git-upload-pack`.
    UploadPack,
    /// Push: `info/refs?service=git-receive-pack` and `git-receive-pack`.
    ReceivePack,
    /// The repository's `/config`, as git-annex reads it.
    Config,
}

/// One git request: the repository's path in the URL and what is asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GitRequest {
    /// The URL path before the git part (`team/a.git`), maybe empty.
    pub prefix: String,
    /// The git part (`info/refs`, `git-upload-pack`, …), for
    /// http-backend's PATH_INFO.
    pub tail: &'static str,
    pub service: Service,
}

impl GitRequest {
    /// A git request, or `None` for anything else (the annex API).
    pub fn parse(method: &Method, path: &str, query: Option<&str>) -> Option<GitRequest> {
        let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        // The annex API's paths are never git's, whatever their last part.
        if segs.contains(&"git-annex") {
            return None;
        }
        let push_refs = query
            .unwrap_or("")
            .split('&')
            .any(|p| p == "service=git-receive-pack");
        let (n, tail, service) = match (method, segs.as_slice()) {
            (&Method::GET, [.., "info", "refs"]) if push_refs => {
                (2, "info/refs", Service::ReceivePack)
            }
            (&Method::GET, [.., "info", "refs"]) => (2, "info/refs", Service::UploadPack),
            (&Method::POST, [.., "git-upload-pack"]) => (1, "git-upload-pack", Service::UploadPack),
            (&Method::POST, [.., "git-receive-pack"]) => {
                (1, "git-receive-pack", Service::ReceivePack)
            }
            (&Method::GET, [.., "config"]) => (1, "config", Service::Config),
            _ => return None,
        };
        Some(GitRequest {
            prefix: segs[..segs.len() - n].join("/"),
            tail,
            service,
        })
    }

    pub fn class(&self) -> Class {
        match self.service {
            Service::UploadPack | Service::Config => Class::Read,
            Service::ReceivePack => Class::Write,
        }
    }
}

/// Serves a git request: authorised, then `/config` or http-backend.
pub(super) async fn serve(
    g: GitRequest,
    parts: Parts,
    body: Incoming,
    peer: super::forge::Peer,
    state: Arc<State>,
) -> Response<Body> {
    let span = tracing::info_span!("git-http", tail = g.tail, repo = %g.prefix);
    let _entered = span.enter();
    let mode = match super::forge::authorize(&state.auth, peer, &parts.headers, g.class()) {
        Ok(m) => m,
        Err(d) => return reply::denied(d),
    };
    drop(_entered);
    let Some(dir) = locate(&state, &g.prefix).await else {
        return reply::empty(StatusCode::NOT_FOUND);
    };
    match g.service {
        Service::Config => config(dir, &parts, peer.secure, &g.prefix).await,
        _ => {
            // Sessions kept between requests commit the git-annex branch
            // when they close: close the idle ones first, so git shows
            // the locations of transfers already answered (a clone right
            // after a copy finds the content).
            state.pool.close_idle(std::time::Duration::ZERO).await;
            // git's work takes one of the --jobs like the API's, and
            // gives it back by the deadline at the latest.
            let Some(slot) = super::job_slot(&state).await else {
                return reply::busy();
            };
            let limit = super::cgi::Limit {
                idle: state.limits.idle_timeout,
                deadline: tokio::time::Instant::now() + state.limits.git_deadline,
            };
            super::cgi::http_backend(super::cgi::Cgi {
                dir,
                tail: g.tail,
                parts: &parts,
                body,
                mode,
                limit,
                slot,
            })
            .await
        }
    }
}

/// The repository: the one served, or under `--directory` the one the
/// path names.
async fn locate(state: &State, prefix: &str) -> Option<PathBuf> {
    let Some(repos) = &state.repos else {
        return Some(state.dir.clone());
    };
    let repos = Arc::clone(repos);
    let prefix = prefix.to_owned();
    tokio::task::spawn_blocking(move || repos.find_by_path(&prefix))
        .await
        .ok()
        .flatten()
}

/// A git config with what git-annex's client reads from a remote over
/// HTTP: the UUID, and `annex.url`, this server's API for the repository.
/// Made up rather than the repository's own file, which may hold what a
/// client should not see.
async fn config(dir: PathBuf, parts: &Parts, secure: bool, prefix: &str) -> Response<Body> {
    let uuid = tokio::task::spawn_blocking(move || annex::repo::Repo::open(&dir).ok()?.uuid())
        .await
        .ok()
        .flatten();
    let Some(uuid) = uuid else {
        return reply::empty(StatusCode::NOT_FOUND);
    };
    let host = parts
        .headers
        .get(hyper::header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| h.chars().all(|c| c.is_ascii_graphic()))
        .unwrap_or("localhost");
    let scheme = if secure { "https" } else { "http" };
    let path = if prefix.is_empty() {
        String::new()
    } else {
        format!("{prefix}/")
    };
    let text =
        format!("[annex]\n\tuuid = {uuid}\n\turl = annex+{scheme}://{host}/{path}git-annex/\n");
    reply::text(StatusCode::OK, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_paths_are_told_from_the_annex_api() {
        let p = |m: &Method, path: &str, q: Option<&str>| GitRequest::parse(m, path, q);
        let refs = p(
            &Method::GET,
            "/team/a.git/info/refs",
            Some("service=git-upload-pack"),
        )
        .expect("info/refs");
        assert_eq!(
            (refs.prefix.as_str(), refs.service),
            ("team/a.git", Service::UploadPack)
        );
        let push = p(
            &Method::GET,
            "/a/info/refs",
            Some("service=git-receive-pack"),
        )
        .expect("push refs");
        assert_eq!(push.class(), Class::Write);
        let rp = p(&Method::POST, "/git-receive-pack", None).expect("receive-pack");
        assert_eq!((rp.prefix.as_str(), rp.class()), ("", Class::Write));
        assert_eq!(
            p(&Method::GET, "/r/config", None).map(|g| g.service),
            Some(Service::Config)
        );
        assert_eq!(p(&Method::GET, "/git-annex/u/key/config", None), None);
        assert_eq!(p(&Method::POST, "/r/config", None), None);
    }
}
