//! A repository on this host: git-annex-shell is run directly, as
//! git-annex runs it for a local remote it proxies to
//! (`git-annex-shell p2pstdio <dir> <our uuid>`, no `--uuid`: the UUID is
//! checked on AUTH-SUCCESS instead).

use std::path::Path;

use tokio::process::Command;

use super::{ConnectOptions, NodeRemote, TransportError};
use crate::repo::Repo;

pub fn p2pstdio_command(
    node: &NodeRemote,
    dir: &Path,
    my_uuid: &str,
    opts: &ConnectOptions,
) -> Result<Command, TransportError> {
    // A missing directory would only give git-annex-shell's "failed to read
    // git config" about a path; saying so here names the node.
    if !dir.is_dir() {
        return Err(TransportError::NoRepository {
            name: node.name.clone(),
            path: dir.to_owned(),
        });
    }
    let program = match &node.annex_shell {
        Some(p) => p.into(),
        None => opts.local_shell.clone(),
    };
    let mut cmd = Command::new(program);
    cmd.arg("p2pstdio").arg(dir).arg(my_uuid);
    // The client was confined to the proxy's directory; the node is
    // somewhere else by the operator's choice, so that confinement must not
    // follow us there. Read-only/append-only do follow: they protect the
    // node too.
    cmd.env_remove("GIT_ANNEX_SHELL_DIRECTORY");
    Ok(cmd)
}

pub fn read_uuid(node: &NodeRemote, dir: &Path) -> Result<Option<String>, TransportError> {
    let repo = Repo::open(dir).map_err(|_| TransportError::NoRepository {
        name: node.name.clone(),
        path: dir.to_owned(),
    })?;
    Ok(repo.uuid())
}
