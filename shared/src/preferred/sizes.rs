//! How much each repository holds, as the location logs say: what
//! `maxsize` and the balanced forms compare against (git-annex keeps the
//! same figures in its repo-size database).

use crate::branch::{Branch, BranchError, LocationLog};
use crate::key::Key;

use super::RepoSizes;

/// Bytes per UUID over every key the branch (and journal) logs as present.
/// Keys of unknown size count as empty.
pub fn repo_sizes(branch: &Branch) -> Result<RepoSizes, BranchError> {
    let mut sizes = RepoSizes::new();
    for (path, content) in branch.all_files()? {
        let Some(size) = location_log_key_size(&path) else {
            continue;
        };
        for uuid in LocationLog::parse(&content).present() {
            *sizes.entry(uuid.to_owned()).or_insert(0) += size;
        }
    }
    Ok(sizes)
}

/// A location log lives at `xxx/yyy/KEY.log`; other `.log` files at the
/// top (uuid.log, …) or with other suffixes (`.log.met`) are not one.
fn location_log_key_size(path: &str) -> Option<u64> {
    let (dirs, file) = path.rsplit_once('/')?;
    if dirs.split('/').count() != 2 {
        return None;
    }
    let key = Key::parse(file.strip_suffix(".log")?).ok()?;
    Some(key.size().unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_key_logs_count() {
        let k = "SHA256E-s6--5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03";
        assert_eq!(location_log_key_size(&format!("f87/4d5/{k}.log")), Some(6));
        assert_eq!(location_log_key_size("uuid.log"), None);
        assert_eq!(location_log_key_size(&format!("f87/4d5/{k}.log.met")), None);
        assert_eq!(location_log_key_size("a/b/c/not-a-key.log"), None);
    }

    #[test]
    fn sums_present_copies_per_repository() {
        let t = tempfile::tempdir().expect("tempdir");
        testkit::git(t.path(), &["init", "-q", "--bare"]);
        let b = Branch::open(t.path()).expect("open");
        b.create().expect("create");
        let k6 = Key::parse(
            "SHA256E-s6--5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03",
        )
        .expect("key");
        let k10 = Key::parse("WORM-s10-m1--x").expect("key");
        b.log_key_location(&k6, "u1", crate::branch::LogStatus::Present)
            .expect("log");
        b.log_key_location(&k10, "u1", crate::branch::LogStatus::Present)
            .expect("log");
        b.log_key_location(&k10, "u2", crate::branch::LogStatus::Present)
            .expect("log");
        b.commit().expect("commit");
        b.log_key_location(&k10, "u2", crate::branch::LogStatus::Missing)
            .expect("log");
        let sizes = repo_sizes(&b).expect("sizes");
        assert_eq!(sizes.get("u1"), Some(&16));
        assert_eq!(sizes.get("u2"), None);
    }
}
