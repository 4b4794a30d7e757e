//! A repository behind ssh: `ssh [annex-ssh-options] [-p PORT] -T HOST
//! COMMAND`, COMMAND being the string git-annex builds for
//! git-annex-shell (each word single-quoted, `--uuid U` raw).
//!
//! Everything that reaches ssh's argv is checked: a host (or user) that
//! starts with `-` is refused, since ssh would take it for an option.

use std::path::Path;
use std::process::Stdio;

use tokio::process::Command;

use super::{check_uuid_word, NodeRemote, SshLocation, TransportError, SSH_UNREACHABLE};

/// The program run by default; ssh's own configuration decides the rest.
pub const SSH: &str = "ssh";

/// Quote for the remote shell as git-annex does: wrap in `'…'`, an
/// embedded `'` becoming `'"'"'`.
pub fn shell_escape(s: &str) -> String {
    format!("'{}'", s.replace('\'', r#"'"'"'"#))
}

/// The remote command line: `<annex-shell> '<cmd>' '<dir>' '<param>'…
/// [--uuid <uuid>]`.
pub fn shell_command(node: &NodeRemote, cmd: &str, dir: &str, params: &[&str]) -> String {
    let shell = node.annex_shell.as_deref().unwrap_or("git-annex-shell");
    let mut line = format!("{shell} {} {}", shell_escape(cmd), shell_escape(dir));
    for p in params {
        line.push(' ');
        line.push_str(&shell_escape(p));
    }
    if !node.uuid.is_empty() {
        line.push_str(" --uuid ");
        line.push_str(&node.uuid);
    }
    line
}

/// ssh's argv (without the program) for running `remote` on `at`.
pub fn ssh_args(
    node: &NodeRemote,
    at: &SshLocation,
    no_stdin: bool,
    remote: String,
) -> Result<Vec<String>, TransportError> {
    let user_host_ok = !at.host.starts_with('-')
        && !at
            .host
            .split_once('@')
            .is_some_and(|(_, h)| h.starts_with('-'));
    if !user_host_ok || at.host.is_empty() {
        return Err(TransportError::UnsafeHost {
            name: node.name.clone(),
            value: at.host.clone(),
        });
    }
    let mut args = node.ssh_options.clone();
    if let Some(port) = at.port {
        args.push("-p".into());
        args.push(port.to_string());
    }
    if no_stdin {
        args.push("-n".into());
    }
    args.push("-T".into());
    args.push(at.host.clone());
    args.push(remote);
    Ok(args)
}

pub fn p2pstdio_command(
    node: &NodeRemote,
    at: &SshLocation,
    my_uuid: &str,
    ssh: &Path,
) -> Result<Command, TransportError> {
    let remote = shell_command(node, "p2pstdio", &at.dir, &[my_uuid]);
    let mut cmd = Command::new(ssh);
    cmd.args(ssh_args(node, at, false, remote)?);
    Ok(cmd)
}

/// `git-annex-shell configlist` over ssh, for the remote's `annex.uuid`.
pub fn configlist_uuid(
    node: &NodeRemote,
    at: &SshLocation,
    ssh: &Path,
) -> Result<Option<String>, TransportError> {
    // No --uuid: we are asking what it is.
    let unknown = NodeRemote {
        uuid: String::new(),
        ..node.clone()
    };
    let remote = shell_command(&unknown, "configlist", &at.dir, &[]);
    let mut cmd = std::process::Command::new(ssh);
    cmd.args(ssh_args(node, at, true, remote)?)
        .stdin(Stdio::null());
    let out = super::retry_busy(|| cmd.output()).map_err(|source| TransportError::Spawn {
        name: node.name.clone(),
        program: ssh.display().to_string(),
        source,
    })?;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if out.status.code() == Some(SSH_UNREACHABLE) {
        return Err(TransportError::Unreachable {
            name: node.name.clone(),
            stderr,
        });
    }
    if !out.status.success() {
        return Err(TransportError::CommandFailed {
            name: node.name.clone(),
            program: "git-annex-shell configlist".into(),
            stderr,
        });
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let uuid = text
        .lines()
        .find_map(|l| l.strip_prefix("annex.uuid="))
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(str::to_owned);
    if let Some(u) = &uuid {
        check_uuid_word(&node.name, u)?;
    }
    Ok(uuid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::Location;

    fn node(opts: &[&str], shell: Option<&str>) -> NodeRemote {
        NodeRemote {
            name: "n1".into(),
            uuid: "e0bc0cf7-0000-4000-8000-000000000002".into(),
            location: Location::Local("/".into()),
            annex_shell: shell.map(str::to_owned),
            ssh_options: opts.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn at(host: &str, port: Option<u16>, dir: &str) -> SshLocation {
        SshLocation {
            host: host.into(),
            port,
            dir: dir.into(),
        }
    }

    #[test]
    fn command_string_is_quoted_like_git_annex() {
        // Spec §1.1, observed: git-annex-shell 'p2pstdio' '/~/srv/server'
        // '<client uuid>' --uuid <server uuid>
        let n = node(&[], None);
        assert_eq!(
            shell_command(
                &n,
                "p2pstdio",
                "/~/srv/server",
                &["dd955513-8c88-41d0-92cb-f983fd146535"]
            ),
            "git-annex-shell 'p2pstdio' '/~/srv/server' 'dd955513-8c88-41d0-92cb-f983fd146535' \
             --uuid e0bc0cf7-0000-4000-8000-000000000002"
        );
        let n = node(&[], Some("/opt/ga/git-annex-shell"));
        assert_eq!(
            shell_command(&n, "configlist", "/it's", &[]),
            r#"/opt/ga/git-annex-shell 'configlist' '/it'"'"'s' --uuid e0bc0cf7-0000-4000-8000-000000000002"#
        );
    }

    #[test]
    fn ssh_argv_carries_options_port_and_host() {
        let n = node(&["-o", "StrictHostKeyChecking=no", "-i", "/k"], None);
        let args = ssh_args(&n, &at("u@h", Some(2222), "/srv"), false, "CMD".into()).expect("args");
        assert_eq!(
            args,
            [
                "-o",
                "StrictHostKeyChecking=no",
                "-i",
                "/k",
                "-p",
                "2222",
                "-T",
                "u@h",
                "CMD"
            ]
        );
        let args = ssh_args(&n, &at("h", None, "/srv"), true, "CMD".into()).expect("args");
        assert_eq!(&args[4..], ["-n", "-T", "h", "CMD"]);
    }

    #[test]
    fn option_like_hosts_are_refused() {
        let n = node(&[], None);
        for host in ["-oProxyCommand=x", "u@-oProxyCommand=x", ""] {
            assert!(
                matches!(
                    ssh_args(&n, &at(host, None, "/r"), false, "c".into()),
                    Err(TransportError::UnsafeHost { .. })
                ),
                "{host}"
            );
        }
    }
}
