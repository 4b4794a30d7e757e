//! The tree git-annex builds for an expression, written compactly.

use super::parse::read_int;
use super::*;

fn show(e: &Expr) -> String {
    match e {
        Expr::Any => "ANY".into(),
        Expr::And(a, b) => format!("({} & {})", show(a), show(b)),
        Expr::Or(a, b) => format!("({} | {})", show(a), show(b)),
        Expr::Not(a) => format!("!{}", show(a)),
        Expr::Term(Term::Include(g)) => format!("inc:{}", g.as_str()),
        Expr::Term(Term::Exclude(g)) => format!("exc:{}", g.as_str()),
        Expr::Term(Term::Anything) => "T".into(),
        Expr::Term(Term::Nothing) => "F".into(),
        Expr::Term(Term::Present) => "present".into(),
        Expr::Term(t) => format!("{t:?}"),
    }
}

fn tree(s: &str) -> String {
    show(&parse(s).expect("parses"))
}

#[test]
fn no_precedence_left_to_right() {
    assert_eq!(
        tree("include=a or include=b and include=c"),
        "((inc:a | inc:b) & inc:c)"
    );
    assert_eq!(
        tree("include=a and include=b or include=c"),
        "((inc:a & inc:b) | inc:c)"
    );
}

#[test]
fn implicit_and_and_not() {
    assert_eq!(tree("include=a include=b"), "(inc:a & inc:b)");
    assert_eq!(tree("include=a not include=b"), "(inc:a & !inc:b)");
    assert_eq!(tree("not not present"), "!!present");
    assert_eq!(tree("include=a or not include=b"), "(inc:a | !inc:b)");
    assert_eq!(
        tree("(include=a or include=b) include=c"),
        "((inc:a | inc:b) & inc:c)"
    );
    assert_eq!(
        tree("include=c (include=a or include=b)"),
        "(inc:c & (inc:a | inc:b))"
    );
}

#[test]
fn parens_are_split_and_forgiven() {
    assert_eq!(tree("not(include=a)"), "!inc:a");
    assert_eq!(
        tree("include=a and (include=b or include=c"),
        "(inc:a & (inc:b | inc:c))"
    );
    assert_eq!(tree("include=a ) or include=b ) )"), "(inc:a | inc:b)");
    assert_eq!(tree(""), "ANY");
    assert_eq!(tree("( )"), "ANY");
}

#[test]
fn inside_parens_a_group_continues_the_operand() {
    // Only the top level gets implicit `and`s; see parse.rs.
    assert_eq!(tree("(nothing (nothing or anything))"), "((F & F) | T)");
    assert_eq!(tree("nothing (nothing or anything)"), "(F & (F | T))");
}

#[test]
fn dangling_operators_keep_any() {
    // `or` with nothing after it is "or anything", as in git-annex.
    assert_eq!(tree("nothing or"), "(F | ANY)");
    assert_eq!(tree("nothing and"), "F");
    assert_eq!(tree("not"), "!ANY");
}

#[test]
fn terms_and_values() {
    let one = |s: &str| match parse(s).expect("parses") {
        Expr::Term(t) => t,
        e => panic!("not one term: {e:?}"),
    };
    assert_eq!(
        one("copies=2"),
        Term::Copies {
            of: CopiesOf::All,
            n: 2
        }
    );
    assert_eq!(
        one("copies=archive:1"),
        Term::Copies {
            of: CopiesOf::Group("archive".into()),
            n: 1
        }
    );
    assert_eq!(
        one("copies=trusted+:3"),
        Term::Copies {
            of: CopiesOf::Trust {
                level: TrustLevel::Trusted,
                or_better: true
            },
            n: 3
        }
    );
    assert_eq!(one("largerthan=1kb"), Term::LargerThan(1000));
    assert_eq!(one("smallerthan=2MiB"), Term::SmallerThan(2 * 1024 * 1024));
    assert_eq!(one("largerthan=-5"), Term::LargerThan(-5));
    assert_eq!(
        one("balanced=g:2"),
        Term::Balanced {
            kind: BalancedKind::Balanced,
            group: "g".into(),
            count: BalancedCount::N(2),
            raw: "g:2".into()
        }
    );
    assert!(matches!(
        one("fullysizebalanced=g:lackingcopies"),
        Term::Balanced {
            count: BalancedCount::LackingCopies,
            ..
        }
    ));
    assert!(matches!(one("metadata=tag=x"), Term::MetaData(_)));
    assert!(matches!(one("metadata=year>=2000"), Term::MetaData(_)));
}

