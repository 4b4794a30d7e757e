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
//! `annex-proxy`), `cluster`, `node` (a cluster node this gateway reaches
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
//! counts.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

use annex::branch::LocationLog;
use annex::cluster::{configured_clusters, gateway_nodes, recorded_clusters, remotes_with_proxied};
use annex::key::Key;
use annex::p2p::MAX_PROTOCOL_VERSION;
use annex::repo::{RemoteConfig, Repo};
use annex::transport::{connect, ConnectOptions, Location, NodeRemote};

use super::{open, sibling_shell, OperatorError};

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
    for r in repo.remotes() {
        let proxied = repo
            .config_bool(&format!("remote.{}.annex-proxy", r.name))
            .unwrap_or(false);
        if let Some(u) = r.annex_uuid().filter(|_| proxied) {
            rows.push(Row::new(
                r.name.clone(),
                Kind::Proxied,
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
            let kind = if uuid == cluster {
                Kind::Via
            } else {
                Kind::Node
            };
            seen.insert(uuid.clone());
            rows.push(Row::new(r.name.clone(), kind, uuid, Some(r)));
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
    for r in rows.iter().filter_map(|r| r.remote.as_ref()) {
        targets
            .entry(r.name.clone())
            .or_insert_with(|| NodeRemote::from_config(r, &base).map_err(|e| e.to_string()));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(StatusError::Runtime)?;
    let opts = ConnectOptions::new(sibling_shell());
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
    for row in rows.iter_mut() {
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
fn one_line(s: &str) -> String {
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

/// Call `visit(size, log)` for every location log of the git-annex
/// branch, the journal's version where it has one. One `git ls-tree`
/// lists the branch and one `git cat-file --batch` reads the logs, one
/// at a time, so memory stays bounded however many keys there are.
fn scan_location_logs(
    repo: &Repo,
    mut visit: impl FnMut(u64, &LocationLog),
) -> Result<(), OperatorError> {
    let branch = repo.branch();
    let mut journalled: BTreeSet<String> = branch
        .journal()
        .list()
        .map_err(StatusError::Journal)?
        .into_iter()
        .map(|(_, path)| path)
        .filter(|p| is_location_log(p))
        .collect();
    let from_journal = |path: &str, visit: &mut dyn FnMut(u64, &LocationLog)| {
        branch.read_file(path).map(|content| {
            visit(
                key_size(path),
                &LocationLog::parse(&content.unwrap_or_default()),
            );
        })
    };
    if branch.exists()? {
        let mut lister = git(
            repo,
            "ls-tree",
            &["ls-tree", "-r", "-z", "refs/heads/git-annex"],
        )?;
        let mut reader = CatFile::start(repo)?;
        let listing = lister.stdout.take().expect("stdout was piped");
        let mut listing = BufReader::new(listing);
        let mut entry = Vec::new();
        loop {
            entry.clear();
            if listing
                .read_until(0, &mut entry)
                .map_err(git_io("ls-tree"))?
                == 0
            {
                break;
            }
            let entry = String::from_utf8_lossy(entry.strip_suffix(b"\0").unwrap_or(&entry));
            // `<mode> blob <oid>\t<path>`
            let Some((meta, path)) = entry.split_once('\t') else {
                continue;
            };
            let fields: Vec<&str> = meta.split(' ').collect();
            let [_, "blob", oid] = fields.as_slice() else {
                continue;
            };
            if !is_location_log(path) {
                continue;
            }
            if journalled.remove(path) {
                from_journal(path, &mut visit)?;
            } else if let Some(content) = reader.read(oid)? {
                visit(key_size(path), &LocationLog::parse(&content));
            }
        }
        finish(lister, "ls-tree")?;
        reader.finish()?;
    }
    // Logs of keys the branch has not seen committed yet.
    for path in journalled {
        from_journal(&path, &mut visit)?;
    }
    Ok(())
}

/// `<3 hex>/<3 hex>/<key file>.log`: where git-annex keeps location logs
/// (other per-key logs end `.log.met`, `.log.web`, …).
fn is_location_log(path: &str) -> bool {
    let parts: Vec<&str> = path.split('/').collect();
    let hex_dir = |d: &str| d.len() == 3 && d.bytes().all(|b| b.is_ascii_hexdigit());
    matches!(parts.as_slice(), [a, b, f]
        if hex_dir(a) && hex_dir(b) && f.len() > 4 && f.ends_with(".log"))
}

/// The size a location log's key records, 0 when it records none.
fn key_size(path: &str) -> u64 {
    let file = path.rsplit('/').next().unwrap_or(path);
    let file = file.strip_suffix(".log").unwrap_or(file);
    Key::parse(&unescape_key_file(file))
        .ok()
        .and_then(|k| k.size())
        .unwrap_or(0)
}

/// The key a key file name stands for (the inverse of `Key::key_file`).
fn unescape_key_file(file: &str) -> String {
    let mut out = String::with_capacity(file.len());
    let mut chars = file.chars();
    while let Some(c) = chars.next() {
        match c {
            '%' => out.push('/'),
            '&' => match chars.next() {
                Some('a') => out.push('&'),
                Some('s') => out.push('%'),
                Some('c') => out.push(':'),
                Some(other) => {
                    out.push('&');
                    out.push(other);
                }
                None => out.push('&'),
            },
            c => out.push(c),
        }
    }
    out
}

fn git_io(what: &'static str) -> impl FnOnce(std::io::Error) -> StatusError {
    move |source| StatusError::Git { what, source }
}

fn git(repo: &Repo, what: &'static str, args: &[&str]) -> Result<Child, StatusError> {
    Command::new("git")
        .arg("--git-dir")
        .arg(repo.git_dir())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(git_io(what))
}

/// Wait for a git child; its stderr carries the reason when it failed.
/// Only called once its stdout is read to the end, so stderr (small for
/// these commands) cannot have filled up and stalled it meanwhile.
fn finish(mut child: Child, what: &'static str) -> Result<(), StatusError> {
    drop(child.stdin.take());
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    let status = child.wait().map_err(git_io(what))?;
    if status.success() {
        Ok(())
    } else {
        Err(StatusError::GitFailed {
            what,
            stderr: one_line(&stderr),
        })
    }
}

/// `git cat-file --batch`, asked for one object at a time.
struct CatFile {
    child: Child,
    input: ChildStdin,
    output: BufReader<ChildStdout>,
}

impl CatFile {
    fn start(repo: &Repo) -> Result<CatFile, StatusError> {
        let mut child = git(repo, "cat-file", &["cat-file", "--batch"])?;
        let input = child.stdin.take().expect("stdin was piped");
        let output = BufReader::new(child.stdout.take().expect("stdout was piped"));
        Ok(CatFile {
            child,
            input,
            output,
        })
    }

    /// The blob's content; `None` when git says it is missing.
    fn read(&mut self, oid: &str) -> Result<Option<Vec<u8>>, StatusError> {
        writeln!(self.input, "{oid}").map_err(git_io("cat-file"))?;
        self.input.flush().map_err(git_io("cat-file"))?;
        let mut header = String::new();
        self.output
            .read_line(&mut header)
            .map_err(git_io("cat-file"))?;
        let header = header.trim_end();
        if header.ends_with(" missing") {
            return Ok(None);
        }
        let size: u64 = header
            .rsplit(' ')
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| StatusError::CatFile(header.to_owned()))?;
        let mut content = Vec::new();
        (&mut self.output)
            .take(size + 1)
            .read_to_end(&mut content)
            .map_err(git_io("cat-file"))?;
        if content.pop() != Some(b'\n') {
            return Err(StatusError::CatFile(header.to_owned()));
        }
        Ok(Some(content))
    }

    fn finish(self) -> Result<(), StatusError> {
        let CatFile { child, input, .. } = self;
        drop(input);
        finish(child, "cat-file")
    }
}

fn reach_text(r: &Reach) -> String {
    match r {
        Reach::Yes => "yes".into(),
        Reach::No(_) => "no".into(),
        Reach::Unknown => "-".into(),
        Reach::Nodes { up, of } => format!("{up}/{of}"),
    }
}

/// Bytes in IEC units, one decimal from KiB up.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut v = bytes as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// A count as shown: a `via` row stands for the whole cluster behind
/// another gateway, whose UUID no location log line ever names.
fn counted(r: &Row, shown: String) -> String {
    if r.kind == Kind::Via {
        "-".into()
    } else {
        shown
    }
}

/// The plain report (format in the module documentation).
pub fn render_text(rows: &[Row]) -> String {
    let header = [
        "NAME",
        "KIND",
        "UUID",
        "REACHABLE",
        "KEYS",
        "SIZE",
        "FREE",
        "DETAIL",
    ];
    let mut table: Vec<[String; 8]> = vec![header.map(str::to_owned)];
    for r in rows {
        let indent = if r.member { "  " } else { "" };
        let detail = match &r.reach {
            Reach::No(why) => why.clone(),
            Reach::Unknown if r.kind == Kind::Unreached => "no remote here leads to it".into(),
            _ => String::new(),
        };
        table.push([
            format!("{indent}{}", r.name),
            r.kind.as_str().to_owned(),
            r.uuid.clone(),
            reach_text(&r.reach),
            counted(r, r.keys.to_string()),
            counted(r, human(r.bytes)),
            r.free.map(human).unwrap_or_else(|| "-".into()),
            detail,
        ]);
    }
    let mut widths = [0usize; 8];
    for line in &table {
        for (w, cell) in widths.iter_mut().zip(line) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for line in &table {
        let mut cells = Vec::new();
        for (i, cell) in line.iter().enumerate() {
            // KEYS and SIZE are numbers: right-aligned; DETAIL is last and
            // free text, so not padded.
            cells.push(match i {
                4 | 5 => format!("{cell:>w$}", w = widths[i]),
                7 => cell.clone(),
                _ => format!("{cell:<w$}", w = widths[i]),
            });
        }
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// The report as one JSON object (one line).
pub fn render_json(repository: &str, rows: &[Row]) -> String {
    let row = |r: &Row| {
        let (reachable, error) = match &r.reach {
            Reach::Yes => ("true".to_owned(), "null".to_owned()),
            Reach::No(why) => ("false".to_owned(), json_str(why)),
            Reach::Unknown => ("null".to_owned(), "null".to_owned()),
            Reach::Nodes { up, .. } => ((*up > 0).to_string(), "null".to_owned()),
        };
        let free = r.free.map_or("null".to_owned(), |f| f.to_string());
        format!(
            "{{\"name\":{},\"kind\":\"{}\",\"uuid\":{},\"reachable\":{reachable},\"error\":{error},\"keys\":{},\"bytes\":{},\"free\":{free}",
            json_str(&r.name),
            r.kind.as_str(),
            json_str(&r.uuid),
            counted(r, r.keys.to_string()).replace('-', "null"),
            counted(r, r.bytes.to_string()).replace('-', "null"),
        )
    };
    let mut repo_row = String::new();
    let mut remotes = Vec::new();
    let mut clusters: Vec<String> = Vec::new();
    let mut nodes: Vec<String> = Vec::new();
    let flush = |clusters: &mut Vec<String>, nodes: &mut Vec<String>| {
        if let Some(c) = clusters.last_mut() {
            c.push_str(&format!(",\"nodes\":[{}]}}", nodes.join(",")));
        }
        nodes.clear();
    };
    for r in rows {
        match r.kind {
            Kind::Gateway => repo_row = format!("{}}}", row(r)),
            Kind::Proxied => remotes.push(format!("{}}}", row(r))),
            Kind::Cluster => {
                flush(&mut clusters, &mut nodes);
                let (up, of) = match r.reach {
                    Reach::Nodes { up, of } => (up, of),
                    _ => (0, 0),
                };
                clusters.push(format!(
                    "{},\"nodes_reachable\":{up},\"node_count\":{of}",
                    row(r)
                ));
            }
            Kind::Node | Kind::Via | Kind::Unreached => nodes.push(format!("{}}}", row(r))),
        }
    }
    flush(&mut clusters, &mut nodes);
    format!(
        "{{\"repository\":{},\"here\":{repo_row},\"proxied\":[{}],\"clusters\":[{}]}}\n",
        json_str(repository),
        remotes.join(","),
        clusters.join(",")
    )
}

fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use annex::branch::LogStatus;

    const U1: &str = "11111111-0000-4000-8000-000000000001";
    const U2: &str = "22222222-0000-4000-8000-000000000002";

    #[test]
    fn location_log_paths() {
        assert!(is_location_log("a1b/0f3/SHA256E-s6--ab.txt.log"));
        assert!(!is_location_log("a1b/0f3/SHA256E-s6--ab.txt.log.met"));
        assert!(!is_location_log("uuid.log"));
        assert!(!is_location_log("a1b/SHA256E-s6--ab.log"));
        assert!(!is_location_log("a1g/0f3/K.log"));
        assert!(!is_location_log("a1b/0f3/.log"));
    }

    #[test]
    fn sizes_from_escaped_key_files() {
        for key in ["SHA256E-s5242880--abc.bin", "URL-s12--http://x/a%b&c"] {
            let k = Key::parse(key).expect("valid key");
            assert_eq!(unescape_key_file(&k.key_file()), key);
            let path = format!(
                "{}/{}.log",
                k.hash_dir_lower().trim_end_matches('/'),
                k.key_file()
            );
            assert!(is_location_log(&path), "{path}");
            assert_eq!(key_size(&path), k.size().expect("sized"));
        }
        assert_eq!(key_size("abc/def/URL--http&c%%x.log"), 0);
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human(0), "0 B");
        assert_eq!(human(1023), "1023 B");
        assert_eq!(human(1024), "1.0 KiB");
        assert_eq!(human(5 * 1024 * 1024), "5.0 MiB");
        assert_eq!(human(u64::MAX), "16.0 EiB");
    }

    fn row(name: &str, kind: Kind, uuid: &str, reach: Reach, keys: u64, bytes: u64) -> Row {
        let mut r = Row::new(name.into(), kind, uuid.into(), None);
        (r.reach, r.keys, r.bytes) = (reach, keys, bytes);
        r
    }

    fn sample() -> Vec<Row> {
        let mut here = row("here", Kind::Gateway, "g", Reach::Yes, 0, 0);
        here.free = Some(2048);
        vec![
            here,
            row(
                "demo",
                Kind::Cluster,
                "ac",
                Reach::Nodes { up: 1, of: 2 },
                2,
                1100,
            ),
            row("n1", Kind::Node, U1, Reach::Yes, 2, 1100),
            row(
                "n2",
                Kind::Node,
                U2,
                Reach::No("n2: no repository at /x\"".into()),
                1,
                100,
            ),
        ]
    }

    #[test]
    fn text_is_aligned_with_reasons_last() {
        let want = "\
NAME  KIND     UUID                                  REACHABLE  KEYS     SIZE  FREE     DETAIL
here  gateway  g                                     yes           0      0 B  2.0 KiB
demo  cluster  ac                                    1/2           2  1.1 KiB  -
  n1  node     11111111-0000-4000-8000-000000000001  yes           2  1.1 KiB  -
  n2  node     22222222-0000-4000-8000-000000000002  no            1    100 B  -        n2: no repository at /x\"
";
        assert_eq!(render_text(&sample()), want);
    }

    #[test]
    fn json_nests_nodes_under_their_cluster() {
        let want = concat!(
            r#"{"repository":"/r \"q\"","here":{"name":"here","kind":"gateway","uuid":"g","reachable":true,"error":null,"keys":0,"bytes":0,"free":2048},"#,
            r#""proxied":[],"clusters":[{"name":"demo","kind":"cluster","uuid":"ac","reachable":true,"error":null,"keys":2,"bytes":1100,"free":null,"nodes_reachable":1,"node_count":2,"nodes":["#,
            r#"{"name":"n1","kind":"node","uuid":"11111111-0000-4000-8000-000000000001","reachable":true,"error":null,"keys":2,"bytes":1100,"free":null},"#,
            r#"{"name":"n2","kind":"node","uuid":"22222222-0000-4000-8000-000000000002","reachable":false,"error":"n2: no repository at /x\"","keys":1,"bytes":100,"free":null}]}]}"#,
            "\n"
        );
        assert_eq!(render_json("/r \"q\"", &sample()), want);
        assert_eq!(json_str("a\u{1}\n"), "\"a\\u0001\\n\"");
    }

    /// Committed logs and journal-only ones are both counted, the
    /// journal's version winning, each log once.
    #[test]
    fn scan_reads_branch_and_journal() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("r.git");
        let ok = Command::new("git")
            .args(["init", "-q", "--bare"])
            .arg(&dir)
            .status()
            .expect("git");
        assert!(ok.success());
        let mut repo = Repo::open(&dir).expect("open");
        repo.init(Some("test")).expect("init");
        let branch = repo.branch();
        let k1 = Key::parse("SHA256E-s100--aa.txt").expect("key");
        let k2 = Key::parse("SHA256E-s1000--bb.bin").expect("key");
        let k3 = Key::parse("URL--http://x/y").expect("key");
        let log = |k: &Key, u: &str, st: LogStatus| {
            branch.log_key_location(k, u, st).expect("log");
        };
        log(&k1, U1, LogStatus::Present);
        log(&k1, U2, LogStatus::Present);
        log(&k2, U1, LogStatus::Present);
        branch.commit().expect("commit");
        // Now only in the journal: k1 gone from U2, k3 new on U2.
        log(&k1, U2, LogStatus::Missing);
        log(&k3, U2, LogStatus::Present);
        branch
            .change_file("aaa/bbb/K.log.met", |_| b"junk".to_vec())
            .expect("met");
        let mut seen = Vec::new();
        scan_location_logs(&repo, |size, log| {
            let present: Vec<String> = log.present().into_iter().map(str::to_owned).collect();
            seen.push((size, present));
        })
        .expect("scan");
        seen.sort();
        assert_eq!(
            seen,
            vec![
                (0, vec![U2.to_owned()]),
                (100, vec![U1.to_owned()]),
                (1000, vec![U1.to_owned()]),
            ]
        );
    }

    #[test]
    fn members_follow_their_cluster() {
        let mut rows = sample();
        rows.insert(1, row("p", Kind::Proxied, "p", Reach::Yes, 0, 0));
        assert_eq!(
            cluster_members(&rows),
            vec![(2, [U1.to_owned(), U2.to_owned()].into_iter().collect())]
        );
    }
}
