//! The gitremote-helpers command loop over in-memory input: no panic, and
//! every line it writes is one of its known replies (so nothing git sends
//! can be echoed back as a protocol line).
#![no_main]

use git_remote_annexproxy::helper::{run, Outcome, CAPABILITIES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte decides whether opening the tunnel succeeds.
    let Some((&mode, script)) = data.split_first() else {
        return;
    };
    let mut input = script;
    let mut output = Vec::new();
    let outcome = run(&mut input, &mut output, |_service, _options| {
        if mode & 1 == 0 {
            Ok(())
        } else {
            Err(std::io::Error::other("connection refused"))
        }
    });
    let text = String::from_utf8(output).expect("replies are UTF-8");
    for line in text.lines() {
        let known = line.is_empty()
            || CAPABILITIES.contains(&line)
            || line == "ok"
            || line == "unsupported"
            || line.starts_with("error ");
        assert!(known, "unexpected reply line {line:?}");
    }
    if let Ok(Outcome::Connected { options, .. }) = outcome {
        assert!(
            text.ends_with('\n'),
            "connect is answered with a blank line"
        );
        let _ = options;
    }
});
