//! A cluster served by our gateway, for fault and concurrency scenarios:
//! bare nodes `n1..nN`, a bare gateway serving them as cluster `cl`, and a
//! client that cloned the gateway over the ssh stand-in and sees
//! `origin-cl`. Nodes can be put behind a wrapper `annex-shell` that
//! misbehaves while a fault file exists; file systems mounted for a fault
//! are unmounted when the world is dropped.
//!
//! The checks every fault ends with live here too: what the client's
//! location log claims against what the object directories hold, and the
//! real `git annex fsck` inside each server repository.

#![allow(dead_code)] // shared by several test crates, each using a part

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use annexproxy_tests::observe::json_lines;
pub use annexproxy_tests::observe::{keys_held, keys_in};
use annexproxy_tests::standin::sh_quote;
use annexproxy_tests::{tools, ServerKind, TestEnv};

pub const CLUSTER: &str = "cl";
pub const REMOTE: &str = "origin-cl";

pub struct World {
    pub env: TestEnv,
    pub gateway: PathBuf,
    pub nodes: Vec<PathBuf>,
    pub client: PathBuf,
    /// Mount points to undo before the temp dir goes.
    mounts: Mutex<Vec<PathBuf>>,
}

pub fn node_name(i: usize) -> String {
    format!("n{}", i + 1)
}

/// `n` nodes and the gateway, set up with our `annexproxy`; `tune` runs on
/// the gateway before `updatecluster` (e.g. to put a node behind a
/// wrapper).
pub fn world(n: usize, tune: impl Fn(&TestEnv, &Path)) -> World {
    let env = TestEnv::new(ServerKind::Ours);
    let nodes: Vec<PathBuf> = (0..n)
        .map(|i| {
            let dir = env.server_bare(&format!("{}.git", node_name(i)));
            env.annexproxy(&dir, &["init", &format!("node {}", i + 1)])
                .ok();
            dir
        })
        .collect();
    let gateway = env.server_bare("gateway.git");
    env.annexproxy(&gateway, &["init", "gateway"]).ok();
    env.annexproxy(&gateway, &["initcluster", CLUSTER]).ok();
    for (i, node) in nodes.iter().enumerate() {
        let name = node_name(i);
        env.oracle(
            &gateway,
            &["remote", "add", &name, &node.display().to_string()],
        )
        .ok();
        env.oracle(
            &gateway,
            &[
                "config",
                &format!("remote.{name}.annex-cluster-node"),
                CLUSTER,
            ],
        )
        .ok();
    }
    tune(&env, &gateway);
    env.annexproxy(&gateway, &["updatecluster"]).ok();
    let client = new_client(&env, &gateway, "client");
    World {
        env,
        gateway,
        nodes,
        client,
        mounts: Mutex::new(Vec::new()),
    }
}

/// A client clone of the gateway with a first commit (real `git annex
/// sync` pushes nothing, not even the git-annex branch, without a branch
/// to push) that has synced and sees the cluster.
pub fn new_client(env: &TestEnv, gateway: &Path, name: &str) -> PathBuf {
    let client = env.clone_client(gateway, name);
    if let Err(e) = std::fs::write(client.join("README"), format!("{name}\n")) {
        panic!("writing README: {e}");
    }
    env.git(&client, &["add", "README"]).ok();
    env.git(&client, &["commit", "-q", "-m", "start"]).ok();
    env.annex(&client, &["sync"]).ok();
    env.annex(&client, &["info", "origin"])
        .ok()
        .says(&format!("gateway to cluster: {REMOTE}"));
    client
}

impl Drop for World {
    fn drop(&mut self) {
        for m in self.mounts().iter().rev() {
            let _ = Command::new("umount").arg("-l").arg(m).status();
        }
    }
}

// ----- faulty nodes ---------------------------------------------------------

/// What a node's wrapper does while its fault file exists.
#[derive(Clone, Copy)]
pub enum Fault {
    /// Passes the node's input on at about 2 MB/s, so that a transfer
    /// lasts long enough to be interrupted on purpose.
    Slow,
    /// The node dies as soon as a REMOVE (or REMOVE-BEFORE) reaches it.
    DieAtRemove,
}

