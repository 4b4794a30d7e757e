//! Incremental content verification, as git-annex's `IncrementalVerifier`.
//!
//! The content of a hash key must hash to the key name up to its first `.`
//! (`Backend/Hash.hs: keyHash`), for extension-preserving varieties and plain
//! ones alike; a name starting with `\` also matches (left over from an old
//! git-annex bug it still accepts). When the key records a size, the byte
//! count must match too. Varieties without a hash (WORM, URL, ...) get the
//! size check only.
//!
//! BLAKE2BP and BLAKE2SP come from the `blake2b_simd`/`blake2s_simd` crates,
//! whose tree parameters (inner hash length always the full 64/32 bytes, also
//! for BLAKE2SP224) are those of the reference code git-annex links; the
//! tests pin digests made by the real git-annex.

use crate::key::Key;
pub use crate::key::{Backend, HashKind};

use digest::DynDigest;

enum Hasher {
    Dyn(Box<dyn DynDigest + Send>),
    Blake2b(Box<blake2b_simd::State>),
    Blake2bp(Box<blake2b_simd::blake2bp::State>),
    Blake2s(Box<blake2s_simd::State>),
    Blake2sp(Box<blake2s_simd::blake2sp::State>),
    Blake3(Box<blake3::Hasher>),
    Xxh3(Box<xxhash_rust::xxh3::Xxh3>),
    /// SHA-256 or SHA-512 whose state can be saved ([`Verifier::resumable`]).
    Resumable(Box<super::midstate::Resumable>),
}

fn blake2b(len: usize) -> Hasher {
    Hasher::Blake2b(Box::new(
        blake2b_simd::Params::new().hash_length(len).to_state(),
    ))
}

fn blake2s(len: usize) -> Hasher {
    Hasher::Blake2s(Box::new(
        blake2s_simd::Params::new().hash_length(len).to_state(),
    ))
}

impl Hasher {
    fn new(kind: HashKind) -> Hasher {
        use skein::consts::{U32, U64};
        let d = |h: Box<dyn DynDigest + Send>| Hasher::Dyn(h);
        match kind {
            HashKind::Sha256 => d(Box::<sha2::Sha256>::default()),
            HashKind::Sha512 => d(Box::<sha2::Sha512>::default()),
            HashKind::Sha224 => d(Box::<sha2::Sha224>::default()),
            HashKind::Sha384 => d(Box::<sha2::Sha384>::default()),
            HashKind::Sha3_256 => d(Box::<sha3::Sha3_256>::default()),
            HashKind::Sha3_512 => d(Box::<sha3::Sha3_512>::default()),
            HashKind::Sha3_224 => d(Box::<sha3::Sha3_224>::default()),
            HashKind::Sha3_384 => d(Box::<sha3::Sha3_384>::default()),
            HashKind::Skein256 => d(Box::<skein::Skein256<U32>>::default()),
            HashKind::Skein512 => d(Box::<skein::Skein512<U64>>::default()),
            HashKind::Sha1 => d(Box::<sha1::Sha1>::default()),
            HashKind::Md5 => d(Box::<md5::Md5>::default()),
            HashKind::Blake2b160 => blake2b(20),
            HashKind::Blake2b224 => blake2b(28),
            HashKind::Blake2b256 => blake2b(32),
            HashKind::Blake2b384 => blake2b(48),
            HashKind::Blake2b512 => blake2b(64),
            HashKind::Blake2bp512 => Hasher::Blake2bp(Box::new(
                blake2b_simd::blake2bp::Params::new()
                    .hash_length(64)
                    .to_state(),
            )),
            HashKind::Blake2s160 => blake2s(20),
            HashKind::Blake2s224 => blake2s(28),
            HashKind::Blake2s256 => blake2s(32),
            HashKind::Blake2sp224 => Hasher::Blake2sp(Box::new(
                blake2s_simd::blake2sp::Params::new()
                    .hash_length(28)
                    .to_state(),
            )),
            HashKind::Blake2sp256 => Hasher::Blake2sp(Box::new(
                blake2s_simd::blake2sp::Params::new()
                    .hash_length(32)
                    .to_state(),
            )),
            HashKind::Blake3_256 => Hasher::Blake3(Box::new(blake3::Hasher::new())),
            HashKind::Xxh3 => Hasher::Xxh3(Box::new(xxhash_rust::xxh3::Xxh3::new())),
        }
    }

    fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Dyn(h) => h.update(data),
            Hasher::Blake2b(h) => {
                h.update(data);
            }
            Hasher::Blake2bp(h) => {
                h.update(data);
            }
            Hasher::Blake2s(h) => {
                h.update(data);
            }
            Hasher::Blake2sp(h) => {
                h.update(data);
            }
            Hasher::Blake3(h) => {
                h.update(data);
            }
            Hasher::Xxh3(h) => h.update(data),
            Hasher::Resumable(h) => h.update(data),
        }
    }

    /// Lowercase hex, as git-annex writes digests into key names.
    fn finish_hex(self) -> String {
        match self {
            Hasher::Dyn(h) => hex::encode(h.finalize()),
            Hasher::Blake2b(h) => h.finalize().to_hex().to_string(),
            Hasher::Blake2bp(h) => h.finalize().to_hex().to_string(),
            Hasher::Blake2s(h) => h.finalize().to_hex().to_string(),
            Hasher::Blake2sp(h) => h.finalize().to_hex().to_string(),
            Hasher::Blake3(h) => h.finalize().to_hex().to_string(),
            Hasher::Xxh3(h) => format!("{:016x}", h.digest()),
            Hasher::Resumable(h) => h.finish_hex(),
        }
    }
}

/// Hex digest of `data` under `kind`; for tests and one-shot checks.
pub fn hex_digest(kind: HashKind, data: &[u8]) -> String {
    let mut h = Hasher::new(kind);
    h.update(data);
    h.finish_hex()
}

/// What a successful check covered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Checked {
    /// The content hashes to the key (and has its size, when recorded).
    Hash,
    /// Only the size could be (or was asked to be) checked.
    SizeOnly,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Mismatch {
    #[error("size mismatch: key says {expected} bytes, got {actual}")]
    Size { expected: u64, actual: u64 },
    #[error("checksum mismatch: key says {expected}, content hashes to {actual}")]
    Hash { expected: String, actual: String },
}

/// Fed the content in order, then asked whether it is the key's content.
pub struct Verifier {
    hasher: Option<Hasher>,
    expected_hash: String,
    expected_size: Option<u64>,
    seen: u64,
}

impl Verifier {
    /// Checks size and, for hash varieties, the digest.
    pub fn new(key: &Key) -> Verifier {
        Verifier {
            hasher: key.backend().hash().map(Hasher::new),
            expected_hash: key.hash_part().to_owned(),
            expected_size: key.size(),
            seen: 0,
        }
    }

    /// Checks the size only, even for hash varieties.
    pub fn size_only(key: &Key) -> Verifier {
        Verifier {
            hasher: None,
            expected_hash: String::new(),
            expected_size: key.size(),
            seen: 0,
        }
    }

    /// [`Self::new`], with a hash state that [`Self::midstate`] can save
    /// where the key's hash allows it (SHA-256 and SHA-512 varieties).
    pub fn resumable(key: &Key) -> Verifier {
        use super::midstate::Resumable;
        let mut v = Verifier::new(key);
        let hasher = match key.backend().hash() {
            Some(HashKind::Sha256) => Resumable::sha256(),
            Some(HashKind::Sha512) => Resumable::sha512(),
            _ => return v,
        };
        v.hasher = Some(Hasher::Resumable(Box::new(hasher)));
        v
    }

    /// The hash state after the bytes fed so far, as one line, when it
    /// can be saved (a [`Self::resumable`] verifier at a block boundary).
    pub fn midstate(&self) -> Option<String> {
        match &self.hasher {
            Some(Hasher::Resumable(h)) => h.save(),
            _ => None,
        }
    }

