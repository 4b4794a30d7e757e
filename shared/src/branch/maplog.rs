//! New-format map logs (`proxy.log`, `cluster.log`, `maxsize.log`,
//! `export.log`, …): lines `<clock> <field> <value>`.
//!
//! One entry per field survives: the highest clock, a later line winning
//! ties. A line whose value does not parse is ignored entirely (it does not
//! take part in choosing the winner). Written sorted by field bytes.

use std::collections::{BTreeMap, BTreeSet};

use super::clock::VectorClock;
use super::log_lines;
use super::uuidlog::{insert_best, LogEntry};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapLog<V> {
    pub entries: BTreeMap<String, LogEntry<V>>,
}

impl<V> Default for MapLog<V> {
    fn default() -> Self {
        MapLog {
            entries: BTreeMap::new(),
        }
    }
}

fn split_line(line: &[u8]) -> Option<(VectorClock, &str, &str)> {
    let (clock, used) = VectorClock::parse_prefix(line)?;
    let rest = std::str::from_utf8(line[used..].strip_prefix(b" ")?).ok()?;
    let (field, value) = rest.split_once(' ')?;
    Some((clock, field, value))
}

impl<V> MapLog<V> {
    pub fn parse_with(content: &[u8], parse_value: impl Fn(&str) -> Option<V>) -> MapLog<V> {
        let mut entries = BTreeMap::new();
        for line in log_lines(content) {
            let Some((clock, field, raw)) = split_line(line) else {
                continue;
            };
            let Some(value) = parse_value(raw) else {
                continue;
            };
            insert_best(&mut entries, field.to_owned(), LogEntry { clock, value });
        }
        MapLog { entries }
    }

    pub fn get(&self, field: &str) -> Option<&V> {
        self.entries.get(field).map(|e| &e.value)
    }

    /// Set a field's value with a clock after its previous one.
    pub fn set(&mut self, field: &str, value: V, candidate: VectorClock) {
        let prev = self.entries.get(field).map(|e| e.clock);
        let clock = VectorClock::advance(candidate, prev);
        self.entries
            .insert(field.to_owned(), LogEntry { clock, value });
    }

    pub fn format_with(&self, fmt_value: impl Fn(&V) -> String) -> Vec<u8> {
        let mut out = String::new();
        for (field, e) in &self.entries {
            out.push_str(&format!("{} {} {}\n", e.clock, field, fmt_value(&e.value)));
        }
        out.into_bytes()
    }
}

impl MapLog<String> {
    pub fn parse(content: &[u8]) -> MapLog<String> {
        MapLog::parse_with(content, |v| Some(v.to_owned()))
    }

    pub fn format(&self) -> Vec<u8> {
        self.format_with(|v| v.clone())
    }
}

/// One remote a proxy serves: `<uuid>:<remotename>`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Proxy {
    pub uuid: String,
    pub name: String,
}

/// Parse a `proxy.log` value. Like git-annex, a word that is not
/// `<uuid>:<name>` makes the whole line invalid; names that are not legal
/// git remote names are kept here and dropped by [`valid_proxies`].
pub fn parse_proxy_list(value: &str) -> Option<BTreeSet<Proxy>> {
    let mut out = BTreeSet::new();
    let mut rest = value;
    while !rest.is_empty() {
        // The uuid runs to the first colon (it may even contain spaces, as
        // git-annex's parser allows), the name to the next space.
        let colon = rest.find(':')?;
        let uuid = &rest[..colon];
        let after = &rest[colon + 1..];
        let end = after.find(' ').unwrap_or(after.len());
        let name = &after[..end];
        if uuid.is_empty() || name.is_empty() {
            return None;
        }
        out.insert(Proxy {
            uuid: uuid.to_owned(),
            name: name.to_owned(),
        });
        rest = after[end..].strip_prefix(' ').unwrap_or(&after[end..]);
    }
    Some(out)
}

pub fn format_proxy_list(proxies: &BTreeSet<Proxy>) -> String {
    let words: Vec<String> = proxies
        .iter()
        .map(|p| format!("{}:{}", p.uuid, p.name))
        .collect();
    words.join(" ")
}

/// Drop proxies whose name is not a legal git remote name.
pub fn valid_proxies(proxies: &BTreeSet<Proxy>) -> BTreeSet<Proxy> {
    proxies
        .iter()
        .filter(|p| is_legal_remote_name(&p.name))
        .cloned()
        .collect()
}

/// git-annex's rule for remote names it will use: non-empty, only
/// alphanumerics and `_ - .`, not starting with `.` or `-`.
pub fn is_legal_remote_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(['.', '-'])
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// Parse `proxy.log`: proxy UUID → the remotes it proxies.
pub fn parse_proxy_log(content: &[u8]) -> MapLog<BTreeSet<Proxy>> {
    MapLog::parse_with(content, parse_proxy_list)
}

pub fn format_proxy_log(log: &MapLog<BTreeSet<Proxy>>) -> Vec<u8> {
    log.format_with(format_proxy_list)
}

/// Parse a `cluster.log` value: space-separated node UUIDs.
pub fn parse_node_list(value: &str) -> Option<BTreeSet<String>> {
    let mut out = BTreeSet::new();
    let mut rest = value;
    while !rest.is_empty() {
        let end = rest.find(' ').unwrap_or(rest.len());
        if end == 0 {
            return None;
        }
        out.insert(rest[..end].to_owned());
        rest = rest[end..].strip_prefix(' ').unwrap_or(&rest[end..]);
    }
    Some(out)
}

