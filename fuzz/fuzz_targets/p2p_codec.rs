//! The P2P line codec on arbitrary bytes, read as a stream the way a
//! session reads it: no panic, every step consumes what it claims, and
//! whatever decodes re-encodes to one line that decodes to the same message
//! (except where the wire form is lossy on purpose, see `lossy`).
#![no_main]

use annex::p2p::{decode, encode, DecodeError, Decoded, Message};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    loop {
        let newline = rest.iter().position(|&b| b == b'\n');
        match decode(rest) {
            Ok(Decoded::Complete { message, consumed }) => {
                assert_eq!(
                    Some(consumed - 1),
                    newline,
                    "a message ends at the first newline"
                );
                check_round_trip(&message);
                rest = &rest[consumed..];
            }
            Err(DecodeError::Unparseable { consumed, .. }) => {
                assert_eq!(
                    Some(consumed - 1),
                    newline,
                    "a bad line ends at the first newline"
                );
                rest = &rest[consumed..];
            }
            Ok(Decoded::Incomplete) => {
                assert!(
                    newline.is_none(),
                    "a buffer with a newline is never incomplete"
                );
                break;
            }
            Err(DecodeError::LineTooLong) => break,
        }
    }
});

fn encoded(m: &Message) -> Vec<u8> {
    let mut out = Vec::new();
    encode(m, &mut out);
    out
}

fn check_round_trip(m1: &Message) {
    let wire = encoded(m1);
    assert_eq!(
        wire.iter().filter(|&&b| b == b'\n').count(),
        1,
        "{m1:?} encodes to one line"
    );
    assert_eq!(wire.last(), Some(&b'\n'));
    let m2 = match decode(&wire) {
        Ok(Decoded::Complete { message, consumed }) => {
            assert_eq!(consumed, wire.len());
            message
        }
        other => panic!("{m1:?} encoded as {wire:?} does not decode: {other:?}"),
    };
    if !lossy(m1) {
        assert_eq!(&m2, m1, "wire form {:?}", String::from_utf8_lossy(&wire));
    }
    // Lossy or not, one trip normalises: the wire form is then stable.
    assert_eq!(encoded(&m2), wire, "{m1:?} then {m2:?}");
}

/// Messages whose wire form deliberately cannot carry every value:
/// a line break inside a field becomes a space (so no field can inject a
/// line), and an associated file's non-ASCII whitespace comes back as `_`
/// (git-annex's own escaping is lossy there).
fn lossy(m: &Message) -> bool {
    let breaks = |s: &str| s.contains(['\r', '\n']);
    let key_text = |m: &Message| match m {
        Message::CheckPresent(k)
        | Message::LockContent(k)
        | Message::Remove(k)
        | Message::RemoveBefore { key: k, .. }
        | Message::Get { key: k, .. }
        | Message::Put { key: k, .. } => Some(k.to_string()),
        _ => None,
    };
    if key_text(m).is_some_and(|k| breaks(&k)) {
        return true;
    }
    match m {
        Message::Error(t) | Message::AuthSuccess(t) => breaks(t),
        Message::Get { file: Some(f), .. } | Message::Put { file: Some(f), .. } => {
            f.chars().any(|c| !c.is_ascii() && c.is_whitespace())
        }
        _ => false,
    }
}
