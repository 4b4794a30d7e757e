//! Codec tests. Lines marked [obs] were checked against git-annex
//! 10.20261026's `git-annex-shell p2pstdio`: a line it answered with
//! `ERROR unknown command` must be unparseable here, and one it acted on
//! (or answered `ERROR unexpected command`) must parse.

use super::*;

const K6: &str = "SHA256E-s6--5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03.txt";
const U1: &str = "8f99040c-c5ea-4ad6-b9a2-6d84c3e7f096";
const U2: &str = "b76e0a72-ae44-4e18-9626-60f32937a4c1";

fn k(s: &str) -> Key {
    Key::parse(s).expect("test key")
}

fn enc(m: &Message) -> Vec<u8> {
    let mut out = Vec::new();
    encode(m, &mut out);
    out
}

fn dec(line: &[u8]) -> Message {
    match decode(line) {
        Ok(Decoded::Complete { message, consumed }) => {
            assert_eq!(consumed, line.len(), "whole line consumed: {line:?}");
            message
        }
        other => panic!("{line:?} did not decode: {other:?}"),
    }
}

fn unparseable(line: &[u8]) {
    match decode(line) {
        Err(DecodeError::Unparseable { consumed, .. }) => assert_eq!(consumed, line.len()),
        other => panic!("{line:?} should be unparseable, got {other:?}"),
    }
}

/// One direction of a transcript: every line must decode to a message that
/// encodes back to exactly the same bytes.
fn roundtrip_exact(line: &str) -> Message {
    let m = dec(line.as_bytes());
    assert_eq!(
        String::from_utf8(enc(&m)).expect("utf8"),
        line,
        "re-encoding {m:?}"
    );
    m
}

fn all_messages() -> Vec<Message> {
    let key = k(K6);
    vec![
        Message::Auth {
            uuid: U1.into(),
            token: "abc123".into(),
        },
        Message::Auth {
            uuid: String::new(),
            token: "abc".into(),
        },
        Message::AuthSuccess(U1.into()),
        Message::AuthFailure,
        Message::Version(4),
        Message::Bypass(vec![U1.into(), U2.into()]),
        Message::Bypass(vec![]),
        Message::CheckPresent(key.clone()),
        Message::LockContent(key.clone()),
        Message::UnlockContent,
        Message::Remove(key.clone()),
        Message::RemoveBefore {
            timestamp: 3054,
            key: key.clone(),
        },
        Message::GetTimestamp,
        Message::Timestamp(2455),
        Message::Get {
            offset: 0,
            file: Some("a.txt".into()),
            key: key.clone(),
        },
        Message::Get {
            offset: 7,
            file: None,
            key: key.clone(),
        },
        Message::Put {
            file: Some("dir/x.bin".into()),
            key: key.clone(),
        },
        Message::Put { file: None, key },
        Message::PutFrom(20),
        Message::AlreadyHave,
        Message::AlreadyHavePlus(vec![U1.into()]),
        Message::Data(u64::MAX),
        Message::DataPresent,
        Message::Valid,
        Message::Invalid,
        Message::Success,
        Message::Failure,
        Message::SuccessPlus(vec![U1.into(), U2.into()]),
        Message::FailurePlus(vec![U2.into()]),
        Message::SuccessPlus(vec![]),
        Message::Connect(Service::UploadPack),
        Message::Connect(Service::ReceivePack),
        Message::ConnectDone(0),
        Message::ConnectDone(128),
        Message::ConnectDone(-1),
        Message::NotifyChange,
        Message::Changed(vec!["a".repeat(40), "b".repeat(40)]),
        Message::Changed(vec![]),
        Message::Error("unknown command".into()),
        Message::Error(String::new()),
    ]
}

#[test]
fn every_message_round_trips() {
    for m in all_messages() {
        let bytes = enc(&m);
        assert_eq!(bytes.last(), Some(&b'\n'));
        assert_eq!(bytes.iter().filter(|&&b| b == b'\n').count(), 1, "{m:?}");
        assert_eq!(dec(&bytes), m, "{:?}", String::from_utf8_lossy(&bytes));
    }
}

