//! The argv forms git-annex-shell accepts, resolved into an [`Invocation`].
//!
//! Two stages, as in ripgrep: [`parse`] turns what ssh handed us into a
//! structured invocation without touching the filesystem; [`resolve_dir`]
//! later turns the directory parameter into a path on this host.

use std::path::PathBuf;

/// Commands git-annex-shell serves itself; anything else goes to git-shell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Builtin {
    ConfigList,
    NotifyChanges,
    P2pStdio,
    InAnnex,
    SendKey,
    RecvKey,
    DropKey,
    GcryptSetup,
    /// Commands older git-annex clients still send.
    LockContent,
    TransferInfo,
    Commit,
}

impl Builtin {
    pub fn from_name(name: &str) -> Option<Builtin> {
        Some(match name {
            "configlist" => Builtin::ConfigList,
            "notifychanges" => Builtin::NotifyChanges,
            "p2pstdio" => Builtin::P2pStdio,
            "inannex" => Builtin::InAnnex,
            "sendkey" => Builtin::SendKey,
            "recvkey" => Builtin::RecvKey,
            "dropkey" => Builtin::DropKey,
            "gcryptsetup" => Builtin::GcryptSetup,
            "lockcontent" => Builtin::LockContent,
            "transferinfo" => Builtin::TransferInfo,
            "commit" => Builtin::Commit,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Builtin::ConfigList => "configlist",
            Builtin::NotifyChanges => "notifychanges",
            Builtin::P2pStdio => "p2pstdio",
            Builtin::InAnnex => "inannex",
            Builtin::SendKey => "sendkey",
            Builtin::RecvKey => "recvkey",
            Builtin::DropKey => "dropkey",
            Builtin::GcryptSetup => "gcryptsetup",
            Builtin::LockContent => "lockcontent",
            Builtin::TransferInfo => "transferinfo",
            Builtin::Commit => "commit",
        }
    }

    /// Which commands a restricted server still allows. LOCKCONTENT only
    /// takes a shared lock, so read-only servers keep it, as they do in P2P.
    pub fn allowed_readonly(self) -> bool {
        matches!(
            self,
            Builtin::ConfigList
                | Builtin::NotifyChanges
                | Builtin::P2pStdio
                | Builtin::InAnnex
                | Builtin::SendKey
                | Builtin::LockContent
                | Builtin::TransferInfo
        )
    }

    pub fn allowed_appendonly(self) -> bool {
        self.allowed_readonly() || matches!(self, Builtin::RecvKey | Builtin::Commit)
    }

    /// Commands that act on a repository's own content and so cannot be
    /// relayed to a proxied remote.
    pub fn proxyable(self) -> bool {
        matches!(self, Builtin::P2pStdio | Builtin::NotifyChanges)
    }

    pub const ALL: [Builtin; 11] = [
        Builtin::ConfigList,
        Builtin::NotifyChanges,
        Builtin::P2pStdio,
        Builtin::InAnnex,
        Builtin::SendKey,
        Builtin::RecvKey,
        Builtin::DropKey,
        Builtin::GcryptSetup,
        Builtin::LockContent,
        Builtin::TransferInfo,
        Builtin::Commit,
    ];
}

/// The `-- field=value --` settings a client may pass. Unknown fields and
/// values that fail their check are dropped silently, as git-annex does.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fields {
    pub remote_uuid: Option<String>,
    pub autoinit: bool,
    pub associated_file: Option<String>,
}

impl Fields {
    fn parse<'a>(items: impl IntoIterator<Item = &'a String>) -> Fields {
        let mut f = Fields::default();
        for item in items {
            let (name, value) = item.split_once('=').unwrap_or((item.as_str(), ""));
            match name {
                "remoteuuid" if is_uuid_word(value) => f.remote_uuid = Some(value.to_owned()),
                "autoinit" if value == "1" => f.autoinit = true,
                "associatedfile" if !value.is_empty() => f.associated_file = Some(value.to_owned()),
                _ => {}
            }
        }
        f
    }
}

