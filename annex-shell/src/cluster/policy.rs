//! Which nodes a request goes to. Pure decisions over UUIDs, kept apart
//! from how the bytes are sent (`put.rs`, `get.rs`, `remove.rs`).

use std::collections::BTreeSet;

/// The nodes (by index into `nodes`) a PUT is sent to.
///
/// `wanted` are the nodes the placement planner chose given the current
/// `holders` (it falls back, as git-annex's gateway does, to nodes that do
/// not want the key rather than refuse a copy the client asked for). Those
/// not holding it yet get it. When none is left, the holders are asked
/// (they answer ALREADY-HAVE, or take it if the log was stale); when no
/// node holds it either, nothing: no node has room.
pub fn put_targets(
    nodes: &[&str],
    holders: &BTreeSet<String>,
    wanted: &BTreeSet<String>,
) -> Vec<usize> {
    let pick = |f: &dyn Fn(&str) -> bool| -> Vec<usize> {
        nodes
            .iter()
            .enumerate()
            .filter(|(_, u)| f(u))
            .map(|(i, _)| i)
            .collect()
    };
    let fresh = pick(&|u| wanted.contains(u) && !holders.contains(u));
    if !fresh.is_empty() {
        return fresh;
    }
    pick(&|u| holders.contains(u))
}

/// The order in which nodes holding a key are tried for a GET: nodes
/// busy serving others last; among the rest, nodes already connected
/// first (no start-up cost), then the others rotated by `spin`, so that
/// concurrent sessions spread their reads instead of all starting at the
/// first node.
pub fn get_order(
    holding: &[usize],
    connected: &dyn Fn(usize) -> bool,
    busy: &dyn Fn(usize) -> bool,
    spin: usize,
) -> Vec<usize> {
    let rotated = |mut v: Vec<usize>| {
        if !v.is_empty() {
            let n = spin % v.len();
            v.rotate_left(n);
        }
        v
    };
    let (free, loaded): (Vec<usize>, Vec<usize>) = holding.iter().copied().partition(|&i| !busy(i));
    let (up, idle): (Vec<usize>, Vec<usize>) = free.into_iter().partition(|&i| connected(i));
    let mut order = rotated(up);
    order.extend(rotated(idle));
    order.extend(rotated(loaded));
    order
}