#[test]
fn exact_wire_forms() {
    let key = k(K6);
    let cases: Vec<(Message, String)> = vec![
        (
            Message::Put {
                file: None,
                key: key.clone(),
            },
            format!("PUT  {K6}\n"),
        ),
        (
            Message::Get {
                offset: 0,
                file: None,
                key: key.clone(),
            },
            format!("GET 0  {K6}\n"),
        ),
        (
            Message::Auth {
                uuid: String::new(),
                token: "tok".into(),
            },
            "AUTH  tok\n".into(),
        ),
        (
            Message::AuthSuccess(String::new()),
            "AUTH-SUCCESS \n".into(),
        ),
        (Message::Data(6), "DATA 6\n".into()),
        (Message::SuccessPlus(vec![]), "SUCCESS-PLUS\n".into()),
        (Message::Bypass(vec![]), "BYPASS\n".into()),
        (Message::Changed(vec![]), "CHANGED \n".into()),
        (Message::Error(String::new()), "ERROR \n".into()),
        (Message::ConnectDone(0), "CONNECTDONE 0\n".into()),
        (
            Message::Connect(Service::ReceivePack),
            "CONNECT git-receive-pack\n".into(),
        ),
        (
            Message::AlreadyHavePlus(vec![U1.into(), U2.into()]),
            format!("ALREADY-HAVE-PLUS {U1} {U2}\n"),
        ),
        (
            Message::RemoveBefore {
                timestamp: 1788,
                key,
            },
            format!("REMOVE-BEFORE 1788 {K6}\n"),
        ),
    ];
    for (m, wire) in cases {
        assert_eq!(String::from_utf8(enc(&m)).expect("utf8"), wire);
    }
}

#[test]
fn associated_file_escaping() {
    let key = k(K6);
    let put = |f: &str| Message::Put {
        file: Some(f.into()),
        key: key.clone(),
    };
    // [obs] the client sends `c%d.txt` for `c d.txt`.
    assert_eq!(
        enc(&put("c d.txt")),
        format!("PUT c%d.txt {K6}\n").into_bytes()
    );
    assert_eq!(
        enc(&put("100%.txt")),
        format!("PUT 100%%.txt {K6}\n").into_bytes()
    );
    assert_eq!(
        enc(&put("a\tb\nc\u{a0}d")),
        format!("PUT a%b%c%d {K6}\n").into_bytes()
    );
    // ...and a server sees a lone `%` as `_`, never as a space again.
    let got = |line: String| match dec(line.as_bytes()) {
        Message::Put { file, .. } | Message::Get { file, .. } => file,
        m => panic!("{m:?}"),
    };
    assert_eq!(got(format!("PUT c%d.txt {K6}\n")), Some("c_d.txt".into()));
    assert_eq!(
        got(format!("PUT 100%%.txt {K6}\n")),
        Some("100%.txt".into())
    );
    assert_eq!(got(format!("PUT %%%%% {K6}\n")), Some("%%_".into()));
    assert_eq!(got(format!("PUT a\x01b\x7fc {K6}\n")), Some("a_b_c".into()));
    assert_eq!(got(format!("PUT  {K6}\n")), None);
    assert_eq!(got(format!("GET 0 %abs {K6}\n")), Some("_abs".into()));
    // [obs] an absolute path makes the whole message unknown.
    unparseable(format!("GET 3 /abs {K6}\n").as_bytes());
    unparseable(format!("PUT /etc/passwd {K6}\n").as_bytes());
    // [obs] non-UTF-8 file names are accepted; kept lossily (display only).
    let mut line = b"GET 1 \xff\xfe ".to_vec();
    line.extend_from_slice(K6.as_bytes());
    line.push(b'\n');
    assert!(
        matches!(dec(&line), Message::Get { offset: 1, file: Some(f), .. } if f == "\u{fffd}\u{fffd}")
    );
}

#[test]
fn last_argument_is_the_remainder() {
    // [obs] `CHECKPRESENT  KEY` looks up a key named " KEY": with the
    // stand-in key parser a space makes it invalid, so check the split
    // itself through ERROR and AUTH-SUCCESS, whose text is free.
    assert_eq!(
        dec(b"ERROR  two  spaces \n"),
        Message::Error(" two  spaces ".into())
    );
    assert_eq!(dec(b"ERROR\n"), Message::Error(String::new()));
    assert_eq!(
        dec(b"AUTH-SUCCESS a b\n"),
        Message::AuthSuccess("a b".into())
    );
    assert_eq!(
        dec(b"AUTH u t\n"),
        Message::Auth {
            uuid: "u".into(),
            token: "t".into()
        }
    );
    assert_eq!(
        dec(b"AUTH\n"),
        Message::Auth {
            uuid: String::new(),
            token: String::new()
        }
    );
    // [obs] tab separates as well as space.
    assert_eq!(
        dec(format!("GET\t3\tfoo\t{K6}\n").as_bytes()),
        Message::Get {
            offset: 3,
            file: Some("foo".into()),
            key: k(K6)
        }
    );
    // [obs] `REMOVE-BEFORE  5 KEY`: empty timestamp field.
    unparseable(format!("REMOVE-BEFORE  5 {K6}\n").as_bytes());
    unparseable(b"CHECKPRESENT\n");
    unparseable(b"CHECKPRESENT notakey\n");
}

