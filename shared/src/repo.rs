//! One repository as the server sees it: where its git directory is, its
//! git config (system, global and local merged as git reads them), its
//! annex identity, and initialisation the way git-annex's autoinit does it.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use gix::bstr::ByteSlice;

use crate::branch::{uuidlog, Branch, BranchError, VectorClock};

/// git-annex's default `annex.diskreserve`: 100 megabytes.
pub const DEFAULT_DISK_RESERVE: u64 = 100_000_000;

/// Repository version written by init.
pub const ANNEX_VERSION: &str = "10";

#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error("cannot open git repository {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: gix::Error,
    },
    #[error("git config {path}: {source}")]
    Config {
        path: PathBuf,
        #[source]
        source: gix::Error,
    },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Branch(#[from] BranchError),
}

/// A configured git remote: its name and its `remote.<name>.*` settings
/// (keys lower-cased as git compares them; the last value of a key wins).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteConfig {
    pub name: String,
    pub settings: BTreeMap<String, String>,
}

impl RemoteConfig {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.settings
            .get(&key.to_ascii_lowercase())
            .map(String::as_str)
    }

    pub fn url(&self) -> Option<&str> {
        self.get("url")
    }

    /// The remote's UUID as cached by git-annex (`annex-uuid`).
    pub fn annex_uuid(&self) -> Option<&str> {
        self.get("annex-uuid").filter(|u| !u.is_empty())
    }
}

#[derive(Clone)]
pub struct Repo {
    repo: gix::ThreadSafeRepository,
    git_dir: PathBuf,
    work_dir: Option<PathBuf>,
}

impl std::fmt::Debug for Repo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repo")
            .field("git_dir", &self.git_dir)
            .field("work_dir", &self.work_dir)
            .finish()
    }
}

impl Repo {
    /// Open `dir`: a worktree (with `.git` inside) or a bare repository.
    /// No search upwards: git-annex-shell is told the exact directory.
    pub fn open(dir: &Path) -> Result<Repo, RepoError> {
        let repo = gix::open(dir).map_err(|source| RepoError::Open {
            path: dir.to_owned(),
            source,
        })?;
        let git_dir = absolute(repo.git_dir());
        let work_dir = repo.workdir().map(absolute);
        Ok(Repo {
            repo: repo.into_sync(),
            git_dir,
            work_dir,
        })
    }

    pub fn git_dir(&self) -> &Path {
        &self.git_dir
    }

    pub fn work_dir(&self) -> Option<&Path> {
        self.work_dir.as_deref()
    }

    pub fn is_bare(&self) -> bool {
        self.work_dir.is_none()
    }

    /// `<gitdir>/annex`.
    pub fn annex_dir(&self) -> PathBuf {
        self.git_dir.join("annex")
    }

    /// A config value as git reports it (the last one when repeated).
    pub fn config_get(&self, key: &str) -> Option<String> {
        let repo = self.repo.to_thread_local();
        let snapshot = repo.config_snapshot();
        snapshot.string(key).map(|v| v.to_str_lossy().into_owned())
    }

    /// A boolean config value with git's spellings (yes/on/true/1, …).
    pub fn config_bool(&self, key: &str) -> Option<bool> {
        self.repo.to_thread_local().config_snapshot().boolean(key)
    }

    /// This repository's annex UUID, when set and non-empty.
    pub fn uuid(&self) -> Option<String> {
        self.config_get("annex.uuid").filter(|u| !u.is_empty())
    }

    pub fn annex_version(&self) -> Option<String> {
        self.config_get("annex.version").filter(|v| !v.is_empty())
    }

    /// Initialised for git-annex: both a UUID and a version configured.
    pub fn is_annex_initialized(&self) -> bool {
        self.uuid().is_some() && self.annex_version().is_some()
    }

    /// `annex.diskreserve` in bytes (git-annex's size syntax, e.g.
    /// `100 megabytes`, `1gb`); 100 MB when unset or unparsable.
    pub fn disk_reserve(&self) -> u64 {
        self.config_get("annex.diskreserve")
            .and_then(|v| parse_data_size(&v))
            .unwrap_or(DEFAULT_DISK_RESERVE)
    }

