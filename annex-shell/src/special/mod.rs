//! Special remotes (git-annex's `initremote` kinds) served behind the
//! proxy: the client addresses the remote's UUID, and this repository
//! stores into and reads from the remote itself, streaming, as git-annex's
//! proxy does (`Annex/Proxy.hs: proxySpecialRemote`) but without a
//! whole-object temporary file on the proxy.
//!
//! - [`config`]: a special remote as git-annex records it: `remote.log` in
//!   the git-annex branch (type, name, every parameter), the git configs
//!   `initremote` writes (`remote.NAME.annex-uuid`, `annex-directory`, …),
//!   and where credentials would be (`annex/creds/<uuid>`).
//! - [`storage`]: what a kind of remote must do (named objects: stat, read
//!   from an offset, a staged write committed only once verified, remove);
//!   [`directory`], [`s3`] and [`external`] are the kinds served.
//! - [`chunks`]: git-annex's chunk keys and chunk log.
//! - [`crypto`]: git-annex's encryption (ciphers, HMAC names, gpg), and
//!   [`crypt`] the storage wrapper that applies it to any kind.
//! - [`present`]: a direct upload (DATA-PRESENT) checked and logged.
//! - [`remote`]: the [`crate::backend::Backend`] over any storage: the
//!   session loop drives it as it drives a local repository or a peer.

pub mod chunks;
pub mod config;
pub mod crypt;
pub mod crypto;
pub mod directory;
pub mod export;
pub mod external;
pub(crate) mod present;
pub(crate) mod put;
pub(crate) mod read;
pub mod remote;
mod resume;
pub mod s3;
pub mod storage;

use std::future::Future;
use std::pin::Pin;

use annex::p2p::Connection;
use annex::repo::Repo;
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::Instrument;

pub use config::{Kind, SpecialError, SpecialRemote};

use crate::args::BuiltinCall;
use crate::error::ShellError;
use crate::restrict::{Policy, Rules};
use crate::session::{ServeError, Session};

/// `p2pstdio` for a special remote behind this repository: the session on
/// stdin/stdout, served by the remote's storage.
pub fn run(
    repo: Repo,
    remote: SpecialRemote,
    call: &BuiltinCall,
    policy: &Policy,
) -> Result<i32, ShellError> {
    crate::p2pstdio::serve(call, |conn, _client| {
        serve_session(conn, &repo, remote, Rules::of(policy))
    })
}

/// One client's session, on any connection, served by the special remote
/// itself.
pub async fn serve_session<R, W>(
    conn: Connection<R, W>,
    repo: &Repo,
    remote: SpecialRemote,
    rules: Rules,
) -> Result<(), ServeError>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    let serve = Serve {
        conn,
        repo,
        remote: &remote,
        rules,
    };
    with_storage(repo, &remote, serve)
        .map_err(|e| ServeError::Fatal(e.to_string()))?
        .await
}

/// What is done with a special remote's storage, whatever its kind (a
/// session here, a cluster node in `crate::cluster::special`), so that
/// [`with_storage`] is the one place each kind is opened.
pub(crate) trait WithStorage {
    type Out;
    fn with<S>(self, storage: S) -> Self::Out
    where
        S: storage::Storage + 'static,
        S::Reader: 'static;
}

/// Open `remote`'s storage, an export's through [`export::Exported`],
/// and hand it to `job`; fails only where a kind cannot be set up (an S3
/// remote that cannot make requests).
pub(crate) fn with_storage<J: WithStorage>(
    repo: &Repo,
    remote: &SpecialRemote,
    job: J,
) -> Result<J::Out, annex_s3::SetupError> {
    Ok(match &remote.kind {
        Kind::Directory(root) => {
            let storage = directory::Directory::new(&remote.name, root.clone())
                .with_reserve(repo.disk_reserve());
            keyed(repo, remote, storage, job)
        }
        Kind::S3 { config, creds } => {
            let storage = s3::S3::new(&remote.name, (**config).clone(), creds.clone())?;
            keyed(repo, remote, storage, job)
        }
        Kind::External(setup) => job.with(external::External::new(remote, setup)),
    })
}

/// A kind that names objects by path too (directory, S3): by key as it
/// is, or through the export layer when the remote is `exporttree=yes`.
fn keyed<S, J>(repo: &Repo, remote: &SpecialRemote, storage: S, job: J) -> J::Out
where
    S: storage::PathStorage + Clone + 'static,
    S::Reader: 'static,
    J: WithStorage,
{
    match remote.export {
        Some(ex) => job.with(export::Exported::new(
            storage,
            ex,
            repo.branch(),
            &remote.uuid,
        )),
        None => job.with(storage),
    }
}

/// A session, as a [`WithStorage`] job.
struct Serve<'a, R, W> {
    conn: Connection<R, W>,
    repo: &'a Repo,
    remote: &'a SpecialRemote,
    rules: Rules,
}

impl<'a, R, W> WithStorage for Serve<'a, R, W>
where
    R: AsyncRead + Unpin + Send + 'a,
    W: AsyncWrite + Unpin + Send + 'a,
{
    type Out = Pin<Box<dyn Future<Output = Result<(), ServeError>> + Send + 'a>>;

    fn with<S>(self, storage: S) -> Self::Out
    where
        S: storage::Storage + 'static,
        S::Reader: 'static,
    {
        Box::pin(serve_storage(
            self.conn,
            self.repo,
            self.remote,
            storage,
            self.rules,
        ))
    }
}

/// The session over one kind's storage, behind the encryption layer (a
/// pass-through when the remote does not encrypt).
async fn serve_storage<R, W, S>(
    conn: Connection<R, W>,
    repo: &Repo,
    remote: &SpecialRemote,
    storage: S,
    rules: Rules,
) -> Result<(), ServeError>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
    S: storage::Storage + 'static,
    S::Reader: 'static,
{
    let span = tracing::info_span!("special", remote = %remote.name, kind = %remote.type_name);
    let storage = crypt::Crypt::new(storage, remote.encryption.clone());
    let backend = remote::Special::new(storage, remote, repo.branch());
    Session::new(conn, backend, rules)
        .run()
        .instrument(span)
        .await
}