/// A REMOVE-BEFORE deadline in a node's clock: the node said `node_ts`
/// when we said `our_ts`, and the client's deadline `t` is in ours.
pub fn translate_deadline(t: u64, our_ts: u64, node_ts: u64) -> u64 {
    node_ts.saturating_add(t.saturating_sub(our_ts))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(us: &[&str]) -> BTreeSet<String> {
        us.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn wanted_nodes_lacking_the_key_get_it() {
        let nodes = ["a", "b", "c"];
        assert_eq!(
            put_targets(&nodes, &set(&["a"]), &set(&["a", "c"])),
            vec![2]
        );
        assert_eq!(
            put_targets(&nodes, &set(&[]), &set(&["a", "b", "c"])),
            vec![0, 1, 2]
        );
    }

    #[test]
    fn satisfied_wants_ask_the_holders_not_everyone() {
        let nodes = ["a", "b", "c"];
        assert_eq!(put_targets(&nodes, &set(&["b"]), &set(&["b"])), vec![1]);
        assert_eq!(
            put_targets(&nodes, &set(&["b", "c"]), &set(&[])),
            vec![1, 2]
        );
    }

    #[test]
    fn no_room_and_no_holder_means_no_target() {
        let nodes = ["a", "b"];
        assert_eq!(
            put_targets(&nodes, &set(&[]), &set(&[])),
            Vec::<usize>::new()
        );
        // Holders outside the cluster do not count.
        assert_eq!(
            put_targets(&nodes, &set(&["z"]), &set(&[])),
            Vec::<usize>::new()
        );
    }

    #[test]
    fn connected_nodes_first_then_rotation_then_busy_nodes() {
        let up = |i: usize| i == 3;
        let calm = |_: usize| false;
        assert_eq!(get_order(&[0, 1, 2, 3], &up, &calm, 0), vec![3, 0, 1, 2]);
        assert_eq!(get_order(&[0, 1, 2, 3], &up, &calm, 1), vec![3, 1, 2, 0]);
        assert_eq!(get_order(&[], &up, &calm, 5), Vec::<usize>::new());
        let busy = |i: usize| i == 3 || i == 0;
        assert_eq!(get_order(&[0, 1, 2, 3], &up, &busy, 0), vec![1, 2, 0, 3]);
    }

    #[test]
    fn deadlines_move_into_the_node_clock() {
        assert_eq!(translate_deadline(3054, 3000, 100), 154);
        // A deadline already past stays past.
        assert_eq!(translate_deadline(10, 3000, 100), 100);
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// Up to 6 nodes named n0..n5, and which of them hold or want.
        fn world() -> impl Strategy<Value = (Vec<String>, BTreeSet<String>, BTreeSet<String>)> {
            (1usize..=6).prop_flat_map(|n| {
                let names: Vec<String> = (0..n).map(|i| format!("n{i}")).collect();
                let pick = proptest::collection::btree_set(0..n, 0..=n);
                (Just(names), pick.clone(), pick).prop_map(|(names, h, w)| {
                    let holders = h.iter().map(|&i| names[i].clone()).collect();
                    let wanted = w.iter().map(|&i| names[i].clone()).collect();
                    (names, holders, wanted)
                })
            })
        }

        proptest! {
            /// A PUT goes to wanted nodes lacking the key when there are
            /// any, else exactly to the holders; never twice to a node.
            #[test]
            fn put_targets_are_wanted_newcomers_or_else_the_holders(
                (names, holders, wanted) in world()
            ) {
                let nodes: Vec<&str> = names.iter().map(String::as_str).collect();
                let targets = put_targets(&nodes, &holders, &wanted);
                let chosen: BTreeSet<&str> = targets.iter().map(|&i| nodes[i]).collect();
                prop_assert_eq!(chosen.len(), targets.len());
                let newcomers: BTreeSet<&str> = nodes
                    .iter()
                    .copied()
                    .filter(|u| wanted.contains(*u) && !holders.contains(*u))
                    .collect();
                if newcomers.is_empty() {
                    let held: BTreeSet<&str> = nodes.iter().copied().filter(|u| holders.contains(*u)).collect();
                    prop_assert_eq!(chosen, held);
                } else {
                    prop_assert_eq!(chosen, newcomers);
                }
            }

            /// A GET tries every holder exactly once, and a busy one only
            /// after every free one.
            #[test]
            fn get_order_tries_each_holder_once_busy_last(
                holding in proptest::collection::btree_set(0usize..8, 0..8),
                busy in proptest::collection::btree_set(0usize..8, 0..8),
                connected in proptest::collection::btree_set(0usize..8, 0..8),
                spin in 0usize..20,
            ) {
                let holding: Vec<usize> = holding.into_iter().collect();
                let order = get_order(&holding, &|i| connected.contains(&i), &|i| busy.contains(&i), spin);
                let mut sorted = order.clone();
                sorted.sort_unstable();
                prop_assert_eq!(&sorted, &holding);
                let first_busy = order.iter().position(|i| busy.contains(i)).unwrap_or(order.len());
                prop_assert!(order[first_busy..].iter().all(|i| busy.contains(i)));
            }

            /// A deadline keeps its distance from "now" in the node's clock,
            /// and one already past stays past.
            #[test]
            fn deadlines_keep_their_distance(t in 0u64..1 << 40, ours in 0u64..1 << 40, node in 0u64..1 << 40) {
                let moved = translate_deadline(t, ours, node);
                prop_assert_eq!(moved - node, t.saturating_sub(ours));
            }
        }
    }
}
