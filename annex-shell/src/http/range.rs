//! `Range: bytes=…` on the unversioned `key` endpoint, for clients that
//! are not git-annex (datalad-fuse reads files in pieces; browsers resume).
//!
//! One range only: a multi-range request, or one that does not parse, is
//! answered with the whole content (200), as RFC 9110 allows a server to
//! ignore Range. So is a range of a key whose size is not in its name
//! (a suffix range needs the size first, and asking the session for it
//! would cost a second request); keys of git-annex's default backends all
//! carry their size.

/// What a request's Range asks for, once the content's size is known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wanted {
    /// The whole content (no Range, or one that is ignored).
    All,
    /// Bytes `start..=end` of `total`: 206.
    Part { start: u64, end: u64, total: u64 },
    /// Nothing of `total` bytes is in the range: 416.
    Unsatisfiable { total: u64 },
}

/// Resolve `header` against content of `total` bytes (`None`: unknown).
pub fn resolve(header: Option<&str>, total: Option<u64>) -> Wanted {
    let (Some(h), Some(total)) = (header, total) else {
        return Wanted::All;
    };
    let Some(spec) = h.trim().strip_prefix("bytes=") else {
        return Wanted::All;
    };
    if spec.contains(',') {
        return Wanted::All;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Wanted::All;
    };
    let num = |s: &str| s.trim().parse::<u64>().ok();
    let unsatisfiable = Wanted::Unsatisfiable { total };
    match (first.trim().is_empty(), num(first), num(last)) {
        // bytes=-N: the last N bytes.
        (true, _, Some(0)) => unsatisfiable,
        (true, _, Some(_)) if total == 0 => unsatisfiable,
        (true, _, Some(n)) => Wanted::Part {
            start: total.saturating_sub(n),
            end: total - 1,
            total,
        },
        (false, Some(start), _) if start >= total => unsatisfiable,
        // bytes=A-
        (false, Some(start), None) if last.trim().is_empty() => Wanted::Part {
            start,
            end: total - 1,
            total,
        },
        (false, Some(start), Some(end)) if end >= start => Wanted::Part {
            start,
            end: end.min(total - 1),
            total,
        },
        _ => Wanted::All,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_resolve_as_rfc_9110_says() {
        let r = |h: &str| resolve(Some(h), Some(100));
        let part = |start, end| Wanted::Part {
            start,
            end,
            total: 100,
        };
        assert_eq!(r("bytes=0-9"), part(0, 9));
        assert_eq!(r("bytes=90-"), part(90, 99));
        assert_eq!(r("bytes=-10"), part(90, 99));
        assert_eq!(r("bytes=-500"), part(0, 99));
        assert_eq!(r("bytes=50-5000"), part(50, 99));
        let none = Wanted::Unsatisfiable { total: 100 };
        assert_eq!(r("bytes=100-"), none);
        assert_eq!(r("bytes=-0"), none);
        assert_eq!(r("bytes=0-1,5-6"), Wanted::All);
        assert_eq!(r("bytes=9-1"), Wanted::All);
        assert_eq!(r("items=0-1"), Wanted::All);
        assert_eq!(resolve(Some("bytes=0-1"), None), Wanted::All);
        assert_eq!(resolve(None, Some(5)), Wanted::All);
    }
}
