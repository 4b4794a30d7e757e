//! Lines read from a client outside the P2P protocol (the stdin of
//! `transferinfo`, `lockcontent`, `notifychanges`), bounded as the P2P
//! codec bounds its lines: a client must not be able to grow the server
//! by sending bytes with no newline.

use std::io::{BufRead, ErrorKind};

use crate::p2p::codec::{self, MAX_LINE_CHARS};

#[derive(Debug, thiserror::Error)]
pub enum LineError {
    #[error("reading a line failed")]
    Io(#[from] std::io::Error),
    #[error("line longer than {MAX_LINE_CHARS} characters")]
    TooLong,
}

/// Reads the next line into `line` (cleared first, newline kept as read).
/// Returns the bytes taken, 0 at EOF. At most one [`MAX_LINE_CHARS`]
/// line (plus one buffer of `input`) is ever held.
pub fn read_line<R: BufRead + ?Sized>(
    input: &mut R,
    line: &mut Vec<u8>,
) -> Result<usize, LineError> {
    line.clear();
    loop {
        let available = match input.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        if available.is_empty() {
            return Ok(line.len());
        }
        let (take, done) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (available.len(), false),
        };
        line.extend_from_slice(&available[..take]);
        input.consume(take);
        let text = line.strip_suffix(b"\n").unwrap_or(line);
        if codec::too_long(text) {
            return Err(LineError::TooLong);
        }
        if done {
            return Ok(line.len());
        }
    }
}

/// Reads and drops lines until EOF.
pub fn drain<R: BufRead + ?Sized>(input: &mut R) -> Result<(), LineError> {
    let mut line = Vec::new();
    while read_line(input, &mut line)? > 0 {}
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_up_to_the_limit_pass() {
        let input = format!("12\n{}\nlast", "x".repeat(MAX_LINE_CHARS));
        let mut r = std::io::Cursor::new(input.into_bytes());
        let mut line = Vec::new();
        assert_eq!(read_line(&mut r, &mut line).expect("first"), 3);
        assert_eq!(line, b"12\n");
        assert_eq!(
            read_line(&mut r, &mut line).expect("long"),
            MAX_LINE_CHARS + 1
        );
        assert_eq!(read_line(&mut r, &mut line).expect("last"), 4);
        assert_eq!(read_line(&mut r, &mut line).expect("eof"), 0);
    }

    #[test]
    fn a_longer_line_is_refused_without_reading_it_all() {
        let input = vec![b'7'; 10 * MAX_LINE_CHARS];
        // a small buffer, as a pipe would deliver it
        let mut r = std::io::BufReader::with_capacity(4096, std::io::Cursor::new(input));
        let mut line = Vec::new();
        assert!(matches!(
            read_line(&mut r, &mut line),
            Err(LineError::TooLong)
        ));
        assert!(line.len() <= MAX_LINE_CHARS + 4096);
    }
}
