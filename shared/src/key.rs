//! git-annex keys: `VARIETY[-sSIZE][-mMTIME][-SCHUNK][-CNUM]--NAME`.
//!
//! Parsing is as strict as git-annex's (`Types/Key.hs: keyParser`): the four
//! optional fields come in that fixed order and hold decimal digits only, so
//! no free-form data can hide in a key. Like git-annex, a parsed key is
//! re-serialised from its fields, so `SHA1-s012--x` is the same key as
//! `SHA1-s12--x` and displays as the latter.

use std::fmt;

use md5::{Digest, Md5};

/// Longest extension (from the first `.` of the name) an extension-preserving
/// key may carry; longer ones could smuggle SHA-1 collision data into git.
pub const MAX_EXTENSION_BYTES: usize = 64;

/// A parsed key. Fields are private so every `Key` is one that parses.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    name: String,
    variety: String,
    size: Option<u64>,
    mtime: Option<u64>,
    chunk_size: Option<u64>,
    chunk_num: Option<u64>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum KeyError {
    #[error("key has an empty variety")]
    EmptyVariety,
    #[error("key fields are malformed (expected VARIETY[-sN][-mN][-SN][-CN]--NAME)")]
    BadFields,
    #[error("key field value is too large")]
    NumberTooLarge,
    #[error("key extension is {0} bytes long, more than {MAX_EXTENSION_BYTES}")]
    ExtensionTooLong(usize),
    #[error("key contains a NUL byte")]
    Nul,
    #[error("{0:?} is not usable as a single path component")]
    UnsafePathComponent(String),
}

/// Checks that `s` names exactly one entry inside a directory: not empty, not
/// `.` or `..`, and without `/` or NUL. Every path the store builds from
/// untrusted text (key files, UUIDs) goes through this.
pub fn safe_path_component(s: &str) -> Result<&str, KeyError> {
    if s.is_empty() || s == "." || s == ".." || s.contains('/') || s.contains('\0') {
        Err(KeyError::UnsafePathComponent(s.to_owned()))
    } else {
        Ok(s)
    }
}

/// One optional numeric field: `-<letter><digits>`. Returns the value and the
/// rest, or `None` (consuming nothing) when the field is absent, exactly as
/// git-annex's backtracking parser does.
fn numeric_field(s: &str, letter: u8) -> Result<(Option<u64>, &str), KeyError> {
    let b = s.as_bytes();
    if b.len() < 3 || b[0] != b'-' || b[1] != letter || !b[2].is_ascii_digit() {
        return Ok((None, s));
    }
    let digits = b[2..].iter().take_while(|c| c.is_ascii_digit()).count();
    let text = &s[2..2 + digits];
    let value = text.parse::<u64>().map_err(|_| KeyError::NumberTooLarge)?;
    Ok((Some(value), &s[2 + digits..]))
}

impl Key {
    pub fn parse(s: &str) -> Result<Key, KeyError> {
        if s.contains('\0') {
            return Err(KeyError::Nul);
        }
        let variety_len = s.find('-').unwrap_or(s.len());
        if variety_len == 0 {
            return Err(KeyError::EmptyVariety);
        }
        let (variety, rest) = s.split_at(variety_len);
        let (size, rest) = numeric_field(rest, b's')?;
        let (mtime, rest) = numeric_field(rest, b'm')?;
        // git-annex keeps mtimes in a signed 64-bit time_t.
        if mtime.is_some_and(|m| m > i64::MAX as u64) {
            return Err(KeyError::NumberTooLarge);
        }
        let (chunk_size, rest) = numeric_field(rest, b'S')?;
        let (chunk_num, rest) = numeric_field(rest, b'C')?;
        let name = rest.strip_prefix("--").ok_or(KeyError::BadFields)?;
        let key = Key {
            name: name.to_owned(),
            variety: variety.to_owned(),
            size,
            mtime,
            chunk_size,
            chunk_num,
        };
        if key.backend().has_extension() {
            let ext = key.extension();
            if ext.len() > MAX_EXTENSION_BYTES {
                return Err(KeyError::ExtensionTooLong(ext.len()));
            }
        }
        Ok(key)
    }

    pub fn variety(&self) -> &str {
        &self.variety
    }

    /// The content size in bytes, when the key records it.
    pub fn size(&self) -> Option<u64> {
        self.size
    }

    pub fn mtime(&self) -> Option<u64> {
        self.mtime
    }

    pub fn chunk_size(&self) -> Option<u64> {
        self.chunk_size
    }

