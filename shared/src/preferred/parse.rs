//! Preferred-content expressions: words to terms, terms to a tree.
//!
//! The grammar is git-annex's (`Utility/Matcher.hs`, `Annex/FileMatcher.hs`):
//! words split on whitespace, `(` and `)` always standing alone; `and`,
//! `or` and `not` have **no precedence** — the tree is built strictly left
//! to right, so `a or b and c` is `(a or b) and c`; two adjacent terms or
//! groups are joined by an implicit `and`; `not` binds to the single term
//! or group after it; unbalanced parentheses are forgiven.

use super::glob::Glob;

/// A parsed expression. [`Expr::Any`] is the empty expression (it matches
/// everything, and a repository whose whole expression is empty counts as
/// having none).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expr {
    Any,
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Term(Term),
}

/// Trust levels, ordered as git-annex orders them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum TrustLevel {
    Dead,
    Untrusted,
    SemiTrusted,
    Trusted,
}

impl TrustLevel {
    pub fn from_name(s: &str) -> Option<TrustLevel> {
        Some(match s {
            "trusted" => TrustLevel::Trusted,
            "untrusted" => TrustLevel::Untrusted,
            "semitrusted" => TrustLevel::SemiTrusted,
            "dead" => TrustLevel::Dead,
            _ => return None,
        })
    }
}

/// Which holders `copies=` counts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CopiesOf {
    All,
    /// `copies=trusted:N` (exactly) or `copies=trusted+:N` (at least).
    Trust {
        level: TrustLevel,
        or_better: bool,
    },
    Group(String),
}

/// How many repositories a balanced term spreads a key over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BalancedCount {
    N(i64),
    /// `GROUP:lackingcopies`: numcopies of them (see eval.rs).
    LackingCopies,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BalancedKind {
    Balanced,
    FullyBalanced,
    SizeBalanced,
    FullySizeBalanced,
}

impl BalancedKind {
    pub fn name(self) -> &'static str {
        match self {
            BalancedKind::Balanced => "balanced",
            BalancedKind::FullyBalanced => "fullybalanced",
            BalancedKind::SizeBalanced => "sizebalanced",
            BalancedKind::FullySizeBalanced => "fullysizebalanced",
        }
    }
}

/// One term of the language.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Term {
    Anything,
    Nothing,
    Include(Glob),
    Exclude(Glob),
    /// Sizes may be negative, as git-annex reads them.
    LargerThan(i128),
    SmallerThan(i128),
    Unused,
    Standard,
    GroupWanted,
    InPreferredDir,
    Present,
    SecureHash,
    Copies {
        of: CopiesOf,
        n: i64,
    },
    LackingCopies {
        n: i64,
        approx: bool,
    },
    InBackend(String),
    MetaData(String),
    Url(String),
    InAllGroup(String),
    OnlyInGroup(String),
    Balanced {
        kind: BalancedKind,
        group: String,
        count: BalancedCount,
        /// The whole value, which `balanced=`/`sizebalanced=` also read as
        /// a `copies=` value.
        raw: String,
    },
    /// `standard` or `groupwanted` once the repository's own expression
    /// has been looked up (see `Facts`); never produced by [`parse`].
    Call {
        name: &'static str,
        expr: Box<Expr>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// A word that is neither syntax nor a known term.
    #[error("Parse failure: near {0:?}")]
    UnknownTerm(String),
    /// A known term with a value it cannot use.
    #[error("Parse failure: {reason} (in {term:?})")]
    BadValue { term: String, reason: String },
    /// More words than [`MAX_WORDS`].
    #[error("Parse failure: expression has more than {MAX_WORDS} words")]
    TooLong,
}

/// Most words (parentheses counting as words) an expression may have.
/// Building, simplifying, evaluating and dropping the tree all recurse once
/// per level, and a level can cost a single word (`not not …`, `((…`,
/// `a or b or …`): without a bound, one long line in a pushed
/// `preferred-content.log` would overflow the stack. git-annex has no such
/// bound; real expressions have tens of words.
pub const MAX_WORDS: usize = 256;

