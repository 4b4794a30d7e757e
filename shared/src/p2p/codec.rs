//! Sans-IO line codec: bytes ⇄ [`Message`], exactly as git-annex reads and
//! writes them.
//!
//! Reading mirrors git-annex's line parser, quirks included, because a real
//! client's bytes must mean the same thing here as there:
//! * a line ends at `\n`; one trailing `\r` is dropped; a line may hold at
//!   most [`MAX_LINE_CHARS`] characters before the `\n`;
//! * the verb is split off at the first whitespace character; a message with
//!   N arguments splits the first N-1 at the next single whitespace character
//!   and the last argument is the whole remainder (spaces included);
//!   list messages split on runs of whitespace;
//! * numbers are read like Haskell's `reads`: leading whitespace, decimal or
//!   `0x`/`0o` digits, and anything after them ignored (`VERSION 4abc` is
//!   version 4) unless the number goes on as a fraction or exponent.
//!
//! Deliberate differences, none reachable by a real client:
//! * whitespace means the ASCII whitespace of Haskell's `isSpace`
//!   (space, `\t`, `\n`, `\v`, `\f`, `\r`); git-annex in a UTF-8 locale would
//!   also split at non-ASCII spaces such as U+00A0;
//! * negative numbers, `(n)` and `- n` forms are refused (git-annex reads
//!   them, e.g. answers `VERSION -1`); a number that overflows u64 is refused,
//!   except a version, which saturates (any large version means "newest");
//! * keys, UUIDs, tokens and shas must be UTF-8, else the line is
//!   unparseable; an associated file or an `ERROR` text is decoded lossily,
//!   since git-annex only displays or logs them.

use std::fmt::Write as _;

use crate::key::Key;

use super::message::{Message, Service};

/// Most characters git-annex accepts before the `\n` of one line (it gives
/// up after reading 32768 without seeing one).
pub const MAX_LINE_CHARS: usize = 32767;

/// Outcome of looking at the start of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    /// A whole message, taking the first `consumed` bytes of the buffer.
    Complete { message: Message, consumed: usize },
    /// No complete line yet; read more and try again.
    Incomplete,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    /// A complete line that is not a valid message. The peer is still in
    /// step: skip `consumed` bytes, reply `ERROR unknown command`, go on.
    #[error("unparseable protocol line {line:?}")]
    Unparseable { line: String, consumed: usize },
    /// More than [`MAX_LINE_CHARS`] without a newline; git-annex treats
    /// this as a fatal protocol error.
    #[error("protocol line longer than {MAX_LINE_CHARS} characters")]
    LineTooLong,
}

impl DecodeError {
    /// Whether the session can carry on after this error.
    pub fn is_recoverable(&self) -> bool {
        matches!(self, DecodeError::Unparseable { .. })
    }
}

/// Decode the first message in `buf`.
pub fn decode(buf: &[u8]) -> Result<Decoded, DecodeError> {
    let Some(newline) = buf.iter().position(|&b| b == b'\n') else {
        if too_long(buf) {
            return Err(DecodeError::LineTooLong);
        }
        return Ok(Decoded::Incomplete);
    };
    let line = &buf[..newline];
    if too_long(line) {
        return Err(DecodeError::LineTooLong);
    }
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let consumed = newline + 1;
    match parse_line(line) {
        Some(message) => Ok(Decoded::Complete { message, consumed }),
        None => Err(DecodeError::Unparseable {
            line: String::from_utf8_lossy(line).into_owned(),
            consumed,
        }),
    }
}

/// Whether `bytes` (a line, or the start of one) holds more than
/// [`MAX_LINE_CHARS`] characters. git-annex counts decoded characters, not
/// bytes; counting the bytes that start a UTF-8 sequence gives the same
/// number for valid UTF-8. Bytes that start nothing (stray continuation
/// bytes) would never count, so more than four bytes a character (the most
/// UTF-8 takes, and git-annex decodes a stray byte as one character) is too
/// long whatever they are: a line is at most 128 KiB.
pub fn too_long(bytes: &[u8]) -> bool {
    bytes.len() > MAX_LINE_BYTES
        || (bytes.len() > MAX_LINE_CHARS
            && bytes.iter().filter(|&&b| !is_utf8_continuation(b)).count() > MAX_LINE_CHARS)
}

