//! HMAC names against what real git-annex 10.20261026 named objects in
//! directory remotes it made (`initremote d type=directory
//! encryption=shared chunk=100`; `e` the same with `mac=HMACSHA256`, no
//! chunks), for a file of 110 bytes.

use super::*;

/// remote.log's `cipher=` of `d`.
const CIPHER_D: &[&str] = &[
    "MWV4VVcxY29weHhvWWpCS3NWZ2dFU1VnOGhCbnlmV05ORERwcGNyWXFqU2E3Si8ybTM1SFE1dCtyNWdW",
    "ejhDZHhLbjdHZWpzMWR2ZittVkt4ZWx4T2RVRU4vYjg4QWYxN2ZqNkExa2tUUGlDeVcxb3FpaTFXa01W",
    "ZTRnTzlUR1RoSkVFMlJndDRRUWZ5L2c2WGhOSjUxVDZqYlljdDlOcXp6cmUzZy9qS2twZVBhbCtjOHpF",
    "Uk5LSHNHQW5QNEVDU1RURk5MYnlXU0ZsNVJaYnVKb0VKRVkwd3Z2d2NwZXpzZHNIdzJCSlFrdnZzcEhN",
    "VnNZbHcrY3lZSFZNTTNQR0c1bldSVWU4d1BhNlVPVDQxYmRLUVJuK1hzc25MMmZTbUJEaW9HN0xSVDEx",
    "MmVzZFVqRzJaRXZ3TmwxOUNwZVdNWmVGMG5jdldDK3JSSHNlZVI0VlpnSjlwMDFhWENlMFAwR1JoQklZ",
    "ZnFkVnlIZUlicWMzaTlsVE1xcWNwWG8rNEdmcTlWdnloYlp5cUNtQ0c0clVUNnVVYUlvYTdWZ0Fqa1Ba",
    "b0htOW9veEgxOWZFMWNUWnFRb2NJMlpxVTROdWJ2UWZURmRwTUZOeWRVYTJpZnFFY2F4amFDTlVDTkhq",
    "UmVhK09ybERGbTRBK0oyWk1OUlF6UmNiRkorQ0tSTzUxejhGRlpYejd0MTFpV095SnoyamUwbUhic3hI",
    "SmtpUnBqMTlIdWQrdDhFLzZkazBLVG5EWUVZUHRoZmdHK0pCc0ppVmR0b0JSUXI1T2NhRm03aW1FNkRm",
    "TTVsQk9FVlR3RzZPNXB6WDhQN0JYRVd1Sm9MbHFxTGg0SVVLZnJqR0FLa3ovV3lVcnk2ZnB0dUh4SWRX",
    "Z3BPYTFoVmQ1UjhMM0phMUovY2F3MFE9Cg==",
];

/// remote.log's `cipher=` of `e`.
const CIPHER_E: &[&str] = &[
    "ZkZ2UDRqMFIwc0FuQ0NyNkdUS1RtOHc5YTg2SkFCUldqejlvdGVGNEhYUFNWbDYvdE9iRW5uYVc2VTlG",
    "d3ErZEVTWFN3eVgvZnBoalJvczRwMDdGcm5pb3JNK0dENnF2Tyt0RkRJeExVdEROTUwvZWNueEdqZE96",
    "REIvemVaRUhGQlNUWGpuS2lTOHRqY0JPRWV2M3ZvUUFQQ0pWUHd4aG5wWFJTVUNUcEovT0NpZEJpV3Fr",
    "cjhwM1h2NVBzN0hUZUY2WnNMTERaYjdIcmdGcnN4YjJ4Tjlaa2wxL2xBRTdHRU9ZeFMyWFJpSVNOTmhq",
    "Z0tTamNuUHNmUEc1c0IvSVAxV2FDaGVQQUpwWE1sQTB3elp6R2cvMVNMYTJXK212eEpoczEwTUR4YzF2",
    "SXRpNWErYVVqRlU3b0ZrWjNoa05XSWk1RUlXYWxyemNkWi9xVm9ZZ1FCT3RBbS9CUk01UXAyWC9RUVl0",
    "K0NQU0hSWWZ6TDVhaFVmcVhTNkZJaDVpalBjQUUyQW45L01TNENVaXdDK2NPbUNtR3QxTWh4RWdNMUpP",
    "QWgrQkJ2b0cydXlRVGlZS3hxSnVWeFo4YnhTYnJsN0doUjcydkdIUWh5MnAzTTJ5bFNoQnNsTVVEaXpW",
    "VGlWakJSR1ZhU1JaSzFwNzVjUHY1VGVCUlE0SFZSYzcrWGthc3hacWQvdjc0NVBWcmMxdlJsTzdCbHNU",
    "R0dBb1ovSWZBdVF3WEE2emVvc3BLVGhNY1dvcnVBZnlaSURZY0UzeFVmcUVmYUZSUkEvOEZ5VHJ3bURX",
    "UGloanRUTmVVR1FnNUMzTm52eEc0dHN1ZnpxS3hwWFlHR2RUSk5Ec0M2Vk9aeG1BdHllZ1NGdzhLOUp5",
    "MTNpN1BmNHVZM01vd24zcjlPVVM0SUU9Cg==",
];