pub fn format_node_list(nodes: &BTreeSet<String>) -> String {
    nodes
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Parse `cluster.log`: cluster UUID → node UUIDs. Entries whose field is
/// not a cluster UUID are dropped, as git-annex does on load.
pub fn parse_cluster_log(content: &[u8]) -> MapLog<BTreeSet<String>> {
    let mut log = MapLog::parse_with(content, parse_node_list);
    log.entries.retain(|k, _| is_cluster_uuid(k));
    log
}

pub fn format_cluster_log(log: &MapLog<BTreeSet<String>>) -> Vec<u8> {
    log.format_with(format_node_list)
}

pub use crate::uuids::is_cluster_uuid;

/// Parse `maxsize.log`: repository UUID → maximum size in bytes.
pub fn parse_maxsize_log(content: &[u8]) -> MapLog<u64> {
    MapLog::parse_with(content, |v| v.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Observed with git-annex 10.20261026 (spec §6.1, §7.1, and maxsize here).
    const PROXY: &str = "1795616719s 8539dd90-0000-4000-8000-000000000491 \
        2c380728-0000-4000-8000-000000003292:n3 ac15440a-d31a-8d6e-a592-60d4fcf6a0f2:mycluster \
        b76e0a72-0000-4000-8000-000000000001:n2 e0bc0cf7-0000-4000-8000-000000000002:n1\n";
    const CLUSTER: &str = "1795616719s ac15440a-d31a-8d6e-a592-60d4fcf6a0f2 \
        b76e0a72-0000-4000-8000-000000000001 e0bc0cf7-0000-4000-8000-000000000002\n";
    const MAXSIZE: &str = "1795623794s 114cf930-fc7a-4a16-8b43-d99eb4802793 10000000000\n";

    #[test]
    fn proxy_log_roundtrip() {
        let log = parse_proxy_log(PROXY.as_bytes());
        let p = log
            .get("8539dd90-0000-4000-8000-000000000491")
            .expect("entry");
        assert_eq!(p.len(), 4);
        assert!(p.contains(&Proxy {
            uuid: "2c380728-0000-4000-8000-000000003292".into(),
            name: "n3".into()
        }));
        assert_eq!(format_proxy_log(&log), PROXY.as_bytes());
    }

    #[test]
    fn proxy_list_edge_cases() {
        assert_eq!(parse_proxy_list(""), Some(BTreeSet::new()));
        assert_eq!(parse_proxy_list("u:n ").map(|s| s.len()), Some(1));
        assert_eq!(parse_proxy_list("u:n junk"), None);
        assert_eq!(parse_proxy_list("u:"), None);
        let bad = parse_proxy_list("u:-x v:ok w:a/b").expect("parses");
        let names: Vec<String> = valid_proxies(&bad).into_iter().map(|p| p.name).collect();
        assert_eq!(names, vec!["ok"]);
        // An empty set is written with the separator space, as git-annex does.
        let mut log = MapLog::default();
        log.set("p", BTreeSet::new(), VectorClock::from_secs(3));
        assert_eq!(format_proxy_log(&log), b"3s p \n");
        assert_eq!(parse_proxy_log(b"3s p \n").get("p"), Some(&BTreeSet::new()));
    }

    #[test]
    fn cluster_log_roundtrip_and_filter() {
        let log = parse_cluster_log(CLUSTER.as_bytes());
        let nodes = log
            .get("ac15440a-d31a-8d6e-a592-60d4fcf6a0f2")
            .expect("entry");
        assert_eq!(nodes.len(), 2);
        assert_eq!(format_cluster_log(&log), CLUSTER.as_bytes());
        assert!(
            parse_cluster_log(b"1s 11111111-1111-1111-1111-111111111111 a\n")
                .entries
                .is_empty()
        );
        assert!(
            parse_cluster_log(b"1s ac15440a-d31a-8d6e-a592-60d4fcf6a0f2 a  b\n")
                .entries
                .is_empty()
        );
        assert!(is_cluster_uuid("ac15440a-d31a-8d6e-a592-60d4fcf6a0f2"));
        assert!(!is_cluster_uuid("ac15440a-d31a-4d6e-a592-60d4fcf6a0f2"));
    }

    #[test]
    fn best_by_clock_later_wins_ties_bad_lines_ignored() {
        let log = MapLog::parse(b"5s f a\n5s f b\n4s f c\n5 g x y\n");
        assert_eq!(log.get("f").map(String::as_str), Some("b"));
        assert_eq!(log.get("g").map(String::as_str), Some("x y"));
        let m = parse_maxsize_log(
            format!("{MAXSIZE}9s 114cf930-fc7a-4a16-8b43-d99eb4802793 nope\n").as_bytes(),
        );
        assert_eq!(
            m.get("114cf930-fc7a-4a16-8b43-d99eb4802793"),
            Some(&10_000_000_000)
        );
        assert!(MapLog::parse(b"5s fieldonly\n").entries.is_empty());
    }

    #[test]
    fn set_advances_clock() {
        let mut log = MapLog::parse(MAXSIZE.as_bytes());
        log.set(
            "114cf930-fc7a-4a16-8b43-d99eb4802793",
            "5".into(),
            VectorClock::from_secs(1795623794),
        );
        assert_eq!(
            log.format(),
            b"1795623795s 114cf930-fc7a-4a16-8b43-d99eb4802793 5\n"
        );
    }
}