/// Most bytes [`MAX_LINE_CHARS`] characters can take.
const MAX_LINE_BYTES: usize = 4 * MAX_LINE_CHARS;

fn is_utf8_continuation(b: u8) -> bool {
    b & 0xC0 == 0x80
}

/// The ASCII part of Haskell's `isSpace`.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t'..=b'\r')
}

/// Split at the first whitespace byte, dropping that one byte.
fn split_word(s: &[u8]) -> (&[u8], &[u8]) {
    match s.iter().position(|&b| is_space(b)) {
        Some(i) => (&s[..i], &s[i + 1..]),
        None => (s, &[]),
    }
}

fn words(s: &[u8]) -> Option<Vec<String>> {
    s.split(|&b| is_space(b))
        .filter(|w| !w.is_empty())
        .map(|w| utf8(w).map(str::to_owned))
        .collect()
}

fn utf8(s: &[u8]) -> Option<&str> {
    std::str::from_utf8(s).ok()
}

fn key(s: &[u8]) -> Option<Key> {
    Key::parse(utf8(s)?).ok()
}

fn parse_line(line: &[u8]) -> Option<Message> {
    let (verb, rest) = split_word(line);
    let none = rest.is_empty();
    let msg = match verb {
        b"AUTH" => {
            let (uuid, token) = split_word(rest);
            Message::Auth {
                uuid: utf8(uuid)?.to_owned(),
                token: auth_token(token)?,
            }
        }
        b"AUTH-SUCCESS" => Message::AuthSuccess(utf8(rest)?.to_owned()),
        b"AUTH-FAILURE" if none => Message::AuthFailure,
        b"VERSION" => Message::Version(match readish(rest)? {
            Number::Fits(n) => u32::try_from(n).unwrap_or(u32::MAX),
            Number::Overflow => u32::MAX,
        }),
        b"BYPASS" => Message::Bypass(words(rest)?),
        b"CHECKPRESENT" => Message::CheckPresent(key(rest)?),
        b"LOCKCONTENT" => Message::LockContent(key(rest)?),
        b"UNLOCKCONTENT" if none => Message::UnlockContent,
        b"REMOVE" => Message::Remove(key(rest)?),
        b"REMOVE-BEFORE" => {
            let (ts, k) = split_word(rest);
            Message::RemoveBefore {
                timestamp: readish_u64(ts)?,
                key: key(k)?,
            }
        }
        b"GETTIMESTAMP" if none => Message::GetTimestamp,
        b"TIMESTAMP" => Message::Timestamp(readish_u64(rest)?),
        b"GET" => {
            let (offset, rest) = split_word(rest);
            let (file, k) = split_word(rest);
            Message::Get {
                offset: readish_u64(offset)?,
                file: decode_file(file)?,
                key: key(k)?,
            }
        }
        b"PUT" => {
            let (file, k) = split_word(rest);
            Message::Put {
                file: decode_file(file)?,
                key: key(k)?,
            }
        }
        b"PUT-FROM" => Message::PutFrom(readish_u64(rest)?),
        b"ALREADY-HAVE" if none => Message::AlreadyHave,
        b"ALREADY-HAVE-PLUS" => Message::AlreadyHavePlus(words(rest)?),
        b"DATA" => Message::Data(readish_u64(rest)?),
        b"DATA-PRESENT" if none => Message::DataPresent,
        b"VALID" if none => Message::Valid,
        b"INVALID" if none => Message::Invalid,
        b"SUCCESS" if none => Message::Success,
        b"FAILURE" if none => Message::Failure,
        b"SUCCESS-PLUS" => Message::SuccessPlus(words(rest)?),
        b"FAILURE-PLUS" => Message::FailurePlus(words(rest)?),
        b"CONNECT" => Message::Connect(Service::from_wire(utf8(rest)?)?),
        b"CONNECTDONE" => Message::ConnectDone(read_exit_code(rest)?),
        b"NOTIFYCHANGE" if none => Message::NotifyChange,
        b"CHANGED" => Message::Changed(words(rest)?),
        b"ERROR" => Message::Error(String::from_utf8_lossy(rest).into_owned()),
        _ => return None,
    };
    Some(msg)
}