#[test]
fn lists_split_on_whitespace_runs() {
    assert_eq!(
        dec(b"BYPASS a  b\t c \n"),
        Message::Bypass(vec!["a".into(), "b".into(), "c".into()])
    );
    assert_eq!(dec(b"BYPASS\n"), Message::Bypass(vec![]));
    assert_eq!(dec(b"SUCCESS-PLUS   \n"), Message::SuccessPlus(vec![]));
    assert_eq!(
        dec(b"CHANGED x  y\n"),
        Message::Changed(vec!["x".into(), "y".into()])
    );
}

#[test]
fn argumentless_messages_allow_one_trailing_separator() {
    // [obs] `SUCCESS ` parses (answered "unexpected"), `SUCCESS  ` does not.
    assert_eq!(dec(b"SUCCESS \n"), Message::Success);
    assert_eq!(dec(b"SUCCESS\t\n"), Message::Success);
    unparseable(b"SUCCESS  \n");
    unparseable(b"GETTIMESTAMP x\n");
    unparseable(b"VALID x\n");
}

#[test]
fn numbers_read_like_haskell_reads() {
    let v = |s: &str| match decode(format!("VERSION {s}\n").as_bytes()) {
        Ok(Decoded::Complete {
            message: Message::Version(v),
            ..
        }) => Some(v),
        Err(DecodeError::Unparseable { .. }) => None,
        other => panic!("{other:?}"),
    };
    // All [obs] against git-annex's reply to VERSION.
    assert_eq!(v("4abc"), Some(4));
    assert_eq!(v(" 3"), Some(3));
    assert_eq!(v("0x3"), Some(3));
    assert_eq!(v("0o3"), Some(3));
    assert_eq!(v("0x"), Some(0));
    assert_eq!(v("0b1"), Some(0));
    assert_eq!(v("2 5"), Some(2));
    assert_eq!(v("2.x"), Some(2));
    assert_eq!(v("2e"), Some(2));
    assert_eq!(v("2e+"), Some(2));
    assert_eq!(v("3_0"), Some(3));
    assert_eq!(v("3-"), Some(3));
    assert_eq!(v("99999999999999999999999"), Some(u32::MAX));
    assert_eq!(v("1e3"), None);
    assert_eq!(v("2E1"), None);
    assert_eq!(v("1.5"), None);
    assert_eq!(v("+3"), None);
    assert_eq!(v(""), None);
    // git-annex answers `VERSION -1`; refusing is the sane deviation.
    assert_eq!(v("-1"), None);
    unparseable(b"VERSION\n");
    assert_eq!(dec(b"DATA 5abc\n"), Message::Data(5));
    assert_eq!(dec(b"DATA 18446744073709551615\n"), Message::Data(u64::MAX));
    unparseable(b"DATA 18446744073709551616\n");
    unparseable(b"PUT-FROM x\n");
}

#[test]
fn exit_codes_are_read_strictly() {
    assert_eq!(dec(b"CONNECTDONE 0\n"), Message::ConnectDone(0));
    assert_eq!(dec(b"CONNECTDONE -2\n"), Message::ConnectDone(-2));
    assert_eq!(dec(b"CONNECTDONE 1 \n"), Message::ConnectDone(1));
    unparseable(b"CONNECTDONE 1x\n");
    unparseable(b"CONNECTDONE\n");
    unparseable(b"CONNECTDONE 99999999999\n");
}

#[test]
fn services_and_tokens() {
    unparseable(b"CONNECT git-upload-archive\n");
    unparseable(b"CONNECT git-upload-pack \n");
    assert_eq!(
        dec(b"AUTH u AbC9\n"),
        Message::Auth {
            uuid: "u".into(),
            token: "abc9".into()
        }
    );
    unparseable(b"AUTH u a-b\n");
    unparseable(b"AUTH u a b\n");
}

