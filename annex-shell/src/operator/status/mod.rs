//! `status`: what a gateway serves and in what state — this repository,
//! each remote it proxies, each cluster it is a gateway for with its
//! nodes: UUID, whether it answers now, how many keys and bytes the
//! gateway's own location log says it holds, free space when local.
//!
//! Read-only: nothing is journalled or committed, so the counts are what
//! the git-annex branch (plus its journal) says at this moment; another
//! gateway's recent changes show only once they are merged. Reachability
//! is a real P2P handshake with the node (closed at once), so a node
//! that is there but broken shows as unreachable, with its reason.
//!
//! Plain output, one line per repository, columns aligned:
//!
//! ```text
//! NAME     KIND     UUID   REACHABLE  KEYS  SIZE     FREE      DETAIL
//! here     gateway  …      yes           0  0 B      9.5 GiB
//! backup   proxied  …      yes          12  3.1 MiB  -
//! demo     cluster  …      2/3           2  5.0 MiB  -
//!   n1     node     …      yes           2  5.0 MiB  9.5 GiB
//!   n2     node     …      no            2  5.0 MiB  -         n2: no repository at /srv/n2.git
//! ```
//!
//! KIND is `gateway` (this repository), `proxied` (a remote with
//! `annex-proxy`), `special` (a proxied special remote, such as a
//! directory, which this repository serves itself: reachable when its
//! configuration is one we serve and its storage is there), `cluster`, `node` (a cluster node this gateway reaches
//! directly), `via` (the same cluster behind another gateway) or
//! `unreached` (a node `cluster.log` lists that no remote here leads to).
//! A node behind another gateway is shown by the remote that proxies it
//! (`gwA-n1`), which is what its reachability is checked through; the
//! `via` row has no counts of its own (`-`, `null` in JSON).
//! A cluster's REACHABLE is reachable nodes / nodes, its KEYS and SIZE
//! count each key on any node once. SIZE is in IEC units from the keys'
//! recorded sizes (keys without one count as 0); FREE is the space left
//! to unprivileged users on a local repository's filesystem, `-` when
//! unknown. `--json` prints the same as one JSON object with exact byte
//! counts. A node that lacks git refs the gateway pushed on to it (a push
//! through the cluster it refused; `cluster::lag`) says so in DETAIL
//! (`lacks the gateway's refs/heads/main`) and in `lacking_refs`.

mod render;
mod scan;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use annex::cluster::{configured_clusters, gateway_nodes, recorded_clusters, remotes_with_proxied};
use annex::p2p::MAX_PROTOCOL_VERSION;
use annex::repo::{RemoteConfig, Repo};
use annex::transport::{connect, ConnectOptions, Location, NodeRemote};

use super::{open, sibling_shell, OperatorError};
pub use render::{human, render_json, render_text};
use scan::scan_location_logs;

/// How long a node may take to answer the handshake before it counts as
/// unreachable (an ssh host that swallows packets would hang us).
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("cannot run git {what}: {source}")]
    Git {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("git {what} failed: {stderr}")]
    GitFailed { what: &'static str, stderr: String },
    #[error("git cat-file gave a malformed answer: {0:?}")]
    CatFile(String),
    #[error("listing the journal: {0}")]
    Journal(std::io::Error),
    #[error("starting the runtime: {0}")]
    Runtime(std::io::Error),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Gateway,
    Proxied,
    /// A proxied special remote (`initremote`), served by this repository.
    Special,
    Cluster,
    Node,
    Via,
    Unreached,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Gateway => "gateway",
            Kind::Proxied => "proxied",
            Kind::Special => "special",
            Kind::Cluster => "cluster",
            Kind::Node => "node",
            Kind::Via => "via",
            Kind::Unreached => "unreached",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reach {
    Yes,
    No(String),
    /// Nothing to connect to (no remote here leads to it).
    Unknown,
    /// A cluster: reachable nodes of all nodes.
    Nodes {
        up: usize,
        of: usize,
    },
}

/// One line of the report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    pub name: String,
    pub kind: Kind,
    pub uuid: String,
    pub reach: Reach,
    pub keys: u64,
    pub bytes: u64,
    pub free: Option<u64>,
    /// Whether this is a node listed under the cluster above it.
    pub member: bool,
    /// The gateway's git refs a node has not taken yet (a push through
    /// the cluster it refused or missed; see `cluster::lag`).
    pub lagging: Vec<String>,
    /// The remote to probe, when there is one.
    remote: Option<RemoteConfig>,
}

