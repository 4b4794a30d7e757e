//! Evaluating an expression for one key on behalf of one repository.

use std::collections::BTreeSet;

use crate::branch::is_cluster_uuid;
use crate::key::Key;

use super::balanced::{pick, size_candidates, space_candidates, RepoSizes};
use super::facts::{Facts, Matcher};
use super::parse::{BalancedCount, BalancedKind, CopiesOf, Expr, Term, TrustLevel};

/// The key being judged.
#[derive(Clone, Copy, Debug)]
pub struct KeyInfo<'a> {
    pub key: &'a Key,
    /// The associated file name, relative to the top of the repository.
    pub file: Option<&'a str>,
    /// UUIDs that have the key (location log, plus anything already
    /// planned). Dead and cluster UUIDs are allowed; they are not counted.
    pub holders: &'a BTreeSet<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    /// git-annex fails the same way, when it reaches this term.
    #[error("include/exclude={glob}: {reason}")]
    BadGlob { glob: String, reason: String },
    /// Terms needing per-key logs the server does not consult.
    #[error("{0}= is not evaluated on the server")]
    Unsupported(&'static str),
}

/// Whether `uuid` wants the key, as git-annex's `isPreferredContent`
/// answers for a cluster node: a repository with no preferred (or
/// required) content, or an empty expression, wants everything — the
/// default Annex/Cluster.hs passes; one whose expression does not parse
/// wants only what it has; an expression negating an unstable term
/// (`not present`, `not balanced=…`) wants nothing.
pub fn wants(facts: &Facts, sizes: &RepoSizes, uuid: &str, k: &KeyInfo) -> Result<bool, EvalError> {
    let expr = match facts.matcher(uuid) {
        Matcher::NotConfigured => return Ok(true),
        Matcher::Unparseable(_) => return Ok(k.holders.contains(uuid)),
        Matcher::Expr(e) => e,
    };
    if negates_unstable(&expr, false) {
        return Ok(false);
    }
    eval(
        &expr,
        &Ctx {
            facts,
            sizes,
            uuid,
            k,
        },
    )
}

/// Evaluate an expression as repository `uuid` would. `standard` and
/// `groupwanted` left unexpanded (from a bare [`super::parse`]) mean `present`.
pub fn eval_expr(
    expr: &Expr,
    facts: &Facts,
    sizes: &RepoSizes,
    uuid: &str,
    k: &KeyInfo,
) -> Result<bool, EvalError> {
    eval(
        expr,
        &Ctx {
            facts,
            sizes,
            uuid,
            k,
        },
    )
}

struct Ctx<'a> {
    facts: &'a Facts,
    sizes: &'a RepoSizes,
    uuid: &'a str,
    k: &'a KeyInfo<'a>,
}

/// Terms whose negation git-annex refuses to act on (their result flips
/// as soon as the content moves).
fn unstable(t: &Term) -> bool {
    match t {
        Term::Present | Term::Standard | Term::GroupWanted => true,
        Term::Balanced { kind, .. } => {
            matches!(kind, BalancedKind::Balanced | BalancedKind::SizeBalanced)
        }
        Term::Call { expr, .. } => any_term(expr, &unstable),
        _ => false,
    }
}

fn any_term(e: &Expr, f: &dyn Fn(&Term) -> bool) -> bool {
    match e {
        Expr::Any => false,
        Expr::And(a, b) | Expr::Or(a, b) => any_term(a, f) || any_term(b, f),
        Expr::Not(a) => any_term(a, f),
        Expr::Term(t) => f(t),
    }
}

fn negates_unstable(e: &Expr, negated: bool) -> bool {
    match e {
        Expr::Any => false,
        Expr::And(a, b) | Expr::Or(a, b) => {
            negates_unstable(a, negated) || negates_unstable(b, negated)
        }
        Expr::Not(a) => negates_unstable(a, !negated),
        Expr::Term(t) => negated && unstable(t),
    }
}

fn eval(e: &Expr, c: &Ctx) -> Result<bool, EvalError> {
    Ok(match e {
        Expr::Any => true,
        Expr::And(a, b) => eval(a, c)? && eval(b, c)?,
        Expr::Or(a, b) => eval(a, c)? || eval(b, c)?,
        Expr::Not(a) => !eval(a, c)?,
        Expr::Term(t) => term(t, c)?,
    })
}

fn glob_match(g: &super::Glob, name: &str) -> Result<bool, EvalError> {
    g.matches(name).map_err(|reason| EvalError::BadGlob {
        glob: g.as_str().to_owned(),
        reason,
    })
}