#[test]
fn unknown_verbs_and_case() {
    // [obs] all three answered `ERROR unknown command`.
    unparseable(b"FOO bar\n");
    unparseable(b"version 4\n");
    unparseable(b" VERSION 4\n");
    let err = decode(b"FOO bar\r\nnext").expect_err("unknown verb");
    assert_eq!(
        err,
        DecodeError::Unparseable {
            line: "FOO bar".into(),
            consumed: 9
        }
    );
    assert!(err.is_recoverable());
}

#[test]
fn non_utf8_never_panics() {
    for line in [
        &b"\xff\xfe\n"[..],
        b"ERROR \xff\n",
        b"BYPASS \xff\n",
        b"AUTH \xff t\n",
        b"CHECKPRESENT \xc3\n",
    ] {
        let _ = decode(line);
    }
    assert_eq!(
        dec(b"ERROR bad \xff\n"),
        Message::Error("bad \u{fffd}".into())
    );
    unparseable(b"BYPASS ok \xff\n");
    unparseable(b"CHECKPRESENT SHA1--\xff\n");
}

#[test]
fn carriage_return_and_partial_lines() {
    assert_eq!(dec(b"VERSION 4\r\n"), Message::Version(4));
    assert_eq!(decode(b"VERSION 4"), Ok(Decoded::Incomplete));
    assert_eq!(decode(b""), Ok(Decoded::Incomplete));
    // Only the first line counts; the rest belongs to the next call.
    assert_eq!(
        decode(b"SUCCESS\nFAILURE\n"),
        Ok(Decoded::Complete {
            message: Message::Success,
            consumed: 8
        })
    );
    // An empty line is not a message.
    unparseable(b"\n");
    unparseable(b"\r\n");
}

#[test]
fn line_length_limit_matches_git_annex() {
    // [obs] 32767 characters then `\n` is a line; 32768 is a protocol error.
    let mut ok = b"FOO ".to_vec();
    ok.resize(MAX_LINE_CHARS, b'x');
    ok.push(b'\n');
    unparseable(&ok);
    let mut long = b"FOO ".to_vec();
    long.resize(MAX_LINE_CHARS + 1, b'x');
    assert_eq!(
        decode(&long),
        Err(DecodeError::LineTooLong),
        "without newline"
    );
    long.push(b'\n');
    assert_eq!(decode(&long), Err(DecodeError::LineTooLong), "with newline");
    assert!(!DecodeError::LineTooLong.is_recoverable());
    // The `\r` counts, being a character read before the `\n`.
    let mut cr = b"FOO ".to_vec();
    cr.resize(MAX_LINE_CHARS, b'x');
    cr.extend_from_slice(b"\r\n");
    assert_eq!(decode(&cr), Err(DecodeError::LineTooLong));
    // Stray continuation bytes start no character, yet they are bounded:
    // a line never grows past four bytes a character.
    let mut stray = b"FOO ".to_vec();
    stray.resize(4 * MAX_LINE_CHARS + 1, 0x80);
    assert_eq!(decode(&stray), Err(DecodeError::LineTooLong), "stray bytes");
    // [obs] characters, not bytes: 20000 two-byte characters are fine.
    let mut wide = b"FOO ".to_vec();
    for _ in 0..20000 {
        wide.extend_from_slice("é".as_bytes());
    }
    wide.push(b'\n');
    unparseable(&wide);
}

#[test]
fn transcript_get_spec_2_7() {
    roundtrip_exact(&format!("AUTH-SUCCESS {U1}\n"));
    assert_eq!(roundtrip_exact("VERSION 4\n"), Message::Version(4));
    let get = roundtrip_exact(&format!("GET 0 a.txt {K6}\n"));
    assert_eq!(
        get,
        Message::Get {
            offset: 0,
            file: Some("a.txt".into()),
            key: k(K6)
        }
    );
    // DATA, its raw body (ending in \n by chance) and VALID in one buffer.
    let stream = b"DATA 6\nhello\nVALID\n";
    let Ok(Decoded::Complete {
        message: Message::Data(6),
        consumed,
    }) = decode(stream)
    else {
        panic!("DATA header")
    };
    assert_eq!(&stream[consumed..consumed + 6], b"hello\n");
    assert_eq!(dec(&stream[consumed + 6..]), Message::Valid);
    roundtrip_exact("SUCCESS\n");
}