enum Token {
    And,
    Or,
    Not,
    Open,
    Close,
    Term(Term),
}

/// Parse an expression. Every unknown or malformed word is an error, the
/// first one is reported.
pub fn parse(s: &str) -> Result<Expr, ParseError> {
    let tokens = words(s)
        .take(MAX_WORDS + 1)
        .map(parse_word)
        .collect::<Result<Vec<Token>, ParseError>>()?;
    if tokens.len() > MAX_WORDS {
        return Err(ParseError::TooLong);
    }
    Ok(generate(tokens))
}

/// Haskell's `isSpace`, which `words` splits on.
fn is_space(c: char) -> bool {
    matches!(
        c,
        ' ' | '\t' | '\n' | '\u{b}' | '\u{c}' | '\r' | '\u{a0}' | '\u{1680}' | '\u{2000}'
            ..='\u{200a}' | '\u{202f}' | '\u{205f}' | '\u{3000}'
    )
}

fn words(s: &str) -> impl Iterator<Item = &str> {
    s.split(is_space).filter(|w| !w.is_empty()).flat_map(|w| {
        let mut parts = Vec::new();
        let mut start = 0;
        for (i, c) in w.char_indices() {
            if c == '(' || c == ')' {
                parts.push(&w[start..i]);
                parts.push(&w[i..i + 1]);
                start = i + 1;
            }
        }
        parts.push(&w[start..]);
        parts.into_iter().filter(|p| !p.is_empty())
    })
}

fn parse_word(w: &str) -> Result<Token, ParseError> {
    let simple = match w {
        "and" => return Ok(Token::And),
        "or" => return Ok(Token::Or),
        "not" => return Ok(Token::Not),
        "(" => return Ok(Token::Open),
        ")" => return Ok(Token::Close),
        "standard" => Some(Term::Standard),
        "groupwanted" => Some(Term::GroupWanted),
        "inpreferreddir" => Some(Term::InPreferredDir),
        "present" => Some(Term::Present),
        "securehash" => Some(Term::SecureHash),
        "anything" => Some(Term::Anything),
        "nothing" => Some(Term::Nothing),
        "unused" => Some(Term::Unused),
        _ => None,
    };
    if let Some(t) = simple {
        return Ok(Token::Term(t));
    }
    let (k, v) = w.split_once('=').unwrap_or((w, ""));
    let bad = |reason: &str| ParseError::BadValue {
        term: w.to_owned(),
        reason: reason.to_owned(),
    };
    let term = match k {
        "copies" => parse_copies(v).map_err(bad)?,
        "lackingcopies" | "approxlackingcopies" => Term::LackingCopies {
            n: read_int(v).ok_or_else(|| bad("bad value for number of lacking copies"))?,
            approx: k == "approxlackingcopies",
        },
        "inbackend" => Term::InBackend(v.to_owned()),
        "metadata" => {
            let field = v.split(['=', '<', '>']).next().unwrap_or("");
            let mut cs = field.chars();
            let legal = cs.next().is_some_and(char::is_alphanumeric)
                && cs.all(|c| c.is_alphanumeric() || "_-.".contains(c));
            if !legal {
                return Err(bad("illegal metadata field name"));
            }
            Term::MetaData(v.to_owned())
        }
        "url" => Term::Url(v.to_owned()),
        "inallgroup" => Term::InAllGroup(v.to_owned()),
        "onlyingroup" => Term::OnlyInGroup(v.to_owned()),
        "balanced" | "fullybalanced" | "sizebalanced" | "fullysizebalanced" => {
            let kind = match k {
                "balanced" => BalancedKind::Balanced,
                "fullybalanced" => BalancedKind::FullyBalanced,
                "sizebalanced" => BalancedKind::SizeBalanced,
                _ => BalancedKind::FullySizeBalanced,
            };
            parse_balanced(kind, v).map_err(bad)?
        }
        "include" => Term::Include(Glob::new(v)),
        "exclude" => Term::Exclude(Glob::new(v)),
        "largerthan" => Term::LargerThan(read_size(v).ok_or_else(|| bad("bad size"))?),
        "smallerthan" => Term::SmallerThan(read_size(v).ok_or_else(|| bad("bad size"))?),
        _ => return Err(ParseError::UnknownTerm(w.to_owned())),
    };
    Ok(Token::Term(term))
}

