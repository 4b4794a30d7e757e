//! The planner simulated over random clusters and key streams.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use crate::key::Key;

use super::*;

struct Cluster {
    facts: Facts,
    sizes: RepoSizes,
    nodes: Vec<String>,
    /// key → nodes holding it
    placed: BTreeMap<Key, BTreeSet<String>>,
}

impl Cluster {
    fn new(n: usize, expr: &str, maxsize: &[Option<u64>]) -> Cluster {
        let nodes: Vec<String> = (0..n).map(|i| format!("node-{i}")).collect();
        let mut facts = Facts::default();
        for (i, u) in nodes.iter().enumerate() {
            facts
                .groups
                .insert(u.clone(), BTreeSet::from(["g".to_string()]));
            facts.preferred.insert(u.clone(), expr.to_owned());
            if let Some(Some(m)) = maxsize.get(i) {
                facts.maxsize.insert(u.clone(), *m);
            }
        }
        Cluster {
            facts,
            sizes: RepoSizes::new(),
            nodes,
            placed: BTreeMap::new(),
        }
    }

    /// PUT one key; nodes in `failing` refuse. Returns the nodes that stored it.
    fn put(&mut self, key: &Key, failing: &BTreeSet<String>) -> Vec<String> {
        let holders = self.placed.get(key).cloned().unwrap_or_default();
        let info = KeyInfo {
            key,
            file: Some("f"),
            holders: &holders,
        };
        let plan = plan_put(&self.facts, &self.sizes, &self.nodes, &info);
        let stored: Vec<String> = plan.into_iter().filter(|n| !failing.contains(n)).collect();
        for n in &stored {
            if self
                .placed
                .entry(key.clone())
                .or_default()
                .insert(n.clone())
            {
                *self.sizes.entry(n.clone()).or_default() += key.size().unwrap_or(0);
            }
        }
        stored
    }

    fn check_maxsize(&self) -> Result<(), TestCaseError> {
        for (u, max) in &self.facts.maxsize {
            let size = self.sizes.get(u).copied().unwrap_or(0);
            prop_assert!(size <= *max, "{u} holds {size} > maxsize {max}");
        }
        Ok(())
    }

    /// One pass of "copy where wanted" over every key, as a sync would do.
    /// Returns how many copies it made.
    fn sync_wanted(&mut self) -> usize {
        let mut made = 0;
        let keys: Vec<Key> = self.placed.keys().cloned().collect();
        for key in keys {
            for n in self.nodes.clone() {
                let holders = self.placed[&key].clone();
                if holders.contains(&n) {
                    continue;
                }
                let info = KeyInfo {
                    key: &key,
                    file: Some("f"),
                    holders: &holders,
                };
                let fits = has_space(
                    &self.facts.maxsize,
                    &self.sizes,
                    &n,
                    key.size().unwrap_or(0),
                    false,
                );
                if fits && wants(&self.facts, &self.sizes, &n, &info).unwrap_or(false) {
                    self.placed.get_mut(&key).expect("listed").insert(n.clone());
                    *self.sizes.entry(n).or_default() += key.size().unwrap_or(0);
                    made += 1;
                }
            }
        }
        made
    }
}

fn key(i: usize, size: u64) -> Key {
    Key::parse(&format!("SHA256E-s{size}--{i:064x}")).expect("key")
}