    /// `annex.jobs`: a number, or `cpus` for the number of CPUs; 1 if unset.
    pub fn jobs(&self) -> usize {
        match self.config_get("annex.jobs").as_deref().map(str::trim) {
            Some("cpus") => std::thread::available_parallelism()
                .map(usize::from)
                .unwrap_or(1),
            Some(n) => n.parse::<usize>().ok().filter(|n| *n > 0).unwrap_or(1),
            None => 1,
        }
    }

    /// Whether any `[remote "<name>"]` section exists, without building
    /// [`Repo::remotes`].
    pub fn has_remotes(&self) -> bool {
        let repo = self.repo.to_thread_local();
        let snapshot = repo.config_snapshot();
        snapshot
            .plumbing()
            .sections_by_name("remote")
            .is_some_and(|mut s| s.any(|section| section.header().subsection_name().is_some()))
    }

    /// Every `[remote "<name>"]` section, merged across config files.
    pub fn remotes(&self) -> Vec<RemoteConfig> {
        let repo = self.repo.to_thread_local();
        let snapshot = repo.config_snapshot();
        let mut by_name: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        if let Some(sections) = snapshot.plumbing().sections_by_name("remote") {
            for section in sections {
                let Some(name) = section.header().subsection_name() else {
                    continue;
                };
                let settings = by_name.entry(name.to_str_lossy().into_owned()).or_default();
                let body = section.body();
                for key in body.value_names() {
                    if let Some(v) = body.values(&key).pop() {
                        settings.insert(key.to_ascii_lowercase(), v.to_str_lossy().into_owned());
                    }
                }
            }
        }
        by_name
            .into_iter()
            .map(|(name, settings)| RemoteConfig { name, settings })
            .collect()
    }