pub(crate) fn parse_copies(v: &str) -> Result<Term, &'static str> {
    let parts: Vec<&str> = v.split(':').collect();
    let (of, n) = match parts.as_slice() {
        [n] => (CopiesOf::All, n),
        // A group named like a trust level is read as the trust level.
        [spec, n] => {
            let (name, or_better) = match spec.strip_suffix('+') {
                Some(s) => (s, true),
                None => (*spec, false),
            };
            match TrustLevel::from_name(name) {
                Some(level) => (CopiesOf::Trust { level, or_better }, n),
                None => (CopiesOf::Group((*spec).to_owned()), n),
            }
        }
        _ => return Err("bad value for copies"),
    };
    let n = read_int(n).ok_or("bad number for copies")?;
    Ok(Term::Copies { of, n })
}

fn parse_balanced(kind: BalancedKind, v: &str) -> Result<Term, &'static str> {
    let parts: Vec<&str> = v.split(':').collect();
    let (group, count) = match parts.as_slice() {
        [g] => (g, BalancedCount::N(1)),
        [g, "lackingcopies"] => (g, BalancedCount::LackingCopies),
        [g, n] => (
            g,
            BalancedCount::N(read_int(n).ok_or(match kind {
                BalancedKind::Balanced => "bad number for balanced",
                BalancedKind::FullyBalanced => "bad number for fullybalanced",
                BalancedKind::SizeBalanced => "bad number for sizebalanced",
                BalancedKind::FullySizeBalanced => "bad number for fullysizebalanced",
            })?),
        ),
        _ => return Err("bad value for balanced"),
    };
    Ok(Term::Balanced {
        kind,
        group: (*group).to_owned(),
        count,
        raw: v.to_owned(),
    })
}

/// A number as Haskell's `reads` finds one at the start of a string: it
/// skips leading spaces, takes an optional `-`, then a decimal, `0x` or `0o`
/// literal, and ignores what follows — unless what follows makes it a
/// fraction or exponent (`2.5`, `1e2`), which is no integer at all.
/// Overflow wraps, as `fromInteger` does.
pub(crate) fn read_int(s: &str) -> Option<i64> {
    let s = s.trim_start_matches(is_space);
    let (neg, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest.trim_start_matches(is_space)),
        None => (false, s),
    };
    let b = s.as_bytes();
    let radix_digits = |radix: u32, from: usize| {
        let end = b[from..]
            .iter()
            .position(|c| !(*c as char).is_digit(radix))
            .map_or(b.len(), |p| from + p);
        (end > from).then_some((from, end))
    };
    let prefixed = match (b.first(), b.get(1)) {
        (Some(b'0'), Some(b'x' | b'X')) => radix_digits(16, 2).map(|r| (16, r)),
        (Some(b'0'), Some(b'o' | b'O')) => radix_digits(8, 2).map(|r| (8, r)),
        _ => None,
    };
    let (radix, (from, end)) = match prefixed {
        Some(p) => p,
        None => {
            let (from, end) = radix_digits(10, 0)?;
            let rest = &b[end..];
            let frac = rest.first() == Some(&b'.') && rest.get(1).is_some_and(u8::is_ascii_digit);
            let exp = matches!(rest.first(), Some(b'e' | b'E')) && {
                let r = &rest[1..];
                let r = r
                    .strip_prefix(b"-")
                    .or_else(|| r.strip_prefix(b"+"))
                    .unwrap_or(r);
                r.first().is_some_and(u8::is_ascii_digit)
            };
            if frac || exp {
                return None;
            }
            (10, (from, end))
        }
    };
    let mut v: i64 = 0;
    for c in &b[from..end] {
        let d = (*c as char).to_digit(radix).expect("digits were checked");
        v = v.wrapping_mul(i64::from(radix)).wrapping_add(i64::from(d));
    }
    Some(if neg { v.wrapping_neg() } else { v })
}