/// git-annex lower-cases tokens and refuses anything but ASCII letters and
/// digits (the empty token is allowed).
fn auth_token(s: &[u8]) -> Option<String> {
    s.iter()
        .all(u8::is_ascii_alphanumeric)
        .then(|| String::from_utf8_lossy(s).to_ascii_lowercase())
}

enum Number {
    Fits(u64),
    Overflow,
}

/// Read a non-negative integer prefix like Haskell's `reads`; returns the
/// number and how many bytes it took (leading whitespace included).
fn read_natural(s: &[u8]) -> Option<(Number, usize)> {
    let lead = s.iter().take_while(|&&b| is_space(b)).count();
    let t = &s[lead..];
    let (radix, skip) = match t {
        [b'0', b'x' | b'X', d, ..] if d.is_ascii_hexdigit() => (16, 2),
        [b'0', b'o' | b'O', b'0'..=b'7', ..] => (8, 2),
        _ => (10, 0),
    };
    let digits = t[skip..]
        .iter()
        .take_while(|&&b| (b as char).is_digit(radix))
        .count();
    if digits == 0 {
        return None;
    }
    let after = &t[skip + digits..];
    // `1.5` and `1e3` are one fractional token to Haskell, so no Integer.
    if radix == 10 {
        let fraction = matches!(after, [b'.', d, ..] if d.is_ascii_digit());
        let exponent = matches!(after, [b'e' | b'E', d, ..] if d.is_ascii_digit())
            || matches!(after, [b'e' | b'E', b'+' | b'-', d, ..] if d.is_ascii_digit());
        if fraction || exponent {
            return None;
        }
    }
    let mut n: Option<u64> = Some(0);
    for &b in &t[skip..skip + digits] {
        let d = u64::from((b as char).to_digit(radix).expect("digit checked above"));
        n = n.and_then(|n| n.checked_mul(u64::from(radix))?.checked_add(d));
    }
    let number = n.map_or(Number::Overflow, Number::Fits);
    Some((number, lead + skip + digits))
}

fn readish(s: &[u8]) -> Option<Number> {
    read_natural(s).map(|(n, _)| n)
}

fn readish_u64(s: &[u8]) -> Option<u64> {
    match readish(s)? {
        Number::Fits(n) => Some(n),
        Number::Overflow => None,
    }
}

/// `CONNECTDONE` codes are read strictly (the whole argument, whitespace
/// around it allowed), as git-annex's `readMaybe` does.
fn read_exit_code(s: &[u8]) -> Option<i32> {
    let lead = s.iter().take_while(|&&b| is_space(b)).count();
    let (negative, body) = match &s[lead..] {
        [b'-', body @ ..] => (true, body),
        body => (false, body),
    };
    let (Number::Fits(n), used) = read_natural(body)? else {
        return None;
    };
    if !body[used..].iter().all(|&b| is_space(b)) {
        return None;
    }
    let n = i64::try_from(n).ok()?;
    i32::try_from(if negative { -n } else { n }).ok()
}

/// Undo the associated-file escaping. The outer `None` means the whole
/// message is unparseable (an absolute path).
fn decode_file(s: &[u8]) -> Option<Option<String>> {
    let raw = String::from_utf8_lossy(s);
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '%' if chars.peek() == Some(&'%') => {
                chars.next();
                out.push('%');
            }
            // Lossy on purpose, as in git-annex: whitespace does not come back.
            '%' => out.push('_'),
            c if c.is_control() => out.push('_'),
            c => out.push(c),
        }
    }
    if out.is_empty() {
        Some(None)
    } else if out.starts_with('/') {
        None
    } else {
        Some(Some(out))
    }
}

