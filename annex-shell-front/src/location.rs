//! Where a repository's git directory is, found the way gix opens a
//! directory given to git-annex-shell (`DIR/.git`, else `DIR` as a bare
//! repository), for the plain cases only, and whether gix would trust its
//! config: both owned by the effective user.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

/// Why the front does not locate a repository itself.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Unplain {
    #[error("{0}: not a plain path (a symlink, `..`, or a `.git` directory named directly)")]
    Path(PathBuf),
    #[error("{0}: a .git file (gitdir link) or a linked worktree")]
    Linked(PathBuf),
    #[error("{0}: not a git repository the front recognises")]
    NotRepo(PathBuf),
    #[error("{0}: not owned by the effective user (gix trusts its config less)")]
    NotOwned(PathBuf),
}

/// A repository found: its git directory and, when not bare, the
/// directory holding `.git`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    pub git_dir: PathBuf,
    pub work_dir: Option<PathBuf>,
}

impl Location {
    /// `dir/.git` when it is a directory, else `dir` itself; a `.git` of
    /// any other kind (a gitdir file, a symlink) is [`Unplain::Linked`].
    pub fn find(dir: &Path, euid: u32) -> Result<Location, Unplain> {
        let unplain = || Unplain::Path(dir.to_owned());
        if dir.components().any(|c| c == Component::ParentDir)
            || dir.file_name().is_none_or(|n| n == ".git")
        {
            return Err(unplain());
        }
        if !lstat(dir).is_ok_and(|m| m.is_dir()) {
            return Err(unplain());
        }
        let dot_git = dir.join(".git");
        let location = match lstat(&dot_git) {
            Ok(m) if m.is_dir() => Location {
                git_dir: dot_git,
                work_dir: Some(dir.to_owned()),
            },
            Ok(_) => return Err(Unplain::Linked(dot_git)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Location {
                git_dir: dir.to_owned(),
                work_dir: None,
            },
            Err(_) => return Err(unplain()),
        };
        location.check_layout()?;
        location.check_owner(euid)?;
        Ok(location)
    }

    /// What gix's `is_git` looks for, with no `commondir` (a linked
    /// worktree's git directory, which the full server resolves).
    fn check_layout(&self) -> Result<(), Unplain> {
        let g = &self.git_dir;
        let not_repo = || Unplain::NotRepo(g.clone());
        if !lstat(&g.join("HEAD")).is_ok_and(|m| m.is_file())
            || !g.join("objects").is_dir()
            || !g.join("refs").is_dir()
            || !lstat(&g.join("config")).is_ok_and(|m| m.is_file())
        {
            return Err(not_repo());
        }
        match lstat(&g.join("commondir")) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            _ => Err(Unplain::Linked(g.clone())),
        }
    }

    /// gix trusts a repository's own config fully only when the git
    /// directory and the worktree are the effective user's (or
    /// `safe.directory` lists them); otherwise it leaves that config out.
    /// The front answers only for the user's own repositories.
    fn check_owner(&self, euid: u32) -> Result<(), Unplain> {
        for p in std::iter::once(&self.git_dir).chain(&self.work_dir) {
            if !lstat(p).is_ok_and(|m| m.uid() == euid) {
                return Err(Unplain::NotOwned(p.clone()));
            }
        }
        Ok(())
    }

    /// The repository's own config file.
    pub fn config_path(&self) -> PathBuf {
        self.git_dir.join("config")
    }
}

fn lstat(p: &Path) -> io::Result<std::fs::Metadata> {
    std::fs::symlink_metadata(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn euid() -> u32 {
        nix::unistd::geteuid().as_raw()
    }

    fn make_git_dir(g: &Path) {
        for d in ["objects", "refs"] {
            std::fs::create_dir_all(g.join(d)).expect("mkdir");
        }
        std::fs::write(g.join("HEAD"), "ref: refs/heads/main\n").expect("HEAD");
        std::fs::write(g.join("config"), "[core]\n").expect("config");
    }

    #[test]
    fn bare_and_worktree_repositories() {
        let t = tempfile::tempdir().expect("tmp");
        let bare = t.path().join("b.git");
        make_git_dir(&bare);
        let found = Location::find(&bare, euid()).expect("bare");
        assert_eq!(found.git_dir, bare);
        assert_eq!(found.work_dir, None);
        let wt = t.path().join("w");
        make_git_dir(&wt.join(".git"));
        let found = Location::find(&wt, euid()).expect("worktree");
        assert_eq!(found.git_dir, wt.join(".git"));
        assert_eq!(found.work_dir.as_deref(), Some(wt.as_path()));
        assert_eq!(found.config_path(), wt.join(".git/config"));
    }

    #[test]
    fn links_and_odd_paths_are_not_plain() {
        let t = tempfile::tempdir().expect("tmp");
        let real = t.path().join("real.git");
        make_git_dir(&real);
        // A worktree whose .git is a gitdir file.
        let wt = t.path().join("w");
        std::fs::create_dir(&wt).expect("mkdir");
        std::fs::write(wt.join(".git"), "gitdir: ../real.git\n").expect("gitdir");
        assert!(matches!(
            Location::find(&wt, euid()),
            Err(Unplain::Linked(_))
        ));
        // A linked worktree's git directory has a commondir.
        std::fs::write(real.join("commondir"), "..\n").expect("commondir");
        assert!(matches!(
            Location::find(&real, euid()),
            Err(Unplain::Linked(_))
        ));
        std::fs::remove_file(real.join("commondir")).expect("rm");
        let link = t.path().join("link.git");
        std::os::unix::fs::symlink(&real, &link).expect("symlink");
        for p in [
            link,
            real.join(".."),
            real.join(".git"),
            t.path().join("none"),
        ] {
            assert!(
                matches!(Location::find(&p, euid()), Err(Unplain::Path(_))),
                "{p:?}"
            );
        }
        std::fs::remove_dir(real.join("refs")).expect("rm refs");
        assert!(matches!(
            Location::find(&real, euid()),
            Err(Unplain::NotRepo(_))
        ));
    }

    #[test]
    fn another_users_repository_is_left_to_gix() {
        let t = tempfile::tempdir().expect("tmp");
        let bare = t.path().join("b.git");
        make_git_dir(&bare);
        assert_eq!(
            Location::find(&bare, euid().wrapping_add(1)),
            Err(Unplain::NotOwned(bare))
        );
    }
}
