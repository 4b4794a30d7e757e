//! git-annex's `export.log` (`Logs/Export.hs`, `Logs/Export/Pure.hs`): in
//! the git-annex branch, one line per repository that exported to a
//! special remote, `<clock> <from uuid>:<remote uuid> <tree> [<tree>…]`:
//! the tree exported, then trees whose export began and did not finish.
//!
//! This and the trees themselves are the whole state of an export that we
//! keep: git-annex also keeps a sqlite database per remote (which keys are
//! at which paths, which paths were uploaded), but rebuilds it from this
//! log and the trees whenever the log changes, so nothing is lost by
//! deriving the same from them (see [`super::ExportIndex`]).

use annex::branch::{Branch, BranchError, MapLog, VectorClock};

pub const EXPORT_LOG: &str = "export.log";

/// What one repository exported to a remote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exported {
    pub tree: String,
    pub incomplete: Vec<String>,
}

pub fn parse(content: &[u8]) -> MapLog<Exported> {
    MapLog::parse_with(content, |v| {
        let mut trees = v.split(' ').filter(|t| !t.is_empty()).map(str::to_owned);
        Some(Exported {
            tree: trees.next()?,
            incomplete: trees.collect(),
        })
    })
}

pub fn format(log: &MapLog<Exported>) -> Vec<u8> {
    log.format_with(|e| {
        let mut s = e.tree.clone();
        for t in &e.incomplete {
            s.push(' ');
            s.push_str(t);
        }
        s
    })
}

fn to_remote(field: &str, remote: &str) -> bool {
    field.split_once(':').is_some_and(|(_, to)| to == remote)
}

/// The trees exported to `remote` by anyone (more than one: an export
/// conflict), and those whose export did not finish.
pub fn exported_to(
    branch: &Branch,
    remote: &str,
) -> Result<(Vec<String>, Vec<String>), BranchError> {
    let log = parse(&branch.read_file(EXPORT_LOG)?.unwrap_or_default());
    let (mut trees, mut incomplete) = (Vec::new(), Vec::new());
    for (field, e) in &log.entries {
        if !to_remote(field, remote) {
            continue;
        }
        if !trees.contains(&e.value.tree) {
            trees.push(e.value.tree.clone());
        }
        incomplete.extend(e.value.incomplete.iter().cloned());
    }
    Ok((trees, incomplete))
}

/// `recordExportBeginning`: before anything changes in the remote, `new`
/// joins this repository's incomplete trees (so an interrupted export is
/// cleaned up by the next one).
pub fn record_beginning(
    branch: &Branch,
    here: &str,
    remote: &str,
    new: &str,
) -> Result<(), BranchError> {
    let field = format!("{here}:{remote}");
    branch.change_file(EXPORT_LOG, |old| {
        let mut log = parse(old.unwrap_or_default());
        let mut e = log.get(&field).cloned().unwrap_or(Exported {
            tree: super::tree::EMPTY_TREE.to_owned(),
            incomplete: Vec::new(),
        });
        e.incomplete.retain(|t| t != new);
        e.incomplete.insert(0, new.to_owned());
        log.set(&field, e, VectorClock::candidate_now());
        format(&log)
    })
}

/// `recordExportUnderway`: the remote now holds `new` but for files still
/// to upload; other repositories' entries that named one of the `old`
/// trees move to `new` too, so exports from several repositories that
/// move in step do not conflict.
pub fn record_underway(
    branch: &Branch,
    here: &str,
    remote: &str,
    old: &[String],
    new: &str,
) -> Result<(), BranchError> {
    let field = format!("{here}:{remote}");
    branch.change_file(EXPORT_LOG, |text| {
        let mut log = parse(text.unwrap_or_default());
        let now = VectorClock::candidate_now();
        let others: Vec<(String, Exported)> = log
            .entries
            .iter()
            .filter(|(f, e)| {
                **f != field
                    && to_remote(f, remote)
                    && !f.starts_with(&format!("{here}:"))
                    && old.contains(&e.value.tree)
            })
            .map(|(f, e)| (f.clone(), e.value.clone()))
            .collect();
        for (f, mut e) in others {
            e.tree = new.to_owned();
            log.set(&f, e, now);
        }
        let exported = Exported {
            tree: new.to_owned(),
            incomplete: Vec::new(),
        };
        log.set(&field, exported, now);
        format(&log)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_as_git_annex_writes_them() {
        let text = b"1700000000s a:r t1 t0\n1700000001s b:r t2\n";
        let log = parse(text);
        assert_eq!(
            log.get("a:r"),
            Some(&Exported {
                tree: "t1".into(),
                incomplete: vec!["t0".into()]
            })
        );
        assert_eq!(format(&log), text.to_vec());
    }
}
