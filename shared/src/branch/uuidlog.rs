//! UUID-based logs in the old format (`uuid.log`, `trust.log`, `group.log`,
//! `preferred-content.log`, `remote.log`, …): lines
//! `<uuid> <value…> timestamp=<clock>`.
//!
//! One entry per UUID survives: the highest clock, a later line winning
//! ties. Lines without a timestamp (very old logs) have an unknown clock
//! that loses to any known one. Written sorted by UUID bytes.

use std::collections::BTreeMap;

use super::clock::VectorClock;
use super::log_lines;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEntry<V> {
    pub clock: VectorClock,
    pub value: V,
}

/// Insert by git-annex's "best" rule: the old entry stays only when its
/// clock is strictly newer.
pub(crate) fn insert_best<K: Ord, V>(map: &mut BTreeMap<K, LogEntry<V>>, k: K, e: LogEntry<V>) {
    match map.get(&k) {
        Some(old) if old.clock > e.clock => {}
        _ => {
            map.insert(k, e);
        }
    }
}

/// A parsed UUID-based log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UuidLog<V> {
    pub entries: BTreeMap<String, LogEntry<V>>,
}

impl<V> Default for UuidLog<V> {
    fn default() -> Self {
        UuidLog {
            entries: BTreeMap::new(),
        }
    }
}

/// Split one line into UUID, raw value and clock.
fn split_line(line: &[u8]) -> Option<(&str, &str, VectorClock)> {
    let line = std::str::from_utf8(line).ok()?;
    let (uuid, rest) = match line.find(' ') {
        Some(i) => (&line[..i], &line[i..]),
        None => (line, ""),
    };
    if uuid.is_empty() {
        return None;
    }
    // The timestamp is recognised only as the last space-separated word.
    if let Some(i) = rest.rfind(" timestamp=") {
        if let Some(c) = VectorClock::parse(&rest.as_bytes()[i + " timestamp=".len()..]) {
            let value = if i == 0 { "" } else { &rest[1..i] };
            return Some((uuid, value, c));
        }
    }
    Some((
        uuid,
        rest.strip_prefix(' ').unwrap_or(rest),
        VectorClock::Unknown,
    ))
}

impl<V> UuidLog<V> {
    /// Parse, keeping only lines whose value `parse_value` accepts.
    pub fn parse_with(content: &[u8], parse_value: impl Fn(&str) -> Option<V>) -> UuidLog<V> {
        let mut entries = BTreeMap::new();
        for line in log_lines(content) {
            let Some((uuid, raw, clock)) = split_line(line) else {
                continue;
            };
            let Some(value) = parse_value(raw) else {
                continue;
            };
            insert_best(&mut entries, uuid.to_owned(), LogEntry { clock, value });
        }
        UuidLog { entries }
    }

    pub fn get(&self, uuid: &str) -> Option<&V> {
        self.entries.get(uuid).map(|e| &e.value)
    }

    /// Set `uuid`'s value with a clock after its previous one.
    pub fn set(&mut self, uuid: &str, value: V, candidate: VectorClock) {
        let prev = self.entries.get(uuid).map(|e| e.clock);
        let clock = VectorClock::advance(candidate, prev);
        self.entries
            .insert(uuid.to_owned(), LogEntry { clock, value });
    }

    pub fn format_with(&self, fmt_value: impl Fn(&V) -> String) -> Vec<u8> {
        let mut out = String::new();
        for (uuid, e) in &self.entries {
            out.push_str(uuid);
            out.push(' ');
            out.push_str(&fmt_value(&e.value));
            if e.clock != VectorClock::Unknown {
                out.push_str(&format!(" timestamp={}", e.clock));
            }
            out.push('\n');
        }
        out.into_bytes()
    }
}

impl UuidLog<String> {
    /// Parse with the value kept as text (descriptions, trust levels, …).
    pub fn parse(content: &[u8]) -> UuidLog<String> {
        UuidLog::parse_with(content, |v| Some(v.to_owned()))
    }