/// Puts node `name` of `gateway` behind a wrapper `annex-shell` that
/// does what `how` says while the returned fault file exists, and is our
/// git-annex-shell otherwise.
pub fn wrap_node(env: &TestEnv, gateway: &Path, name: &str, how: Fault) -> PathBuf {
    let fault = env.root().join(format!("{name}.fault"));
    let script = env.root().join(format!("{name}-shell"));
    let shell = sh_quote(
        &tools::ours_bin_dir()
            .join("git-annex-shell")
            .display()
            .to_string(),
    );
    let q_fault = sh_quote(&fault.display().to_string());
    // Background jobs of a non-interactive sh get /dev/null as stdin
    // unless told otherwise, hence the fifo in front of the node.
    let body = match how {
        // dd without fullblock passes on whatever one read returns, so a
        // short protocol line is never held back.
        Fault::Slow => "while :; do\n\
               n=$(dd bs=65536 count=1 status=none | tee /dev/fd/3 | wc -c)\n\
               [ \"$n\" -gt 0 ] || break\n\
               sleep 0.02\n\
             done\n\
             exec 3>&-\n\
             wait \"$pid\"\n\
             rc=$?\n\
             rm -f \"$fifo\"\n\
             exit $rc\n"
            .to_string(),
        Fault::DieAtRemove => "while IFS= read -r line; do\n\
               case $line in REMOVE*)\n\
                 kill -9 \"$pid\"; rm -f \"$fifo\"\n\
                 echo 'wrapper: node died at REMOVE' >&2\n\
                 exit 137 ;;\n\
               esac\n\
               printf '%s\\n' \"$line\" >&3\n\
             done\n\
             exec 3>&-\n\
             wait \"$pid\"\n\
             rm -f \"$fifo\"\n"
            .to_string(),
    };
    let text = format!(
        "#!/bin/sh\n\
         shell={shell}\n\
         if [ ! -e {q_fault} ]; then exec \"$shell\" \"$@\"; fi\n\
         fifo=$(mktemp -u)\n\
         mkfifo \"$fifo\" || exit 1\n\
         \"$shell\" \"$@\" <\"$fifo\" &\n\
         pid=$!\n\
         exec 3>\"$fifo\"\n\
         {body}"
    );
    if let Err(e) = std::fs::write(&script, text) {
        panic!("writing {}: {e}", script.display());
    }
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))
        .expect("chmod of the wrapper just written");
    env.oracle(
        gateway,
        &[
            "config",
            &format!("remote.{name}.annex-shell"),
            &script.display().to_string(),
        ],
    )
    .ok();
    fault
}

pub fn arm(fault: &Path) {
    std::fs::write(fault, b"").expect("creating the fault file");
}

pub fn disarm(fault: &Path) {
    std::fs::remove_file(fault).expect("removing the fault file");
}

// ----- mounts ---------------------------------------------------------------

pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Runs a command; whether it succeeded, with what it said.
pub fn sh(cmd: &str) -> Result<(), String> {
    let out = Command::new("sh")
        .args(["-c", cmd])
        .output()
        .map_err(|e| format!("{cmd}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn q(p: &Path) -> String {
    sh_quote(&p.display().to_string())
}

impl World {
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

    fn mounts(&self) -> std::sync::MutexGuard<'_, Vec<PathBuf>> {
        // a panic while holding it leaves the list as good as before
        self.mounts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Remembers a mount point to undo when the world goes.
    pub fn mounted(&self, at: &Path) {
        self.mounts().push(at.to_path_buf());
    }

    /// Undoes the mount at `at` now.
    pub fn unmount(&self, at: &Path) {
        sh(&format!("umount {}", q(at))).unwrap_or_else(|e| panic!("{e}"));
        self.mounts().retain(|m| m != at);
    }

    /// Makes `dir` read-only: a read-only bind mount of itself as root
    /// (modes bind root to nothing), else `chmod -R a-w`. Returns how, to
    /// undo with [`World::make_writable`].
    pub fn make_read_only(&self, dir: &Path) -> ReadOnly {
        if is_root() {
            let d = q(dir);
            if sh(&format!(
                "mount --bind {d} {d} && mount -o remount,bind,ro {d}"
            ))
            .is_ok()
            {
                self.mounted(dir);
                return ReadOnly::BindMount;
            }
            // a bind that took but would not turn read-only
            let _ = sh(&format!("umount {d}"));
            panic!("as root, but cannot bind-mount {d} read-only");
        }
        sh(&format!("chmod -R a-w {}", q(dir))).unwrap_or_else(|e| panic!("{e}"));
        ReadOnly::Chmod
    }

    pub fn make_writable(&self, dir: &Path, how: ReadOnly) {
        match how {
            ReadOnly::BindMount => self.unmount(dir),
            ReadOnly::Chmod => {
                sh(&format!("chmod -R u+w {}", q(dir))).unwrap_or_else(|e| panic!("{e}"))
            }
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub enum ReadOnly {
    BindMount,
    Chmod,
}

// ----- truth ----------------------------------------------------------------

/// key → UUIDs a client's `whereis --json` lists for it.
pub type Claims = BTreeMap<String, BTreeSet<String>>;

/// What `client` believes, after a `git annex sync`.
pub fn claims(env: &TestEnv, client: &Path) -> Claims {
    env.annex(client, &["sync"]).ok();
    let out = env.annex(client, &["whereis", "--json"]);
    let mut claims = Claims::new();
    for v in json_lines(&out.stdout) {
        let key = v["key"].as_str().unwrap_or_default().to_string();
        let entry = claims.entry(key).or_default();
        for w in v["whereis"].as_array().into_iter().flatten() {
            if let Some(u) = w["uuid"].as_str() {
                entry.insert(u.to_string());
            }
        }
    }
    claims
}

impl World {
    /// uuid → the keys that repository really holds: the nodes, the
    /// gateway, and each client in `clients` (non-bare).
    pub fn truth(&self, clients: &[&Path]) -> BTreeMap<String, BTreeSet<String>> {
        let mut t = BTreeMap::new();
        for (i, n) in self.nodes.iter().enumerate() {
            t.insert(self.node_uuid(i), keys_held(n));
        }
        t.insert(
            self.env.server_uuid(&self.gateway),
            keys_held(&self.gateway),
        );
        for c in clients {
            t.insert(
                self.env.server_uuid(c),
                keys_in(&c.join(".git/annex/objects")),
            );
        }
        t
    }

    /// Every location `client` claims (after a sync) is true: a node, the
    /// gateway or the client holds what it is said to hold, and the
    /// cluster is listed only for keys some node holds. Returns the claims.
    #[track_caller]
    pub fn assert_claims_true(&self, client: &Path) -> Claims {
        self.assert_claims_true_among(client, &[client])
    }

    /// [`World::assert_claims_true`] where `clients` (which include
    /// `client`) may hold content too.
    #[track_caller]
    pub fn assert_claims_true_among(&self, client: &Path, clients: &[&Path]) -> Claims {
        let claims = claims(&self.env, client);
        let truth = self.truth(clients);
        let cluster = self.cluster_uuid();
        for (key, uuids) in &claims {
            for u in uuids {
                let holds = if *u == cluster {
                    (0..self.nodes.len()).any(|i| truth[&self.node_uuid(i)].contains(key))
                } else {
                    match truth.get(u) {
                        Some(keys) => keys.contains(key),
                        None => panic!("{key}: whereis names {u}, no repository of this world"),
                    }
                };
                assert!(
                    holds,
                    "the client believes {u} has {key}, which is false\nclaims: {claims:#?}\ntruth: {truth:#?}"
                );
            }
        }
        claims
    }

    /// Node indexes the client's claims name for `key`.
    pub fn claimed_nodes(&self, claims: &Claims, key: &str) -> BTreeSet<usize> {
        let set = claims.get(key).cloned().unwrap_or_default();
        (0..self.nodes.len())
            .filter(|&i| set.contains(&self.node_uuid(i)))
            .collect()
    }

    /// Node indexes that physically hold `key`.
    pub fn holding_nodes(&self, key: &str) -> BTreeSet<usize> {
        (0..self.nodes.len())
            .filter(|&i| keys_held(&self.nodes[i]).contains(key))
            .collect()
    }

    /// Real `git annex fsck` inside the gateway and every node finds
    /// nothing wrong; each node first learns what the gateway recorded
    /// (its branches, fetched as a remote's), so a false record there
    /// shows up as a node's fsck correcting it.
    #[track_caller]
    pub fn assert_servers_fsck_clean(&self) {
        self.env.wait_server_idle();
        let gw = self.gateway.display().to_string();
        for n in &self.nodes {
            self.env
                .oracle(
                    n,
                    &[
                        "fetch",
                        "-q",
                        &gw,
                        "+refs/heads/git-annex:refs/remotes/gw/git-annex",
                        "+refs/heads/synced/git-annex:refs/remotes/gwsynced/git-annex",
                    ],
                )
                .ok();
            fsck_clean(&self.env, n);
        }
        fsck_clean(&self.env, &self.gateway);
    }
}

#[track_caller]
fn fsck_clean(env: &TestEnv, dir: &Path) {
    let out = env.oracle_annex(dir, &["fsck", "--all", "--quiet"]);
    if !out.success() || out.stderr.contains("**") || out.stdout.contains("**") {
        panic!(
            "real git-annex fsck inside {} is not clean:\n{out}",
            dir.display()
        );
    }
}
