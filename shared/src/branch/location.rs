//! Location logs (`<hashdirlower>/<keyFile>.log`): lines `<clock> <status> <uuid>`.
//!
//! Reading keeps, per UUID, the line with the highest clock; on equal
//! clocks the line nearer the top of the file wins (git-annex folds from the
//! right). Writing is a no-op when the UUID already has the status, and
//! otherwise rewrites the file compacted to one line per UUID in byte order.

use std::collections::BTreeMap;

use super::clock::VectorClock;
use super::log_lines;

/// Path of a key's location log in the branch, from the key's lower-case
/// hash directory (`abc/def`) and its file name.
pub fn location_log_path(hash_dir_lower: &str, key_file: &str) -> String {
    let dir = hash_dir_lower.trim_end_matches('/');
    if dir.is_empty() {
        format!("{key_file}.log")
    } else {
        format!("{dir}/{key_file}.log")
    }
}

/// Convenience over [`location_log_path`] for a parsed key.
pub fn location_log_path_for(key: &crate::key::Key) -> String {
    location_log_path(&key.hash_dir_lower(), &key.key_file())
}

/// The longest file name Linux file systems take (`NAME_MAX`).
pub const NAME_MAX: usize = 255;

/// The length of the journal file name the key's location log is written
/// under, when that is too long for the file system. The journal names a
/// file after its whole branch path (`abc_def_<keyfile>.log`), so a key of
/// about 244 bytes or more can be stored as an object but never logged;
/// receivers check this before taking the content.
pub fn location_log_too_long(key: &crate::key::Key) -> Option<usize> {
    let name = super::journal::journal_file_name(&location_log_path_for(key));
    (name.len() > NAME_MAX).then_some(name.len())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LogStatus {
    Present,
    Missing,
    Dead,
}

impl LogStatus {
    fn from_byte(b: u8) -> Option<LogStatus> {
        match b {
            b'1' => Some(LogStatus::Present),
            b'0' => Some(LogStatus::Missing),
            b'X' => Some(LogStatus::Dead),
            _ => None,
        }
    }

    fn as_char(self) -> char {
        match self {
            LogStatus::Present => '1',
            LogStatus::Missing => '0',
            LogStatus::Dead => 'X',
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocationLine {
    pub clock: VectorClock,
    pub status: LogStatus,
    pub uuid: String,
}

impl LocationLine {
    fn parse(line: &[u8]) -> Option<LocationLine> {
        let (clock, used) = VectorClock::parse_prefix(line)?;
        let rest = line[used..].strip_prefix(b" ")?;
        let (&st, rest) = rest.split_first()?;
        let status = LogStatus::from_byte(st)?;
        let info = rest.strip_prefix(b" ")?;
        // Non-UTF-8 info cannot be a UUID; such lines are ignored.
        let uuid = std::str::from_utf8(info).ok()?.to_owned();
        Some(LocationLine {
            clock,
            status,
            uuid,
        })
    }
}

/// A parsed location log: the winning line per UUID, ordered by UUID bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LocationLog {
    lines: BTreeMap<String, LocationLine>,
}

impl LocationLog {
    pub fn parse(content: &[u8]) -> LocationLog {
        let mut lines: BTreeMap<String, LocationLine> = BTreeMap::new();
        for l in log_lines(content).filter_map(LocationLine::parse) {
            match lines.get(&l.uuid) {
                // An earlier line with an equal or newer clock stays.
                Some(old) if old.clock >= l.clock => {}
                _ => {
                    lines.insert(l.uuid.clone(), l);
                }
            }
        }
        LocationLog { lines }
    }

    /// UUIDs whose winning line says present, in byte order.
    pub fn present(&self) -> Vec<&str> {
        self.with_status(|s| s == LogStatus::Present)
    }

    /// UUIDs whose winning line says missing or dead.
    pub fn not_present(&self) -> Vec<&str> {
        self.with_status(|s| s != LogStatus::Present)
    }

    fn with_status(&self, f: impl Fn(LogStatus) -> bool) -> Vec<&str> {
        self.lines
            .values()
            .filter(|l| f(l.status))
            .map(|l| l.uuid.as_str())
            .collect()
    }

    pub fn get(&self, uuid: &str) -> Option<&LocationLine> {
        self.lines.get(uuid)
    }

    pub fn lines(&self) -> impl Iterator<Item = &LocationLine> {
        self.lines.values()
    }

    pub fn format(&self) -> Vec<u8> {
        let mut out = String::new();
        for l in self.lines.values() {
            out.push_str(&format!("{} {} {}\n", l.clock, l.status.as_char(), l.uuid));
        }
        out.into_bytes()
    }
}

/// The new content of a location log after recording `status` for `uuid`,
/// or `None` when the log already says so (nothing to write).
///
/// The clock is `candidate`, advanced past any earlier line for that UUID.
pub fn change_location_log(
    old: &[u8],
    uuid: &str,
    status: LogStatus,
    candidate: VectorClock,
) -> Option<Vec<u8>> {
    let mut log = LocationLog::parse(old);
    if log.get(uuid).map(|l| l.status) == Some(status) {
        return None;
    }
    let previous = log_lines(old)
        .filter_map(LocationLine::parse)
        .filter(|l| l.uuid == uuid)
        .map(|l| l.clock);
    let clock = VectorClock::advance(candidate, previous);
    log.lines.insert(
        uuid.to_owned(),
        LocationLine {
            clock,
            status,
            uuid: uuid.to_owned(),
        },
    );
    Some(log.format())
}

#[cfg(test)]
mod tests {
    use super::*;

    const U1: &str = "11111111-1111-1111-1111-111111111111";
    const U2: &str = "22222222-2222-2222-2222-222222222222";
    const HERE: &str = "114cf930-fc7a-4a16-8b43-d99eb4802793";

    // Written by git-annex 10.20261026: `git annex add` here, then
    // setpresentkey U2 1, U1 1, U2 0, U2 0 within one second (the U2 0
    // line got clock+1 because U2 already had that second).
    const REAL: &str = "1795623794s 1 11111111-1111-1111-1111-111111111111\n\
                        1795623794s 1 114cf930-fc7a-4a16-8b43-d99eb4802793\n\
                        1795623795s 0 22222222-2222-2222-2222-222222222222\n";

    #[test]
    fn journal_name_limit() {
        let key = |n: usize| crate::key::Key::parse(&format!("WORM-s1--{}", "a".repeat(n - 9)));
        // abc_def_ + key + .log
        assert_eq!(location_log_too_long(&key(243).expect("key")), None);
        assert_eq!(location_log_too_long(&key(244).expect("key")), Some(256));
        // `_` is doubled in journal names
        let under = crate::key::Key::parse(&format!("WORM-s1--{}", "_".repeat(120))).expect("key");
        assert_eq!(location_log_too_long(&under), Some(8 + 9 + 240 + 4));
    }

    #[test]
    fn path() {
        assert_eq!(
            location_log_path("992/280", "SHA256E-s6--5891.txt"),
            "992/280/SHA256E-s6--5891.txt.log"
        );
        assert_eq!(location_log_path("992/280/", "K"), "992/280/K.log");
    }

    #[test]
    fn parses_real_log() {
        let log = LocationLog::parse(REAL.as_bytes());
        assert_eq!(log.present(), vec![U1, HERE]);
        assert_eq!(log.not_present(), vec![U2]);
        assert_eq!(log.format(), REAL.as_bytes());
    }

    #[test]
    fn highest_clock_wins_and_ties_go_to_first_line() {
        let log = LocationLog::parse(format!("5s 1 {U1}\n7s 0 {U1}\n6s 1 {U1}\n").as_bytes());
        assert_eq!(log.not_present(), vec![U1]);
        let tie = LocationLog::parse(format!("5s 0 {U1}\n5s 1 {U1}\n").as_bytes());
        assert_eq!(tie.not_present(), vec![U1]);
        let tie = LocationLog::parse(format!("5s 1 {U1}\n5s 0 {U1}\n").as_bytes());
        assert_eq!(tie.present(), vec![U1]);
    }

    #[test]
    fn bad_lines_ignored_crlf_split() {
        let log =
            LocationLog::parse(format!("junk\n5s 2 {U2}\r\n5s 1 {U1}\r\n\n5 X {U2}").as_bytes());
        assert_eq!(log.present(), vec![U1]);
        assert_eq!(log.get(U2).map(|l| l.status), Some(LogStatus::Dead));
    }

    #[test]
    fn writer_noop_when_same_status() {
        assert_eq!(
            change_location_log(
                REAL.as_bytes(),
                U1,
                LogStatus::Present,
                VectorClock::from_secs(1)
            ),
            None
        );
        assert_eq!(
            change_location_log(
                REAL.as_bytes(),
                U2,
                LogStatus::Missing,
                VectorClock::from_secs(1)
            ),
            None
        );
    }

    #[test]
    fn writer_compacts_sorted_and_advances_clock() {
        let old = format!("9s 1 {U2}\n3s 1 {U1}\n2s 0 {U1}\n");
        let new = change_location_log(
            old.as_bytes(),
            U2,
            LogStatus::Missing,
            VectorClock::from_secs(9),
        )
        .expect("changed");
        assert_eq!(
            String::from_utf8(new).expect("utf8"),
            format!("3s 1 {U1}\n10s 0 {U2}\n")
        );
        let new = change_location_log(b"", U1, LogStatus::Present, VectorClock::from_secs(4))
            .expect("changed");
        assert_eq!(new, format!("4s 1 {U1}\n").into_bytes());
    }
}