#[test]
fn transcript_copy_to_and_misc_spec_2_7() {
    let key24 = "SHA256E-s24--d11e3e14aa4cf2bf8ed07cb5c3b6e2d6b3a0f4a3d0b39c6e5d6e8a4a1c76998b.txt";
    roundtrip_exact(&format!("CHECKPRESENT {key24}\n"));
    roundtrip_exact("FAILURE\n");
    // Not a round trip: the server sees `c_d.txt`, the client had `c d.txt`.
    let put = dec(format!("PUT c%d.txt {key24}\n").as_bytes());
    assert_eq!(
        put,
        Message::Put {
            file: Some("c_d.txt".into()),
            key: k(key24)
        }
    );
    let sent = Message::Put {
        file: Some("c d.txt".into()),
        key: k(key24),
    };
    assert_eq!(enc(&sent), format!("PUT c%d.txt {key24}\n").into_bytes());
    roundtrip_exact("PUT-FROM 0\n");
    roundtrip_exact("DATA 24\n");
    roundtrip_exact("VALID\n");
    roundtrip_exact(&format!("REMOVE {K6}\n"));
    roundtrip_exact(&format!("LOCKCONTENT {K6}\n"));
    roundtrip_exact("UNLOCKCONTENT\n");
    roundtrip_exact("PUT-FROM 20\n");
    roundtrip_exact("ALREADY-HAVE\n");
    roundtrip_exact("GETTIMESTAMP\n");
    roundtrip_exact("TIMESTAMP 1688\n");
    roundtrip_exact(&format!("REMOVE-BEFORE 1687 {K6}\n"));
    roundtrip_exact("ERROR unknown command\n");
    roundtrip_exact("INVALID\n");
    roundtrip_exact("DATA 0\n");
}

#[test]
fn transcript_proxy_and_cluster_spec_6_3_7_3() {
    let cluster = "ac15440a-d31a-8d6e-a592-60d4fcf6a0f2";
    let n1 = "e0bc0cf7-5d9d-43c4-88d6-9e826b82e791";
    let gw = "8539dd90-0000-4000-8000-000000000491";
    roundtrip_exact(&format!("AUTH-SUCCESS {cluster}\n"));
    roundtrip_exact("VERSION 1\n");
    roundtrip_exact(&format!(
        "BYPASS 11111111-2222-3333-4444-555555555555 {gw}\n"
    ));
    roundtrip_exact(&format!("PUT cf.txt {K6}\n"));
    roundtrip_exact(&format!("PUT  {K6}\n"));
    let plus = roundtrip_exact(&format!("SUCCESS-PLUS {U2} {n1}\n"));
    assert_eq!(plus, Message::SuccessPlus(vec![U2.into(), n1.into()]));
    roundtrip_exact(&format!("ALREADY-HAVE-PLUS {U2} {n1}\n"));
    roundtrip_exact("TIMESTAMP 2455\n");
    roundtrip_exact(&format!("REMOVE-BEFORE 3054 {K6}\n"));
    roundtrip_exact("NOTIFYCHANGE\n");
    roundtrip_exact("ERROR protocol error\n");
}

#[test]
fn transcript_p2p_annex_connect_spec_8_4() {
    let token = "2f39b0072827".to_string() + &"0".repeat(50) + "64";
    let auth = roundtrip_exact(&format!("AUTH  {token}\n"));
    assert_eq!(
        auth,
        Message::Auth {
            uuid: String::new(),
            token
        }
    );
    roundtrip_exact("AUTH-SUCCESS d2eeee81-bda8-4974-bcf3-2c77ebf14ffe\n");
    roundtrip_exact("CONNECT git-upload-pack\n");
    roundtrip_exact("DATA 390\n");
    roundtrip_exact("DATA 9\n");
    roundtrip_exact("CONNECTDONE 0\n");
}

#[test]
fn encoding_never_breaks_the_line() {
    let mut out = Vec::new();
    encode(&Message::Error("two\nlines\r".into()), &mut out);
    assert_eq!(out, b"ERROR two lines \n");
    out.clear();
    encode(&Message::Bypass(vec!["a\nb".into()]), &mut out);
    assert_eq!(out, b"BYPASS a b\n");
}

mod props {
    //! Property tests: every message whose fields the wire can carry comes
    //! back from `decode(encode(m))` unchanged, and no byte string makes
    //! `decode` panic or claim more than it read.
    use super::*;
    use proptest::prelude::*;

