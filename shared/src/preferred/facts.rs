//! What the git-annex branch says about repositories, as preferred content
//! needs it, and the expression each repository ends up with.

use std::collections::{BTreeMap, BTreeSet};

use crate::branch::{Branch, BranchError, MapLog, UuidLog, VectorClock};

use super::groups::standard_group;
use super::parse::{parse, Expr, ParseError, Term, TrustLevel};

/// Branch files read by [`Facts::load`].
pub const FACT_FILES: [&str; 8] = [
    "preferred-content.log",
    "required-content.log",
    "group.log",
    "group-preferred-content.log",
    "trust.log",
    "maxsize.log",
    "numcopies.log",
    "remote.log",
];

/// The repository facts that preferred content reads. Plain data: build it
/// with [`Facts::load`], [`Facts::from_files`] or by hand.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Facts {
    /// `git annex wanted` expressions by repository UUID.
    pub preferred: BTreeMap<String, String>,
    /// `git annex required`; required content is also preferred.
    pub required: BTreeMap<String, String>,
    pub groups: BTreeMap<String, BTreeSet<String>>,
    /// `git annex groupwanted` expressions by group.
    pub group_wanted: BTreeMap<String, String>,
    /// Repositories not listed are semitrusted.
    pub trust: BTreeMap<String, TrustLevel>,
    pub maxsize: BTreeMap<String, u64>,
    /// `git annex numcopies`; 1 when unset.
    pub numcopies: Option<i64>,
    /// `preferreddir=` of special remotes (for `inpreferreddir`).
    pub preferred_dir: BTreeMap<String, String>,
}

/// The expression a repository's wants are judged by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Matcher {
    /// No expression (or an empty one): the caller's default applies.
    NotConfigured,
    Expr(Expr),
    /// The configured expression does not parse. git-annex then wants only
    /// what the repository already has (`present`), so that a newer
    /// git-annex's syntax causes no transfers.
    Unparseable(ParseError),
}

impl Facts {
    /// Read the facts from the branch (journal first, like every read).
    pub fn load(branch: &Branch) -> Result<Facts, BranchError> {
        let mut files = BTreeMap::new();
        for f in FACT_FILES {
            if let Some(content) = branch.read_file(f)? {
                files.insert(f, content);
            }
        }
        Ok(Facts::from_files(|f| files.get(f).map(Vec::as_slice)))
    }

    /// Parse the facts from branch file contents (`file` gets names from
    /// [`FACT_FILES`]).
    pub fn from_files<'a>(file: impl Fn(&str) -> Option<&'a [u8]>) -> Facts {
        let uuid_log = |f: &str| UuidLog::parse(file(f).unwrap_or_default());
        let values = |log: UuidLog<String>| -> BTreeMap<String, String> {
            log.entries.into_iter().map(|(u, e)| (u, e.value)).collect()
        };
        let groups = values(uuid_log("group.log"))
            .into_iter()
            .map(|(u, v)| {
                (
                    u,
                    v.split(' ')
                        .filter(|g| !g.is_empty())
                        .map(str::to_owned)
                        .collect(),
                )
            })
            .collect();
        let trust = values(uuid_log("trust.log"))
            .into_iter()
            .map(|(u, v)| {
                let level = match v.as_str() {
                    "1" => TrustLevel::Trusted,
                    "0" => TrustLevel::Untrusted,
                    "X" => TrustLevel::Dead,
                    _ => TrustLevel::SemiTrusted,
                };
                (u, level)
            })
            .collect();
        let preferred_dir = values(uuid_log("remote.log"))
            .into_iter()
            .filter_map(|(u, v)| {
                crate::branch::uuidlog::parse_remote_config(&v)
                    .remove("preferreddir")
                    .map(|d| (u, d))
            })
            .collect();
        let group_wanted = MapLog::parse(file("group-preferred-content.log").unwrap_or_default())
            .entries
            .into_iter()
            .map(|(g, e)| (g, e.value))
            .collect();
        let maxsize =
            crate::branch::maplog::parse_maxsize_log(file("maxsize.log").unwrap_or_default())
                .entries
                .into_iter()
                .map(|(u, e)| (u, e.value))
                .collect();
        Facts {
            preferred: values(uuid_log("preferred-content.log")),
            required: values(uuid_log("required-content.log")),
            groups,
            group_wanted,
            trust,
            maxsize,
            numcopies: file("numcopies.log").and_then(newest_single_value),
            preferred_dir,
        }
    }

    pub fn trust_of(&self, uuid: &str) -> TrustLevel {
        self.trust
            .get(uuid)
            .copied()
            .unwrap_or(TrustLevel::SemiTrusted)
    }

    pub fn groups_of(&self, uuid: &str) -> BTreeSet<String> {
        self.groups.get(uuid).cloned().unwrap_or_default()
    }

    pub fn in_group(&self, uuid: &str, group: &str) -> bool {
        self.groups.get(uuid).is_some_and(|g| g.contains(group))
    }

    /// Every repository in `group`, dead or not (git-annex's group map
    /// does not look at trust either).
    pub fn members(&self, group: &str) -> BTreeSet<&str> {
        self.groups
            .iter()
            .filter(|(_, gs)| gs.contains(group))
            .map(|(u, _)| u.as_str())
            .collect()
    }

    pub fn numcopies(&self) -> i64 {
        self.numcopies.unwrap_or(1)
    }

    /// The preferred-content matcher of `uuid`: its `wanted` expression
    /// `or` its `required` one, with `standard` and `groupwanted` expanded.
    pub fn matcher(&self, uuid: &str) -> Matcher {
        let load =
            |m: &BTreeMap<String, String>| m.get(uuid).map(|s| self.resolve(s, uuid, true, true));
        let combined = match (load(&self.preferred), load(&self.required)) {
            (None, None) => return Matcher::NotConfigured,
            (Some(r), None) | (None, Some(r)) => r,
            (Some(Err(e)), Some(_)) | (Some(_), Some(Err(e))) => Err(e),
            (Some(Ok(a)), Some(Ok(b))) => Ok(match (a, b) {
                (Expr::Any, x) | (x, Expr::Any) => x,
                (a, b) => Expr::Or(Box::new(a), Box::new(b)),
            }),
        };
        match combined {
            Ok(Expr::Any) => Matcher::NotConfigured,
            Ok(e) => Matcher::Expr(e),
            Err(e) => Matcher::Unparseable(e),
        }
    }

    /// Parse `src` for `uuid`, replacing `standard` by its group's
    /// expression and `groupwanted` by its group's wanted expression. As in
    /// git-annex, one level each: inside `standard` neither expands, inside
    /// `groupwanted` only `standard` does; what cannot expand means `present`.
    fn resolve(
        &self,
        src: &str,
        uuid: &str,
        standard: bool,
        groupwanted: bool,
    ) -> Result<Expr, ParseError> {
        let expr = parse(src)?;
        self.expand(expr, uuid, standard, groupwanted)
    }

    fn expand(
        &self,
        e: Expr,
        uuid: &str,
        standard: bool,
        groupwanted: bool,
    ) -> Result<Expr, ParseError> {
        let re = |x: Box<Expr>| self.expand(*x, uuid, standard, groupwanted).map(Box::new);
        Ok(match e {
            Expr::And(a, b) => Expr::And(re(a)?, re(b)?),
            Expr::Or(a, b) => Expr::Or(re(a)?, re(b)?),
            Expr::Not(a) => Expr::Not(re(a)?),
            Expr::Term(Term::Standard) => {
                let sub = match standard_group(&self.groups_of(uuid)).filter(|_| standard) {
                    Some(g) => self.resolve(&g.expression(), uuid, false, false)?,
                    None => Expr::Term(Term::Present),
                };
                call("standard", sub)
            }
            Expr::Term(Term::GroupWanted) => {
                let mine = self.groups_of(uuid);
                let mut found = self.group_wanted.iter().filter(|(g, _)| mine.contains(*g));
                let sub = match (found.next(), found.next(), groupwanted) {
                    (Some((_, src)), None, true) => self.resolve(src, uuid, true, false)?,
                    _ => Expr::Term(Term::Present),
                };
                call("groupwanted", sub)
            }
            e => e,
        })
    }
}

