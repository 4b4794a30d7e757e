//! Preferred-content expressions: parsing never panics, whatever the
//! nesting, and parsing is deterministic.
#![no_main]

use annex::preferred::parse;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let first = parse(text);
    assert_eq!(parse(text), first);
});