    /// A verifier of `key` that has been fed the bytes `midstate` saved.
    pub fn resume(key: &Key, midstate: &str) -> Option<Verifier> {
        let kind = match key.backend().hash() {
            Some(HashKind::Sha256) => "sha256",
            Some(HashKind::Sha512) => "sha512",
            _ => return None,
        };
        if midstate.split(' ').next() != Some(kind) {
            return None;
        }
        let restored = super::midstate::Resumable::restore(midstate)?;
        let mut v = Verifier::resumable(key);
        v.seen = restored.len();
        v.hasher = Some(Hasher::Resumable(Box::new(restored)));
        Some(v)
    }

    /// Whether the content will be checked against a digest.
    pub fn hashes(&self) -> bool {
        self.hasher.is_some()
    }

    pub fn update(&mut self, data: &[u8]) {
        self.seen += data.len() as u64;
        if let Some(h) = self.hasher.as_mut() {
            h.update(data);
        }
    }

    /// Bytes fed so far.
    pub fn bytes(&self) -> u64 {
        self.seen
    }

    pub fn check(self) -> Result<Checked, Mismatch> {
        if let Some(expected) = self.expected_size {
            if expected != self.seen {
                return Err(Mismatch::Size {
                    expected,
                    actual: self.seen,
                });
            }
        }
        let Some(hasher) = self.hasher else {
            return Ok(Checked::SizeOnly);
        };
        let actual = hasher.finish_hex();
        let expected = self.expected_hash;
        if actual == expected || expected.strip_prefix('\\') == Some(actual.as_str()) {
            Ok(Checked::Hash)
        } else {
            Err(Mismatch::Hash { expected, actual })
        }
    }

    /// The size check alone, for content whose length is known.
    pub fn check_size_only(key: &Key, size: u64) -> Result<Checked, Mismatch> {
        let mut v = Verifier::size_only(key);
        v.seen = size;
        v.check()
    }