/// Haskell's `isSpace` on a character: Rust's whitespace minus U+0085,
/// U+2028 and U+2029, which Haskell does not count.
fn is_haskell_space(c: char) -> bool {
    c.is_whitespace() && !matches!(c, '\u{85}' | '\u{2028}' | '\u{2029}')
}

fn encode_file(file: &Option<String>, out: &mut Vec<u8>) {
    let Some(file) = file else { return };
    let mut tmp = [0u8; 4];
    for c in file.chars() {
        match c {
            '%' => out.extend_from_slice(b"%%"),
            c if is_haskell_space(c) => out.push(b'%'),
            c => out.extend_from_slice(c.encode_utf8(&mut tmp).as_bytes()),
        }
    }
}

/// Append one field; a line break inside a field would inject a message,
/// so any `\n`/`\r` becomes a space.
fn push_field(out: &mut Vec<u8>, field: &str) {
    out.push(b' ');
    out.extend(
        field
            .bytes()
            .map(|b| if b == b'\n' || b == b'\r' { b' ' } else { b }),
    );
}

fn push_display(out: &mut Vec<u8>, value: impl std::fmt::Display) {
    let mut s = String::new();
    write!(s, "{value}").expect("writing to a String cannot fail");
    push_field(out, &s);
}

fn push_list(out: &mut Vec<u8>, items: &[String]) {
    for item in items {
        push_field(out, item);
    }
}

/// Append the wire form of `msg` (one line, `\n`-terminated) to `out`.
///
/// Fields are joined by single spaces as git-annex's `unwords` does, so empty
/// fields show up as doubled spaces (`PUT  KEY`, `AUTH  token`). A `DATA`
/// message is only the header; the body is the connection's job.
pub fn encode(msg: &Message, out: &mut Vec<u8>) {
    out.extend_from_slice(msg.verb().as_bytes());
    match msg {
        Message::Auth { uuid, token } => {
            push_field(out, uuid);
            push_field(out, token);
        }
        Message::AuthSuccess(uuid) => push_field(out, uuid),
        Message::Version(v) => push_display(out, v),
        Message::CheckPresent(k) | Message::LockContent(k) | Message::Remove(k) => {
            push_display(out, k)
        }
        Message::RemoveBefore { timestamp, key } => {
            push_display(out, timestamp);
            push_display(out, key);
        }
        Message::Timestamp(n) | Message::PutFrom(n) | Message::Data(n) => push_display(out, n),
        Message::Get { offset, file, key } => {
            push_display(out, offset);
            out.push(b' ');
            encode_file(file, out);
            push_display(out, key);
        }
        Message::Put { file, key } => {
            out.push(b' ');
            encode_file(file, out);
            push_display(out, key);
        }
        Message::Bypass(l)
        | Message::AlreadyHavePlus(l)
        | Message::SuccessPlus(l)
        | Message::FailurePlus(l) => push_list(out, l),
        // One argument holding the space-separated shas: an empty list
        // still gets its separator (`CHANGED `), unlike the PLUS lists.
        Message::Changed(shas) => push_field(out, &shas.join(" ")),
        Message::Connect(service) => push_field(out, service.as_str()),
        Message::ConnectDone(code) => push_display(out, code),
        Message::Error(text) => push_field(out, text),
        Message::AuthFailure
        | Message::UnlockContent
        | Message::GetTimestamp
        | Message::AlreadyHave
        | Message::DataPresent
        | Message::Valid
        | Message::Invalid
        | Message::Success
        | Message::Failure
        | Message::NotifyChange => {}
    }
    out.push(b'\n');
}

#[cfg(test)]
#[path = "codec_tests.rs"]
mod tests;
