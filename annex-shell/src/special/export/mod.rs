//! `exporttree=yes` special remotes (git-annex's exports,
//! `Remote/Helper/ExportImport.hs`): the remote holds a git tree's files
//! under their paths, browsable without git-annex, and, with
//! `annexobjects=yes`, keys stored by key under
//! `.git/annex/objects/<hashdirlower>/<keyfile>/<keyfile>`
//! (`Annex/Locations.hs: exportAnnexObjectLocation`).
//!
//! - [`Exported`]: the key-addressed [`Storage`] the framework serves the
//!   proxy's clients with, as git-annex's proxy serves such a remote
//!   (`Annex/Proxy.hs: proxySpecialRemote`): a key is found at a path of
//!   the exported tree, else at its `annexobjects` place; a PUT lands at
//!   the tree's paths that lack it, or at the `annexobjects` place; a key
//!   of the exported tree cannot be dropped by its key.
//! - [`log`]: `export.log`, the only state kept ([`ExportIndex`] is
//!   derived from it and the trees, as git-annex rebuilds its database).
//! - [`tree`]: the files and keys of a tree; [`filter`], what of it the
//!   remote holds.
//! - [`update`]: the export changed to a pushed tree
//!   (`git-annex post-receive`).

pub mod filter;
pub mod log;
pub mod tree;
pub mod update;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use annex::branch::Branch;
use annex::key::Key;

use super::storage::{PathStorage, StagedWrite, Storage, StorageError};

/// How an export remote is configured (`exporttree=yes`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExportConfig {
    /// `annexobjects=yes`: keys can be stored by key too.
    pub annexobjects: bool,
}

impl ExportConfig {
    /// `None` for a remote that is not an export.
    pub fn from_params(params: &super::config::Params) -> Option<ExportConfig> {
        let yes = |k: &str| params.get(k).is_some_and(|v| is_yes(v));
        yes("exporttree").then(|| ExportConfig {
            annexobjects: yes("annexobjects"),
        })
    }
}

/// git-annex's yes/no values (`yesNoParser`).
fn is_yes(v: &str) -> bool {
    matches!(v, "yes" | "true")
}

/// Where a key is kept by key in an `annexobjects=yes` remote.
pub fn annexobjects_path(key: &Key) -> String {
    let file = key.key_file();
    format!(".git/annex/objects/{}/{file}/{file}", key.hash_dir_lower())
}

/// The name a file is moved to while a changed export renames it
/// (`Command/Export.hs: exportTempName`).
pub fn temp_path(key: &Key) -> String {
    format!("{TEMP_PREFIX}{}", key.key_file())
}

const TEMP_PREFIX: &str = ".git-annex-tmp-content-";

/// Which paths of the exported tree(s) hold which key.
#[derive(Debug, Default)]
pub struct ExportIndex {
    by_key: HashMap<Key, Vec<String>>,
    /// More than one tree is exported (git-annex's export conflict).
    pub conflict: bool,
}

impl ExportIndex {
    /// From `export.log` and the trees it names. Files of conflicting
    /// trees all count (a key is looked for at every path it may be at).
    pub fn load(branch: &Branch, uuid: &str) -> Result<ExportIndex, String> {
        let (trees, _) = log::exported_to(branch, uuid).map_err(|e| e.to_string())?;
        let mut index = ExportIndex {
            conflict: trees.len() > 1,
            ..ExportIndex::default()
        };
        for t in &trees {
            let files = tree::files(branch.git_dir(), t).map_err(|e| e.to_string())?;
            for f in files.into_iter().filter(|f| valid_path(&f.path)) {
                index.by_key.entry(f.key).or_default().push(f.path);
            }
        }
        Ok(index)
    }

    pub fn paths(&self, key: &Key) -> &[String] {
        self.by_key.get(key).map_or(&[], Vec::as_slice)
    }
}

/// An export remote's storage addressed by key, for the framework.
pub struct Exported<S> {
    inner: S,
    config: ExportConfig,
    branch: Branch,
    uuid: String,
    /// Loaded at the first request that needs it, once a session.
    index: Arc<OnceLock<Result<Arc<ExportIndex>, String>>>,
}

