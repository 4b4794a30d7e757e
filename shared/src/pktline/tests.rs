use super::commands::MAX_COMMANDS;
use super::*;

const A: &str = "1111111111111111111111111111111111111111";
const B: &str = "2222222222222222222222222222222222222222";
const Z: &str = "0000000000000000000000000000000000000000";

fn pkt(s: &str) -> Vec<u8> {
    encode(s.as_bytes()).expect("short test line")
}

fn up(old: &str, new: &str, name: &str) -> RefUpdate {
    RefUpdate::new(old, new, name)
}

#[test]
fn decode_frames_lines_and_special_packets() {
    assert_eq!(
        decode(b"0009hello!rest"),
        Ok(Decoded::Complete {
            line: PktLine::Data(b"hello"),
            consumed: 9
        })
    );
    assert_eq!(
        decode(b"0004"),
        Ok(Decoded::Complete {
            line: PktLine::Data(b""),
            consumed: 4
        })
    );
    for (bytes, line) in [
        (b"0000", PktLine::Flush),
        (b"0001", PktLine::Delimiter),
        (b"0002", PktLine::ResponseEnd),
    ] {
        assert_eq!(decode(bytes), Ok(Decoded::Complete { line, consumed: 4 }));
    }
    // upper-case hex is hex too
    assert!(matches!(
        decode(b"000Aabcdef"),
        Ok(Decoded::Complete { consumed: 10, .. })
    ));
}

#[test]
fn decode_asks_for_what_is_missing() {
    assert_eq!(decode(b""), Ok(Decoded::Incomplete { needed: 4 }));
    assert_eq!(decode(b"00"), Ok(Decoded::Incomplete { needed: 2 }));
    assert_eq!(decode(b"0009hel"), Ok(Decoded::Incomplete { needed: 2 }));
}

#[test]
fn decode_refuses_malformed_lengths() {
    assert_eq!(decode(b"zzzz"), Err(PktLineError::BadLength(*b"zzzz")));
    // Rust's integer parser would take a sign; git's reader does not.
    assert_eq!(decode(b"+009x"), Err(PktLineError::BadLength(*b"+009")));
    assert_eq!(decode(b" 009x"), Err(PktLineError::BadLength(*b" 009")));
    assert_eq!(decode(b"0003"), Err(PktLineError::TooShort(3)));
    assert_eq!(decode(b"fff1"), Err(PktLineError::TooLong(0xfff1)));
    assert_eq!(decode(b"ffff"), Err(PktLineError::TooLong(0xffff)));
    // the longest line git writes is fine, once it is all there
    assert_eq!(
        decode(b"fff0"),
        Ok(Decoded::Incomplete {
            needed: MAX_LINE - 4
        })
    );
}

#[test]
fn encode_is_decodes_inverse_within_gits_limit() {
    let line = pkt("want x\n");
    assert_eq!(line, b"000bwant x\n");
    assert_eq!(
        decode(&line),
        Ok(Decoded::Complete {
            line: PktLine::Data(b"want x\n"),
            consumed: 11
        })
    );
    assert!(encode(&vec![b'x'; MAX_LINE - 4]).is_some());
    assert!(encode(&vec![b'x'; MAX_LINE - 3]).is_none());
}

/// What git push sends first: commands (capabilities after a NUL on the
/// first), a flush, then the pack.
fn push_start() -> Vec<u8> {
    let mut v = pkt(&format!(
        "{A} {B} refs/heads/main\0 report-status side-band-64k agent=git/2\n"
    ));
    v.extend(pkt(&format!("{Z} {A} refs/tags/v1\n")));
    v.extend(pkt(&format!("{B} {Z} refs/heads/gone\n")));
    v.extend(b"0000PACK\0\0\0\x02");
    v
}

#[test]
fn commands_are_read_up_to_the_flush() {
    let mut c = Commands::default();
    c.feed(&push_start());
    assert!(c.done && !c.incomplete);
    assert_eq!(
        c.updates,
        [
            up(A, B, "refs/heads/main"),
            up(Z, A, "refs/tags/v1"),
            up(B, Z, "refs/heads/gone")
        ]
    );
}

#[test]
fn commands_split_across_data_messages() {
    let bytes = push_start();
    let mut c = Commands::default();
    for chunk in bytes.chunks(3) {
        c.feed(chunk);
    }
    assert!(c.done && !c.incomplete);
    assert_eq!(c.updates.len(), 3);
    // what follows the flush (the pack) is not kept
    assert_eq!(c.pending(), 0);
}

#[test]
fn commands_keep_only_the_unfinished_line() {
    let line = pkt(&format!("{A} {B} refs/heads/main\n"));
    let mut c = Commands::default();
    let mut bytes = line.clone();
    bytes.extend(&line[..10]);
    c.feed(&bytes);
    assert_eq!((c.updates.len(), c.pending(), c.done), (1, 10, false));
    c.feed(&line[10..]);
    assert_eq!((c.updates.len(), c.pending(), c.done), (2, 0, false));
}

#[test]
fn other_lines_name_no_update() {
    let mut c = Commands::default();
    let mut v = pkt(&format!("shallow {A}\n"));
    v.extend(pkt(&format!("{A} {B} refs/heads/main\0caps\n")));
    v.extend(pkt("not a command\n"));
    v.extend(pkt(&format!("{A} {B} HEAD\n")));
    v.extend(pkt(&format!("{A} {B}\n")));
    v.extend(pkt(&format!("{A} 12345 refs/heads/x\n")));
    v.extend(pkt(""));
    v.extend(b"0000");
    c.feed(&v);
    assert_eq!(c.updates, [up(A, B, "refs/heads/main")]);
    assert!(c.done && !c.incomplete);
}

#[test]
fn garbage_marks_the_list_incomplete() {
    let mut c = Commands::default();
    c.feed(b"zzzz");
    assert!(c.done && c.incomplete);
    // a length below 4 is no line of a push either
    for special in [b"0001", b"0002", b"0003"] {
        let mut c = Commands::default();
        c.feed(&pkt(&format!("{A} {B} refs/heads/main\n")));
        c.feed(special);
        assert!(c.done && c.incomplete, "{special:?}");
        // and nothing read after it counts
        c.feed(&pkt(&format!("{A} {B} refs/heads/other\n")));
        assert_eq!(c.updates.len(), 1);
    }
    // a length git would not write
    let mut c = Commands::default();
    c.feed(b"ffff");
    assert!(c.done && c.incomplete);
    // and a list longer than anyone pushes: memory stays bounded
    let mut c = Commands::default();
    let line = pkt(&format!("{A} {B} refs/heads/main\n"));
    for _ in 0..=MAX_COMMANDS / line.len() {
        c.feed(&line);
    }
    assert!(c.done && c.incomplete);
    assert!(c.updates.len() <= MAX_COMMANDS / line.len());
}

#[test]
fn object_ids() {
    assert!(is_object_id(A) && is_object_id(&"ab".repeat(32)));
    assert!(!is_object_id(&A[1..]) && !is_object_id(&"g".repeat(40)));
    assert!(is_zero_id(Z) && !is_zero_id(A));
}