impl Row {
    fn new(name: String, kind: Kind, uuid: String, remote: Option<RemoteConfig>) -> Row {
        Row {
            name,
            kind,
            uuid,
            reach: Reach::Unknown,
            keys: 0,
            bytes: 0,
            free: None,
            member: matches!(kind, Kind::Node | Kind::Via | Kind::Unreached),
            lagging: Vec::new(),
            remote,
        }
    }
}

/// `status [--json]` for the repository at `dir`.
pub fn status(dir: &Path, json: bool, out: &mut dyn Write) -> Result<(), OperatorError> {
    let repo = open(dir)?;
    let my_uuid = repo
        .uuid()
        .filter(|_| repo.is_annex_initialized())
        .ok_or(OperatorError::NotInitialized)?;
    let mut rows = layout(&repo, &my_uuid)?;
    mark_lags(&repo, &mut rows)?;
    count_keys(&repo, &mut rows)?;
    probe_all(&repo, &my_uuid, &mut rows)?;
    let text = if json {
        render_json(&repo.git_dir().display().to_string(), &rows)
    } else {
        render_text(&rows)
    };
    out.write_all(text.as_bytes())?;
    Ok(())
}

/// The rows, before counting and probing: this repository, the proxied
/// remotes (git's order), then each cluster (by name) and its nodes in
/// the order the gateway tries them.
fn layout(repo: &Repo, my_uuid: &str) -> Result<Vec<Row>, OperatorError> {
    let mut here = Row::new("here".into(), Kind::Gateway, my_uuid.to_owned(), None);
    here.reach = Reach::Yes;
    here.free = free_space(repo.git_dir());
    let mut rows = vec![here];
    let specials = crate::special::config::remote_log(repo)?;
    for r in repo.remotes() {
        let proxied = repo
            .config_bool(&format!("remote.{}.annex-proxy", r.name))
            .unwrap_or(false);
        if let Some(u) = r.annex_uuid().filter(|_| proxied) {
            let kind = if crate::special::config::is_special(&r, &specials) {
                Kind::Special
            } else {
                Kind::Proxied
            };
            rows.push(Row::new(
                r.name.clone(),
                kind,
                u.to_owned(),
                Some(r.clone()),
            ));
        }
    }
    let recorded = recorded_clusters(repo)?;
    let all = remotes_with_proxied(repo)?;
    let dead = annex::cluster::dead_uuids(repo)?;
    let descriptions =
        annex::branch::UuidLog::parse(&repo.branch().read_file("uuid.log")?.unwrap_or_default());
    for (name, cluster) in configured_clusters(repo)? {
        rows.push(Row::new(name, Kind::Cluster, cluster.clone(), None));
        let mut seen = BTreeSet::new();
        for r in gateway_nodes(repo, &cluster, &BTreeSet::new())? {
            let uuid = r.annex_uuid().unwrap_or_default().to_owned();
            // A special remote node is probed as the special remote it is.
            let special = crate::special::config::is_special(&r, &specials);
            let kind = if special {
                Kind::Special
            } else if uuid == cluster {
                Kind::Via
            } else {
                Kind::Node
            };
            seen.insert(uuid.clone());
            let mut row = Row::new(r.name.clone(), kind, uuid, Some(r));
            row.member = true;
            rows.push(row);
        }
        // Nodes behind another gateway: the gateway relays to them through
        // that gateway's cluster (the `via` row), but its proxied remote
        // for the node (`R-NODE`) tells whether each one answers.
        let listed = recorded.get(&cluster).into_iter().flatten();
        for u in listed.filter(|u| !seen.contains(*u) && !dead.contains(*u)) {
            match all.iter().find(|r| r.annex_uuid() == Some(u.as_str())) {
                Some(r) => rows.push(Row::new(
                    r.name.clone(),
                    Kind::Node,
                    u.clone(),
                    Some(r.clone()),
                )),
                None => {
                    let name = match descriptions.get(u).filter(|d| !d.is_empty()) {
                        Some(d) => format!("[{d}]"),
                        None => format!("[{u}]"),
                    };
                    rows.push(Row::new(name, Kind::Unreached, u.clone(), None));
                }
            }
        }
    }
    Ok(rows)
}

