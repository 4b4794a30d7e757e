//! Where keys go: the nodes' preferred content, evaluated on the gateway
//! with [`annex::preferred`], and the gateway's own.

use std::collections::BTreeSet;

use annex::branch::Branch;
use annex::key::Key;
use annex::preferred::{
    has_space, plan_put, repo_sizes, wants, Facts, KeyInfo, Matcher, RepoSizes,
};

use super::gateway::Placement;

/// What the git-annex branch says the nodes want.
pub struct Preferred {
    facts: Facts,
    branch: Branch,
    gateway_uuid: String,
    /// Repository sizes, read from the location logs the first time an
    /// expression or a maxsize needs them, then kept up to date with what
    /// this session places.
    sizes: Option<RepoSizes>,
}

impl Preferred {
    pub fn load(
        branch: Branch,
        gateway_uuid: String,
    ) -> Result<Preferred, annex::branch::BranchError> {
        Ok(Preferred {
            facts: Facts::load(&branch)?,
            branch,
            gateway_uuid,
            sizes: None,
        })
    }

    fn needs_sizes(&self) -> bool {
        !self.facts.maxsize.is_empty()
            || self
                .facts
                .preferred
                .values()
                .chain(self.facts.required.values())
                .chain(self.facts.group_wanted.values())
                .any(|e| e.contains("balanced"))
    }

    fn sizes(&mut self) -> RepoSizes {
        if self.sizes.is_none() {
            let sizes = if self.needs_sizes() {
                repo_sizes(&self.branch).unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "reading repository sizes");
                    RepoSizes::new()
                })
            } else {
                RepoSizes::new()
            };
            self.sizes = Some(sizes);
        }
        self.sizes.clone().unwrap_or_default()
    }
}

impl Placement for Preferred {
    fn wanted(
        &mut self,
        nodes: &[&str],
        key: &Key,
        file: Option<&str>,
        holders: &BTreeSet<String>,
    ) -> BTreeSet<String> {
        let sizes = self.sizes();
        let nodes: Vec<String> = nodes.iter().map(|s| s.to_string()).collect();
        let k = KeyInfo { key, file, holders };
        plan_put(&self.facts, &sizes, &nodes, &k)
            .into_iter()
            .collect()
    }

    /// Only an explicit expression makes the gateway keep a copy: a gateway
    /// with no preferred content is a gateway, not one more node.
    fn gateway_wants(&mut self, key: &Key, file: Option<&str>, holders: &BTreeSet<String>) -> bool {
        if matches!(
            self.facts.matcher(&self.gateway_uuid),
            Matcher::NotConfigured
        ) {
            return false;
        }
        let sizes = self.sizes();
        let k = KeyInfo { key, file, holders };
        wants(&self.facts, &sizes, &self.gateway_uuid, &k).unwrap_or(false)
    }

    fn no_room(&mut self, uuid: &str, key: &Key) -> Option<String> {
        let max = *self.facts.maxsize.get(uuid)?;
        let sizes = self.sizes();
        let size = key.size().unwrap_or(0);
        if has_space(&self.facts.maxsize, &sizes, uuid, size, false) {
            return None;
        }
        let used = sizes.get(uuid).copied().unwrap_or(0);
        Some(format!(
            "maxsize {max} bytes, {used} used, the key needs {size}"
        ))
    }

    fn placed(&mut self, key: &Key, uuids: &BTreeSet<String>) {
        if let Some(sizes) = self.sizes.as_mut() {
            for u in uuids {
                *sizes.entry(u.clone()).or_insert(0) += key.size().unwrap_or(0);
            }
        }
    }
}