    pub fn chunk_num(&self) -> Option<u64> {
        self.chunk_num
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn is_chunk(&self) -> bool {
        self.chunk_size.is_some() && self.chunk_num.is_some()
    }

    /// The name up to its first `.`: for hash keys, the hex digest.
    pub fn hash_part(&self) -> &str {
        self.name.split_once('.').map_or(&self.name, |(h, _)| h)
    }

    /// The name from its first `.` on (empty when there is none).
    pub fn extension(&self) -> &str {
        self.name.find('.').map_or("", |i| &self.name[i..])
    }

    pub fn backend(&self) -> Backend {
        Backend::from_variety(&self.variety)
    }

    /// The key without chunk fields: the key a chunk belongs to. Object hash
    /// directories are always computed from it.
    pub fn non_chunk(&self) -> Key {
        Key {
            chunk_size: None,
            chunk_num: None,
            ..self.clone()
        }
    }

    /// Chunk `num` (from 1) of this key stored in chunks of `size` bytes
    /// (`Remote/Helper/Chunked.hs: chunkKeyStream`): the key with `-S<size>
    /// -C<num>` fields.
    pub fn chunk(&self, size: u64, num: u64) -> Key {
        Key {
            chunk_size: Some(size),
            chunk_num: Some(num),
            ..self.non_chunk()
        }
    }

    /// The key as a single file name (`Annex/Locations.hs: keyFile`): when any
    /// of `& % : /` occurs, `&`→`&a`, `%`→`&s`, `:`→`&c`, `/`→`%`; otherwise
    /// the key text itself. Never contains `/`, and since every key contains
    /// `--` it is never `.` or `..`.
    pub fn key_file(&self) -> String {
        let s = self.to_string();
        if !s.contains(['&', '%', ':', '/']) {
            return s;
        }
        let mut out = String::with_capacity(s.len() + 8);
        for c in s.chars() {
            match c {
                '&' => out.push_str("&a"),
                '%' => out.push_str("&s"),
                ':' => out.push_str("&c"),
                '/' => out.push('%'),
                c => out.push(c),
            }
        }
        out
    }

    fn md5_of_non_chunk(&self) -> [u8; 16] {
        Md5::digest(self.non_chunk().to_string().as_bytes()).into()
    }

    /// `abc/def`: the first six hex digits of the md5 of the non-chunk key.
    /// Used by bare repositories and the git-annex branch.
    pub fn hash_dir_lower(&self) -> String {
        let hex = hex::encode(self.md5_of_non_chunk());
        format!("{}/{}", &hex[0..3], &hex[3..6])
    }

    /// `Xy/Zw`: the older mixed-case layout of non-bare repositories. The
    /// first md5 word, little-endian, is read as 5-bit digits six bits
    /// apart; each pair of digits is written swapped.
    pub fn hash_dir_mixed(&self) -> String {
        const ALPHABET: &[u8; 32] = b"0123456789zqjxkmvwgpfZQJXKMVWGPF";
        let d = self.md5_of_non_chunk();
        let w = u32::from_le_bytes([d[0], d[1], d[2], d[3]]);
        let c = |x: u32| char::from(ALPHABET[((w >> (6 * x)) & 31) as usize]);
        format!("{}{}/{}{}", c(1), c(0), c(3), c(2))
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.variety)?;
        for (letter, value) in [
            ('s', self.size),
            ('m', self.mtime),
            ('S', self.chunk_size),
            ('C', self.chunk_num),
        ] {
            if let Some(v) = value {
                write!(f, "-{letter}{v}")?;
            }
        }
        write!(f, "--{}", self.name)
    }
}

impl std::str::FromStr for Key {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Key, KeyError> {
        Key::parse(s)
    }
}

/// A hash function git-annex can verify content with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(non_camel_case_types)]
pub enum HashKind {
    Sha256,
    Sha512,
    Sha224,
    Sha384,
    Sha3_256,
    Sha3_512,
    Sha3_224,
    Sha3_384,
    Skein256,
    Skein512,
    Blake2b160,
    Blake2b224,
    Blake2b256,
    Blake2b384,
    Blake2b512,
    Blake2bp512,
    Blake2s160,
    Blake2s224,
    Blake2s256,
    Blake2sp224,
    Blake2sp256,
    Blake3_256,
    /// XXH3, 64-bit.
    Xxh3,
    Sha1,
    Md5,
}