const KEY: &str = "SHA256E-s110--5980c8d8e9a6a3b63010e78f49d37f3a397377d4da163dda28280a8ef6d618ca";

fn params(cipher: &[&str], extra: &[(&str, &str)]) -> Params {
    let mut p = Params::new();
    p.insert("type".into(), "directory".into());
    p.insert("encryption".into(), "shared".into());
    p.insert("cipher".into(), cipher.concat());
    for (k, v) in extra {
        p.insert((*k).into(), (*v).into());
    }
    p
}

fn key(s: &str) -> Key {
    Key::parse(s).expect("key")
}

#[test]
fn hmac_is_git_annexs() {
    // Crypto.hs: prop_HmacSha1WithCipher_sane.
    assert_eq!(
        MacKind::Sha1.hex(b"foo", b"bar"),
        "46b4ec586117154dacd49d664e5d63fdc88efb51"
    );
}

#[test]
fn chunk_names_as_git_annex_named_them() {
    let enc = Encryption::from_params(&params(CIPHER_D, &[("chunk", "100")]))
        .expect("parsed")
        .expect("encrypted");
    assert_eq!(enc.method, Method::Shared);
    let k = key(KEY);
    assert_eq!(
        enc.object_name(&k.chunk(100, 1)).to_string(),
        "GPGHMACSHA1--6ec4eb4c798162b1adbb6aefc5804781d5294aaf"
    );
    assert_eq!(
        enc.object_name(&k.chunk(100, 2)).to_string(),
        "GPGHMACSHA1--94d6e11a000003e17dc943724b972171daaa8b1e"
    );
}

#[test]
fn mac_sha256_names_as_git_annex_named_them() {
    let enc = Encryption::from_params(&params(CIPHER_E, &[("mac", "HMACSHA256")]))
        .expect("parsed")
        .expect("encrypted");
    assert_eq!(
        enc.object_name(&key(KEY)).to_string(),
        "GPGHMACSHA256--cddadc6089d88168ce1f61e57ab664eb35189a1cb787c26897f0caf78c666a98"
    );
}

#[test]
fn passphrase_is_the_rest_of_the_cipher_line() {
    let cipher = base64::engine::general_purpose::STANDARD
        .decode(CIPHER_D.concat())
        .expect("base64");
    assert_eq!(cipher.len(), 685);
    let enc = Encryption::shared(&cipher, MacKind::Sha1);
    let mut line = cipher[256..].to_vec();
    assert_eq!(enc.stdin_preamble(), line);
    line.pop();
    assert!(matches!(&enc.content, Content::Symmetric(p) if *p == line));
}

#[test]
fn what_is_not_served_is_named() {
    let none = Encryption::from_params(&params(CIPHER_D, &[("encryption", "none")]));
    assert!(none.expect("none").is_none());
    let spk = Encryption::from_params(&params(CIPHER_D, &[("encryption", "sharedpubkey")]));
    assert!(matches!(
        spk,
        Err(CryptoError::Missing {
            method: "sharedpubkey",
            field: "pubkeys"
        })
    ));
    let mac = Encryption::from_params(&params(CIPHER_D, &[("mac", "HMACMD5")]));
    assert!(matches!(mac, Err(CryptoError::Mac(m)) if m == "HMACMD5"));
    let mut p = params(CIPHER_D, &[]);
    p.remove("cipher");
    assert!(matches!(
        Encryption::from_params(&p),
        Err(CryptoError::Missing {
            field: "cipher",
            ..
        })
    ));
}
