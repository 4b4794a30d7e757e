//! HTTPS for p2phttp: `--certfile`, `--privatekeyfile` and `--chainfile`
//! as git-annex takes them (PEM files: the server's certificate, its
//! private key, and the intermediate certificates that lead to a CA the
//! clients trust), served with rustls.
//!
//! rustls with aws-lc-rs is the stack the S3 client already links, so the
//! binary carries one TLS implementation. The handshake runs in the
//! connection's own task, bounded by the header deadline, so a client
//! that connects and says nothing cannot hold up accepting others. A
//! client that speaks plain HTTP to the TLS port is answered 426, as
//! git-annex's server does, rather than with TLS bytes it cannot read.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// The PEM files, as given on the command line.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub chain: Vec<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{}: {source}", path.display())]
    Pem {
        path: PathBuf,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("{}: no certificate in it", .0.display())]
    NoCertificate(PathBuf),
    #[error("the certificate and private key cannot be used: {0}")]
    Config(#[from] rustls::Error),
}

/// The first byte of every TLS connection (a handshake record).
const TLS_HANDSHAKE: u8 = 0x16;

/// A TLS acceptor for `files`: the certificate, then each chain file's
/// certificates, in order.
pub fn acceptor(files: &TlsFiles) -> Result<TlsAcceptor, TlsError> {
    let mut chain = certificates(&files.cert)?;
    for f in &files.chain {
        chain.extend(certificates(f)?);
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|source| TlsError::Pem {
        path: files.key.clone(),
        source,
    })?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    // HTTP/1.1 only: that is all the server speaks.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = |source| TlsError::Pem {
        path: path.to_owned(),
        source,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(pem)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem)?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(path.to_owned()));
    }
    Ok(certs)
}

/// The TLS side of a new connection, or `None` when it did not get that
/// far within `deadline` (or spoke plain HTTP, which is answered 426).
pub async fn handshake(
    acceptor: &TlsAcceptor,
    stream: TcpStream,
    deadline: Duration,
) -> Option<TlsStream<TcpStream>> {
    let accepted = tokio::time::timeout(deadline, async {
        let mut first = [0u8; 1];
        match stream.peek(&mut first).await {
            Ok(1) if first[0] == TLS_HANDSHAKE => {}
            Ok(1) => {
                upgrade_required(stream).await;
                return None;
            }
            _ => return None,
        }
        match acceptor.accept(stream).await {
            Ok(tls) => Some(tls),
            Err(e) => {
                tracing::debug!("p2phttp TLS handshake: {e}");
                None
            }
        }
    })
    .await;
    accepted.unwrap_or_else(|_| {
        tracing::debug!("p2phttp TLS handshake: no handshake within {deadline:?}");
        None
    })
}

/// Plain HTTP on the HTTPS port: say so, in plain HTTP.
async fn upgrade_required(mut stream: TcpStream) {
    const REPLY: &[u8] = b"HTTP/1.1 426 Upgrade Required\r\nUpgrade: TLS/1.2, HTTP/1.1\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: 31\r\n\r\nThis server only serves HTTPS\r\n";
    let _ = stream.write_all(REPLY).await;
    let _ = stream.shutdown().await;
    tracing::info!("p2phttp: plain HTTP on the HTTPS port, answered 426");
}