    /// A field without whitespace (UUIDs, list items, shas).
    const WORD: &str = "[!-~\u{e9}\u{4e2d}]{1,12}";
    /// Free text without line breaks (ERROR, AUTH-SUCCESS).
    const TEXT: &str = "[ -~\u{e9}\u{a0}]{0,24}";

    fn arb_key() -> impl Strategy<Value = Key> {
        (
            "[A-Z0-9_]{1,8}",
            proptest::option::of(any::<u64>()),
            proptest::option::of(0..=i64::MAX as u64),
            "[ -~\u{e9}]{0,20}",
        )
            .prop_filter_map("not a key", |(variety, size, mtime, name)| {
                let size = size.map(|s| format!("-s{s}")).unwrap_or_default();
                let mtime = mtime.map(|m| format!("-m{m}")).unwrap_or_default();
                Key::parse(&format!("{variety}{size}{mtime}--{name}")).ok()
            })
    }

    /// Associated files the escaping carries back: no whitespace (it comes
    /// back as `_`), no control characters, not absolute.
    fn arb_file() -> impl Strategy<Value = Option<String>> {
        proptest::option::of("[!-~\u{e9}]{1,16}".prop_filter("absolute", |f| !f.starts_with('/')))
    }

    fn words() -> impl Strategy<Value = Vec<String>> {
        proptest::collection::vec(WORD, 0..4)
    }

    fn arb_message() -> impl Strategy<Value = Message> {
        prop_oneof![
            ("[!-~]{0,12}", "[a-z0-9]{0,16}")
                .prop_map(|(uuid, token)| Message::Auth { uuid, token }),
            TEXT.prop_map(Message::AuthSuccess),
            Just(Message::AuthFailure),
            any::<u32>().prop_map(Message::Version),
            words().prop_map(Message::Bypass),
            arb_key().prop_map(Message::CheckPresent),
            arb_key().prop_map(Message::LockContent),
            Just(Message::UnlockContent),
            arb_key().prop_map(Message::Remove),
            (any::<u64>(), arb_key())
                .prop_map(|(timestamp, key)| Message::RemoveBefore { timestamp, key }),
            Just(Message::GetTimestamp),
            any::<u64>().prop_map(Message::Timestamp),
            (any::<u64>(), arb_file(), arb_key()).prop_map(|(offset, file, key)| Message::Get {
                offset,
                file,
                key
            }),
            (arb_file(), arb_key()).prop_map(|(file, key)| Message::Put { file, key }),
            any::<u64>().prop_map(Message::PutFrom),
            Just(Message::AlreadyHave),
            words().prop_map(Message::AlreadyHavePlus),
            any::<u64>().prop_map(Message::Data),
            Just(Message::DataPresent),
            Just(Message::Valid),
            Just(Message::Invalid),
            Just(Message::Success),
            Just(Message::Failure),
            words().prop_map(Message::SuccessPlus),
            words().prop_map(Message::FailurePlus),
            prop_oneof![Just(Service::UploadPack), Just(Service::ReceivePack)]
                .prop_map(Message::Connect),
            any::<i32>().prop_map(Message::ConnectDone),
            Just(Message::NotifyChange),
            words().prop_map(Message::Changed),
            TEXT.prop_map(Message::Error),
        ]
    }

    proptest! {
        #[test]
        fn encode_then_decode_is_identity(m in arb_message()) {
            let wire = enc(&m);
            prop_assert_eq!(wire.iter().filter(|&&b| b == b'\n').count(), 1);
            prop_assert_eq!(
                decode(&wire),
                Ok(Decoded::Complete { message: m, consumed: wire.len() })
            );
        }

        #[test]
        fn decode_never_panics_and_normalises_in_one_trip(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            match decode(&bytes) {
                Ok(Decoded::Complete { message, consumed }) => {
                    prop_assert!(consumed <= bytes.len() && bytes[consumed - 1] == b'\n');
                    let wire = enc(&message);
                    let again = dec(&wire);
                    prop_assert_eq!(enc(&again), wire);
                }
                Err(DecodeError::Unparseable { consumed, .. }) => {
                    prop_assert!(consumed <= bytes.len() && bytes[consumed - 1] == b'\n');
                }
                Ok(Decoded::Incomplete) => prop_assert!(!bytes.contains(&b'\n')),
                Err(DecodeError::LineTooLong) => prop_assert!(bytes.len() > MAX_LINE_CHARS),
            }
        }
    }
}