impl<S: PathStorage + Clone> Exported<S> {
    pub fn new(inner: S, config: ExportConfig, branch: Branch, uuid: &str) -> Exported<S> {
        Exported {
            inner,
            config,
            branch,
            uuid: uuid.to_owned(),
            index: Arc::default(),
        }
    }

    fn index(&self) -> Result<Arc<ExportIndex>, StorageError> {
        let loaded = self
            .index
            .get_or_init(|| ExportIndex::load(&self.branch, &self.uuid).map(Arc::new));
        loaded
            .clone()
            .map_err(|why| self.refused(format!("export.log: {why}")))
    }

    fn refused(&self, why: impl Into<String>) -> StorageError {
        StorageError::Refused {
            remote: self.inner.remote().to_owned(),
            why: why.into(),
        }
    }

    /// Where the key is: the first path of the tree that holds an object,
    /// else its `annexobjects` place, with the object's size.
    async fn find(&self, key: &Key) -> Result<Option<(String, u64)>, StorageError> {
        let index = self.index()?;
        let objects = self.config.annexobjects.then(|| annexobjects_path(key));
        for path in index.paths(key).iter().chain(objects.as_ref()) {
            if let Some(size) = self.inner.stat_at(path).await? {
                return Ok(Some((path.clone(), size)));
            }
        }
        Ok(None)
    }
}

impl<S: PathStorage + Clone + 'static> Storage for Exported<S> {
    type Reader = S::Reader;
    type Staged = ExportWrite<S>;

    fn remote(&self) -> &str {
        self.inner.remote()
    }

    async fn stat(&self, name: &Key) -> Result<Option<u64>, StorageError> {
        Ok(self.find(name).await?.map(|(_, size)| size))
    }

    async fn read(&self, name: &Key, offset: u64) -> Result<S::Reader, StorageError> {
        match self.find(name).await? {
            Some((path, _)) => self.inner.read_at(&path, offset).await,
            None => Err(self.refused(format!("{name}: not in the remote"))),
        }
    }

    fn local_file(&self, name: &Key) -> Result<Option<std::fs::File>, StorageError> {
        let index = self.index()?;
        let objects = self.config.annexobjects.then(|| annexobjects_path(name));
        for path in index.paths(name).iter().chain(objects.as_ref()) {
            if let Some(file) = self.inner.local_file_at(path)? {
                return Ok(Some(file));
            }
        }
        Ok(None)
    }

    fn read_back_is_cheap(&self) -> bool {
        self.inner.read_back_is_cheap()
    }

    /// As git-annex's proxy stores (`storeput`): to the paths of the
    /// exported tree that lack the key, else (`annexobjects=yes`) by key.
    async fn begin_write(
        &self,
        name: &Key,
        size: Option<u64>,
    ) -> Result<ExportWrite<S>, StorageError> {
        let index = self.index()?;
        let mut missing = Vec::new();
        for path in index.paths(name) {
            if self.inner.stat_at(path).await?.is_none() {
                missing.push(path.clone());
            }
        }
        let to = match (missing.first(), self.config.annexobjects) {
            (_, true) => annexobjects_path(name),
            (Some(first), false) => first.clone(),
            (None, false) => {
                return Err(self.refused(
                    "remote is configured with exporttree=yes; use `git-annex export` to store content on it",
                ))
            }
        };
        let staged = self.inner.begin_write_at(&to, size).await?;
        Ok(ExportWrite {
            storage: self.inner.clone(),
            staged,
            to,
            place: missing,
        })
    }

    async fn room_for(&self, bytes: u64) -> Result<(), StorageError> {
        self.inner.room_for(bytes).await
    }

    /// git-annex's `removeannexobject`: only a key stored by key goes.
    async fn remove(&self, name: &Key) -> Result<(), StorageError> {
        let index = self.index()?;
        if !index.paths(name).is_empty() {
            return Err(self.refused(
                "This key is part of the exported tree, so can only be removed by exporting a tree that does not include it.",
            ));
        }
        if index.conflict {
            return Err(self.refused(
                "Cannot remove content from the remote until the conflict has been resolved.",
            ));
        }
        if !self.config.annexobjects {
            return Err(self.refused(
                "dropping content from an export is not supported; use `git annex export` to export a tree that lacks the files you want to remove",
            ));
        }
        self.inner.remove_at(&annexobjects_path(name)).await
    }
}

