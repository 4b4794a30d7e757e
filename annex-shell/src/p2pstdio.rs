//! `p2pstdio`: the P2P protocol on stdin/stdout.

use annex::p2p::Connection;
use annex::repo::Repo;

use crate::args::BuiltinCall;
use crate::restrict::Policy;
use crate::run::ShellError;
use crate::serve::Session;

pub fn run(repo: Repo, call: &BuiltinCall, policy: &Policy) -> Result<i32, ShellError> {
    let [client_uuid] = call.params.as_slice() else {
        return Err(ShellError::Other("missing UUID parameter".into()));
    };
    let my_uuid = repo.uuid().ok_or(ShellError::NotAnnex)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| ShellError::Other(e.to_string()))?;
    let store = repo.store();
    let session = Session::new(
        Connection::new(tokio::io::stdin(), tokio::io::stdout()),
        repo,
        store,
        my_uuid,
        client_uuid.clone(),
        policy.server_mode(),
    );
    let result = runtime.block_on(session.run());
    // Child processes and blocked stdin reads must not keep us alive.
    runtime.shutdown_background();
    match result {
        Ok(()) => Ok(0),
        Err(e) if e.is_hangup() => Ok(0),
        Err(e) => Err(ShellError::Other(format!("p2pstdio: {e}"))),
    }
}
