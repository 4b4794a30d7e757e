//! git's pkt-line framing, sans-IO: bytes in, lines out.
//!
//! A pkt-line is four hex digits giving its whole length (the four
//! included) and then the payload; `0000` is a flush, and protocol v2's
//! `0001` (delimiter) and `0002` (response end) carry no payload. Git never
//! writes a line longer than [`MAX_LINE`]; `0003` and anything longer are
//! not pkt-lines.
//!
//! [`decode`] looks at the start of a buffer and answers in two steps, as
//! our P2P codec does: [`Decoded::Incomplete`] means read more,
//! [`PktLineError`] means these bytes are no pkt-line stream. [`commands`]
//! builds on it to read the ref updates a `git push` opens with.

pub mod commands;

pub use commands::{is_object_id, is_zero_id, Commands, RefUpdate};

/// Longest pkt-line git writes or accepts, header included
/// (`LARGE_PACKET_MAX` in git).
pub const MAX_LINE: usize = 65520;

/// One framed pkt-line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PktLine<'a> {
    /// `0000`: the end of a section (of a push's command list, say).
    Flush,
    /// `0001`, between sections of a protocol v2 request.
    Delimiter,
    /// `0002`, at the end of a protocol v2 response.
    ResponseEnd,
    Data(&'a [u8]),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// A whole line, taking `consumed` bytes off the front of the buffer.
    Complete { line: PktLine<'a>, consumed: usize },
    /// At least this many more bytes are needed to tell.
    Incomplete { needed: usize },
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PktLineError {
    #[error("pkt-line length {0:?} is not four hex digits")]
    BadLength([u8; 4]),
    #[error("pkt-line length {0} is below 4 and no special line")]
    TooShort(usize),
    #[error("pkt-line length {0} is above git's limit of {MAX_LINE}")]
    TooLong(usize),
}

/// The first pkt-line of `buf`.
pub fn decode(buf: &[u8]) -> Result<Decoded<'_>, PktLineError> {
    let Some(head) = buf.first_chunk::<4>() else {
        return Ok(Decoded::Incomplete {
            needed: 4 - buf.len(),
        });
    };
    // `from_str_radix` would take a leading `+`; git takes hex digits only.
    if !head.iter().all(u8::is_ascii_hexdigit) {
        return Err(PktLineError::BadLength(*head));
    }
    let text = std::str::from_utf8(head).expect("hex digits are ASCII");
    let len = usize::from_str_radix(text, 16).expect("four hex digits fit");
    let special = |line| Ok(Decoded::Complete { line, consumed: 4 });
    match len {
        0 => special(PktLine::Flush),
        1 => special(PktLine::Delimiter),
        2 => special(PktLine::ResponseEnd),
        3 => Err(PktLineError::TooShort(len)),
        n if n > MAX_LINE => Err(PktLineError::TooLong(n)),
        n if buf.len() < n => Ok(Decoded::Incomplete {
            needed: n - buf.len(),
        }),
        n => Ok(Decoded::Complete {
            line: PktLine::Data(&buf[4..n]),
            consumed: n,
        }),
    }
}

/// `payload` framed as one pkt-line (for tests and for writing to git).
/// `None` when it would be longer than git accepts.
pub fn encode(payload: &[u8]) -> Option<Vec<u8>> {
    let len = payload.len() + 4;
    if len > MAX_LINE {
        return None;
    }
    let mut out = format!("{len:04x}").into_bytes();
    out.extend_from_slice(payload);
    Some(out)
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