const EXPRS: [&str; 6] = [
    "balanced=g:1",
    "balanced=g:2",
    "fullybalanced=g:2",
    "sizebalanced=g:1",
    "not copies=g:1",
    "(include=* and not copies=g:1) or approxlackingcopies=1",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn never_over_maxsize_and_never_empty_while_room(
        n in 2usize..6,
        expr in 0usize..EXPRS.len(),
        maxsize in proptest::collection::vec(proptest::option::of(0u64..4000), 6),
        sizes in proptest::collection::vec(1u64..400, 1..40),
        failures in proptest::collection::vec(proptest::collection::btree_set(0usize..6, 0..2), 40),
    ) {
        let mut c = Cluster::new(n, EXPRS[expr], &maxsize);
        for (i, size) in sizes.iter().enumerate() {
            let k = key(i, *size);
            let failing: BTreeSet<String> = failures[i].iter().map(|f| format!("node-{f}")).collect();
            let room = c.nodes.iter().any(|u| has_space(&c.facts.maxsize, &c.sizes, u, *size, false));
            let holders = BTreeSet::new();
            let plan = plan_put(&c.facts, &c.sizes, &c.nodes, &KeyInfo { key: &k, file: Some("f"), holders: &holders });
            prop_assert_eq!(plan.is_empty(), !room);
            c.put(&k, &failing);
            c.check_maxsize()?;
        }
    }

    #[test]
    fn a_wanted_key_gets_the_copies_asked_for(
        n in 2usize..6,
        sizes in proptest::collection::vec(1u64..1000, 1..30),
    ) {
        for (expr, want) in [("balanced=g:1", 1), ("balanced=g:2", 2), ("fullybalanced=g:3", 3), ("not copies=g:1", 1), ("archive", 1)] {
            let mut c = Cluster::new(n, if expr == "archive" { "standard" } else { expr }, &[]);
            if expr == "archive" {
                for u in &c.nodes {
                    c.facts.groups.insert(u.clone(), BTreeSet::from(["archive".to_string()]));
                }
            }
            for (i, size) in sizes.iter().enumerate() {
                let stored = c.put(&key(i, *size), &BTreeSet::new());
                prop_assert_eq!(stored.len(), want.min(n), "{} on {} nodes", expr, n);
            }
        }
    }

    #[test]
    fn equal_nodes_stay_even_under_sizebalanced(
        n in 2usize..6,
        keys in 1usize..60,
    ) {
        // Equal maxsize and equal keys: the emptiest node always takes the
        // next key, so counts never differ by more than one.
        let mut c = Cluster::new(n, "sizebalanced=g:1", &[Some(1_000_000); 6]);
        for i in 0..keys {
            prop_assert_eq!(c.put(&key(i, 100), &BTreeSet::new()).len(), 1);
            let counts: Vec<u64> = c.nodes.iter().map(|u| c.sizes.get(u).copied().unwrap_or(0) / 100).collect();
            let (lo, hi) = (counts.iter().min().copied().unwrap_or(0), counts.iter().max().copied().unwrap_or(0));
            prop_assert!(hi - lo <= 1, "{:?}", counts);
        }
    }

    #[test]
    fn removing_and_readding_a_node_converges(
        n in 3usize..6,
        gone in 0usize..3,
        expr in 0usize..4,
        sizes in proptest::collection::vec(1u64..300, 5..40),
    ) {
        let mut c = Cluster::new(n, EXPRS[expr], &[Some(20_000); 6]);
        let all = c.nodes.clone();
        let victim = all[gone].clone();
        let half = sizes.len() / 2;
        for (i, size) in sizes[..half].iter().enumerate() {
            c.put(&key(i, *size), &BTreeSet::new());
        }
        // The node leaves the cluster (and its group) and loses its content.
        c.nodes.retain(|u| *u != victim);
        c.facts.groups.remove(&victim);
        for holders in c.placed.values_mut() {
            holders.remove(&victim);
        }
        c.sizes.remove(&victim);
        for (i, size) in sizes[half..].iter().enumerate() {
            let stored = c.put(&key(half + i, *size), &BTreeSet::new());
            prop_assert!(!stored.contains(&victim));
        }
        // Back again: one sync pass restores what the expressions want,
        // and a second finds nothing more to do.
        c.nodes = all;
        c.facts.groups.insert(victim.clone(), BTreeSet::from(["g".to_string()]));
        c.sync_wanted();
        prop_assert_eq!(c.sync_wanted(), 0);
        c.check_maxsize()?;
    }
}

#[test]
fn balanced_spreads_uniformly_in_expectation() {
    // What git-annex promises for `balanced`: a hash spread, not an exact one.
    let mut c = Cluster::new(4, "balanced=g:1", &[]);
    for i in 0..400 {
        assert_eq!(c.put(&key(i, 10), &BTreeSet::new()).len(), 1);
    }
    for u in &c.nodes {
        let keys = c.sizes[u] / 10;
        assert!((60..=140).contains(&keys), "{u} got {keys} of 400");
    }
}

#[test]
fn archive_lands_once_not_on_every_node() {
    // spec §9 item 13: git-annex would put this on all three.
    let mut c = Cluster::new(3, "standard", &[]);
    for u in &c.nodes {
        c.facts
            .groups
            .insert(u.clone(), BTreeSet::from(["archive".to_string()]));
    }
    assert_eq!(
        c.put(&key(1, 10), &BTreeSet::new()),
        vec!["node-0".to_string()]
    );
    // Already archived: nobody wants it, so git-annex's fallback applies —
    // every node not holding it.
    assert_eq!(
        c.put(&key(1, 10), &BTreeSet::new()),
        vec!["node-1".to_string(), "node-2".to_string()]
    );
}
