//! `--directory DIR`: one server for every git-annex repository under one
//! or more roots, as git-annex's `p2phttp --directory`.
//!
//! A request names its repository by UUID (the server UUID in
//! `/git-annex/<uuid>/…`) and may also name it by path: whatever comes
//! before `git-annex/` in the URL (`annex+http://host/team/data.git/git-annex/`)
//! is taken as the repository's path under a root. A path must hold the
//! repository the UUID names, or one that proxies for it (the session
//! then relays to the remote or cluster, as for a single repository).
//!
//! UUIDs are found in a map built by walking the roots. A UUID that is
//! not in it triggers a new walk, but at most once per [`RESCAN_EVERY`]:
//! repositories added after start are found within that long, and a
//! stream of made-up UUIDs costs one walk per interval, not one per
//! request (git-annex rescans on every unknown UUID).

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The least time between two walks of the roots.
pub const RESCAN_EVERY: Duration = Duration::from_secs(1);

/// How deep under a root repositories are looked for.
const MAX_DEPTH: usize = 6;

#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error("--directory {}: {source}", root.display())]
    Root {
        root: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The repositories under the roots, by UUID.
#[derive(Debug)]
pub struct Repos {
    roots: Vec<PathBuf>,
    rescan_every: Duration,
    state: Mutex<Found>,
}

#[derive(Debug, Default)]
struct Found {
    by_uuid: HashMap<String, PathBuf>,
    scanned: Option<Instant>,
}

impl Repos {
    /// Checks the roots and walks them once.
    pub fn new(roots: &[PathBuf], rescan_every: Duration) -> Result<Repos, DirectoryError> {
        let roots = roots
            .iter()
            .map(|r| {
                r.canonicalize().map_err(|source| DirectoryError::Root {
                    root: r.clone(),
                    source,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let repos = Repos {
            roots,
            rescan_every,
            state: Mutex::new(Found::default()),
        };
        repos.rescan(&mut repos.lock());
        Ok(repos)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Found> {
        // A panic while walking leaves a map that is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The repository a request is for: by `prefix` (the URL path before
    /// `git-annex/`) when there is one, else by `uuid`. Blocks while a
    /// walk runs, so call it from the blocking pool.
    pub fn find(&self, prefix: &str, uuid: &str) -> Option<PathBuf> {
        if !prefix.is_empty() {
            return self.by_path(prefix);
        }
        let hit = |found: &Found| found.by_uuid.get(uuid).filter(|d| d.exists()).cloned();
        let mut found = self.lock();
        if let Some(dir) = hit(&found) {
            return Some(dir);
        }
        // A miss walks the roots at most once per `rescan_every`: one
        // that comes sooner waits for the next walk (without holding the
        // map, so known repositories are still found meanwhile) rather
        // than be told 404 about a repository made just now.
        if let Some(at) = found.scanned {
            let wait = self.rescan_every.saturating_sub(at.elapsed());
            if !wait.is_zero() {
                drop(found);
                std::thread::sleep(wait);
                found = self.lock();
                if let Some(dir) = hit(&found) {
                    return Some(dir);
                }
            }
        }
        let due = found
            .scanned
            .is_none_or(|at| at.elapsed() >= self.rescan_every);
        // Not due: another miss walked the roots while this one waited,
        // after this request came, so what that walk did not find is not
        // there.
        if due {
            self.rescan(&mut found);
        }
        found.by_uuid.get(uuid).cloned()
    }

    /// The repository `prefix` names (for git's requests, which carry no
    /// UUID). Blocks on the file system.
    pub fn find_by_path(&self, prefix: &str) -> Option<PathBuf> {
        if prefix.is_empty() {
            return None;
        }
        self.by_path(prefix)
    }

    /// `prefix` under the first root that has it, if it is a repository.
    /// Only plain names: no `..`, nothing hidden, nothing absolute.
    fn by_path(&self, prefix: &str) -> Option<PathBuf> {
        let rel = Path::new(prefix.trim_matches('/'));
        let plain = rel.components().all(|c| match c {
            Component::Normal(n) => !n.to_string_lossy().starts_with('.'),
            _ => false,
        });
        if !plain {
            return None;
        }
        self.roots.iter().find_map(|root| {
            let dir = root.join(rel).canonicalize().ok()?;
            // A symlink out of the root is not served.
            (dir.starts_with(root) && repo_uuid(&dir).is_some()).then_some(dir)
        })
    }

    fn rescan(&self, found: &mut Found) {
        let started = Instant::now();
        let mut map = HashMap::new();
        for root in &self.roots {
            walk(root, 0, &mut map);
        }
        tracing::info!(
            repositories = map.len(),
            took_ms = started.elapsed().as_millis() as u64,
            "p2phttp --directory: scanned"
        );
        found.by_uuid = map;
        found.scanned = Some(Instant::now());
    }
}

/// Every git-annex repository at or under `dir`; a repository's own
/// folders are not searched further.
fn walk(dir: &Path, depth: usize, map: &mut HashMap<String, PathBuf>) {
    if let Some(uuid) = repo_uuid(dir) {
        map.entry(uuid).or_insert_with(|| dir.to_owned());
        return;
    }
    if depth >= MAX_DEPTH {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let hidden = e.file_name().to_string_lossy().starts_with('.');
        // Not through symlinks, which could lead out of the root or round.
        let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
        if is_dir && !hidden {
            walk(&e.path(), depth + 1, map);
        }
    }
}

/// The UUID of the git-annex repository at `dir` (a work tree with
/// `.git`, or a bare repository), if it is one.
fn repo_uuid(dir: &Path) -> Option<String> {
    let bare = dir.join("HEAD").is_file() && dir.join("objects").is_dir();
    if !bare && !dir.join(".git").exists() {
        return None;
    }
    annex::repo::Repo::open(dir).ok()?.uuid()
}

/// The part of a request path before its last `git-annex` segment, less
/// one `git-annex` at its end: git-annex's client removes a trailing
/// `git-annex/` from `annexUrl` only when nothing comes before it, so
/// `annex+http://host/team/a/git-annex/` arrives as
/// `/team/a/git-annex/git-annex/<uuid>/…` (P2P/Http/Url.hs).
pub fn prefix_of(path: &str) -> String {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let Some(at) = segs.iter().rposition(|s| *s == "git-annex") else {
        return String::new();
    };
    let before = match segs[..at] {
        [ref rest @ .., "git-annex"] => rest,
        ref all => all,
    };
    before.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn git_repo(dir: &Path, uuid: &str) {
        std::fs::create_dir_all(dir).expect("mkdir");
        let git = |args: &[&str]| {
            let ok = std::process::Command::new("git")
                .args(args)
                .current_dir(dir)
                .output()
                .expect("git")
                .status
                .success();
            assert!(ok, "git {args:?}");
        };
        git(&["init", "-q"]);
        git(&["config", "annex.uuid", uuid]);
    }

    #[test]
    fn finds_by_uuid_and_path_and_rescans_at_a_bounded_rate() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("root");
        git_repo(&root.join("team/a"), "uuid-a");
        let every = Duration::from_millis(300);
        let repos = Repos::new(std::slice::from_ref(&root), every).expect("repos");
        assert!(repos.find("", "uuid-a").is_some());
        assert!(repos.find("team/a", "uuid-a").is_some());
        assert_eq!(repos.find("team/../team/a", "uuid-a"), None);
        assert_eq!(repos.find("team/a/.git", "uuid-a"), None);
        assert_eq!(repos.find("team", "uuid-a"), None);

        // Added later: found on the first miss, which waits for the next
        // walk if the last one is recent.
        git_repo(&root.join("b"), "uuid-b");
        assert!(repos.find("", "uuid-b").is_some());
        // Misses walk at most once per `every`.
        let started = Instant::now();
        assert_eq!(repos.find("", "uuid-none"), None);
        assert_eq!(repos.find("", "uuid-none"), None);
        assert!(started.elapsed() >= every, "{:?}", started.elapsed());
        assert!(repos.find("b", "whatever").is_some());
    }

    #[test]
    fn prefix_is_what_comes_before_git_annex() {
        assert_eq!(prefix_of("/git-annex/u/v4/put"), "");
        assert_eq!(prefix_of("/team/a.git/git-annex/u/key/K"), "team/a.git");
        assert_eq!(prefix_of("/team/a/git-annex/git-annex/u/v4/put"), "team/a");
    }
}
