//! What a git-annex repository UUID looks like, in the few senses the
//! code asks about. git-annex itself treats a UUID as opaque text, so each
//! check is only as strict as its use needs.

/// Only ASCII letters, digits and `-`: what git-annex lets through as a
/// `remoteuuid` field, and what is safe to put on a command line that a
/// shell reads (ssh runs git-annex-shell through one). May be empty;
/// callers that need a UUID also check that it is not.
pub fn is_uuid_word(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// The 8-4-4-4-12 hex form git-annex writes new UUIDs in, told apart from
/// a remote's name (which could otherwise look like anything).
pub fn is_uuid_form(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A cluster's UUID: `ac` first and `8` at byte 14, as git-annex marks
/// the UUIDs it generates for clusters.
pub fn is_cluster_uuid(uuid: &str) -> bool {
    let b = uuid.as_bytes();
    b.starts_with(b"ac") && b.get(14) == Some(&b'8')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_words() {
        assert!(is_uuid_word("8539dd90-0000-4000-8000-000000000491"));
        assert!(is_uuid_word("a-b") && is_uuid_word(""));
        for bad in ["a b", "a;b", "$(x)", "a'b", "a\nb", "é"] {
            assert!(!is_uuid_word(bad), "{bad:?}");
        }
    }

    #[test]
    fn uuid_forms() {
        assert!(is_uuid_form("8539dd90-0000-4000-8000-000000000491"));
        assert!(is_uuid_form("8539DD90-0000-4000-8000-00000000049F"));
        for bad in [
            "",
            "node1",
            "8539dd90-0000-4000-8000-00000000049",
            "8539dd90-0000-4000-8000-0000000004910",
            "8539dd90-0000-4000-8000-00000000049g",
            "8539dd900000-4000-8000-000000000491-",
            "8539dd90-0000-4000-8000-000000000491-",
        ] {
            assert!(!is_uuid_form(bad), "{bad:?}");
        }
    }

    #[test]
    fn cluster_uuids() {
        assert!(is_cluster_uuid("ac15440a-d31a-8d6e-a592-60d4fcf6a0f2"));
        assert!(!is_cluster_uuid("8539dd90-0000-4000-8000-000000000491"));
        assert!(!is_cluster_uuid("ac"));
    }
}
