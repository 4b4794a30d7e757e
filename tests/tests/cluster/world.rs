//! A cluster world (spec §7): bare nodes, a gateway that serves them as
//! cluster `mycl`, and a client that cloned the gateway over the ssh
//! stand-in. What the client believes (its `whereis --json`) is compared
//! with what the nodes really hold (their object directories), so a test
//! can say "whereis is true" in one line.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use annexproxy_tests::observe::json_lines;
pub use annexproxy_tests::observe::keys_held;
use annexproxy_tests::run::Out;
use annexproxy_tests::{ServerKind, TestEnv};

/// The cluster's name; the client sees it as remote `origin-mycl`.
pub const CLUSTER: &str = "mycl";

/// Who set the server repositories up.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Setup {
    /// `annexproxy init` / `initcluster` / `updatecluster` / `extendcluster`.
    Ours,
    /// The same commands of the real git-annex, run on the server.
    Real,
}

impl Setup {
    /// The set-up that goes with a server: real with real, ours with ours.
    pub fn matching(kind: ServerKind) -> Setup {
        match kind {
            ServerKind::Real => Setup::Real,
            ServerKind::Ours => Setup::Ours,
        }
    }
}

/// An operator command (`init`, `initcluster`, `updatecluster`,
/// `extendcluster`) in a server repo, by whoever `setup` names.
#[track_caller]
pub fn operator(env: &TestEnv, setup: Setup, dir: &Path, args: &[&str]) -> Out {
    match setup {
        Setup::Ours => env.annexproxy(dir, args),
        Setup::Real => env.oracle_annex(dir, args),
    }
}

pub struct Cluster {
    pub env: TestEnv,
    pub gateway: PathBuf,
    /// `node1`, `node2`, ... in order.
    pub nodes: Vec<PathBuf>,
    pub client: PathBuf,
    /// Further clients; views name them by their directory's name.
    pub others: Vec<PathBuf>,
}

/// `nodeN` for index `i` (0-based).
pub fn node_name(i: usize) -> String {
    format!("node{}", i + 1)
}

/// `n` bare nodes `nodeN.git` (described `node N`), a bare gateway with
/// cluster `mycl` over all of them, `tune` run on the gateway before
/// `updatecluster`, and a client that cloned the gateway and synced.
pub fn cluster(
    kind: ServerKind,
    setup: Setup,
    n: usize,
    tune: impl Fn(&TestEnv, &Path),
) -> Cluster {
    let env = TestEnv::new(kind);
    let nodes = make_nodes(&env, setup, n);
    let gateway = env.server_bare("gateway.git");
    operator(&env, setup, &gateway, &["init", "gateway"]).ok();
    operator(&env, setup, &gateway, &["initcluster", CLUSTER]).ok();
    for (i, node) in nodes.iter().enumerate() {
        add_node(&env, &gateway, &node_name(i), node);
    }
    tune(&env, &gateway);
    let said = operator(&env, setup, &gateway, &["updatecluster"]).ok();
    for i in 0..n {
        let name = node_name(i);
        said.clone()
            .says(&format!("Added node {name} to cluster: {CLUSTER}\n"))
            .says(&format!("Started proxying for {name}\n"));
    }
    let client = env.clone_client(&gateway, "client");
    first_commit(&env, &client);
    env.annex(&client, &["sync"]).ok();
    // The client read proxy.log and cluster.log from the gateway's branch.
    env.annex(&client, &["info", "origin"])
        .ok()
        .says(&format!("gateway to cluster: origin-{CLUSTER}"));
    Cluster {
        env,
        gateway,
        nodes,
        client,
        others: Vec::new(),
    }
}

/// Bare repos `node1.git`... described `node 1`..., initialised.
pub fn make_nodes(env: &TestEnv, setup: Setup, n: usize) -> Vec<PathBuf> {
    (0..n)
        .map(|i| {
            let dir = env.server_bare(&format!("{}.git", node_name(i)));
            operator(env, setup, &dir, &["init", &format!("node {}", i + 1)]).ok();
            dir
        })
        .collect()
}

/// A plain-git commit in a fresh clone of an empty repo. Without a branch
/// to push, real `git annex sync` skips pushing altogether (the git-annex
/// branch too) and still says ok, so settings like `wanted` would never
/// reach the gateway.
pub fn first_commit(env: &TestEnv, client: &Path) {
    if let Err(e) = std::fs::write(client.join("README"), "cluster client\n") {
        panic!("writing README: {e}");
    }
    env.git(client, &["add", "README"]).ok();
    env.git(client, &["commit", "-q", "-m", "start"]).ok();
}

/// Adds remote `name` at local path `node` to `gateway` as a node of `mycl`.
pub fn add_node(env: &TestEnv, gateway: &Path, name: &str, node: &Path) {
    env.oracle(
        gateway,
        &["remote", "add", name, &node.display().to_string()],
    )
    .ok();
    env.oracle(
        gateway,
        &[
            "config",
            &format!("remote.{name}.annex-cluster-node"),
            CLUSTER,
        ],
    )
    .ok();
}