    pub fn format(&self) -> Vec<u8> {
        self.format_with(|v| v.clone())
    }
}

/// Change one UUID's value in a log's text: the new text to write.
pub fn change_uuid_log(old: &[u8], uuid: &str, value: &str, candidate: VectorClock) -> Vec<u8> {
    let mut log = UuidLog::parse(old);
    log.set(uuid, value.to_owned(), candidate);
    log.format()
}

/// `remote.log` values: `k=v k=v …`. Words without `=` are ignored, as
/// git-annex does.
pub fn parse_remote_config(value: &str) -> BTreeMap<String, String> {
    value
        .split(' ')
        .filter_map(|w| w.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // uuid.log written by git-annex 10.20261026 (initremote d, describe here).
    const REAL_UUID: &str = "01940277-6fbb-4325-a189-664eb56a5f96 d timestamp=1795623794s\n\
                             114cf930-fc7a-4a16-8b43-d99eb4802793 my fancy desc timestamp=1795623794s\n";
    const REAL_REMOTE: &str =
        "01940277-6fbb-4325-a189-664eb56a5f96 encryption=none name=d type=directory timestamp=1795623794s\n";

    #[test]
    fn real_logs_roundtrip() {
        let log = UuidLog::parse(REAL_UUID.as_bytes());
        assert_eq!(
            log.get("114cf930-fc7a-4a16-8b43-d99eb4802793")
                .map(String::as_str),
            Some("my fancy desc")
        );
        assert_eq!(log.format(), REAL_UUID.as_bytes());
        let r = UuidLog::parse(REAL_REMOTE.as_bytes());
        let cfg = parse_remote_config(
            r.get("01940277-6fbb-4325-a189-664eb56a5f96")
                .expect("entry"),
        );
        assert_eq!(cfg.get("type").map(String::as_str), Some("directory"));
        assert_eq!(cfg.get("name").map(String::as_str), Some("d"));
        assert_eq!(r.format(), REAL_REMOTE.as_bytes());
    }

    #[test]
    fn later_line_wins_ties_newer_clock_wins() {
        let log = UuidLog::parse(b"u a timestamp=5s\nu b timestamp=5s\nu c timestamp=4s\n");
        assert_eq!(log.get("u").map(String::as_str), Some("b"));
        let log = UuidLog::parse(b"u new timestamp=9s\nu old timestamp=8s\n");
        assert_eq!(log.get("u").map(String::as_str), Some("new"));
    }

    #[test]
    fn missing_or_bad_timestamp_is_unknown() {
        let log = UuidLog::parse(b"u old desc\nv x timestamp=zz\nw timestamp=3s\n");
        assert_eq!(log.entries["u"].clock, VectorClock::Unknown);
        assert_eq!(log.get("v").map(String::as_str), Some("x timestamp=zz"));
        assert_eq!(log.get("w").map(String::as_str), Some(""));
        let log = UuidLog::parse(b"u known timestamp=1s\nu unknown\n");
        assert_eq!(log.get("u").map(String::as_str), Some("known"));
        assert_eq!(log.format(), b"u known timestamp=1s\n");
    }

    #[test]
    fn change_sorts_and_advances() {
        let out = change_uuid_log(b"b x timestamp=10s\n", "a", "y", VectorClock::from_secs(10));
        assert_eq!(out, b"a y timestamp=10s\nb x timestamp=10s\n");
        let out = change_uuid_log(&out, "b", "z", VectorClock::from_secs(10));
        assert_eq!(out, b"a y timestamp=10s\nb z timestamp=11s\n");
    }

    #[test]
    fn typed_values() {
        let trust = UuidLog::parse_with(b"a 1 timestamp=1s\nb Q timestamp=1s\n", |v| match v {
            "1" | "0" | "?" | "X" => Some(v.to_owned()),
            _ => None,
        });
        assert_eq!(trust.entries.len(), 1);
    }
}