impl HashKind {
    pub const ALL: [HashKind; 25] = [
        HashKind::Sha256,
        HashKind::Sha512,
        HashKind::Sha224,
        HashKind::Sha384,
        HashKind::Sha3_256,
        HashKind::Sha3_512,
        HashKind::Sha3_224,
        HashKind::Sha3_384,
        HashKind::Skein256,
        HashKind::Skein512,
        HashKind::Blake2b160,
        HashKind::Blake2b224,
        HashKind::Blake2b256,
        HashKind::Blake2b384,
        HashKind::Blake2b512,
        HashKind::Blake2bp512,
        HashKind::Blake2s160,
        HashKind::Blake2s224,
        HashKind::Blake2s256,
        HashKind::Blake2sp224,
        HashKind::Blake2sp256,
        HashKind::Blake3_256,
        HashKind::Xxh3,
        HashKind::Sha1,
        HashKind::Md5,
    ];

    /// The variety name without the `E` suffix.
    pub fn name(self) -> &'static str {
        match self {
            HashKind::Sha256 => "SHA256",
            HashKind::Sha512 => "SHA512",
            HashKind::Sha224 => "SHA224",
            HashKind::Sha384 => "SHA384",
            HashKind::Sha3_256 => "SHA3_256",
            HashKind::Sha3_512 => "SHA3_512",
            HashKind::Sha3_224 => "SHA3_224",
            HashKind::Sha3_384 => "SHA3_384",
            HashKind::Skein256 => "SKEIN256",
            HashKind::Skein512 => "SKEIN512",
            HashKind::Blake2b160 => "BLAKE2B160",
            HashKind::Blake2b224 => "BLAKE2B224",
            HashKind::Blake2b256 => "BLAKE2B256",
            HashKind::Blake2b384 => "BLAKE2B384",
            HashKind::Blake2b512 => "BLAKE2B512",
            HashKind::Blake2bp512 => "BLAKE2BP512",
            HashKind::Blake2s160 => "BLAKE2S160",
            HashKind::Blake2s224 => "BLAKE2S224",
            HashKind::Blake2s256 => "BLAKE2S256",
            HashKind::Blake2sp224 => "BLAKE2SP224",
            HashKind::Blake2sp256 => "BLAKE2SP256",
            HashKind::Blake3_256 => "BLAKE3_256",
            HashKind::Xxh3 => "XXH3",
            HashKind::Sha1 => "SHA1",
            HashKind::Md5 => "MD5",
        }
    }

    /// Whether git-annex counts the hash as cryptographically secure
    /// (`annex.securehashesonly`).
    pub fn is_secure(self) -> bool {
        !matches!(self, HashKind::Sha1 | HashKind::Md5 | HashKind::Xxh3)
    }
}

/// What a key's variety says about how its content can be checked.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    /// Name is the hex digest of the content (plus an extension when `ext`).
    Hash {
        kind: HashKind,
        ext: bool,
    },
    Worm,
    Url,
    Vurl,
    GitBundle,
    GitManifest,
    /// `X<name>[E]`: an external backend program.
    External {
        name: String,
        ext: bool,
    },
    /// A variety this git-annex does not know; still storable.
    Other(String),
}

impl Backend {
    pub fn from_variety(v: &str) -> Backend {
        let (base, ext) = match v.strip_suffix('E') {
            Some(b) => (b, true),
            None => (v, false),
        };
        if let Some(kind) = HashKind::ALL.into_iter().find(|k| k.name() == base) {
            return Backend::Hash { kind, ext };
        }
        match v {
            "WORM" => Backend::Worm,
            "URL" => Backend::Url,
            "VURL" => Backend::Vurl,
            "GITBUNDLE" => Backend::GitBundle,
            "GITMANIFEST" => Backend::GitManifest,
            _ => match v.strip_prefix('X') {
                Some(x) => match x.strip_suffix('E') {
                    Some(n) if !x.is_empty() => Backend::External {
                        name: n.to_owned(),
                        ext: true,
                    },
                    _ => Backend::External {
                        name: x.to_owned(),
                        ext: false,
                    },
                },
                None => Backend::Other(v.to_owned()),
            },
        }
    }

    /// Extension-preserving varieties (`Types/Key.hs: hasExt`); an unknown
    /// variety counts as one when it ends in `E`.
    pub fn has_extension(&self) -> bool {
        match self {
            Backend::Hash { ext, .. } | Backend::External { ext, .. } => *ext,
            Backend::Other(v) => v.ends_with('E'),
            Backend::Worm | Backend::Url | Backend::Vurl => false,
            Backend::GitBundle | Backend::GitManifest => false,
        }
    }