/// The refs each node lacks, from the gateway's lag records.
fn mark_lags(repo: &Repo, rows: &mut [Row]) -> Result<(), OperatorError> {
    let out = scan::git_output(repo, "for-each-ref", &crate::cluster::lag::LIST_ARGS)?;
    let lags = crate::cluster::lag::parse(&String::from_utf8_lossy(&out));
    for r in rows.iter_mut().filter(|r| r.kind == Kind::Node) {
        r.lagging = lags
            .iter()
            .filter(|l| l.node == r.uuid)
            .map(|l| l.name.clone())
            .collect();
    }
    Ok(())
}

/// Fill in KEYS and SIZE from one pass over the location logs.
fn count_keys(repo: &Repo, rows: &mut [Row]) -> Result<(), OperatorError> {
    let mut per_uuid: HashMap<String, (u64, u64)> = rows
        .iter()
        .filter(|r| r.kind != Kind::Cluster)
        .map(|r| (r.uuid.clone(), (0, 0)))
        .collect();
    // Each cluster's totals count a key once however many nodes hold it.
    let clusters: Vec<(usize, BTreeSet<String>)> = cluster_members(rows);
    let mut per_cluster = vec![(0u64, 0u64); clusters.len()];
    scan_location_logs(repo, |size, log| {
        let present = log.present();
        for u in &present {
            if let Some(t) = per_uuid.get_mut(*u) {
                t.0 += 1;
                t.1 += size;
            }
        }
        for (i, (_, members)) in clusters.iter().enumerate() {
            if present.iter().any(|u| members.contains(*u)) {
                per_cluster[i].0 += 1;
                per_cluster[i].1 += size;
            }
        }
    })?;
    for r in rows.iter_mut().filter(|r| r.kind != Kind::Cluster) {
        (r.keys, r.bytes) = per_uuid.get(&r.uuid).copied().unwrap_or_default();
    }
    for ((i, _), (keys, bytes)) in clusters.iter().zip(per_cluster) {
        (rows[*i].keys, rows[*i].bytes) = (keys, bytes);
    }
    Ok(())
}

/// Each cluster row's index with the UUIDs of the member rows under it.
fn cluster_members(rows: &[Row]) -> Vec<(usize, BTreeSet<String>)> {
    let mut out: Vec<(usize, BTreeSet<String>)> = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        match (r.kind, out.last_mut()) {
            (Kind::Cluster, _) => out.push((i, BTreeSet::new())),
            (_, Some((_, members))) if r.member => {
                members.insert(r.uuid.clone());
            }
            _ => {}
        }
    }
    out
}