/// A size as git-annex's `readSize` reads one; unlike
/// [`crate::repo::parse_data_size`] a leading `-` keeps its sign.
pub(crate) fn read_size(s: &str) -> Option<i128> {
    let t = s.trim_start_matches(is_space);
    match t.strip_prefix('-') {
        Some(rest) if rest.starts_with(|c: char| c.is_ascii_digit()) => {
            crate::repo::parse_data_size(rest).map(|v| -i128::from(v))
        }
        _ => crate::repo::parse_data_size(t).map(i128::from),
    }
}

enum Group {
    One(Token),
    Paren(Vec<Group>),
}

/// Nest parenthesised runs; a stray `)` is dropped and a missing one is
/// assumed at the end.
fn group(tokens: Vec<Token>) -> Vec<Group> {
    let mut stack: Vec<Vec<Group>> = vec![Vec::new()];
    for t in tokens {
        match t {
            Token::Open => stack.push(Vec::new()),
            Token::Close => {
                if stack.len() > 1 {
                    let inner = stack.pop().expect("len > 1");
                    stack
                        .last_mut()
                        .expect("len > 1 before pop")
                        .push(Group::Paren(inner));
                }
            }
            t => stack.last_mut().expect("never empty").push(Group::One(t)),
        }
    }
    while stack.len() > 1 {
        let inner = stack.pop().expect("len > 1");
        stack
            .last_mut()
            .expect("len > 1 before pop")
            .push(Group::Paren(inner));
    }
    stack.pop().expect("never empty")
}

fn is_operand(g: &Group) -> bool {
    matches!(g, Group::Paren(_) | Group::One(Token::Term(_)))
}

/// Only at the top level, as in git-annex: inside parentheses a group
/// right after an operand continues that operand's fold, so
/// `(a (b or c))` is `(a and b) or c`.
fn implicit_and(groups: Vec<Group>) -> Vec<Group> {
    let mut out: Vec<Group> = Vec::with_capacity(groups.len());
    for g in groups {
        if out.last().is_some_and(is_operand) && is_operand(&g) {
            out.push(Group::One(Token::And));
        }
        out.push(g);
    }
    out
}

fn and(a: Expr, b: Expr) -> Expr {
    Expr::And(Box::new(a), Box::new(b))
}

fn generate(tokens: Vec<Token>) -> Expr {
    simplify(process(
        Expr::Any,
        &mut implicit_and(group(tokens)).into_iter(),
    ))
}

fn process(mut acc: Expr, it: &mut std::vec::IntoIter<Group>) -> Expr {
    while let Some(g) = it.next() {
        acc = consume(acc, g, it);
    }
    acc
}

/// Fold one operator or operand into `acc`; an operator takes the next
/// single operand (itself possibly an operator applied to the one after).
fn consume(acc: Expr, g: Group, it: &mut std::vec::IntoIter<Group>) -> Expr {
    match g {
        Group::One(Token::Term(t)) => and(acc, Expr::Term(t)),
        Group::Paren(inner) => process(acc, &mut inner.into_iter()),
        Group::One(op) => {
            let operand = match it.next() {
                Some(next) => consume(Expr::Any, next, it),
                None => Expr::Any,
            };
            match op {
                Token::And => and(acc, operand),
                Token::Or => Expr::Or(Box::new(acc), Box::new(operand)),
                Token::Not => and(acc, Expr::Not(Box::new(operand))),
                Token::Open | Token::Close | Token::Term(_) => acc,
            }
        }
    }
}

/// Drop the `Any` that seeds each fold from `and`s (not from `or`s, where
/// git-annex keeps it too, and where it makes the `or` true).
fn simplify(e: Expr) -> Expr {
    match e {
        Expr::And(a, b) => match (*a, *b) {
            (Expr::Any, x) | (x, Expr::Any) => simplify(x),
            (a, b) => and(simplify(a), simplify(b)),
        },
        Expr::Or(a, b) => Expr::Or(Box::new(simplify(*a)), Box::new(simplify(*b))),
        Expr::Not(a) => Expr::Not(Box::new(simplify(*a))),
        e => e,
    }
}
