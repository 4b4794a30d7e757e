//! annex-s3 against moto's S3 server (one per run of this binary, from
//! testkit), alone (`storage`) and beside the real git-annex (`interop`),
//! and its signatures against an independent check (`signing`).

mod interop;
mod signing;
mod storage;

use std::collections::BTreeMap;

use annex_s3::{S3Config, S3Credentials, S3Storage};
pub use testkit::moto;

/// The remote.log parameters of a path-style remote on moto.
pub fn moto_params(bucket: &str, extra: &[(&str, &str)]) -> BTreeMap<String, String> {
    let port = moto::shared().port().to_string();
    let mut p: BTreeMap<String, String> = [
        ("type", "S3"),
        ("bucket", bucket),
        ("host", "127.0.0.1"),
        ("port", &port),
        ("protocol", "http"),
        ("requeststyle", "path"),
        ("signature", "v4"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in extra {
        p.insert(k.to_string(), v.to_string());
    }
    p
}

pub fn moto_creds() -> S3Credentials {
    S3Credentials {
        access_key_id: moto::ACCESS_KEY_ID.into(),
        secret_access_key: moto::SECRET_ACCESS_KEY.into(),
        session_token: None,
    }
}

/// A storage on a new bucket of the shared moto.
pub fn new_storage(extra: &[(&str, &str)]) -> (S3Storage, String) {
    let bucket = moto::unique_bucket("st");
    moto::shared().create_bucket(&bucket);
    let config = S3Config::from_params(&moto_params(&bucket, extra)).expect("valid params");
    let storage = S3Storage::new("s3", config, Some(moto_creds())).expect("storage");
    (storage, bucket)
}

/// `len` bytes that differ at every offset (so a wrong range shows).
pub fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Everything `read(name, offset)` gives as an `AsyncRead`, read in small
/// pieces.
pub async fn read_all_async(s: &S3Storage, name: &str, offset: u64) -> Vec<u8> {
    use tokio::io::AsyncReadExt as _;
    let mut r = s.read(name, offset).await.expect("read");
    let mut out = Vec::new();
    let mut piece = [0u8; 1000];
    loop {
        let n = r.read(&mut piece).await.expect("read");
        if n == 0 {
            break;
        }
        out.extend_from_slice(&piece[..n]);
    }
    out
}

/// Everything `read(name, offset)` streams.
pub async fn read_all(s: &S3Storage, name: &str, offset: u64) -> Vec<u8> {
    let mut r = s.read(name, offset).await.expect("read");
    let mut out = Vec::new();
    while let Some(chunk) = r.chunk().await.expect("chunk") {
        out.extend_from_slice(&chunk);
    }
    assert_eq!(r.remaining(), 0);
    out
}