fn client_name(client: &Path) -> String {
    client
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// file → places, as the client names them: `nodeN`, `cluster`, `here`,
/// `gateway`, another client's directory name, or a UUID for anything else.
pub type View = BTreeMap<String, BTreeSet<String>>;

impl Cluster {
    pub fn remote(&self) -> String {
        format!("origin-{CLUSTER}")
    }

    pub fn node_uuid(&self, i: usize) -> String {
        self.env.server_uuid(&self.nodes[i])
    }

    pub fn cluster_uuid(&self) -> String {
        let out = self
            .env
            .oracle(
                &self.gateway,
                &["config", &format!("annex.cluster.{CLUSTER}")],
            )
            .ok();
        out.stdout.trim().to_string()
    }

    /// uuid → the name a [`View`] uses for it.
    fn names(&self, client: &Path) -> BTreeMap<String, String> {
        let mut names: BTreeMap<String, String> = (0..self.nodes.len())
            .map(|i| (self.node_uuid(i), node_name(i)))
            .collect();
        names.insert(self.cluster_uuid(), "cluster".into());
        names.insert(self.env.server_uuid(&self.gateway), "gateway".into());
        for other in self.clients() {
            names.insert(self.env.server_uuid(other), client_name(other));
        }
        names.insert(self.env.server_uuid(client), "here".into());
        names
    }

    /// The first client and the others.
    pub fn clients(&self) -> impl Iterator<Item = &PathBuf> {
        std::iter::once(&self.client).chain(self.others.iter())
    }

    /// What `client`'s `git annex whereis --json` says, file by file.
    pub fn client_view(&self, client: &Path) -> View {
        let names = self.names(client);
        let out = self.env.annex(client, &["whereis", "--json"]);
        json_lines(&out.stdout)
            .iter()
            .map(|v| {
                let file = v["file"].as_str().unwrap_or_default().to_string();
                let places = v["whereis"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|w| w["uuid"].as_str())
                    .map(|u| names.get(u).cloned().unwrap_or_else(|| u.to_string()))
                    .collect();
                (file, places)
            })
            .collect()
    }

    /// file → key for every annexed file in `client`'s work tree.
    pub fn keys(&self, client: &Path) -> BTreeMap<String, String> {
        let out = self
            .env
            .annex(
                client,
                &["find", "--include=*", "--format=${file} ${key}\\n"],
            )
            .ok();
        out.stdout
            .lines()
            .filter_map(|l| l.rsplit_once(' '))
            .map(|(f, k)| (f.to_string(), k.to_string()))
            .collect()
    }

    /// Where each of `client`'s files really is: the nodes holding it,
    /// `cluster` when any does, `here` when `client` has it, and the other
    /// clients that have it.
    pub fn truth(&self, client: &Path) -> View {
        let held: Vec<BTreeSet<String>> = self.nodes.iter().map(|n| keys_held(n)).collect();
        let clients: Vec<(String, BTreeSet<String>)> = self
            .clients()
            .map(|c| {
                let name = if c == client {
                    "here".into()
                } else {
                    client_name(c)
                };
                (name, self.client_keys(c))
            })
            .collect();
        self.keys(client)
            .into_iter()
            .map(|(file, key)| {
                let mut places: BTreeSet<String> = held
                    .iter()
                    .enumerate()
                    .filter(|(_, keys)| keys.contains(&key))
                    .map(|(i, _)| node_name(i))
                    .collect();
                if !places.is_empty() {
                    places.insert("cluster".into());
                }
                for (name, keys) in &clients {
                    if keys.contains(&key) {
                        places.insert(name.clone());
                    }
                }
                (file, places)
            })
            .collect()
    }

    fn client_keys(&self, client: &Path) -> BTreeSet<String> {
        let out = self.env.annex(client, &["find", "--format=${key}\\n"]).ok();
        out.stdout.lines().map(str::to_string).collect()
    }

    /// The client's whereis must match what the nodes hold.
    #[track_caller]
    pub fn assert_whereis_true(&self, client: &Path) {
        let seen = self.client_view(client);
        let truth = self.truth(client);
        if seen != truth {
            let diff: Vec<String> = truth
                .iter()
                .filter(|(f, t)| seen.get(*f) != Some(t))
                .map(|(f, t)| format!("{f}: whereis {:?}, really {t:?}", seen.get(f)))
                .collect();
            panic!(
                "whereis in {} is not true:\n{}",
                client.display(),
                diff.join("\n")
            );
        }
    }

    /// Real `git annex fsck` inside every node still there, after it
    /// learned from the gateway what the clients synced there (a node
    /// alone knows of no other copy, and would complain of too few).
    #[track_caller]
    pub fn fsck_nodes(&self) {
        let gateway = self.gateway.display().to_string();
        for n in self.nodes.iter().filter(|n| n.exists()) {
            self.env
                .oracle(
                    n,
                    &[
                        "fetch",
                        "-q",
                        &gateway,
                        "+refs/heads/synced/git-annex:refs/remotes/gateway/git-annex",
                    ],
                )
                .ok();
            self.env.assert_server_fsck_clean(n);
        }
    }
}