impl Ctx<'_> {
    /// Holders that count as copies: not dead, not clusters.
    fn live_holders(&self) -> impl Iterator<Item = &str> {
        self.k
            .holders
            .iter()
            .map(String::as_str)
            .filter(|u| !is_cluster_uuid(u) && self.facts.trust_of(u) != TrustLevel::Dead)
    }

    /// numcopies minus the copies on repositories that are neither dead
    /// nor untrusted.
    fn lacking(&self) -> i64 {
        let have = self
            .live_holders()
            .filter(|u| self.facts.trust_of(u) != TrustLevel::Untrusted)
            .count();
        self.facts.numcopies().saturating_sub(have as i64)
    }

    fn copies(&self, of: &CopiesOf, n: i64) -> bool {
        let count = self
            .live_holders()
            .filter(|u| match of {
                CopiesOf::All => true,
                CopiesOf::Group(g) => self.facts.in_group(u, g),
                CopiesOf::Trust { level, or_better } => {
                    let t = self.facts.trust_of(u);
                    if *or_better {
                        t >= *level
                    } else {
                        t == *level
                    }
                }
            })
            .count();
        count as i64 >= n
    }

    fn key_size(&self) -> u64 {
        self.k.key.size().unwrap_or(0)
    }

    /// `fullybalanced`/`fullysizebalanced`.
    fn fully(&self, sized: bool, group: &str, count: &BalancedCount) -> bool {
        let n = match count {
            BalancedCount::N(n) => *n,
            // Limit.hs reads as "numcopies minus the copies there are", but
            // git-annex 10.20261026 spreads over numcopies members whatever
            // the copies (pinned in annex_pin_tests); we follow the binary.
            BalancedCount::LackingCopies => self.facts.numcopies(),
        };
        let members = self.facts.members(group);
        let f = self.facts;
        let candidates = if sized {
            size_candidates(
                &members,
                &f.maxsize,
                self.sizes,
                self.key_size(),
                self.k.holders,
                n,
            )
        } else {
            space_candidates(
                &members,
                &f.maxsize,
                self.sizes,
                self.key_size(),
                self.k.holders,
            )
        };
        pick(&members, &candidates, self.k.key, n).contains(self.uuid)
    }
}

/// `include=`/`inpreferreddir` on the directory part of a file name:
/// whether its last directory is `dir` (git-annex compares `dir` with the
/// path pieces of the directory, all but the last keeping their slash).
fn in_dir(file: &str, dir: &str) -> bool {
    let parent = match file.rfind('/') {
        Some(i) => match file[..i].trim_end_matches('/') {
            "" => "/",
            p => p,
        },
        None => ".",
    };
    let last = match parent.rfind('/') {
        Some(i) if parent != "/" => &parent[i + 1..],
        _ => parent,
    };
    last == dir
}

fn term(t: &Term, c: &Ctx) -> Result<bool, EvalError> {
    let k = c.k;
    Ok(match t {
        Term::Anything => true,
        Term::Nothing => false,
        Term::Include(g) => match k.file {
            Some(f) => glob_match(g, f)?,
            None => false,
        },
        Term::Exclude(g) => match k.file {
            Some(f) => !glob_match(g, f)?,
            None => true,
        },
        // A key without a size is smaller than any size, as git-annex's
        // Maybe ordering has it.
        Term::LargerThan(n) => k.key.size().is_some_and(|s| i128::from(s) > *n),
        Term::SmallerThan(n) => k.key.size().is_none_or(|s| i128::from(s) < *n),
        // Needs `git annex unused` results, which a server has not.
        Term::Unused => false,
        Term::Present | Term::Standard | Term::GroupWanted => k.holders.contains(c.uuid),
        Term::SecureHash => k.key.backend().is_secure(),
        Term::InPreferredDir => {
            let dir = c
                .facts
                .preferred_dir
                .get(c.uuid)
                .map_or("public", String::as_str);
            k.file.is_some_and(|f| in_dir(f, dir))
        }
        Term::Copies { of, n } => c.copies(of, *n),
        Term::LackingCopies { n, .. } => c.lacking() >= *n,
        Term::InBackend(name) => k.key.variety() == name,
        Term::MetaData(_) => return Err(EvalError::Unsupported("metadata")),
        Term::Url(_) => return Err(EvalError::Unsupported("url")),
        Term::InAllGroup(g) => {
            let want = c.facts.members(g);
            let have: BTreeSet<&str> = c.live_holders().collect();
            want.is_subset(&have)
        }
        Term::OnlyInGroup(g) => {
            let want = c.facts.members(g);
            let have: BTreeSet<&str> = c.live_holders().collect();
            !want.is_empty() && !have.is_disjoint(&want) && have.is_subset(&want)
        }
        Term::Balanced {
            kind,
            group,
            count,
            raw,
        } => match kind {
            BalancedKind::FullyBalanced => c.fully(false, group, count),
            BalancedKind::FullySizeBalanced => c.fully(true, group, count),
            BalancedKind::Balanced | BalancedKind::SizeBalanced => {
                let sized = *kind == BalancedKind::SizeBalanced;
                // Keep it where it is; else place it only while copies in
                // the group (or numcopies) are short.
                let short = match count {
                    BalancedCount::LackingCopies => c.lacking() >= 1,
                    BalancedCount::N(_) => {
                        let spec = if raw.contains(':') {
                            raw.clone()
                        } else {
                            format!("{raw}:1")
                        };
                        match super::parse::parse_copies(&spec) {
                            Ok(Term::Copies { of, n }) => !c.copies(&of, n),
                            _ => false,
                        }
                    }
                };
                k.holders.contains(c.uuid) || (short && c.fully(sized, group, count))
            }
        },
        Term::Call { expr, .. } => eval(expr, c)?,
    })
}

#[cfg(test)]
mod tests {
    use super::in_dir;

    #[test]
    fn preferred_dir_is_the_last_directory() {
        // Pinned with `git annex matchexpression inpreferreddir --file …`.
        assert!(in_dir("public/x", "public"));
        assert!(in_dir("a/public/x", "public"));
        assert!(!in_dir("public/b/x", "public"));
        assert!(!in_dir("x", "public"));
        assert!(in_dir("a/public//x", "public"));
    }
}