fn call(name: &'static str, expr: Expr) -> Expr {
    Expr::Term(Term::Call {
        name,
        expr: Box::new(expr),
    })
}

/// `numcopies.log`: `<clock> <n>` lines, the newest wins.
fn newest_single_value(content: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(content).ok()?;
    text.lines()
        .filter_map(|l| {
            let (c, v) = l.split_once(' ')?;
            Some((
                VectorClock::parse(c.as_bytes())?,
                super::parse::read_int(v)?,
            ))
        })
        .max()
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::key::Key;
    use crate::preferred::{wants, KeyInfo, RepoSizes};

    #[test]
    fn matcher_fallbacks_as_in_git_annex() {
        let files: BTreeMap<&str, &[u8]> = BTreeMap::from([
            (
                "preferred-content.log",
                &b"u1 groupwanted timestamp=1s\nu2 present in=x timestamp=1s\nu3 not present timestamp=1s\nu4 standard timestamp=1s\nu6 ( ) timestamp=1s\n"[..],
            ),
            ("required-content.log", &b"u5 include=*.iso timestamp=1s\n"[..]),
            ("group.log", &b"u1 mine timestamp=1s\nu4 archive other timestamp=1s\n"[..]),
            ("group-preferred-content.log", &b"1s mine largerthan=10\n"[..]),
            ("numcopies.log", &b"1s 3\n2s 2\n"[..]),
            ("trust.log", &b"u9 X timestamp=1s\n"[..]),
        ]);
        let facts = Facts::from_files(|f| files.get(f).copied());
        assert_eq!(facts.numcopies(), 2);
        assert_eq!(facts.trust_of("u9"), TrustLevel::Dead);
        assert!(matches!(
            facts.matcher("u2"),
            Matcher::Unparseable(ParseError::UnknownTerm(_))
        ));
        assert_eq!(facts.matcher("u6"), Matcher::NotConfigured);
        assert_eq!(facts.matcher("nobody"), Matcher::NotConfigured);

        let big = Key::parse("SHA256E-s100--aa.iso").expect("key");
        let none = BTreeSet::new();
        let held: BTreeSet<String> = ["u2".to_string(), "u3".to_string()].into();
        let sizes = RepoSizes::new();
        let w = |u: &str, holders: &BTreeSet<String>| {
            wants(
                &facts,
                &sizes,
                u,
                &KeyInfo {
                    key: &big,
                    file: Some("a.iso"),
                    holders,
                },
            )
            .expect("evaluates")
        };
        assert!(
            w("u1", &none),
            "groupwanted expands to the group's expression"
        );
        assert!(
            !w("u2", &none) && w("u2", &held),
            "unparseable means present"
        );
        assert!(!w("u3", &none), "negated present is never acted on");
        assert!(w("u4", &none), "standard in one standard group (archive)");
        assert!(w("u5", &none), "required content is preferred too");
        assert!(
            w("nobody", &none),
            "no expression: wanted, as the cluster asks"
        );
    }
}