/// Probe every row with a remote (each remote once, all at the same
/// time), fill in FREE for local ones, and each cluster's node tally.
fn probe_all(repo: &Repo, my_uuid: &str, rows: &mut [Row]) -> Result<(), OperatorError> {
    let base = repo.work_dir().unwrap_or(repo.git_dir()).to_owned();
    let mut targets: BTreeMap<String, Result<NodeRemote, String>> = BTreeMap::new();
    check_specials(repo, rows);
    let relayed = rows.iter().filter(|r| r.kind != Kind::Special);
    for r in relayed.filter_map(|r| r.remote.as_ref()) {
        targets
            .entry(r.name.clone())
            .or_insert_with(|| NodeRemote::from_config(r, &base).map_err(|e| e.to_string()));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(StatusError::Runtime)?;
    let opts = ConnectOptions::new(sibling_shell()).with_repo(repo);
    let results: BTreeMap<String, Reach> = runtime.block_on(async {
        let probes = targets.iter().map(|(name, node)| {
            let opts = opts.clone();
            async move {
                let reach = match node {
                    Ok(node) => probe(node, my_uuid, &opts).await,
                    Err(e) => Reach::No(e.clone()),
                };
                (name.clone(), reach)
            }
        });
        futures_util::future::join_all(probes)
            .await
            .into_iter()
            .collect()
    });
    for row in rows.iter_mut().filter(|r| r.kind != Kind::Special) {
        let Some(name) = row.remote.as_ref().map(|r| r.name.clone()) else {
            continue;
        };
        row.reach = results.get(&name).cloned().unwrap_or(Reach::Unknown);
        if let Some(Ok(node)) = targets.get(&name) {
            if let (Location::Local(path), Reach::Yes) = (&node.location, &row.reach) {
                row.free = free_space(path);
            }
        }
    }
    for (i, members) in cluster_members(rows) {
        let nodes: Vec<&Row> = rows
            .iter()
            .skip(i + 1)
            .take_while(|r| r.member)
            .filter(|r| members.contains(&r.uuid))
            .collect();
        let up = nodes.iter().filter(|r| r.reach == Reach::Yes).count();
        rows[i].reach = Reach::Nodes {
            up,
            of: nodes.len(),
        };
    }
    Ok(())
}

/// A special remote is reachable when we can serve it (a type we serve,
/// a verified configuration) and its storage is there: for a directory,
/// the directory, whose free space is shown.
fn check_specials(repo: &Repo, rows: &mut [Row]) {
    let log = match crate::special::config::remote_log(repo) {
        Ok(log) => log,
        Err(e) => {
            for row in rows.iter_mut().filter(|r| r.kind == Kind::Special) {
                row.reach = Reach::No(e.to_string());
            }
            return;
        }
    };
    for row in rows.iter_mut().filter(|r| r.kind == Kind::Special) {
        let Some(remote) = row.remote.as_ref() else {
            continue;
        };
        row.reach = match crate::special::SpecialRemote::load(repo, remote, &log) {
            Ok(special) => match &special.kind {
                crate::special::Kind::Directory(root) if root.is_dir() => {
                    row.free = free_space(root);
                    Reach::Yes
                }
                crate::special::Kind::Directory(root) => Reach::No(format!(
                    "{}: directory {} is not accessible",
                    row.name,
                    root.display()
                )),
                crate::special::Kind::S3 { config, creds } => {
                    s3_reach(&special.name, (**config).clone(), creds.clone())
                }
                // Without running it (a program may be slow to start or
                // ask for a network): whether it is there to run.
                crate::special::Kind::External(setup) => {
                    match crate::special::external::find_program(&setup.program()) {
                        Some(_) => Reach::Yes,
                        None => {
                            Reach::No(format!("{}: {} is not on PATH", row.name, setup.program()))
                        }
                    }
                }
            },
            Err(e) => Reach::No(e.to_string()),
        };
    }
}

/// Whether an S3 remote's bucket answers, within the probe's time: a
/// GET of the object git-annex keeps the remote's UUID in
/// ([`crate::special::s3::S3::reachable`]), present or not.
fn s3_reach(
    name: &str,
    config: annex_s3::S3Config,
    creds: Option<annex_s3::S3Credentials>,
) -> Reach {
    let storage = match crate::special::s3::S3::new(name, config, creds) {
        Ok(s) => s,
        Err(e) => return Reach::No(e.to_string()),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return Reach::No(e.to_string()),
    };
    let answer =
        runtime.block_on(async { tokio::time::timeout(PROBE_TIMEOUT, storage.reachable()).await });
    match answer {
        Ok(Ok(())) => Reach::Yes,
        Ok(Err(e)) => Reach::No(one_line(&e.to_string())),
        Err(_) => Reach::No(format!(
            "{name}: no answer within {} seconds",
            PROBE_TIMEOUT.as_secs()
        )),
    }
}

/// A P2P handshake with the node, closed at once.
async fn probe(node: &NodeRemote, my_uuid: &str, opts: &ConnectOptions) -> Reach {
    let attempt = connect(node, my_uuid, MAX_PROTOCOL_VERSION, opts);
    match tokio::time::timeout(PROBE_TIMEOUT, attempt).await {
        Ok(Ok(nc)) => {
            nc.close().await;
            Reach::Yes
        }
        Ok(Err(e)) => Reach::No(one_line(&e.to_string())),
        Err(_) => Reach::No(format!(
            "{}: no answer within {} seconds",
            node.name,
            PROBE_TIMEOUT.as_secs()
        )),
    }
}

/// An error as one line: a node's stderr tail can span several.
pub(super) fn one_line(s: &str) -> String {
    let parts: Vec<&str> = s.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    parts.join(" / ")
}

fn free_space(path: &Path) -> Option<u64> {
    let st = nix::sys::statvfs::statvfs(path).ok()?;
    #[allow(clippy::useless_conversion)] // the field types differ between platforms
    let (avail, frag) = (
        u64::from(st.blocks_available()),
        u64::from(st.fragment_size()),
    );
    avail.checked_mul(frag)
}

#[cfg(test)]
mod tests;
