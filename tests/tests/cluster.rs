//! A cluster behind a gateway (spec §7, issue 4), driven by the real
//! git-annex client: the client only has ssh access to the gateway and
//! copies to, gets from and drops from `origin-mycl`.
//!
//! Each scenario runs against the real git-annex-shell on a cluster the
//! real git-annex set up (`::real`), and against ours on one our
//! `annexproxy` CLI set up (`::ours`). Where git-annex has a bug we do not
//! share, the two arms assert different things and say so.
//!
//! Shared set-up: `cluster/world.rs`. Scenarios (issue 4's numbering):
//! - 1, 2, 7 `flow`: `flow`, `flow_*_configured_by_*` (our CLI's logs
//!   read by real git-annex-shell and the other way round), `single_node`;
//! - 3, 4 `placement`: `wanted_per_node`, `balanced_group`,
//!   `drop_reaches_unlogged_copy`;
//! - 5, 6, 10 `faults`: `unwritable_node`, `gone_node` (the arms differ:
//!   git-annex's bug), `node_killed_mid_fanout`;
//! - 8 `gateways`: `two_gateways`; 9 `concurrent`: `four_clients`;
//! - issue 11: `full` (a key no node has room for fails alone).

#[path = "cluster/world.rs"]
mod world;

#[path = "cluster/concurrent.rs"]
mod concurrent;
#[path = "cluster/faults.rs"]
mod faults;
#[path = "cluster/flow.rs"]
mod flow;
#[path = "cluster/full.rs"]
mod full;
#[path = "cluster/gateways.rs"]
mod gateways;
#[path = "cluster/placement.rs"]
mod placement;
