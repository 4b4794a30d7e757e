//! Clocks as git-annex reads and writes them.
//!
//! * [`monotonic_seconds`]: what `GETTIMESTAMP` answers and `REMOVE-BEFORE`
//!   is compared with (`Utility/MonotonicClock.hs`).
//! * [`PosixTime`]: POSIX seconds with up to picosecond fractions, written as
//!   Haskell shows them (`1795616530.409793404s`); used for vector clocks in
//!   the git-annex branch, transfer info files and retention timestamps.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use nix::time::{clock_gettime, ClockId};

const PICOS_PER_SEC: i128 = 1_000_000_000_000;

/// Whole seconds of a clock that keeps counting while the machine is
/// suspended (CLOCK_BOOTTIME on Linux; CLOCK_MONOTONIC where that is missing).
pub fn monotonic_seconds() -> u64 {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if let Ok(t) = clock_gettime(ClockId::CLOCK_BOOTTIME) {
        return u64::try_from(t.tv_sec()).unwrap_or(0);
    }
    // CLOCK_MONOTONIC exists on every platform nix supports; a failure here
    // would mean a broken libc, and 0 only makes REMOVE-BEFORE refuse.
    clock_gettime(ClockId::CLOCK_MONOTONIC)
        .map(|t| u64::try_from(t.tv_sec()).unwrap_or(0))
        .unwrap_or(0)
}

/// A POSIX time with picosecond resolution, like Haskell's `POSIXTime`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PosixTime {
    picos: i128,
}

impl PosixTime {
    pub fn from_secs(secs: i64) -> PosixTime {
        PosixTime {
            picos: i128::from(secs) * PICOS_PER_SEC,
        }
    }

    pub fn from_picos(picos: i128) -> PosixTime {
        PosixTime { picos }
    }

    /// The current time, to the nanosecond.
    pub fn now() -> PosixTime {
        let picos = match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => d.as_nanos() as i128 * 1000,
            Err(e) => -(e.duration().as_nanos() as i128) * 1000,
        };
        PosixTime { picos }
    }

    pub fn picos(self) -> i128 {
        self.picos
    }

    /// Whole seconds, rounded toward zero.
    pub fn secs(self) -> i128 {
        self.picos / PICOS_PER_SEC
    }

    /// The same time without its fraction (toward zero).
    pub fn truncate_to_secs(self) -> PosixTime {
        PosixTime {
            picos: self.secs() * PICOS_PER_SEC,
        }
    }

    pub fn add_secs(self, secs: i64) -> PosixTime {
        PosixTime {
            picos: self.picos.saturating_add(i128::from(secs) * PICOS_PER_SEC),
        }
    }

    /// Parses `[+-]SECS[.FRACTION][s]` (`Utility/TimeStamp.hs`). Digits past
    /// the twelfth fractional one are dropped. As in git-annex, the fraction
    /// is subtracted only when the whole part is negative, so `-0.5` reads
    /// as +0.5.
    pub fn parse(s: &str) -> Option<PosixTime> {
        let s = s.strip_suffix('s').unwrap_or(s);
        let (negative, s) = match s.as_bytes().first()? {
            b'-' => (true, &s[1..]),
            b'+' => (false, &s[1..]),
            _ => (false, s),
        };
        let (whole, frac) = match s.split_once('.') {
            Some((w, f)) => (w, Some(f)),
            None => (s, None),
        };
        if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let whole: i128 = whole.parse().ok()?;
        let whole = if negative { -whole } else { whole };
        let frac_picos = match frac {
            None => 0,
            Some(f) if f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit()) => return None,
            Some(f) => {
                let first12: String = f.chars().chain(std::iter::repeat('0')).take(12).collect();
                first12.parse::<i128>().ok()?
            }
        };
        let base = whole.checked_mul(PICOS_PER_SEC)?;
        let picos = if whole < 0 {
            base.checked_sub(frac_picos)?
        } else {
            base.checked_add(frac_picos)?
        };
        Some(PosixTime { picos })
    }
}

impl fmt::Display for PosixTime {
    /// As Haskell shows a `NominalDiffTime`: fraction without trailing
    /// zeros, then `s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.picos < 0 { "-" } else { "" };
        let abs = self.picos.unsigned_abs();
        let whole = abs / PICOS_PER_SEC as u128;
        let frac = abs % PICOS_PER_SEC as u128;
        if frac == 0 {
            write!(f, "{sign}{whole}s")
        } else {
            let digits = format!("{frac:012}");
            write!(f, "{sign}{whole}.{}s", digits.trim_end_matches('0'))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn posix_time_formats_like_haskell() {
        let t = PosixTime::parse("1795616530.409793404s").expect("parses");
        assert_eq!(t.to_string(), "1795616530.409793404s");
        assert_eq!(PosixTime::from_secs(1795615816).to_string(), "1795615816s");
        assert_eq!(PosixTime::from_picos(1_500_000_000_000).to_string(), "1.5s");
        assert_eq!(
            PosixTime::from_picos(-1_500_000_000_000).to_string(),
            "-1.5s"
        );
        assert_eq!(PosixTime::from_picos(1).to_string(), "0.000000000001s");
    }

    #[test]
    fn posix_time_parse_accepts_git_annex_forms() {
        let p = |s| PosixTime::parse(s).map(PosixTime::picos);
        assert_eq!(p("1317929189.157237s"), Some(1317929189_157237000000));
        assert_eq!(p("1317929189.157237"), Some(1317929189_157237000000));
        assert_eq!(p("1795615816"), Some(1795615816 * PICOS_PER_SEC));
        assert_eq!(p("+5s"), Some(5 * PICOS_PER_SEC));
        assert_eq!(p("-1.5s"), Some(-1_500_000_000_000));
        // git-annex's quirk: the fraction is added when the whole part is 0.
        assert_eq!(p("-0.5"), Some(500_000_000_000));
        // Beyond picoseconds is truncated.
        assert_eq!(p("1.0000000000019"), Some(PICOS_PER_SEC + 1));
        for bad in [
            "", "s", "1.", ".5", "1.5ss", "1s5", "x", "1.5x", "--1", "1e5",
        ] {
            assert_eq!(PosixTime::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn monotonic_matches_real_git_annex_shell() {
        use std::io::{BufRead, BufReader, Write};
        use std::process::{Command, Stdio};
        let shell = testkit::real_git_annex_shell();
        let repo = crate::store::testutil::RealRepo::init();
        let mut child = Command::new(shell)
            .args([
                "p2pstdio",
                repo.path_str(),
                "11111111-2222-3333-4444-555555555555",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn git-annex-shell");
        let mut stdin = child.stdin.take().expect("stdin");
        let mut out = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        out.read_line(&mut line).expect("AUTH-SUCCESS");
        stdin
            .write_all(b"VERSION 4\nGETTIMESTAMP\n")
            .expect("write");
        stdin.flush().expect("flush");
        line.clear();
        out.read_line(&mut line).expect("VERSION");
        line.clear();
        let before = monotonic_seconds();
        out.read_line(&mut line).expect("TIMESTAMP");
        let after = monotonic_seconds();
        drop(stdin);
        let _ = child.wait();
        let theirs: u64 = line
            .trim()
            .strip_prefix("TIMESTAMP ")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("bad reply {line:?}"));
        assert!(
            before.saturating_sub(1) <= theirs && theirs <= after + 1,
            "{before} {theirs} {after}"
        );
    }
}