#[test]
fn errors_name_the_word() {
    assert_eq!(
        parse("present in=here"),
        Err(ParseError::UnknownTerm("in=here".into()))
    );
    assert_eq!(
        parse("ingroup=x"),
        Err(ParseError::UnknownTerm("ingroup=x".into()))
    );
    assert_eq!(
        parse("anything=1"),
        Err(ParseError::UnknownTerm("anything=1".into()))
    );
    for bad in [
        "copies=2.5",
        "copies=1e2",
        "copies=",
        "copies",
        "copies=a:b:1",
        "largerthan=xyz",
        "largerthan=1foo",
        "balanced=g:x",
        "balanced=a:b:c",
        "lackingcopies=many",
        "metadata=-x=1",
    ] {
        assert!(
            matches!(parse(bad), Err(ParseError::BadValue { .. })),
            "{bad} should be a bad value: {:?}",
            parse(bad)
        );
    }
    assert_eq!(
        parse("copies=2.5").expect_err("bad").to_string(),
        "Parse failure: bad number for copies (in \"copies=2.5\")"
    );
}

#[test]
fn integers_as_haskell_reads_them() {
    assert_eq!(read_int("2abc"), Some(2));
    assert_eq!(read_int("0x1f"), Some(31));
    assert_eq!(read_int("0o17"), Some(15));
    assert_eq!(read_int("-1"), Some(-1));
    assert_eq!(read_int("1e"), Some(1));
    assert_eq!(read_int("2.x"), Some(2));
    assert_eq!(read_int("2.5"), None);
    assert_eq!(read_int("1e2"), None);
    assert_eq!(read_int("1e-2"), None);
    assert_eq!(read_int(""), None);
    assert_eq!(read_int("x"), None);
}

#[test]
fn never_panics_on_odd_input() {
    for s in [
        "((((",
        "))))",
        "not not not",
        "=",
        "==",
        "(=)",
        "a\u{a0}b",
        "\u{2003}",
        "[",
        "include=[",
    ] {
        let _ = parse(s);
    }
}

/// Found by the `preferred` fuzz target: 200k nested parentheses (or `not`s,
/// or `or`s) overflowed the stack while building the tree. At the word
/// limit the worst shapes parse, evaluate and drop on a 2 MiB thread (a
/// tokio worker's stack) in a debug build; past it parsing stops early.
#[test]
fn word_limit_bounds_recursion() {
    let at_limit = |w: &str, last: &str| format!("{}{last}", w.repeat(MAX_WORDS - 1));
    let cases = [
        at_limit("( ", "anything"),
        at_limit("not ", "anything"),
        format!("nothing{}", " or nothing".repeat((MAX_WORDS - 1) / 2)),
        at_limit("anything ", "anything"),
    ];
    let worker = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            let key = crate::key::Key::parse("SHA256E-s1--aa").expect("key");
            let holders = std::collections::BTreeSet::new();
            let info = KeyInfo {
                key: &key,
                file: Some("f"),
                holders: &holders,
            };
            let facts = Facts::from_files(|_| None);
            let sizes = RepoSizes::new();
            cases
                .iter()
                .map(|s| {
                    let e = parse(s).expect("at the limit parses");
                    eval_expr(&e, &facts, &sizes, "u", &info).expect("evaluates")
                })
                .collect::<Vec<bool>>()
        });
    let results = worker.expect("spawn").join().expect("no stack overflow");
    assert_eq!(results, [true, false, false, true]);

    for s in [
        "(".repeat(200_000),
        "not ".repeat(MAX_WORDS) + "anything",
        " or anything".repeat(100_000),
    ] {
        assert_eq!(parse(&s), Err(ParseError::TooLong));
    }
}
