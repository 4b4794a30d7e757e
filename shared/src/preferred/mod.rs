//! Preferred content: git-annex's expressions saying which keys a
//! repository wants, evaluated on the server for a key being stored, and a
//! planner choosing the cluster nodes a PUT goes to.
//!
//! [`parse`] reads an expression; [`Facts`] holds what the git-annex branch
//! says about repositories (expressions, groups, trust, numcopies, maxsize);
//! [`wants`] answers "does repository U want key K"; [`plan_put`] picks
//! the nodes of a cluster.

mod balanced;
mod eval;
mod facts;
mod glob;
mod groups;
mod parse;
mod plan;
mod sizes;

pub use balanced::{has_space, pick, RepoSizes};
pub use eval::{eval_expr, wants, EvalError, KeyInfo};
pub use facts::{Facts, Matcher, FACT_FILES};
pub use glob::Glob;
pub use groups::{standard_group, StandardGroup};
pub use parse::{
    parse, BalancedCount, BalancedKind, CopiesOf, Expr, ParseError, Term, TrustLevel, MAX_WORDS,
};
pub use plan::plan_put;
pub use sizes::repo_sizes;

#[cfg(test)]
mod annex_pin_tests;
#[cfg(test)]
mod parse_tests;
#[cfg(test)]
mod plan_tests;