/// git-annex's check of a UUID in a field: letters, digits and `-` only
/// (the same test as `annex::uuids::is_uuid_word`, which this crate cannot
/// depend on without growing the front binary).
fn is_uuid_word(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// A builtin command with its parameters taken apart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuiltinCall {
    pub cmd: Builtin,
    /// The directory exactly as the client wrote it (before `~` expansion).
    pub dir: String,
    /// Positional parameters after the directory.
    pub params: Vec<String>,
    /// `--uuid`: the repository the client expects to reach.
    pub expected_uuid: Option<String>,
    pub debug: bool,
    /// `-c name=value` overrides of git config.
    pub config_overrides: Vec<(String, String)>,
    pub fields: Fields,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Invocation {
    Builtin(BuiltinCall),
    /// Handed to `git-shell -c`, with the repository git-shell will hand
    /// to git (see [`served_repository`]) for the GIT_ANNEX_SHELL_DIRECTORY
    /// check; `None` when it cannot be told for sure.
    GitShell {
        command: Vec<String>,
        dir: Option<String>,
    },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ArgsError {
    #[error("bad parameters\n\n{}", usage())]
    BadParameters,
    #[error("option {0} needs a value")]
    MissingValue(String),
    #[error("unable to parse the command line {0:?}")]
    Unquote(String),
}

pub fn usage() -> String {
    let names: Vec<&str> = Builtin::ALL.iter().map(|b| b.name()).collect();
    format!(
        "Usage: git-annex-shell [-c] command [parameters ...] [option ...]\n\nCommands: {}",
        names.join(" ")
    )
}

/// Parse argv (without argv[0]).
pub fn parse(args: &[String]) -> Result<Invocation, ArgsError> {
    let mut args = args;
    // ssh runs a login shell's forced command as `-c "…"`; skip any number.
    while let Some(rest) = args.strip_prefix(&["-c".to_owned()]) {
        args = rest;
    }
    match args {
        [] => Err(ArgsError::BadParameters),
        [cmd, dir, params @ ..] => match Builtin::from_name(cmd) {
            Some(b) => parse_builtin(b, dir, params),
            None => Ok(git_shell(args)),
        },
        [single] => {
            // Being the user's login shell: all parameters arrive as one string.
            if let Some(rest) = single.strip_prefix("git-annex-shell ") {
                let words =
                    shell_words::split(rest).map_err(|_| ArgsError::Unquote(single.clone()))?;
                return parse(&words);
            }
            if Builtin::from_name(single).is_some() {
                return Err(ArgsError::BadParameters);
            }
            Ok(git_shell(args))
        }
    }
}

fn git_shell(args: &[String]) -> Invocation {
    let (command, _, _) = partition(args);
    let dir = served_repository(&command);
    Invocation::GitShell { command, dir }
}

/// The repository git will serve for `git-shell -c COMMAND…`, read the way
/// git-shell reads it: exactly one string, `git-SERVICE 'DIR'` (or
/// `git SERVICE 'DIR'`), DIR in git's single quoting. Anything else (more
/// words, a program from `git-shell-commands/`, `cvs server`) gives `None`,
/// which GIT_ANNEX_SHELL_DIRECTORY refuses. git-annex checks the last word
/// of the whole command line instead, so `"git-upload-pack '/other.git'" --
/// /allowed.git` passed its check while git served `/other.git`.
pub fn served_repository(command: &[String]) -> Option<String> {
    let [line] = command else {
        return None;
    };
    let rest = line
        .strip_prefix("git-")
        .or_else(|| line.strip_prefix("git "))?;
    let (service, arg) = rest.split_once(' ')?;
    if !matches!(service, "upload-pack" | "receive-pack" | "upload-archive") {
        return None;
    }
    // git-shell refuses an argument that would be an option.
    sq_dequote(arg).filter(|dir| !dir.starts_with('-'))
}

/// git's `sq_dequote`: `'…'` runs joined by `\'` or `\!`, and nothing
/// else; `None` when `s` is not exactly that.
fn sq_dequote(s: &str) -> Option<String> {
    let mut out = String::new();
    let mut rest = s.strip_prefix('\'')?;
    loop {
        let end = rest.find('\'')?;
        out.push_str(&rest[..end]);
        rest = &rest[end + 1..];
        if rest.is_empty() {
            return Some(out);
        }
        let mut escaped = rest.strip_prefix('\\')?.chars();
        let c = escaped.next().filter(|c| matches!(c, '\'' | '!'))?;
        out.push(c);
        rest = escaped.as_str().strip_prefix('\'')?;
    }
}

/// Split `A -- F -- R` into command parameters, fields, and the rest
/// (rsync options in git-annex; unused here).
fn partition(params: &[String]) -> (Vec<String>, Vec<String>, Vec<String>) {
    let mut segments = params.split(|p| p == "--");
    let a = segments.next().map(<[String]>::to_vec).unwrap_or_default();
    let f = segments.next().map(<[String]>::to_vec).unwrap_or_default();
    let rest: Vec<String> = segments.flat_map(|s| s.iter().cloned()).collect();
    (a, f, rest)
}

fn parse_builtin(cmd: Builtin, dir: &str, params: &[String]) -> Result<Invocation, ArgsError> {
    let (a, f, _) = partition(params);
    let mut call = BuiltinCall {
        cmd,
        dir: dir.to_owned(),
        params: Vec::new(),
        expected_uuid: None,
        debug: false,
        config_overrides: Vec::new(),
        fields: Fields::parse(&f),
    };
    let mut it = a.into_iter();
    while let Some(p) = it.next() {
        if let Some(v) = p.strip_prefix("--uuid=") {
            call.expected_uuid = Some(v.to_owned());
        } else if p == "--uuid" {
            call.expected_uuid = Some(it.next().ok_or(ArgsError::MissingValue(p))?);
        } else if p == "--debug" {
            call.debug = true;
        } else if p == "--quiet" || p == "-q" || p == "--verbose" || p == "-v" {
            // Output-level options change nothing in what the protocol carries.
        } else if p == "-c" {
            let kv = it.next().ok_or(ArgsError::MissingValue(p))?;
            let (k, v) = kv.split_once('=').unwrap_or((kv.as_str(), "true"));
            call.config_overrides.push((k.to_owned(), v.to_owned()));
        } else {
            call.params.push(p);
        }
    }
    Ok(Invocation::Builtin(call))
}

/// Expand `~` and `~user` at the start of the path and after every `/`, as
/// git-annex does, and take a relative result relative to `home`.
pub fn resolve_dir(dir: &str, home: &str) -> PathBuf {
    let mut out = String::new();
    let mut at_component_start = true;
    let mut rest = dir;
    while let Some(c) = rest.chars().next() {
        if at_component_start && c == '~' {
            let after = &rest[1..];
            let (name, tail, consumed_all) = match after.find('/') {
                Some(i) => (&after[..i], &after[i + 1..], false),
                None => (after, "", true),
            };
            let expanded = if name.is_empty() {
                Some(home.to_owned())
            } else {
                user_home(name)
            };
            match expanded {
                Some(h) => {
                    out.push_str(&join(&h, tail));
                    let _ = consumed_all;
                    return finish(out, home);
                }
                // An unknown user leaves the whole path as given.
                None => return finish(dir.to_owned(), home),
            }
        }
        at_component_start = c == '/';
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    finish(out, home)
}

fn join(base: &str, tail: &str) -> String {
    if tail.is_empty() {
        base.to_owned()
    } else if base.ends_with('/') {
        format!("{base}{tail}")
    } else {
        format!("{base}/{tail}")
    }
}

fn finish(path: String, home: &str) -> PathBuf {
    let p = PathBuf::from(&path);
    if p.is_absolute() {
        p
    } else {
        PathBuf::from(home).join(p)
    }
}

fn user_home(name: &str) -> Option<String> {
    nix::unistd::User::from_name(name)
        .ok()
        .flatten()
        .map(|u| u.dir.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn p2pstdio_as_git_annex_sends_it() {
        let inv = parse(&s(&[
            "p2pstdio",
            "/~/srv/server",
            "dd955513-8c88-41d0-92cb-f983fd146535",
            "--uuid",
            "8f99040c-c5ea-4ad6-b9a2-6d84c3e7f096",
        ]))
        .expect("parses");
        let Invocation::Builtin(call) = inv else {
            panic!("builtin expected")
        };
        assert_eq!(call.cmd, Builtin::P2pStdio);
        assert_eq!(call.dir, "/~/srv/server");
        assert_eq!(call.params, s(&["dd955513-8c88-41d0-92cb-f983fd146535"]));
        assert_eq!(
            call.expected_uuid.as_deref(),
            Some("8f99040c-c5ea-4ad6-b9a2-6d84c3e7f096")
        );
    }

    #[test]
    fn fields_between_double_dashes() {
        let inv = parse(&s(&[
            "configlist",
            "/~/bare1",
            "--",
            "autoinit=1",
            "remoteuuid=a-b",
            "evil=1",
            "--",
        ]))
        .expect("parses");
        let Invocation::Builtin(call) = inv else {
            panic!("builtin expected")
        };
        assert!(call.fields.autoinit);
        assert_eq!(call.fields.remote_uuid.as_deref(), Some("a-b"));
        assert!(call.params.is_empty());
    }

    #[test]
    fn autoinit_must_be_one() {
        let inv = parse(&s(&["configlist", "/x", "--", "autoinit=yes", "--"])).expect("parses");
        let Invocation::Builtin(call) = inv else {
            panic!("builtin expected")
        };
        assert!(!call.fields.autoinit);
    }

    #[test]
    fn login_shell_form_is_unquoted() {
        let inv = parse(&s(&[
            "-c",
            "git-annex-shell 'p2pstdio' '/srv/a b' 'u1' --uuid u2",
        ]))
        .expect("parses");
        let Invocation::Builtin(call) = inv else {
            panic!("builtin expected")
        };
        assert_eq!(call.dir, "/srv/a b");
        assert_eq!(call.params, s(&["u1"]));
        assert_eq!(call.expected_uuid.as_deref(), Some("u2"));
    }

    #[test]
    fn git_services_go_to_git_shell() {
        let inv = parse(&s(&["-c", "git-upload-pack '/srv/repo.git'"])).expect("parses");
        assert_eq!(
            inv,
            Invocation::GitShell {
                command: s(&["git-upload-pack '/srv/repo.git'"]),
                dir: Some("/srv/repo.git".into())
            }
        );
    }

    #[test]
    fn the_directory_is_the_one_git_shell_hands_to_git() {
        // The repository in the git-shell command, not the last word.
        let inv = parse(&s(&[
            "-c",
            "git-annex-shell \"git-upload-pack '/other/secret.git'\" -- /allowed.git",
        ]))
        .expect("parses");
        let Invocation::GitShell { command, dir } = inv else {
            panic!("git-shell expected")
        };
        assert_eq!(command, s(&["git-upload-pack '/other/secret.git'"]));
        assert_eq!(dir.as_deref(), Some("/other/secret.git"));
        let dir_of = |c: &str| served_repository(&s(&[c]));
        assert_eq!(dir_of("git receive-pack '/a b'").as_deref(), Some("/a b"));
        assert_eq!(
            dir_of(r"git-upload-pack 'it'\''s'").as_deref(),
            Some("it's")
        );
        // What git-shell would refuse or run otherwise cannot be checked.
        for ambiguous in [
            "git-upload-pack /unquoted",
            "git-upload-pack '/a' '/b'",
            "git-upload-pack  '/a'",
            "git-upload-pack '--help'",
            "cvs server",
            "list '/a'",
        ] {
            assert_eq!(dir_of(ambiguous), None, "{ambiguous}");
        }
        assert_eq!(served_repository(&s(&["git-upload-pack", "'/a'"])), None);
    }

    #[test]
    fn without_prefix_a_single_string_is_for_git_shell() {
        // git-annex passes `configlist /x` without its own name to git-shell.
        let inv = parse(&s(&["-c", "configlist /x"])).expect("parses");
        assert!(matches!(inv, Invocation::GitShell { .. }));
    }

    #[test]
    fn bare_builtin_without_dir_is_bad() {
        assert_eq!(parse(&s(&["p2pstdio"])), Err(ArgsError::BadParameters));
        assert_eq!(parse(&[]), Err(ArgsError::BadParameters));
    }

    #[test]
    fn tilde_forms() {
        let home = "/home/u";
        assert_eq!(
            resolve_dir("/~/srv/x", home),
            PathBuf::from("//home/u/srv/x")
        );
        assert_eq!(resolve_dir("~/x", home), PathBuf::from("/home/u/x"));
        assert_eq!(resolve_dir("x", home), PathBuf::from("/home/u/x"));
        assert_eq!(resolve_dir("/abs/x", home), PathBuf::from("/abs/x"));
        assert_eq!(resolve_dir("/~root/x", home), PathBuf::from("//root/x"));
        assert_eq!(
            resolve_dir("/~no-such-user-here/x", home),
            PathBuf::from("/~no-such-user-here/x")
        );
    }
}
