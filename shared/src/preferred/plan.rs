//! Which cluster nodes a PUT goes to.

use std::collections::BTreeSet;

use super::balanced::{has_space, RepoSizes};
use super::eval::{wants, KeyInfo};
use super::facts::Facts;

/// The nodes of a cluster that should receive the key.
///
/// git-annex's gateway (Annex/Cluster.hs, spec §7.3) takes the nodes not
/// holding the key whose preferred content wants it; if there are none, all
/// nodes not holding it; if none again, all nodes. We keep that order of
/// fallbacks, with two deliberate differences:
///
/// * **Sequential decisions.** git-annex asks every node against the same
///   location log, so an expression such as `archive`'s "not
///   copies=archive:1" is true on every archive node and the key lands on
///   all of them (spec §9 item 13, git-annex wontfix). Here nodes are asked
///   one after another in the order given (the gateway's cost order), and a
///   node already chosen counts as a holder — and its size grows by the
///   key's — when the next node is asked. The key then lands where the
///   expressions say in total: one archive node, `balanced=G:2` → two.
/// * **maxsize is a limit.** git-annex treats maxsize as advisory outside
///   `balanced` terms and its fallbacks ignore it. No node is planned here
///   that would go over its maxsize (holders always fit); when no node has
///   room the plan is empty and the gateway should refuse the PUT rather
///   than overfill the cluster.
///
/// A node whose expression cannot be evaluated here (`metadata=`, `url=`, a
/// broken glob) is treated as not wanting the key.
pub fn plan_put(facts: &Facts, sizes: &RepoSizes, nodes: &[String], k: &KeyInfo) -> Vec<String> {
    let key_size = k.key.size().unwrap_or(0);
    let fits = |u: &str, sizes: &RepoSizes, holds: bool| {
        has_space(&facts.maxsize, sizes, u, key_size, holds)
    };
    let mut holders = k.holders.clone();
    let mut sizes = sizes.clone();
    let mut chosen = Vec::new();
    let mut seen = BTreeSet::new();
    for node in nodes {
        if holders.contains(node) || !seen.insert(node.as_str()) {
            continue;
        }
        let info = KeyInfo {
            key: k.key,
            file: k.file,
            holders: &holders,
        };
        if fits(node, &sizes, false) && wants(facts, &sizes, node, &info).unwrap_or(false) {
            chosen.push(node.clone());
            holders.insert(node.clone());
            *sizes.entry(node.clone()).or_insert(0) += key_size;
        }
    }
    if !chosen.is_empty() {
        return chosen;
    }
    let original = RepoSizes::clone(&sizes);
    let mut seen = BTreeSet::new();
    let missing: Vec<String> = nodes
        .iter()
        .filter(|n| !k.holders.contains(*n) && fits(n, &original, false) && seen.insert(n.as_str()))
        .cloned()
        .collect();
    if !missing.is_empty() {
        return missing;
    }
    let mut seen = BTreeSet::new();
    nodes
        .iter()
        .filter(|n| fits(n, &original, k.holders.contains(*n)) && seen.insert(n.as_str()))
        .cloned()
        .collect()
}
