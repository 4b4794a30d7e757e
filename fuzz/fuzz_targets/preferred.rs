//! Preferred-content expressions: parsing and evaluating never panic or
//! overflow the stack, whatever the length or nesting, and parsing is
//! deterministic.
//!
//! Input: a repeat count byte, then `EXPR` or `EXPR\0FILENAME`. The
//! expression is repeated so that short inputs reach deep nesting
//! (`(` × 200 000 before the word limit), which the length limit on inputs would otherwise hide.
#![no_main]

use std::collections::BTreeSet;

use annex::key::Key;
use annex::preferred::{eval_expr, parse, Facts, KeyInfo, RepoSizes};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&count, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let (expr, file) = text
        .split_once('\0')
        .unwrap_or((text, "sub/dir/a file.txt"));
    // Up to about 230 kB in all, so memory stays small.
    let repeats = match count.checked_sub(199) {
        Some(n) if n > 0 => usize::from(n) * 4096 / expr.len().max(1),
        _ => 1,
    };
    let expr = expr.repeat(repeats.max(1));

    let first = parse(&expr);
    assert_eq!(parse(&expr), first);
    let Ok(e) = first else { return };

    let key = Key::parse("SHA256E-s1048576--0123456789abcdef.txt").expect("fixed key parses");
    let holders: BTreeSet<String> = ["59e2e985-afc9-45be-bff1-df09590a8f31".to_string()].into();
    let info = KeyInfo {
        key: &key,
        file: Some(file),
        holders: &holders,
    };
    let facts = Facts::from_files(|_| None);
    let _ = eval_expr(
        &e,
        &facts,
        &RepoSizes::new(),
        "89e794df-17e2-499f-bd80-52e80f4b2504",
        &info,
    );
});
