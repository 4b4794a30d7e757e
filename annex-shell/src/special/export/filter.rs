//! `Command/Export.hs: filterExport`: the tree an export remote holds is
//! the pushed tree less what git-annex leaves out — submodules, symlinks
//! it does not manage, and annexed files the remote's preferred content
//! (`git annex wanted`) does not want (matched by their path in the tree
//! and their key). When something is left out, the tree recorded in
//! `export.log` is that filtered tree (a new tree object), as git-annex
//! records it; otherwise it is the pushed tree itself.

use std::collections::BTreeSet;

use annex::branch::Branch;
use annex::preferred::{repo_sizes, wants, Facts, KeyInfo, Matcher};

use super::tree::{self, key_git_sha, TreeError};

#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    #[error(transparent)]
    Tree(#[from] TreeError),
    #[error(transparent)]
    Branch(#[from] annex::branch::BranchError),
}

/// The tree the remote `uuid` is to hold of `tree`.
pub fn filtered_tree(branch: &Branch, uuid: &str, tree: &str) -> Result<String, FilterError> {
    let git_dir = branch.git_dir();
    let (files, mut dropped) = tree::listing(git_dir, tree)?;
    let facts = Facts::load(branch)?;
    let kept = if matches!(facts.matcher(uuid), Matcher::NotConfigured) {
        files
    } else {
        let sizes = repo_sizes(branch)?;
        let mut kept = Vec::with_capacity(files.len());
        for f in files {
            // A file git holds is exported whatever the expression says.
            let wanted = key_git_sha(&f.key).is_some() || {
                let holders: BTreeSet<String> = branch.key_locations(&f.key)?.into_iter().collect();
                let k = KeyInfo {
                    key: &f.key,
                    file: Some(&f.path),
                    holders: &holders,
                };
                wants(&facts, &sizes, uuid, &k).unwrap_or_else(|e| {
                    tracing::warn!(path = %f.path, "preferred content of the export: {e}");
                    true
                })
            };
            if wanted {
                kept.push(f);
            } else {
                dropped = true;
            }
        }
        kept
    };
    if !dropped {
        return Ok(tree.to_owned());
    }
    Ok(tree::build_tree(git_dir, &kept)?)
}
