//! SHA-256 and SHA-512 whose state can be saved at a block boundary and
//! restored later, over sha2's compression functions: an upload whose
//! first bytes went where they cannot be read back (S3 multipart parts)
//! resumes its hash from the saved state instead of from byte 0.
//!
//! The saved form is one line, `<kind> <bytes> <state as hex>`, written
//! only when the bytes hashed are a whole number of blocks (nothing
//! buffered), so it holds no content.

use sha2::digest::generic_array::GenericArray;

const IV256: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];
const IV512: [u64; 8] = [
    0x6a09e667f3bcc908,
    0xbb67ae8584caa73b,
    0x3c6ef372fe94f82b,
    0xa54ff53a5f1d36f1,
    0x510e527fade682d1,
    0x9b05688c2b3e6c1f,
    0x1f83d9abfb41bd6b,
    0x5be0cd19137e2179,
];

/// Which function, with its running state.
#[derive(Clone, Debug)]
enum State {
    Sha256([u32; 8]),
    Sha512([u64; 8]),
}

/// A SHA-256 or SHA-512 being computed.
#[derive(Clone, Debug)]
pub struct Resumable {
    state: State,
    /// Bytes of an unfinished block.
    buf: Vec<u8>,
    /// Bytes hashed so far, buffered ones included.
    len: u64,
}

impl Resumable {
    pub fn sha256() -> Resumable {
        Resumable {
            state: State::Sha256(IV256),
            buf: Vec::with_capacity(64),
            len: 0,
        }
    }

    pub fn sha512() -> Resumable {
        Resumable {
            state: State::Sha512(IV512),
            buf: Vec::with_capacity(128),
            len: 0,
        }
    }

    fn block_len(&self) -> usize {
        match self.state {
            State::Sha256(_) => 64,
            State::Sha512(_) => 128,
        }
    }

    /// Bytes hashed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn compress(&mut self, block: &[u8]) {
        match &mut self.state {
            State::Sha256(s) => {
                sha2::compress256(s, std::slice::from_ref(GenericArray::from_slice(block)))
            }
            State::Sha512(s) => {
                sha2::compress512(s, std::slice::from_ref(GenericArray::from_slice(block)))
            }
        }
    }

    pub fn update(&mut self, mut data: &[u8]) {
        let bl = self.block_len();
        self.len += data.len() as u64;
        if !self.buf.is_empty() {
            let take = (bl - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buf.len() < bl {
                return;
            }
            let block = std::mem::take(&mut self.buf);
            self.compress(&block);
            self.buf = block;
            self.buf.clear();
        }
        let mut blocks = data.chunks_exact(bl);
        for block in &mut blocks {
            self.compress(block);
        }
        self.buf.extend_from_slice(blocks.remainder());
    }

    /// The digest, lowercase hex.
    pub fn finish_hex(mut self) -> String {
        let bl = self.block_len();
        let len_field = bl / 8;
        let bits = u128::from(self.len) * 8;
        let mut tail = std::mem::take(&mut self.buf);
        tail.push(0x80);
        while tail.len() % bl != bl - len_field {
            tail.push(0);
        }
        tail.extend_from_slice(&bits.to_be_bytes()[16 - len_field..]);
        for block in tail.chunks_exact(bl) {
            self.compress(block);
        }
        match self.state {
            State::Sha256(s) => s.iter().map(|w| format!("{w:08x}")).collect(),
            State::Sha512(s) => s.iter().map(|w| format!("{w:016x}")).collect(),
        }
    }

    /// The state as one line, when at a block boundary.
    pub fn save(&self) -> Option<String> {
        if !self.buf.is_empty() {
            return None;
        }
        let (kind, words) = match &self.state {
            State::Sha256(s) => ("sha256", s.iter().map(|w| format!("{w:08x}")).collect()),
            State::Sha512(s) => (
                "sha512",
                s.iter().map(|w| format!("{w:016x}")).collect::<String>(),
            ),
        };
        Some(format!("{kind} {} {words}", self.len))
    }

    /// A state [`Self::save`] wrote; `None` for anything else.
    pub fn restore(line: &str) -> Option<Resumable> {
        let mut words = line.split_whitespace();
        let (kind, len, hex) = (words.next()?, words.next()?, words.next()?);
        let len: u64 = len.parse().ok()?;
        let mut r = match kind {
            "sha256" => Resumable::sha256(),
            "sha512" => Resumable::sha512(),
            _ => return None,
        };
        if words.next().is_some() || !len.is_multiple_of(r.block_len() as u64) {
            return None;
        }
        let word = |i: usize, n: usize| {
            let w = hex.get(i * n..(i + 1) * n)?;
            u64::from_str_radix(w, 16).ok()
        };
        match &mut r.state {
            State::Sha256(s) if hex.len() == 64 => {
                for (i, w) in s.iter_mut().enumerate() {
                    *w = u32::try_from(word(i, 8)?).ok()?;
                }
            }
            State::Sha512(s) if hex.len() == 128 => {
                for (i, w) in s.iter_mut().enumerate() {
                    *w = word(i, 16)?;
                }
            }
            _ => return None,
        }
        r.len = len;
        Some(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest;

    #[test]
    fn same_digests_as_sha2_when_saved_and_restored_anywhere() {
        let data: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
        for (mut r, kind) in [(Resumable::sha256(), 0), (Resumable::sha512(), 1)] {
            let want = if kind == 0 {
                hex::encode(sha2::Sha256::digest(&data))
            } else {
                hex::encode(sha2::Sha512::digest(&data))
            };
            r.update(&data[..1]);
            assert_eq!(r.save(), None);
            r.update(&data[1..1024]);
            let saved = r.save().expect("at a block boundary");
            let mut back = Resumable::restore(&saved).expect("restored");
            back.update(&data[1024..3001]);
            back.update(&data[3001..]);
            assert_eq!(back.finish_hex(), want);
        }
        for n in [0, 55, 56, 63, 64, 111, 112, 127, 128] {
            let mut r = Resumable::sha256();
            r.update(&data[..n]);
            assert_eq!(
                r.finish_hex(),
                hex::encode(sha2::Sha256::digest(&data[..n]))
            );
            let mut r = Resumable::sha512();
            r.update(&data[..n]);
            assert_eq!(
                r.finish_hex(),
                hex::encode(sha2::Sha512::digest(&data[..n]))
            );
        }
        assert!(Resumable::restore("sha256 3 00").is_none());
    }
}
