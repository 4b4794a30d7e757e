//! What a checking server verifies, checked here since moto checks no
//! signature: a request's SigV4 signature, recomputed independently from
//! the request as it arrives, covers the Host header actually sent (port
//! included) and the region git-annex's rules give (the host name for a
//! host that is not AWS's, or `region=`).

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, TcpListener};

use annex_s3::{S3Config, S3Storage};
use sha2::{Digest, Sha256};

use crate::{moto_creds, moto_params};

/// One request as it arrived: its target (path and query) and Host.
struct Seen {
    target: String,
    host: String,
}

/// Answers one request with 404 and returns what it saw.
fn serve_one(listener: TcpListener) -> std::thread::JoinHandle<Seen> {
    std::thread::spawn(move || {
        let (stream, _) = listener.accept().expect("accept");
        let mut reader = BufReader::new(stream.try_clone().expect("clone"));
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let target = line.split_whitespace().nth(1).unwrap().to_string();
        let mut host = String::new();
        loop {
            let mut h = String::new();
            reader.read_line(&mut h).unwrap();
            if h.trim().is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                if k.eq_ignore_ascii_case("host") {
                    host = v.trim().to_string();
                }
            }
        }
        let mut s = stream;
        s.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .unwrap();
        Seen { target, host }
    })
}

fn hmac(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let pad = |b: u8| k.iter().map(|x| x ^ b).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(msg)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .to_vec()
}

/// Recomputes the presigned request's signature from what arrived.
fn verify(seen: &Seen, secret: &str, region: &str) {
    let (path, query) = seen.target.split_once('?').expect("a presigned query");
    let mut pairs: Vec<(&str, &str)> = query
        .split('&')
        .map(|kv| kv.split_once('=').unwrap_or((kv, "")))
        .collect();
    let get = |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| *v);
    let signature = get("X-Amz-Signature").expect("signed").to_string();
    let credential = get("X-Amz-Credential").unwrap().replace("%2F", "/");
    let date = get("X-Amz-Date").unwrap().to_string();
    assert_eq!(get("X-Amz-SignedHeaders"), Some("host"));
    let day = &date[..8];
    assert_eq!(
        credential,
        format!(
            "{}/{day}/{region}/s3/aws4_request",
            crate::moto::ACCESS_KEY_ID
        )
    );
    pairs.retain(|(k, _)| *k != "X-Amz-Signature");
    pairs.sort();
    let canonical_query: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let canonical = format!(
        "HEAD\n{path}\n{}\nhost:{}\n\nhost\nUNSIGNED-PAYLOAD",
        canonical_query.join("&"),
        seen.host
    );
    let scope = format!("{day}/{region}/s3/aws4_request");
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let mut key = hmac(format!("AWS4{secret}").as_bytes(), day.as_bytes());
    for part in [region, "s3", "aws4_request"] {
        key = hmac(&key, part.as_bytes());
    }
    assert_eq!(hex::encode(hmac(&key, to_sign.as_bytes())), signature);
}

async fn head_through(extra: &[(&str, &str)], region: &str) {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = serve_one(listener);
    let port_s = port.to_string();
    let mut params = vec![("port", port_s.as_str())];
    params.extend_from_slice(extra);
    let config = S3Config::from_params(&moto_params("signed", &params)).unwrap();
    let s = S3Storage::new("s3", config, Some(moto_creds())).unwrap();
    assert_eq!(s.stat("SHA256E-s1--k").await.unwrap(), None);
    let seen = seen.join().unwrap();
    assert_eq!(seen.host, format!("127.0.0.1:{port}"), "the Host sent");
    verify(&seen, crate::moto::SECRET_ACCESS_KEY, region);
}

#[tokio::test]
async fn signature_covers_the_host_sent_and_the_host_as_region() {
    head_through(&[], "127.0.0.1").await;
}

#[tokio::test]
async fn signature_uses_an_explicit_region() {
    head_through(&[("region", "garage")], "garage").await;
}