    pub fn finish(self) -> bool {
        self.check().is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verify(key: &str, data: &[u8]) -> Result<Checked, Mismatch> {
        let key = Key::parse(key).expect("test key parses");
        let mut v = Verifier::new(&key);
        // Odd-sized pieces exercise the hashers' buffering.
        for piece in data.chunks(977) {
            v.update(piece);
        }
        v.check()
    }

    /// `printf 'hello world\n' > f.dat; git annex calckey --backend=B f.dat`
    /// with git-annex 10.20261026.
    const HELLO: &[&str] = &[
        "SHA256E-s12--a948904f2f0f479b8f8197694b30184b0d2ed1c1cd2a1ec0fb85d299a192a447.dat",
        "SHA256-s12--a948904f2f0f479b8f8197694b30184b0d2ed1c1cd2a1ec0fb85d299a192a447",
        "SHA512E-s12--db3974a97f2407b7cae1ae637c0030687a11913274d578492558e39c16c017de84eacdc8c62fe34ee4e12b4b1428817f09b6a2760c3f8a664ceae94d2434a593.dat",
        "SHA224-s12--95041dd60ab08c0bf5636d50be85fe9790300f39eb84602858a9b430",
        "SHA384-s12--6b3b69ff0a404f28d75e98a066d3fc64fffd9940870cc68bece28545b9a75086b343d7a1366838083e4b8f3ca6fd3c80",
        "SHA3_256-s12--a8009a7a528d87778c356da3a55d964719e818666a04e4f960c9e2439e35f138",
        "SHA3_512-s12--4a936cbc1db296bd08d1c0bbf5a66a1897f35ee6d93047e0edff893dfbcba02f1e1570e85d1187ea26bea6d54199e0656f1b7c21b9cc2102b8ed2a12769f4531",
        "SHA3_224-s12--7eda3e8d26f147821a258850956f9ed640fb0b3a8a04ae56a2f58a32",
        "SHA3_384-s12--28fc308d4d5c1ef9e60acedb13c3a1fcf7266560602c639000580ae3541dea5ce78a685de897e96b65a0fc15515c3780",
        "SKEIN256-s12--bd16d24b10de435232996a8b8a1208a78f0b2a0f833852075d3210b48bd98aa0",
        "SKEIN512-s12--f5efe8cd4ffa6d8ae6206066ccb613d6126142119c23b932273302fecd047f12dca75077bcf252d438bb1906bb290b1936a0941dd1334b9bbc8c4d727fe7364e",
        "BLAKE2B160-s12--dd955ca64860475c43d27c5bdc81ee498b5d542b",
        "BLAKE2B224-s12--7478a921e3cd8c4af9719e37733e87a7b02b2a7338800a1be40dff30",
        "BLAKE2B256-s12--c71b05fd1d1c7bf7e928ff18e58db5193e9316416cc26ba9cc9094da80d7011e",
        "BLAKE2B384-s12--0f61de171d26b27068d7b4d6907f2f9132520aae367feb59cc7b9f7e152b003fd0ca6f6a3c0f16cbeb45d09ee07b9173",
        "BLAKE2B512-s12--fec91c70284c72d0d4e3684788a90de9338a5b2f47f01fedbe203cafd68708718ae5672d10eca804a8121904047d40d1d6cf11e7a76419357a9469af41f22d01",
        "BLAKE2BP512-s12--dc377be11f4fc9ab6ce6a2e3e17ee012850ce815cdef6bd04d66d0ed18e910e52b74566ced847ee4d75269b6c3f54f36049ebb79cb517b0e7565c8009e08852f",
        "BLAKE2S160-s12--e9de18f26f9b6e2d1dd9b2210256a71c80f6c940",
        "BLAKE2S224-s12--cfa5f71cd505b02b6619a9266df638d36ab954a02bb8f13ca0746ce7",
        "BLAKE2S256-s12--9e63cf8c57ba5a7c3019c344ae7192d12f683fb0b5fc03b21bc6d1a377977257",
        "BLAKE2SP224-s12--ca2ae431ff281d3272325e952a63b73ef0005ea86ec52a0ea8bf7ea8",
        "BLAKE2SP256-s12--43958a843c00345bae4492cc04ecd1e47453469afeae277e067cad66244625eb",
        "BLAKE3_256E-s12--dc5a4edb8240b018124052c330270696f96771a63b45250a5c17d3000e823355.dat",
        "BLAKE3_256-s12--dc5a4edb8240b018124052c330270696f96771a63b45250a5c17d3000e823355",
        "XXH3-s12--d42f7ed4b73c6bde",
        "XXH3E-s12--d42f7ed4b73c6bde.dat",
        "SHA1-s12--22596363b3de40b06f981fb85d82312e8c0ed511",
        "SHA1E-s12--22596363b3de40b06f981fb85d82312e8c0ed511.dat",
        "MD5-s12--6f5902ac237024bdd0c176cb93063dc4",
        "MD5E-s12--6f5902ac237024bdd0c176cb93063dc4.dat",
    ];

    /// 100003 bytes `(i*7+3) % 251`, keys from the real git-annex: long
    /// enough to fill every BLAKE2BP/BLAKE2SP leaf many times over.
    const BIG: &[&str] = &[
        "SHA256E-s100003--3b1d6731138fc44f6de1267ee21c50c8320d23d75fa6515f63e9588cb262ba7a.bin",
        "SHA512-s100003--c250249e4a6b33844a26590a46c84d8ac5fdd57d814cc99d8594a5d6ceb5ac2bfe1e4df594f841da208332379ad75dedfd3615d7e582413de4945e761e7fd492",
        "SHA224-s100003--e88330f651be4870a553425b1d45871c4b4d7cd50eb35fcadfbcff59",
        "SHA384-s100003--af7a7717b8de81467cb5b68376d5dc2d894ff9d006e33830221bd40c16492bd4f5c9ffb2378791f4e98e35cf6dec4c38",
        "SHA3_256-s100003--51c05b034a0c03aca50f72b1ab7901c3afc6087be22cc26414079ed810b94e8e",
        "SHA3_512-s100003--74520356741278d75052c53972fed54d0f96d86054c668a97c30dd5a1d21670ec6761296ed598c60307d4c13b69061fe1061f6a03652c81252ff717e3cf7b68f",
        "SHA3_224-s100003--0af4d21ab75ba4a2ff8cd8030f24af0914377cd292a7f092439177e1",
        "SHA3_384-s100003--02de2c68ad63a7d589bc0a8d71503963e998b3a971d780dc2a8ab67eec9ff4942e2fc4c96031bf4c74862759c6ddb49c",
        "SKEIN256-s100003--e17f832eec605b4f0dd3c06ebb7a5f42960cd6e328e5396f6e92f74d552f7147",
        "SKEIN512-s100003--051bf8c43dc8db24817ca27b0ddecb97b3155fc284e2f2b119f5673e3a0ebab5ef982599ee8c86e75812f958306490499112c5764085bff367d90f466662d744",
        "BLAKE2B160-s100003--6b85dc7942efe82ec84ee0f58392f7e764e3ff19",
        "BLAKE2B224-s100003--ca46e7c283c7f61dc5807dcc1139f450678cb0332c0ca6571c1f4aa0",
        "BLAKE2B256-s100003--55d39e9870161bb231cf5b00f0b53b9b200f81b551bba5efdb53f6c854389251",
        "BLAKE2B384-s100003--685e0b3186291190184d5ccca49a33e8f0e3b3ebe303c0c01373e2e3449f150c8b8b9819ad011bb797dd5d4c798e39d2",
        "BLAKE2B512-s100003--c6348f02ff5ca6a5e4e46a58363e0679da62f8228deba5c02bd4654324da9ef1d8e63a04d72d1c8c8ec86bfcc46878ba3678ad0fa01ee76cd56b13ceea270e44",
        "BLAKE2BP512-s100003--9f11f5b9aaf9788c8bf8aa06fd2bdb5b167fae5f51253da87867bbfb584b2388fd3ebde7746e77fc0f4e234cc6f898ff6fce0ad63de59bccbe4d432cfe2f2fee",
        "BLAKE2S160-s100003--ecf7de9b05282a43b7321d400d0a5b0cfc41500a",
        "BLAKE2S224-s100003--754e5c1b53f3c721f7bd54c69336839f9a4f8ab5f80c07b1d2d3c179",
        "BLAKE2S256-s100003--aeebf49fca5f71ce9a342035295883e38cdf31fe39d9a1c981753883b5cb1215",
        "BLAKE2SP224-s100003--940df0076e2c16436485688401a4d6f033b167e9f6ae03bb00d53977",
        "BLAKE2SP256-s100003--224b6caa72f1c8074302b7796d6c721dfaf4ab11a312ffb04897ad8d436cfa58",
        "BLAKE3_256-s100003--0f8a2e0a62ccbabf81365c2697f021a87c791da5aff99582556786d2d8737aef",
        "XXH3-s100003--ae430b63a577f0c4",
        "SHA1-s100003--d4dc1beeb719fa4a3285698230836982ee57756f",
        "MD5-s100003--72990aeb9062f7bcbb8f296f9ed1fbf1",
    ];

    /// The empty file, same backends.
    const EMPTY: &[&str] = &[
        "SHA256E-s0--e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855.bin",
        "SKEIN256-s0--c8877087da56e072870daa843f176e9453115929094c3a40c463a196c29bf7ba",
        "SKEIN512-s0--bc5b4c50925519c290cc634277ae3d6257212395cba733bbad37a4af0fa06af41fca7903d06564fea7a2d3730dbdb80c1f85562dfcc070334ea4d1d9e72cba7a",
        "BLAKE2B160-s0--3345524abf6bbe1809449224b5972c41790b6cf2",
        "BLAKE2BP512-s0--b5ef811a8038f70b628fa8b294daae7492b1ebe343a80eaabbf1f6ae664dd67b9d90b0120791eab81dc96985f28849f6a305186a85501b405114bfa678df9380",
        "BLAKE2S160-s0--354c9c33f735962418bdacb9479873429c34916f",
        "BLAKE2SP224-s0--c26167059e1d0f5c4d38e0baf1763410a974e427fe0dc3d61b7bdb71",
        "BLAKE2SP256-s0--dd0e891776933f43c7d032b08a917e25741f8aa9a12c12e1cac8801500f2ca4f",
        "BLAKE3_256-s0--af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262",
        "XXH3-s0--2d06800538d394c2",
        "MD5-s0--d41d8cd98f00b204e9800998ecf8427e",
    ];

    fn big() -> Vec<u8> {
        (0..100_003u32).map(|i| ((i * 7 + 3) % 251) as u8).collect()
    }

    #[test]
    fn real_git_annex_keys_verify() {
        for (keys, data) in [
            (HELLO, b"hello world\n".to_vec()),
            (BIG, big()),
            (EMPTY, vec![]),
        ] {
            for key in keys {
                assert_eq!(verify(key, &data), Ok(Checked::Hash), "{key}");
            }
        }
    }

    #[test]
    fn every_hash_kind_is_pinned() {
        for kind in HashKind::ALL {
            let covered = BIG
                .iter()
                .any(|k| Key::parse(k).map(|k| k.backend().hash()) == Ok(Some(kind)));
            assert!(covered, "{kind:?} has no real-git-annex vector");
        }
    }

    #[test]
    fn one_flipped_byte_fails_every_hash() {
        let mut data = big();
        data[50_000] ^= 1;
        for key in BIG {
            assert!(
                matches!(verify(key, &data), Err(Mismatch::Hash { .. })),
                "{key}"
            );
        }
    }

    #[test]
    fn size_is_checked_before_hash() {
        assert_eq!(
            verify(HELLO[0], b"hello world"),
            Err(Mismatch::Size {
                expected: 12,
                actual: 11
            })
        );
    }

    #[test]
    fn legacy_backslash_prefix_is_accepted() {
        let key = "SHA256-s12--\\a948904f2f0f479b8f8197694b30184b0d2ed1c1cd2a1ec0fb85d299a192a447";
        assert_eq!(verify(key, b"hello world\n"), Ok(Checked::Hash));
    }

    #[test]
    fn hash_compares_up_to_first_dot_even_without_e() {
        let key = "SHA256-s12--a948904f2f0f479b8f8197694b30184b0d2ed1c1cd2a1ec0fb85d299a192a447.x";
        assert_eq!(verify(key, b"hello world\n"), Ok(Checked::Hash));
        // Upper-case hex is not what git-annex writes, and does not match.
        let upper = "SHA1-s12--22596363B3DE40B06F981FB85D82312E8C0ED511";
        assert!(verify(upper, b"hello world\n").is_err());
    }

    #[test]
    fn unverifiable_keys_get_a_size_check() {
        assert_eq!(
            verify("WORM-s12-m1795615888--f.dat", b"anything 12 "),
            Ok(Checked::SizeOnly)
        );
        assert!(verify("WORM-s12-m1795615888--f.dat", b"short").is_err());
        assert_eq!(
            verify("URL--http://x/y", b"any length"),
            Ok(Checked::SizeOnly)
        );
    }

    #[test]
    fn size_only_skips_the_hash() {
        let key = Key::parse(HELLO[0]).expect("parses");
        let mut v = Verifier::size_only(&key);
        assert!(!v.hashes());
        v.update(b"xxxxxxxxxxxx");
        assert_eq!(v.check(), Ok(Checked::SizeOnly));
    }

    #[test]
    fn hex_digest_matches_key_names() {
        assert_eq!(
            hex_digest(HashKind::Md5, b""),
            "d41d8cd98f00b204e9800998ecf8427e"
        );
        assert_eq!(
            hex_digest(HashKind::Xxh3, b"hello world\n"),
            "d42f7ed4b73c6bde"
        );
    }
}
