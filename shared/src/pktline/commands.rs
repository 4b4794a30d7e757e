//! The command list a `git push` opens its receive-pack conversation
//! with: one `old new ref` pkt-line per ref update, up to a flush, the pack
//! after it. Read as the bytes pass by, in chunks of any size, so a relay
//! can learn what the client asked for without holding up the stream.

use super::{decode, Decoded, PktLine};

/// Most bytes of the command list kept (a ref update is ~100): a list
/// longer than anyone pushes leaves memory bounded.
pub const MAX_COMMANDS: usize = 1 << 20;

/// One `old new ref` line of a push.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefUpdate {
    pub old: String,
    pub new: String,
    pub name: String,
}

impl RefUpdate {
    pub fn new(old: impl Into<String>, new: impl Into<String>, name: impl Into<String>) -> Self {
        RefUpdate {
            old: old.into(),
            new: new.into(),
            name: name.into(),
        }
    }
}

/// An all-zero object id: the ref does not exist (before a creation, after
/// a deletion).
pub fn is_zero_id(id: &str) -> bool {
    id.bytes().all(|b| b == b'0')
}

/// A full SHA-1 or SHA-256 object id in hex.
pub fn is_object_id(s: &str) -> bool {
    (s.len() == 40 || s.len() == 64) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The ref updates at the start of a receive-pack conversation, read from
/// the client's bytes as they pass: pkt-lines up to the first flush.
#[derive(Default, Debug)]
pub struct Commands {
    buf: Vec<u8>,
    /// Bytes of the list taken so far.
    taken: usize,
    pub updates: Vec<RefUpdate>,
    pub done: bool,
    /// The list was cut short or garbled: what was read cannot be trusted
    /// to be all of it.
    pub incomplete: bool,
}

impl Commands {
    /// Takes the next bytes of the client's side of the conversation.
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.done {
            return;
        }
        self.buf.extend_from_slice(bytes);
        let mut at = 0;
        loop {
            match decode(&self.buf[at..]) {
                Ok(Decoded::Incomplete { .. }) => break,
                Ok(Decoded::Complete {
                    line: PktLine::Flush,
                    ..
                }) => return self.finish(false),
                Ok(Decoded::Complete {
                    line: PktLine::Data(payload),
                    consumed,
                }) => {
                    self.taken += consumed;
                    if self.taken > MAX_COMMANDS {
                        return self.finish(true);
                    }
                    if let Some(u) = ref_update(payload) {
                        self.updates.push(u);
                    }
                    at += consumed;
                }
                // No v2 sections in a push's command list, and no garbage.
                Ok(Decoded::Complete { .. }) | Err(_) => return self.finish(true),
            }
        }
        self.buf.drain(..at);
    }

    /// Bytes held back for a line not yet whole.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    fn finish(&mut self, incomplete: bool) {
        self.done = true;
        self.incomplete |= incomplete;
        self.buf = Vec::new();
    }
}

/// `old new ref[\0caps]`; other lines (`shallow`, a push certificate)
/// name no update of their own.
fn ref_update(line: &[u8]) -> Option<RefUpdate> {
    let line = line.split(|&b| b == 0).next().unwrap_or_default();
    let text = String::from_utf8_lossy(line);
    let mut words = text.trim_end_matches('\n').splitn(3, ' ');
    let (old, new, name) = (words.next()?, words.next()?, words.next()?);
    (is_object_id(old) && is_object_id(new) && name.starts_with("refs/"))
        .then(|| RefUpdate::new(old, new, name))
}
