//! Vector clocks: the timestamps of git-annex branch log lines.
//!
//! Kept local to the branch module (rather than using the crate's `clock`
//! module) so the log formats have no dependency outside this directory.
//! Values are POSIX seconds held exactly in picoseconds, the resolution
//! git-annex keeps, so that parsing and formatting round-trip.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

const PICO: i128 = 1_000_000_000_000;

/// A log line's timestamp. `Unknown` (very old logs without a timestamp)
/// orders before every known time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum VectorClock {
    Unknown,
    /// POSIX time in picoseconds.
    At(i128),
}

impl VectorClock {
    /// A clock at whole seconds.
    pub fn from_secs(secs: i64) -> VectorClock {
        VectorClock::At(i128::from(secs) * PICO)
    }

    /// Parse a whole token such as `1795615816s`, `1317929189.157237s`,
    /// `-5` (the trailing `s` is optional).
    pub fn parse(token: &[u8]) -> Option<VectorClock> {
        match VectorClock::parse_prefix(token) {
            Some((c, used)) if used == token.len() => Some(c),
            _ => None,
        }
    }

    /// Parse a clock at the start of `input`, returning it and the number of
    /// bytes it took.
    pub fn parse_prefix(input: &[u8]) -> Option<(VectorClock, usize)> {
        let mut i = 0;
        let negative = match input.first() {
            Some(b'-') => {
                i += 1;
                true
            }
            Some(b'+') => {
                i += 1;
                false
            }
            _ => false,
        };
        let start = i;
        while i < input.len() && input[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return None;
        }
        let whole = parse_digits(&input[start..i])?;
        let mut frac: i128 = 0;
        if input.get(i) == Some(&b'.') {
            let fstart = i + 1;
            let mut j = fstart;
            while j < input.len() && input[j].is_ascii_digit() {
                j += 1;
            }
            if j == fstart {
                return None;
            }
            frac = frac_to_pico(&input[fstart..j]);
            i = j;
        }
        if input.get(i) == Some(&b's') {
            i += 1;
        }
        // git-annex applies the sign to the whole part only when that part
        // is itself negative, so "-0.5" reads as +0.5; keep that quirk.
        let whole = if negative { -whole } else { whole };
        let pico = if whole < 0 {
            whole.checked_mul(PICO)?.checked_sub(frac)?
        } else {
            whole.checked_mul(PICO)?.checked_add(frac)?
        };
        Some((VectorClock::At(pico), i))
    }

    /// The clock a new line should carry: GIT_ANNEX_VECTOR_CLOCK when set and
    /// valid, else the current time truncated to whole seconds.
    pub fn candidate_now() -> VectorClock {
        if let Some(v) = std::env::var_os("GIT_ANNEX_VECTOR_CLOCK") {
            if let Some(c) = VectorClock::parse(v.as_encoded_bytes()) {
                return c;
            }
        }
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        VectorClock::from_secs(i64::try_from(secs).unwrap_or(i64::MAX))
    }

    /// The clock to write given a candidate and the clocks of the lines it
    /// supersedes: a clock that would not be newer than the newest previous
    /// one is moved to one second after it.
    pub fn advance(
        candidate: VectorClock,
        previous: impl IntoIterator<Item = VectorClock>,
    ) -> VectorClock {
        match previous.into_iter().max() {
            Some(VectorClock::At(p)) if VectorClock::At(p) >= candidate => {
                VectorClock::At(p + PICO)
            }
            _ => candidate,
        }
    }
}

fn parse_digits(d: &[u8]) -> Option<i128> {
    let mut v: i128 = 0;
    for &c in d {
        v = v.checked_mul(10)?.checked_add(i128::from(c - b'0'))?;
    }
    Some(v)
}

/// Fraction digits to picoseconds; digits beyond the twelfth are dropped,
/// which is where git-annex's fixed-point time stops too.
fn frac_to_pico(d: &[u8]) -> i128 {
    let mut v: i128 = 0;
    for k in 0..12 {
        let digit = d.get(k).map(|c| i128::from(c - b'0')).unwrap_or(0);
        v = v * 10 + digit;
    }
    v
}

impl fmt::Display for VectorClock {
    /// Formats as git-annex does: `0` for unknown, else seconds with the
    /// fraction (trailing zeros removed) and an `s` suffix.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            VectorClock::Unknown => f.write_str("0"),
            // Written as Haskell shows a POSIX time, like every other clock.
            VectorClock::At(p) => crate::clock::PosixTime::from_picos(p).fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats_spec_examples() {
        for s in ["1795615816s", "1317929189.157237s", "0.5s", "-5s", "-3.25s"] {
            let c = VectorClock::parse(s.as_bytes()).expect(s);
            assert_eq!(c.to_string(), s);
        }
        assert_eq!(
            VectorClock::parse(b"1795615816"),
            VectorClock::parse(b"1795615816s")
        );
        assert_eq!(
            VectorClock::parse(b"12.50s").map(|c| c.to_string()),
            Some("12.5s".into())
        );
        assert_eq!(
            VectorClock::parse(b"-0.5s").map(|c| c.to_string()),
            Some("0.5s".into())
        );
        assert_eq!(VectorClock::parse(b"12x"), None);
        assert_eq!(VectorClock::parse(b"s"), None);
        assert_eq!(VectorClock::parse(b"1."), None);
        assert_eq!(VectorClock::parse(b""), None);
        assert_eq!(VectorClock::Unknown.to_string(), "0");
    }

    #[test]
    fn ordering_and_advance() {
        let a = VectorClock::from_secs(100);
        let b = VectorClock::parse(b"100.5s").expect("valid");
        assert!(VectorClock::Unknown < a && a < b);
        assert_eq!(VectorClock::advance(a, []), a);
        assert_eq!(VectorClock::advance(a, [VectorClock::from_secs(99)]), a);
        // Observed with git-annex: a second write in the same second gets +1.
        assert_eq!(VectorClock::advance(a, [a]), VectorClock::from_secs(101));
        assert_eq!(
            VectorClock::advance(a, [b, VectorClock::Unknown]).to_string(),
            "101.5s"
        );
        assert_eq!(VectorClock::advance(a, [VectorClock::Unknown]), a);
    }

    #[test]
    fn parse_prefix_reports_length() {
        assert_eq!(
            VectorClock::parse_prefix(b"17s 1 u"),
            Some((VectorClock::from_secs(17), 3))
        );
    }
}
