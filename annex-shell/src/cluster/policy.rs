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
}
