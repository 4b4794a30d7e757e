//! The front's decision: which configlist calls it answers, and what.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::{answer, Env, HandOn};
use crate::gitconfig::Unsure;
use crate::location::Unplain;

const UUID: &str = "5b0a3f6e-8f7e-4c55-9d51-0c1f1a2b3c4d";

/// A home and a bare repository `srv/r.git` in it, initialised as `git
/// init --bare` and `git annex init` leave it.
struct World {
    _tmp: tempfile::TempDir,
    home: PathBuf,
    repo: PathBuf,
}

impl World {
    fn new() -> World {
        let tmp = tempfile::tempdir().expect("tmp");
        let home = tmp.path().join("home");
        let repo = home.join("srv/r.git");
        for d in ["objects/info", "refs/heads"] {
            std::fs::create_dir_all(repo.join(d)).expect("mkdir");
        }
        std::fs::write(repo.join("HEAD"), "ref: refs/heads/main\n").expect("HEAD");
        let w = World {
            _tmp: tmp,
            home,
            repo,
        };
        w.config(&format!(
            "[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = true\n\
             [annex]\n\tuuid = {UUID}\n\tversion = 10\n"
        ));
        w
    }

    fn config(&self, text: &str) {
        std::fs::write(self.repo.join("config"), text).expect("config");
    }

    fn write(&self, rel: &str, text: &str) {
        let p = self.home.join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, text).expect("write");
    }

    /// The environment a forced command gets (the tests' harness sets
    /// GIT_CONFIG_NOSYSTEM too), plus `extra`.
    fn env(&self, extra: &[(&str, &str)]) -> Env {
        let mut vars = vec![
            ("HOME".to_owned(), self.home.display().to_string()),
            ("PATH".to_owned(), "/usr/bin:/bin".to_owned()),
            ("GIT_CONFIG_NOSYSTEM".to_owned(), "1".to_owned()),
        ];
        vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Env::from_pairs(vars)
    }

    fn ask(&self, argv: &[&str], extra: &[(&str, &str)]) -> Result<String, HandOn> {
        let argv: Vec<OsString> = argv.iter().map(OsString::from).collect();
        answer(&argv, &self.env(extra), euid())
    }

    fn configlist(&self, extra: &[(&str, &str)]) -> Result<String, HandOn> {
        let dir = self.repo.display().to_string();
        self.ask(&["configlist", &dir], extra)
    }
}

fn euid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

fn expected(uuid: &str, gcrypt: &str) -> Result<String, HandOn> {
    Ok(format!("annex.uuid={uuid}\ncore.gcrypt-id={gcrypt}\n"))
}

fn unsure(r: Result<String, HandOn>) -> Unsure {
    match r {
        Err(HandOn::Config { source, .. }) => source,
        other => panic!("expected a config the reader is unsure of, got {other:?}"),
    }
}

#[test]
fn a_plain_repository_is_answered_in_every_argv_form() {
    let w = World::new();
    assert_eq!(w.configlist(&[]), expected(UUID, ""));
    let dir = w.repo.display().to_string();
    let login = format!("git-annex-shell 'configlist' '{dir}'");
    for argv in [
        vec!["configlist", "/~/srv/r.git"],
        vec!["configlist", "~/srv/r.git", "--", "autoinit=1", "--"],
        vec!["configlist", "srv/r.git", "--uuid", UUID],
        vec!["-c", &login],
    ] {
        assert_eq!(w.ask(&argv, &[]), expected(UUID, ""), "{argv:?}");
    }
    w.config(&format!(
        "[annex]\n\tuuid = {UUID}\n[core]\n\tgcrypt-id = :id:x\n"
    ));
    assert_eq!(w.configlist(&[]), expected(UUID, ":id:x"));
}

#[test]
fn other_commands_and_other_uuids_hand_on() {
    let w = World::new();
    let dir = w.repo.display().to_string();
    for argv in [
        vec!["p2pstdio", &dir],
        vec!["configlist"],
        vec!["-c", "configlist /x"],
        vec!["-c", "git-upload-pack '/x'"],
    ] {
        assert_eq!(w.ask(&argv, &[]), Err(HandOn::NotConfiglist), "{argv:?}");
    }
    let proxied = "0a1b2c3d-0000-4000-8000-000000000001";
    assert_eq!(
        w.ask(&["configlist", &dir, "--uuid", proxied], &[]),
        Err(HandOn::OtherUuid)
    );
}

#[test]
fn a_missing_or_empty_uuid_hands_on() {
    let w = World::new();
    w.config("[core]\n\tbare = true\n");
    assert_eq!(w.configlist(&[]), Err(HandOn::NoUuid));
    w.config("[annex]\n\tuuid =\n");
    assert_eq!(w.configlist(&[]), Err(HandOn::NoUuid));
}

