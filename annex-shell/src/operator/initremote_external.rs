//! `initremote NAME type=external externaltype=T …` and `enableremote`
//! of an external remote, as git-annex 10.20261026 sets one up
//! (`Remote/External.hs: externalSetup`): the program
//! `git-annex-remote-T` is run with INITREMOTE, may read the parameters
//! given (GETCONFIG) and set more (SETCONFIG, SETCREDS with
//! `embedcreds=yes`), and what it set goes to remote.log with the rest;
//! the git config gets `remote.NAME.annex-externaltype=T`.

use std::path::Path;

use crate::special::chunks::ChunkConfig;
use crate::special::config::{Params, EXTERNAL_TIMEOUT_SECS};
use crate::special::external::{self, driver::ExternalError, ExternalSetup};
use crate::special::{Kind, SpecialRemote};

#[derive(Debug, thiserror::Error)]
pub enum ExternalSetupError {
    #[error("Specify externaltype=")]
    NoExternalType,
    #[error("externaltype={0} cannot name a git-annex-remote-* program")]
    BadExternalType(String),
    #[error(transparent)]
    Program(#[from] ExternalError),
    #[error("starting the runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

/// The program's setup for `config`, once its `externaltype=` is checked.
pub fn prepare(
    git_dir: &Path,
    cwd: &Path,
    config: &Params,
) -> Result<ExternalSetup, ExternalSetupError> {
    let t = config
        .get("externaltype")
        .filter(|t| !t.is_empty())
        .ok_or(ExternalSetupError::NoExternalType)?;
    if t == "readonly" || !external::valid_externaltype(t) {
        return Err(ExternalSetupError::BadExternalType(t.clone()));
    }
    Ok(ExternalSetup {
        externaltype: t.clone(),
        git_dir: git_dir.to_owned(),
        cwd: cwd.to_owned(),
        reply_timeout: std::time::Duration::from_secs(EXTERNAL_TIMEOUT_SECS),
        jobs: external::DEFAULT_JOBS,
    })
}

/// Runs INITREMOTE; what the program set is added to `config`.
pub fn init(
    name: &str,
    uuid: &str,
    config: &mut Params,
    setup: &ExternalSetup,
) -> Result<(), ExternalSetupError> {
    let remote = SpecialRemote {
        name: name.to_owned(),
        uuid: uuid.to_owned(),
        type_name: "external".into(),
        params: config.clone(),
        kind: Kind::External(Box::new(setup.clone())),
        chunking: ChunkConfig::Whole,
        // INITREMOTE runs no transfer: nothing to encrypt.
        encryption: None,
        export: None,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ExternalSetupError::Runtime)?;
    let changes = runtime.block_on(external::init_remote(&remote, setup))?;
    tracing::info!(remote = name, ?changes, "INITREMOTE done");
    config.extend(changes);
    Ok(())
}
