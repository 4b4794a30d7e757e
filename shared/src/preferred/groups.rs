//! git-annex's standard groups and the expression `standard` stands for in
//! each (`Types/StandardGroups.hs`; doc/preferred_content/standard_groups).

use std::collections::BTreeSet;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum StandardGroup {
    Client,
    Transfer,
    Backup,
    IncrementalBackup,
    SmallArchive,
    Archive,
    Source,
    Manual,
    Public,
    Unwanted,
}

impl StandardGroup {
    pub const ALL: [StandardGroup; 10] = [
        StandardGroup::Client,
        StandardGroup::Transfer,
        StandardGroup::Backup,
        StandardGroup::IncrementalBackup,
        StandardGroup::SmallArchive,
        StandardGroup::Archive,
        StandardGroup::Source,
        StandardGroup::Manual,
        StandardGroup::Public,
        StandardGroup::Unwanted,
    ];

    pub fn name(self) -> &'static str {
        match self {
            StandardGroup::Client => "client",
            StandardGroup::Transfer => "transfer",
            StandardGroup::Backup => "backup",
            StandardGroup::IncrementalBackup => "incrementalbackup",
            StandardGroup::SmallArchive => "smallarchive",
            StandardGroup::Archive => "archive",
            StandardGroup::Source => "source",
            StandardGroup::Manual => "manual",
            StandardGroup::Public => "public",
            StandardGroup::Unwanted => "unwanted",
        }
    }

    pub fn from_name(name: &str) -> Option<StandardGroup> {
        StandardGroup::ALL.into_iter().find(|g| g.name() == name)
    }

    /// The expression `standard` means for a repository in this group.
    pub fn expression(self) -> String {
        // Content only on untrusted or dead repositories, or short of
        // numcopies, is wanted by most groups as a last resort.
        let last_resort = |s: &str| format!("({s}) or approxlackingcopies=1");
        let not_archived = "not (copies=archive:1 or copies=smallarchive:1)";
        let client = || {
            last_resort(&format!(
                "include=* and ((exclude=*/archive/* and exclude=archive/*) or ({not_archived}))"
            ))
        };
        match self {
            StandardGroup::Client => client(),
            StandardGroup::Transfer => last_resort(&format!(
                "not (inallgroup=client and copies=client:2) and ({})",
                client()
            )),
            StandardGroup::Backup => "anything".into(),
            StandardGroup::IncrementalBackup => {
                last_resort("(not copies=backup:1) and (not copies=incrementalbackup:1)")
            }
            StandardGroup::SmallArchive => last_resort(&format!(
                "(include=*/archive/* or include=archive/*) and ({})",
                StandardGroup::Archive.expression()
            )),
            StandardGroup::Archive => last_resort(not_archived),
            StandardGroup::Source => "not (copies=1)".into(),
            StandardGroup::Manual => format!("present and ({})", client()),
            StandardGroup::Public => "inpreferreddir".into(),
            StandardGroup::Unwanted => "not anything".into(),
        }
    }
}

/// The standard group of a repository: only when exactly one of its groups
/// is standard.
pub fn standard_group(groups: &BTreeSet<String>) -> Option<StandardGroup> {
    let mut found = groups.iter().filter_map(|g| StandardGroup::from_name(g));
    match (found.next(), found.next()) {
        (Some(g), None) => Some(g),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_standard_expression_parses() {
        for g in StandardGroup::ALL {
            assert!(super::super::parse(&g.expression()).is_ok(), "{g:?}");
            assert_eq!(StandardGroup::from_name(g.name()), Some(g));
        }
    }

    #[test]
    fn expressions_as_git_annex_shows_them() {
        // `git annex groupwanted`-free check: the text git-annex documents.
        assert_eq!(
            StandardGroup::Archive.expression(),
            "(not (copies=archive:1 or copies=smallarchive:1)) or approxlackingcopies=1"
        );
        assert_eq!(StandardGroup::Source.expression(), "not (copies=1)");
    }

    #[test]
    fn one_standard_group_only() {
        let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        assert_eq!(
            standard_group(&set(&["archive", "mine"])),
            Some(StandardGroup::Archive)
        );
        assert_eq!(standard_group(&set(&["archive", "client"])), None);
        assert_eq!(standard_group(&set(&["mine"])), None);
    }
}