    /// Whether any git-annex branch exists: `refs/heads/git-annex` or any
    /// ref ending in `/git-annex`, as `git show-ref git-annex` matches.
    pub fn has_annex_branch(&self) -> Result<bool, RepoError> {
        let repo = self.repo.to_thread_local();
        let refs = repo.references().map_err(BranchError::from)?;
        for r in refs.all().map_err(BranchError::from)? {
            let r = r.map_err(BranchError::from)?;
            if r.name().as_bstr().ends_with(b"/git-annex") {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Every ref with the object it points at (symbolic refs followed), for
    /// noticing changes: NOTIFYCHANGE answers with the new values.
    pub fn ref_values(&self) -> Result<std::collections::BTreeMap<String, String>, RepoError> {
        let repo = self.repo.to_thread_local();
        let refs = repo.references().map_err(BranchError::from)?;
        let mut out = std::collections::BTreeMap::new();
        for r in refs.all().map_err(BranchError::from)? {
            let mut r = r.map_err(BranchError::from)?;
            let name = r.name().as_bstr().to_string();
            if let Ok(id) = r.peel_to_id() {
                out.insert(name, id.to_string());
            }
        }
        Ok(out)
    }

    /// The object store of this repository, with its `annex.diskreserve`
    /// and `annex.securehashesonly`.
    pub fn store(&self) -> crate::store::ObjectStore {
        crate::store::ObjectStore::new(self.git_dir.clone(), self.is_bare(), self.disk_reserve())
            .with_secure_hashes_only(self.config_bool("annex.securehashesonly") == Some(true))
    }

    pub fn branch(&self) -> Branch {
        Branch::new(self.repo.clone())
    }

    /// Initialise for git-annex as its autoinit does for a server
    /// repository: create the git-annex branch, set `annex.uuid` (a new
    /// random one unless already set) and `annex.version`, record a
    /// description in `uuid.log` (the given one, else `user@host:path`,
    /// unless one is already recorded), and commit. Returns the UUID.
    pub fn init(&mut self, description: Option<&str>) -> Result<String, RepoError> {
        let uuid = self.init_journalled(description)?;
        self.branch().commit()?;
        Ok(uuid)
    }

    /// [`Repo::init`] leaving the description in the journal, as
    /// git-annex-shell's autoinit in `configlist` does (it never commits):
    /// the next session that commits carries it into the branch, so clients
    /// learn the description when git-annex's clients would.
    pub fn init_journalled(&mut self, description: Option<&str>) -> Result<String, RepoError> {
        self.branch().create()?;
        let uuid = match self.uuid() {
            Some(u) => u,
            None => uuid::Uuid::new_v4().to_string(),
        };
        let mut settings = vec![("annex.uuid", uuid.clone())];
        if self.annex_version().is_none() {
            settings.push(("annex.version", ANNEX_VERSION.to_owned()));
        }
        self.set_local_config(&settings)?;
        let branch = self.branch();
        let desc = match description {
            Some(d) => Some(d.to_owned()),
            None => {
                let known = branch.read_file("uuid.log")?.unwrap_or_default();
                uuidlog::UuidLog::parse(&known)
                    .get(&uuid)
                    .is_none()
                    .then(|| self.default_description())
            }
        };
        if let Some(desc) = desc {
            let now = VectorClock::candidate_now();
            branch.change_file("uuid.log", |old| {
                uuidlog::change_uuid_log(old.unwrap_or_default(), &uuid, &desc, now)
            })?;
        }
        Ok(uuid)
    }

    /// git-annex's default description: `user@host:path`, the path being
    /// the repository (worktree, or git dir when bare) with `~/` for home.
    pub fn default_description(&self) -> String {
        let path = self.work_dir.as_deref().unwrap_or(&self.git_dir);
        let user = std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .ok()
            .or_else(|| {
                nix::unistd::User::from_uid(nix::unistd::geteuid())
                    .ok()
                    .flatten()
                    .map(|u| u.name)
            });
        let host = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_default();
        let at = if host.is_empty() { "" } else { "@" };
        let path = rel_home(path, std::env::var_os("HOME").map(PathBuf::from).as_deref());
        match user {
            Some(u) => format!("{u}{at}{host}:{path}"),
            None => format!("{host}:{path}"),
        }
    }

    /// Set one value in the repository's own config file, as `git config
    /// KEY VALUE` does (e.g. caching `remote.NAME.annex-uuid`).
    pub fn set_config(&mut self, key: &str, value: &str) -> Result<(), RepoError> {
        self.set_local_config(&[(key, value.to_owned())])
    }

    /// Set values in the repository's own config file, keeping the rest of
    /// it as written, then reload the configuration.
    fn set_local_config(&mut self, settings: &[(&str, String)]) -> Result<(), RepoError> {
        let path = self.git_dir.join("config");
        let config_err = |source| RepoError::Config {
            path: path.clone(),
            source,
        };
        let mut file =
            gix::config::File::from_path_no_includes(path.clone(), gix::config::Source::Local)
                .map_err(config_err)?;
        for (key, value) in settings {
            file.set_raw_value(*key, value.as_str())
                .map_err(config_err)?;
        }
        // git's own protocol: write config.lock (exclusively), rename over.
        let lock = self.git_dir.join("config.lock");
        let io_err = |context: &str| {
            let context = format!("{context} {}", lock.display());
            move |source| RepoError::Io { context, source }
        };
        let mut out = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&lock)
            .map_err(io_err("creating"))?;
        let written = file.write_to(&mut out).and_then(|()| out.flush());
        if let Err(e) = written.and_then(|()| fs::rename(&lock, &path)) {
            let _ = fs::remove_file(&lock);
            return Err(io_err("writing")(e));
        }
        let reopened = Repo::open(&self.git_dir)?;
        self.repo = reopened.repo;
        Ok(())
    }
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_owned())
}

/// `path` with a leading home directory shown as `~/`.
fn rel_home(path: &Path, home: Option<&Path>) -> String {
    if let Some(rest) = home
        .filter(|h| !h.as_os_str().is_empty())
        .and_then(|h| path.strip_prefix(h).ok())
    {
        return format!("~/{}", rest.display());
    }
    path.display().to_string()
}

/// Parse a size as git-annex does for `annex.diskreserve` and similar: a
/// number (fraction and exponent allowed), optional spaces, then a unit
/// name or abbreviation in any case (`MB`, `megabyte(s)`, `GiB`, `kbit`…,
/// a bare `g` meaning `gb`); no unit means bytes. Storage units are powers
/// of ten, the `…iB` ones powers of two, bit units an eighth of the power
/// of ten. Negative sizes count as 0.
pub fn parse_data_size(input: &str) -> Option<u64> {
    let s = input.trim_start();
    let b = s.as_bytes();
    let mut i = usize::from(b.first() == Some(&b'-'));
    let digits = |mut j: usize| {
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        j
    };
    let int_end = digits(i);
    if int_end == i {
        return None;
    }
    i = int_end;
    if b.get(i) == Some(&b'.') && b.get(i + 1).is_some_and(u8::is_ascii_digit) {
        i = digits(i + 1);
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        let mut j = i + 1;
        if matches!(b.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        let end = digits(j);
        if end > j {
            i = end;
        }
    }
    let number: f64 = s[..i].parse().ok()?;
    let rest = s[i..].trim_start();
    let unit: String = rest.chars().take_while(|c| c.is_alphabetic()).collect();
    let multiplier = if unit.is_empty() {
        1.0
    } else {
        unit_multiplier(&unit.to_lowercase())?
    };
    let v = (number * multiplier).round_ties_even();
    Some(if v <= 0.0 {
        0
    } else if v >= u64::MAX as f64 {
        u64::MAX
    } else {
        v as u64
    })
}

fn unit_multiplier(unit: &str) -> Option<f64> {
    const STORAGE: [(&str, &str); 11] = [
        ("qb", "quettabyte"),
        ("rb", "ronnabyte"),
        ("yb", "yottabyte"),
        ("zb", "zettabyte"),
        ("eb", "exabyte"),
        ("pb", "petabyte"),
        ("tb", "terabyte"),
        ("gb", "gigabyte"),
        ("mb", "megabyte"),
        ("kb", "kilobyte"),
        ("b", "byte"),
    ];
    const COMMITTEE: [(&str, &str); 9] = [
        ("yib", "yobibyte"),
        ("zib", "zebibyte"),
        ("eib", "exbibyte"),
        ("pib", "pebibyte"),
        ("tib", "tebibyte"),
        ("gib", "gibibyte"),
        ("mib", "mebibyte"),
        ("kib", "kibibyte"),
        ("b", "byte"),
    ];
    const BITS: [(&str, &str); 8] = [
        ("ybit", "yottabit"),
        ("zbit", "zettabit"),
        ("ebit", "exabit"),
        ("pbit", "petabit"),
        ("tbit", "terabit"),
        ("gbit", "gigabit"),
        ("mbit", "megabit"),
        ("kbit", "kilobit"),
    ];
    let matches = |abbrev: &str, name: &str| {
        unit == abbrev || unit == name || unit == format!("{name}s") || abbrev == format!("{unit}b")
    };
    // Same search order as git-annex: storage, then committee, then bits.
    // Each table runs from the largest unit down, so the position gives the power.
    type Units<'a> = &'a [(&'a str, &'a str)];
    let tables: [(Units, f64, f64); 3] = [
        (&STORAGE, 1000.0, 1.0),
        (&COMMITTEE, 1024.0, 1.0),
        (&BITS, 1000.0, 8.0),
    ];
    for (table, base, divisor) in tables {
        if let Some(k) = table.iter().position(|(a, n)| matches(a, n)) {
            let top = if divisor == 1.0 {
                table.len() - 1
            } else {
                table.len()
            };
            let power = i32::try_from(top - k).expect("tables are short");
            return Some(base.powi(power) / divisor);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_sizes_like_git_annex() {
        assert_eq!(parse_data_size("100 megabytes"), Some(100_000_000));
        assert_eq!(parse_data_size("1gb"), Some(1_000_000_000));
        assert_eq!(parse_data_size("1 GiB"), Some(1 << 30));
        assert_eq!(parse_data_size("2 kibibytes"), Some(2048));
        assert_eq!(parse_data_size("1.5MB"), Some(1_500_000));
        assert_eq!(parse_data_size("1g"), Some(1_000_000_000));
        assert_eq!(parse_data_size("8kbit"), Some(1000));
        assert_eq!(parse_data_size("  42"), Some(42));
        assert_eq!(parse_data_size("3 bytes"), Some(3));
        assert_eq!(parse_data_size("1e3"), Some(1000));
        assert_eq!(parse_data_size("-5 MB"), Some(0));
        assert_eq!(parse_data_size("10 parsecs"), None);
        assert_eq!(parse_data_size("lots"), None);
        assert_eq!(parse_data_size("1QB"), Some(u64::MAX));
    }

    use crate::branch::tests::{git, git_annex_bin, run};

    fn scratch(bare: bool) -> (tempfile::TempDir, PathBuf) {
        let t = tempfile::tempdir().expect("tempdir");
        let dir = t.path().join("r");
        let mut args = vec!["init", "-q"];
        if bare {
            args.push("--bare");
        }
        args.push("r");
        git(t.path(), &args);
        (t, dir)
    }

    #[test]
    fn open_worktree_and_bare() {
        let (_t, dir) = scratch(false);
        let r = Repo::open(&dir).expect("open worktree");
        assert!(!r.is_bare());
        assert_eq!(
            r.git_dir(),
            std::path::absolute(dir.join(".git")).expect("abs")
        );
        let (_t2, bare) = scratch(true);
        let r = Repo::open(&bare).expect("open bare");
        assert!(r.is_bare());
        assert_eq!(r.git_dir(), std::path::absolute(&bare).expect("abs"));
        assert!(Repo::open(&bare.join("nonexistent")).is_err());
        assert!(!r.is_annex_initialized());
        assert_eq!(r.uuid(), None);
    }

    #[test]
    fn config_and_remotes() {
        let (_t, dir) = scratch(true);
        git(&dir, &["config", "annex.diskreserve", "1 gb"]);
        git(&dir, &["config", "annex.jobs", "3"]);
        git(&dir, &["config", "annex.uuid", ""]);
        git(&dir, &["remote", "add", "n1", "/srv/n1"]);
        git(&dir, &["config", "remote.n1.annex-uuid", "u-1"]);
        git(&dir, &["config", "remote.n1.annex-proxy", "true"]);
        git(&dir, &["config", "remote.with.dot.url", "ssh://h/x"]);
        let empty_tree = "4b825dc642cb6eb9a060e54bf8d69288fbee4904";
        let c = git(
            &dir,
            &[
                "-c",
                "user.name=a",
                "-c",
                "user.email=b",
                "commit-tree",
                empty_tree,
                "-m",
                "x",
            ],
        );
        git(&dir, &["update-ref", "refs/remotes/n1/git-annex", c.trim()]);
        let r = Repo::open(&dir).expect("open");
        assert_eq!(r.disk_reserve(), 1_000_000_000);
        assert_eq!(r.jobs(), 3);
        assert_eq!(r.uuid(), None, "empty annex.uuid counts as unset");
        assert_eq!(r.config_get("remote.n1.url").as_deref(), Some("/srv/n1"));
        assert_eq!(r.config_bool("remote.n1.annex-proxy"), Some(true));
        let remotes = r.remotes();
        let names: Vec<&str> = remotes.iter().map(|x| x.name.as_str()).collect();
        assert_eq!(names, vec!["n1", "with.dot"]);
        assert_eq!(remotes[0].annex_uuid(), Some("u-1"));
        assert_eq!(remotes[0].get("Annex-Proxy"), Some("true"));
        assert_eq!(remotes[1].url(), Some("ssh://h/x"));
        let mut r = r;
        r.set_config("remote.with.dot.annex-uuid", "u-2")
            .expect("set");
        r.set_config("remote.n1.annex-uuid", "u-3").expect("set");
        assert_eq!(
            git(&dir, &["config", "remote.with.dot.annex-uuid"]),
            "u-2\n"
        );
        assert_eq!(r.remotes()[0].annex_uuid(), Some("u-3"), "config reloaded");
        assert_eq!(
            git(&dir, &["config", "--get-all", "remote.n1.annex-uuid"]),
            "u-3\n"
        );
        assert!(
            r.has_annex_branch().expect("refs"),
            "refs/remotes/n1/git-annex counts"
        );
    }

    #[test]
    fn defaults() {
        let (_t, dir) = scratch(true);
        let r = Repo::open(&dir).expect("open");
        assert_eq!(r.disk_reserve(), DEFAULT_DISK_RESERVE);
        assert_eq!(r.jobs(), 1);
        assert!(!r.has_annex_branch().expect("refs"));
    }

    #[test]
    fn init_then_real_git_annex_agrees() {
        let (_t, dir) = scratch(true);
        let original = fs::read_to_string(dir.join("config")).expect("config");
        git(&dir, &["config", "user.name", "Tester"]);
        git(&dir, &["config", "user.email", "t@example.org"]);
        let mut r = Repo::open(&dir).expect("open");
        let uuid = r.init(None).expect("init");
        assert_eq!(
            uuid::Uuid::parse_str(&uuid).map(|u| u.get_version_num()),
            Ok(4)
        );
        assert_eq!(r.uuid().as_deref(), Some(uuid.as_str()), "config reloaded");
        assert!(r.is_annex_initialized() && r.has_annex_branch().expect("refs"));
        let config = fs::read_to_string(dir.join("config")).expect("config");
        assert!(
            config.starts_with(original.trim_end()),
            "rest of config kept:\n{config}"
        );
        assert_eq!(git(&dir, &["config", "annex.version"]), "10\n");
        assert_eq!(
            git(&dir, &["log", "--format=%s", "git-annex"]),
            "update\nbranch created\n"
        );
        let desc = r.default_description();
        assert!(
            desc.ends_with(&format!(":{}", dir.display())) || desc.contains(":~/"),
            "{desc}"
        );
        let log = git(&dir, &["show", "git-annex:uuid.log"]);
        assert!(
            log.starts_with(&format!("{uuid} {desc} timestamp=")),
            "{log}"
        );
        // Init again keeps the uuid and the recorded description.
        assert_eq!(r.init(None).expect("again"), uuid);
        assert_eq!(git(&dir, &["show", "git-annex:uuid.log"]), log);

        let ga = git_annex_bin();
        let info = run(&dir, &ga, &["info", "--fast"]);
        assert!(info.contains(&format!("{uuid} -- {desc} [here]")), "{info}");
        run(&dir, &ga, &["fsck", "--fast", "--all", "-q"]);
        // The real client's own changes land next to ours.
        run(&dir, &ga, &["describe", "here", "renamed"]);
        let log = git(&dir, &["show", "git-annex:uuid.log"]);
        assert!(
            log.starts_with(&format!("{uuid} renamed timestamp=")),
            "{log}"
        );
        assert_eq!(r.init(Some("again")).expect("init"), uuid);
        let info = run(&dir, &ga, &["info", "--fast"]);
        assert!(info.contains(&format!("{uuid} -- again [here]")), "{info}");
    }

    #[test]
    fn rel_home_shortens() {
        assert_eq!(
            rel_home(Path::new("/home/u/r"), Some(Path::new("/home/u"))),
            "~/r"
        );
        assert_eq!(
            rel_home(Path::new("/srv/r"), Some(Path::new("/home/u"))),
            "/srv/r"
        );
        assert_eq!(rel_home(Path::new("/srv/r"), None), "/srv/r");
    }
}