    /// What `annex.securehashesonly` accepts: hash varieties with a
    /// cryptographic hash. (git-annex asks an external backend program;
    /// without that answer it is treated as insecure here.)
    pub fn is_secure(&self) -> bool {
        self.hash().is_some_and(HashKind::is_secure)
    }

    pub fn hash(&self) -> Option<HashKind> {
        match self {
            Backend::Hash { kind, .. } => Some(*kind),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn k(s: &str) -> Key {
        Key::parse(s).expect("test key parses")
    }

    #[test]
    fn parses_all_fields() {
        let key = k("SHA256E-s12-m1700000000-S4-C3--abc.tar.gz");
        assert_eq!(key.variety(), "SHA256E");
        assert_eq!(key.size(), Some(12));
        assert_eq!(key.mtime(), Some(1_700_000_000));
        assert_eq!(key.chunk_size(), Some(4));
        assert_eq!(key.chunk_num(), Some(3));
        assert_eq!(key.name(), "abc.tar.gz");
        assert_eq!(key.hash_part(), "abc");
        assert_eq!(key.extension(), ".tar.gz");
        assert!(key.is_chunk());
        assert_eq!(
            key.non_chunk().to_string(),
            "SHA256E-s12-m1700000000--abc.tar.gz"
        );
    }

    #[test]
    fn name_is_the_rest_and_may_hold_dashes() {
        let key = k("WORM-s12-m1795615888--f-x--y.dat");
        assert_eq!(key.name(), "f-x--y.dat");
        assert_eq!(k("SHA1---x").name(), "-x");
        assert_eq!(k("SHA1--").name(), "");
    }

    #[test]
    fn rejects_what_git_annex_rejects() {
        use KeyError::*;
        for (s, e) in [
            ("", EmptyVariety),
            ("-s1--x", EmptyVariety),
            ("SHA256", BadFields),
            ("SHA256-x", BadFields),
            ("SHA256-s12", BadFields),
            ("SHA256-m5-s3--x", BadFields), // out of order
            ("SHA256-s--x", BadFields),     // no digits
            ("SHA256-s+1--x", BadFields),
            ("SHA256-s1x--x", BadFields),
            ("SHA256-s1-s2--x", BadFields), // repeated
            ("SHA256-q1--x", BadFields),
            ("SHA256-s99999999999999999999999--x", NumberTooLarge),
            ("WORM-m9223372036854775808--x", NumberTooLarge),
            ("SHA1--a\0b", Nul),
        ] {
            assert_eq!(Key::parse(s), Err(e), "{s:?}");
        }
    }

    #[test]
    fn extension_limit_only_for_extension_preserving_varieties() {
        let ext64 = format!("h.{}", "x".repeat(63));
        let ext65 = format!("h.{}", "x".repeat(64));
        assert!(Key::parse(&format!("SHA256E--{ext64}")).is_ok());
        assert_eq!(
            Key::parse(&format!("SHA256E--{ext65}")),
            Err(KeyError::ExtensionTooLong(65))
        );
        assert!(Key::parse(&format!("SHA256--{ext65}")).is_ok());
        assert!(Key::parse(&format!("WORM--{ext65}")).is_ok());
        // Unknown and external varieties ending in E count as preserving.
        assert!(Key::parse(&format!("FOOE--{ext65}")).is_err());
        assert!(Key::parse(&format!("XfooE--{ext65}")).is_err());
    }

    #[test]
    fn leading_zeros_are_normalised_like_git_annex() {
        let key = k("SHA1-s012--x");
        assert_eq!(key.to_string(), "SHA1-s12--x");
        assert_eq!(key, k("SHA1-s12--x"));
    }

    #[test]
    fn key_file_escapes_only_when_needed() {
        assert_eq!(k("SHA1--a&b").key_file(), "SHA1--a&ab");
        assert_eq!(k("URL--http://x/a%b").key_file(), "URL--http&c%%x%a&sb");
        assert_eq!(k("URL--a/b").key_file(), "URL--a%b");
        // As in `git annex examinekey --format='${objectpath}'`.
        assert_eq!(
            k("URL--http://x/a%b&c").key_file(),
            "URL--http&c%%x%a&sb&ac"
        );
        // No special char: the name keeps its `&`-free text untouched.
        assert_eq!(k("SHA1--a b").key_file(), "SHA1--a b");
    }

    #[test]
    fn safe_component_rules() {
        for bad in ["", ".", "..", "a/b", "a\0b"] {
            assert!(safe_path_component(bad).is_err(), "{bad:?}");
        }
        for good in ["...", "SHA1--..", "..a", "a b"] {
            assert!(safe_path_component(good).is_ok(), "{good:?}");
        }
        // Even a key whose name is `..` has a key file that stays in place.
        assert!(safe_path_component(&k("WORM--..").key_file()).is_ok());
        assert!(safe_path_component(&k("WORM--/../..").key_file()).is_ok());
    }

    /// Object directories observed in real repositories (spec 4.1).
    #[test]
    fn hash_dirs_match_real_repositories() {
        let a =
            k("SHA256E-s6--5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03.txt");
        assert_eq!(a.hash_dir_mixed(), "mK/4w");
        assert_eq!(a.hash_dir_lower(), "d91/b11");
        let b =
            k("SHA256E-s6--e258d248fda94c63753607f7c4494ee0fcbe92f1a76bfdac795c9d84101eb317.txt");
        assert_eq!(b.hash_dir_mixed(), "Z9/4f");
        assert_eq!(b.hash_dir_lower(), "694/d93");
        // Pinned with `git annex examinekey --format='${hashdirmixed} ${hashdirlower}'`.
        for (key, mixed, lower) in [
            ("SHA1-s12--x", "4q/pX", "0b8/9cd"),
            ("SHA1-s012--x", "4q/pX", "0b8/9cd"),
            ("SHA1---x", "K0/6m", "40f/e9a"),
            ("SHA1--", "xW/gg", "5c2/3cb"),
            ("URL--http://x/a%b&c", "MW/x4", "9c4/eb6"),
            ("WORM--..", "F0/5k", "c0e/716"),
        ] {
            assert_eq!(k(key).hash_dir_mixed(), mixed, "{key}");
            assert_eq!(k(key).hash_dir_lower(), lower, "{key}");
        }
        // Chunks live with their parent key.
        let c = k("SHA256E-s6-S3-C2--5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03.txt");
        assert_eq!(c.hash_dir_mixed(), "mK/4w");
        assert_eq!(c.hash_dir_lower(), "d91/b11");
    }

    #[test]
    fn backends_are_classified() {
        assert_eq!(
            k("SHA256E--x").backend(),
            Backend::Hash {
                kind: HashKind::Sha256,
                ext: true
            }
        );
        assert_eq!(
            k("BLAKE2SP224--x").backend(),
            Backend::Hash {
                kind: HashKind::Blake2sp224,
                ext: false
            }
        );
        assert_eq!(
            k("XXH3E--x").backend(),
            Backend::Hash {
                kind: HashKind::Xxh3,
                ext: true
            }
        );
        assert_eq!(k("WORM--x").backend(), Backend::Worm);
        assert_eq!(k("VURL--x").backend(), Backend::Vurl);
        assert_eq!(
            k("XfooE--x").backend(),
            Backend::External {
                name: "foo".into(),
                ext: true
            }
        );
        assert_eq!(
            k("X--x").backend(),
            Backend::External {
                name: "".into(),
                ext: false
            }
        );
        assert_eq!(k("SHA257--x").backend(), Backend::Other("SHA257".into()));
        // As `annex.securehashesonly` sorts them in git-annex 10.20261026.
        assert!(k("BLAKE3_256--x").backend().is_secure());
        assert!(!k("XXH3--x").backend().is_secure());
        assert!(!k("MD5E--x").backend().is_secure());
        assert!(!k("WORM--x").backend().is_secure());
    }

    fn arb_key() -> impl Strategy<Value = Key> {
        (
            "[A-Z0-9_]{1,12}",
            proptest::option::of(any::<u64>()),
            proptest::option::of(0..=i64::MAX as u64),
            proptest::option::of(any::<u64>()),
            proptest::option::of(any::<u64>()),
            "[ -~\\n\\t\u{e9}]{0,40}",
        )
            .prop_map(|(variety, size, mtime, chunk_size, chunk_num, name)| Key {
                name,
                variety,
                size,
                mtime,
                chunk_size,
                chunk_num,
            })
            .prop_filter("extension too long", |key| {
                !key.backend().has_extension() || key.extension().len() <= MAX_EXTENSION_BYTES
            })
    }

    proptest! {
        #[test]
        fn parse_display_roundtrip(key in arb_key()) {
            prop_assert_eq!(Key::parse(&key.to_string()), Ok(key));
        }

        #[test]
        fn key_file_is_one_safe_component(key in arb_key()) {
            let f = key.key_file();
            prop_assert!(!f.contains('/'));
            prop_assert!(safe_path_component(&f).is_ok());
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,60}") {
            let _ = Key::parse(&s);
        }
    }
}