#[test]
fn includes_remotes_and_quoting_hand_on() {
    let w = World::new();
    let base = std::fs::read_to_string(w.repo.join("config")).expect("read");
    w.config(&format!("{base}[include]\n\tpath = more\n"));
    assert!(matches!(unsure(w.configlist(&[])), Unsure::Include { .. }));
    w.config(&format!("{base}[remote \"n1\"]\n\turl = /srv/n1\n"));
    assert!(matches!(unsure(w.configlist(&[])), Unsure::Remote(_)));
    w.config(&format!("{base}[user]\n\tname = \"A B\"\n"));
    assert!(matches!(unsure(w.configlist(&[])), Unsure::Syntax(_)));
    // A remote in the user's global config is a remote too.
    w.config(&base);
    w.write(".gitconfig", "[remote \"origin\"]\n\turl = x\n");
    assert!(matches!(unsure(w.configlist(&[])), Unsure::Remote(_)));
}

#[test]
fn global_config_is_read_in_git_order() {
    let w = World::new();
    w.write(
        ".gitconfig",
        "[core]\n\tgcrypt-id = from-home\n[annex]\n\tuuid = g\n",
    );
    // The repository's annex.uuid overrides the global one.
    assert_eq!(w.configlist(&[]), expected(UUID, "from-home"));
    // ~/.gitconfig is read after the XDG file, and wins.
    w.write(".config/git/config", "[core]\n\tgcrypt-id = from-xdg\n");
    assert_eq!(w.configlist(&[]), expected(UUID, "from-home"));
    w.write(".gitconfig", "[user]\n\tname = U\n");
    assert_eq!(w.configlist(&[]), expected(UUID, "from-xdg"));
    // XDG_CONFIG_HOME moves the XDG file.
    let xdg = w.home.join("elsewhere");
    w.write("elsewhere/git/config", "[core]\n\tgcrypt-id = moved\n");
    let xdg = xdg.display().to_string();
    assert_eq!(
        w.configlist(&[("XDG_CONFIG_HOME", &xdg)]),
        expected(UUID, "moved")
    );
    // A uuid set only globally is what gix reports too.
    w.config("[core]\n\tbare = true\n");
    w.write(".gitconfig", "[annex]\n\tuuid = only-global\n");
    assert_eq!(
        w.configlist(&[("XDG_CONFIG_HOME", &xdg)]),
        expected("only-global", "moved")
    );
}

#[test]
fn environment_that_moves_config_hands_on() {
    let w = World::new();
    for var in [
        "GIT_CONFIG_GLOBAL",
        "GIT_CONFIG_SYSTEM",
        "GIT_CONFIG_COUNT",
        "GIT_CONFIG_PARAMETERS",
        "GIT_DIR",
        "ANNEXPROXY_LOG",
    ] {
        assert_eq!(
            w.configlist(&[(var, "x")]),
            Err(HandOn::Env(var.into())),
            "{var}"
        );
    }
    assert_eq!(
        w.configlist(&[("GIT_CONFIG_NOSYSTEM", "maybe")]),
        Err(HandOn::Env("GIT_CONFIG_NOSYSTEM".into()))
    );
    assert_eq!(
        w.configlist(&[("XDG_CONFIG_HOME", "")]),
        Err(HandOn::Env("XDG_CONFIG_HOME".into()))
    );
    assert_eq!(w.configlist(&[("HOME", "")]), Err(HandOn::Home));
    // Variables that change nothing here.
    assert_eq!(
        w.configlist(&[("GIT_SSL_CAINFO", "/x"), ("GIT_CONFIG_NOSYSTEM", "Yes")]),
        expected(UUID, "")
    );
}

#[test]
fn restrictions_are_checked_as_the_full_server_checks_them() {
    let w = World::new();
    assert_eq!(
        w.configlist(&[
            ("GIT_ANNEX_SHELL_READONLY", "1"),
            ("GIT_ANNEX_SHELL_LIMITED", "1")
        ]),
        expected(UUID, "")
    );
    let allowed = w.repo.display().to_string();
    assert_eq!(
        w.ask(
            &["configlist", "/~/srv/r.git"],
            &[("GIT_ANNEX_SHELL_DIRECTORY", &allowed)]
        ),
        expected(UUID, "")
    );
    assert!(matches!(
        w.configlist(&[("GIT_ANNEX_SHELL_DIRECTORY", "/srv/other")]),
        Err(HandOn::Refused(_))
    ));
}

#[test]
fn a_gitdir_link_hands_on() {
    let w = World::new();
    let wt = w.home.join("wt");
    std::fs::create_dir(&wt).expect("mkdir");
    std::fs::write(wt.join(".git"), format!("gitdir: {}\n", w.repo.display())).expect("gitdir");
    let dir = wt.display().to_string();
    assert!(matches!(
        w.ask(&["configlist", &dir], &[]),
        Err(HandOn::Location(Unplain::Linked(_)))
    ));
    let missing = Path::new(&dir).join("nothing").display().to_string();
    assert!(matches!(
        w.ask(&["configlist", &missing], &[]),
        Err(HandOn::Location(Unplain::Path(_)))
    ));
}