/// A key's write into an export remote: staged where it is written
/// (`to`), and once committed placed at the tree's paths that lack it
/// (moved to the first, copied to the others), so it is browsable there
/// as git-annex's proxy leaves it.
pub struct ExportWrite<S: Storage> {
    storage: S,
    staged: S::Staged,
    to: String,
    place: Vec<String>,
}

impl<S: PathStorage + 'static> StagedWrite for ExportWrite<S> {
    type Reader = S::Reader;

    fn staged(&self) -> u64 {
        self.staged.staged()
    }

    async fn read_staged(&mut self) -> Result<Option<S::Reader>, StorageError> {
        self.staged.read_staged().await
    }

    fn checkpoint(&self) -> Option<u64> {
        self.staged.checkpoint()
    }

    fn token(&self) -> Option<String> {
        self.staged.token()
    }

    async fn restart(&mut self) -> Result<(), StorageError> {
        self.staged.restart().await
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), StorageError> {
        self.staged.write(bytes).await
    }

    async fn commit(self) -> Result<(), StorageError> {
        self.staged.commit().await?;
        let Some((first, rest)) = self.place.split_first() else {
            return Ok(());
        };
        if *first != self.to {
            self.storage.rename_at(&self.to, first).await?;
        }
        for path in rest {
            self.storage.copy_at(first, path).await?;
        }
        tracing::debug!(remote = %self.storage.remote(), path = %first, "placed in the export");
        Ok(())
    }

    async fn abort(self) -> Result<(), StorageError> {
        self.staged.abort().await
    }
}

/// A path a [`PathStorage`] may be given: relative, `/`-separated, no
/// empty, `.` or `..` component, no NUL, so that it names something
/// under the remote's root (a directory's; an S3 `fileprefix`, where an
/// object URL's dot segments would otherwise be resolved away).
pub fn safe_path(path: &str) -> bool {
    !path.is_empty()
        && !path.contains('\0')
        && path
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..")
}

/// A path of a tree, as the remote may hold it: a [`safe_path`] with no
/// `.git` component (git refuses such trees, but a push is not checked
/// unless `receive.fsckObjects` is set: one must not overwrite the by-key
/// copies under `.git/`), and not a name the update itself moves files
/// to ([`temp_path`]): a tree's file there would be overwritten by a
/// rename and then taken for exported.
pub fn valid_path(path: &str) -> bool {
    safe_path(path)
        && !path.starts_with(TEMP_PREFIX)
        && path.split('/').all(|c| !c.eq_ignore_ascii_case(".git"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_as_git_annex_gives_them() {
        let key = Key::parse("SHA256E-s5--abc.txt").unwrap();
        let p = annexobjects_path(&key);
        assert!(p.starts_with(".git/annex/objects/"), "{p}");
        assert!(
            p.ends_with("/SHA256E-s5--abc.txt/SHA256E-s5--abc.txt"),
            "{p}"
        );
        assert_eq!(
            temp_path(&key),
            ".git-annex-tmp-content-SHA256E-s5--abc.txt"
        );
        assert!(valid_path("a/b.txt"));
        assert!(!valid_path("a/../b") && !valid_path("/a") && !valid_path("a//b"));
        assert!(!valid_path(".git/annex/objects/x") && !valid_path("a/.GIT/b"));
        assert!(!valid_path(&temp_path(&key)) && valid_path("a/.git-annex-tmp-content-x"));
        assert!(safe_path(&annexobjects_path(&key)) && !safe_path("a/./b"));
    }
}
