//! The requests: each S3 action signed by rusty-s3 (a presigned URL,
//! SigV4 with `UNSIGNED-PAYLOAD`, the Host signed as sent, port
//! included) and sent by reqwest, bodies streamed both ways.
//!
//! Errors here are [`ErrorKind`]s; the storage layer names the remote,
//! the operation and the object.

use std::time::Duration;

use bytes::Bytes;
use reqwest::StatusCode;
use rusty_s3::actions::{
    AbortMultipartUpload, CompleteMultipartUpload, CreateMultipartUpload, DeleteObject, GetObject,
    HeadObject, ListParts, PutObject, UploadPart,
};
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};

use crate::config::{RequestStyle, S3Config, Signature};
use crate::creds::S3Credentials;
use crate::error::{ErrorKind, SetupError};
use crate::retry;
use crate::xml::{self, Part};

/// How long a signed URL is valid: the server checks it when a request
/// starts, so this bounds the time between signing and sending only.
const SIGNED_FOR: Duration = Duration::from_secs(15 * 60);

/// The signed requests to one bucket.
#[derive(Debug)]
pub(crate) struct Client {
    http: reqwest::Client,
    bucket: Bucket,
    creds: Option<Credentials>,
    /// Headers a new object is written with (signed when we sign).
    write_headers: Vec<(&'static str, String)>,
}

impl Client {
    pub fn new(
        remote: &str,
        config: &S3Config,
        creds: Option<S3Credentials>,
    ) -> Result<Self, SetupError> {
        let endpoint_str = config.endpoint_url();
        let endpoint = url::Url::parse(&endpoint_str).map_err(|source| SetupError::Endpoint {
            remote: remote.into(),
            endpoint: endpoint_str.clone(),
            source,
        })?;
        let style = match config.request_style {
            RequestStyle::Path => UrlStyle::Path,
            RequestStyle::VirtualHost => UrlStyle::VirtualHost,
        };
        let bucket = Bucket::new(
            endpoint,
            style,
            config.bucket.clone(),
            config.region.clone(),
        )
        .map_err(|source| SetupError::Bucket {
            remote: remote.into(),
            bucket: config.bucket.clone(),
            endpoint: endpoint_str,
            source,
        })?;
        let creds = match config.signature {
            Signature::Anonymous => None,
            Signature::V4 => {
                let c = creds.ok_or_else(|| SetupError::NoCredentials {
                    remote: remote.into(),
                })?;
                Some(match c.session_token {
                    Some(t) => Credentials::new_with_token(c.access_key_id, c.secret_access_key, t),
                    None => Credentials::new(c.access_key_id, c.secret_access_key),
                })
            }
        };
        let mut write_headers = vec![("x-amz-storage-class", config.storage_class.clone())];
        if config.public {
            write_headers.push(("x-amz-acl", "public-read".to_string()));
        }
        write_headers.sort();
        Ok(Client {
            http: http_client().map_err(|source| SetupError::Http {
                remote: remote.into(),
                source,
            })?,
            bucket,
            creds,
            write_headers,
        })
    }

    /// HEAD: the object's size, `None` when it is absent.
    pub async fn head(&self, object: &str) -> Result<Option<u64>, ErrorKind> {
        let url = HeadObject::new(&self.bucket, self.creds.as_ref(), object).sign(SIGNED_FOR);
        let resp = self.send(|| self.http.head(url.clone())).await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let resp = check(resp).await?;
        let len = resp
            .headers()
            .get(reqwest::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| ErrorKind::Response("HEAD without a Content-Length".into()))?;
        Ok(Some(len))
    }

    /// GET from `offset` to the end (a ranged GET unless `offset` is 0);
    /// the response body is left to stream. `None` when the range starts
    /// at or past the end (HTTP 416).
    pub async fn get_from(
        &self,
        object: &str,
        offset: u64,
    ) -> Result<Option<reqwest::Response>, ErrorKind> {
        let url = GetObject::new(&self.bucket, self.creds.as_ref(), object).sign(SIGNED_FOR);
        let resp = self
            .send(|| {
                let req = self.http.get(url.clone());
                if offset > 0 {
                    req.header(reqwest::header::RANGE, format!("bytes={offset}-"))
                } else {
                    req
                }
            })
            .await?;
        match resp.status() {
            StatusCode::NOT_FOUND => Err(ErrorKind::NotFound),
            StatusCode::RANGE_NOT_SATISFIABLE => Ok(None),
            StatusCode::OK if offset > 0 => Err(ErrorKind::Response(
                "the server ignored the Range of a GET".into(),
            )),
            _ => check(resp).await.map(Some),
        }
    }

    /// A GET of the object's first `window` bytes: its size and, when it
    /// is no larger than `window`, all its bytes (else `None`: the first
    /// bytes are read and dropped, keeping the connection). `None` when
    /// the object is absent. One request where a HEAD and a GET would be
    /// two, for a small object read right after it is found.
    pub async fn get_head(
        &self,
        object: &str,
        window: u64,
    ) -> Result<Option<(u64, Option<Bytes>)>, ErrorKind> {
        let url = GetObject::new(&self.bucket, self.creds.as_ref(), object).sign(SIGNED_FOR);
        let range = format!("bytes=0-{}", window.saturating_sub(1));
        let resp = self
            .send(|| {
                self.http
                    .get(url.clone())
                    .header(reqwest::header::RANGE, range.clone())
            })
            .await?;
        let size = match resp.status() {
            StatusCode::NOT_FOUND => return Ok(None),
            // Only an empty object has no first byte.
            StatusCode::RANGE_NOT_SATISFIABLE => return Ok(Some((0, Some(Bytes::new())))),
            StatusCode::PARTIAL_CONTENT => resp
                .headers()
                .get(reqwest::header::CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.rsplit_once('/'))
                .and_then(|(_, total)| total.parse().ok())
                .ok_or_else(|| ErrorKind::Response("a ranged GET without its total size".into()))?,
            _ => {
                let resp = check(resp).await?;
                let len = resp
                    .content_length()
                    .ok_or_else(|| ErrorKind::Response("GET without a Content-Length".into()))?;
                // The whole object came (the Range ignored): read it only
                // if it is small; dropping it closes the connection.
                if len > window {
                    return Ok(Some((len, None)));
                }
                return Ok(Some((len, Some(resp.bytes().await?))));
            }
        };
        let body = resp.bytes().await?;
        Ok(Some((size, (size == body.len() as u64).then_some(body))))
    }

    /// PUT of a whole (small) object.
    pub async fn put_object(&self, object: &str, body: Bytes) -> Result<(), ErrorKind> {
        let mut action = PutObject::new(&self.bucket, self.creds.as_ref(), object);
        self.add_write_headers(action.headers_mut());
        let url = action.sign(SIGNED_FOR);
        let resp = self
            .send(|| {
                self.with_write_headers(self.http.put(url.clone()))
                    .body(body.clone())
            })
            .await?;
        check(resp).await.map(drop)
    }

    pub async fn create_upload(&self, object: &str) -> Result<String, ErrorKind> {
        let mut action = CreateMultipartUpload::new(&self.bucket, self.creds.as_ref(), object);
        self.add_write_headers(action.headers_mut());
        let url = action.sign(SIGNED_FOR);
        let resp = self
            .send(|| self.with_write_headers(self.http.post(url.clone())))
            .await?;
        let body = check(resp).await?.text().await?;
        let parsed = CreateMultipartUpload::parse_response(&body)?;
        Ok(parsed.upload_id().to_string())
    }

    /// Sends one part; its ETag.
    pub async fn upload_part(
        &self,
        object: &str,
        upload_id: &str,
        number: u16,
        body: Bytes,
    ) -> Result<String, ErrorKind> {
        let url = UploadPart::new(&self.bucket, self.creds.as_ref(), object, number, upload_id)
            .sign(SIGNED_FOR);
        let resp = self
            .send(|| self.http.put(url.clone()).body(body.clone()))
            .await?;
        let resp = check(resp).await?;
        resp.headers()
            .get(reqwest::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .ok_or_else(|| ErrorKind::Response(format!("part {number} stored without an ETag")))
    }

    /// Every part of an in-progress upload, in part-number order.
    pub async fn list_parts(&self, object: &str, upload_id: &str) -> Result<Vec<Part>, ErrorKind> {
        let mut parts = Vec::new();
        let mut marker = None;
        loop {
            let mut action = ListParts::new(&self.bucket, self.creds.as_ref(), object, upload_id);
            if let Some(m) = marker {
                action.set_part_number_marker(m);
            }
            let url = action.sign(SIGNED_FOR);
            let resp = self.send(|| self.http.get(url.clone())).await?;
            let body = check(resp).await?.text().await?;
            let (page, next) = xml::parse_list_parts(&body)?;
            parts.extend(page);
            match next {
                Some(m) => marker = Some(m),
                None => break,
            }
        }
        parts.sort_by_key(|p| p.number);
        Ok(parts)
    }

    /// The in-progress multipart uploads of exactly `object`.
    pub async fn list_uploads(&self, object: &str) -> Result<Vec<xml::Upload>, ErrorKind> {
        let mut uploads = self.list_uploads_under(object, usize::MAX).await?;
        uploads.retain(|u| u.key == object);
        Ok(uploads)
    }

    /// The in-progress multipart uploads of the objects whose names start
    /// with `prefix`, from at most `pages` pages (1000 uploads each).
    pub async fn list_uploads_under(
        &self,
        prefix: &str,
        pages: usize,
    ) -> Result<Vec<xml::Upload>, ErrorKind> {
        let mut uploads = Vec::new();
        let mut markers: Option<(String, String)> = None;
        for _ in 0..pages {
            let mut query = vec![("prefix", prefix.to_string()), ("uploads", String::new())];
            if let Some((key, id)) = &markers {
                query.push(("key-marker", key.clone()));
                query.push(("upload-id-marker", id.clone()));
            }
            let url = self.sign_bucket_get(&mut query);
            let resp = self.send(|| self.http.get(url.clone())).await?;
            let body = check(resp).await?.text().await?;
            let page = xml::parse_list_uploads(&body)?;
            uploads.extend(page.uploads);
            match page.next {
                Some(next) if page.truncated => markers = Some(next),
                _ => break,
            }
        }
        Ok(uploads)
    }

    /// Makes the upload the object. S3 may answer 200 and still fail
    /// (the error is in the body): a transient one there is retried too.
    pub async fn complete(
        &self,
        object: &str,
        upload_id: &str,
        etags: &[String],
    ) -> Result<(), ErrorKind> {
        let action = CompleteMultipartUpload::new(
            &self.bucket,
            self.creds.as_ref(),
            object,
            upload_id,
            etags.iter().map(String::as_str),
        );
        let url = action.sign(SIGNED_FOR);
        let body = action.body();
        for attempt in 1.. {
            let resp = self
                .send(|| self.http.post(url.clone()).body(body.clone()))
                .await?;
            let text = check(resp).await?.text().await?;
            let Some(e) = xml::parse_error(&text) else {
                return Ok(());
            };
            let again = e.code.as_deref().is_some_and(retry::transient_code);
            if !again || attempt >= retry::ATTEMPTS {
                return Err(ErrorKind::Status {
                    status: 200,
                    code: e.code,
                    message: e.message,
                });
            }
            tracing::debug!(attempt, code = ?e.code, "completing the upload failed; retrying");
            tokio::time::sleep(retry::delay(attempt)).await;
        }
        unreachable!("the loop returns by its last attempt")
    }

    pub async fn abort(&self, object: &str, upload_id: &str) -> Result<(), ErrorKind> {
        let url = AbortMultipartUpload::new(&self.bucket, self.creds.as_ref(), object, upload_id)
            .sign(SIGNED_FOR);
        let resp = self.send(|| self.http.delete(url.clone())).await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(()); // already gone: nothing will become visible
        }
        check(resp).await.map(drop)
    }

    /// CopyObject: `to` becomes a copy of `from` in the same bucket, made
    /// by the server (a PUT with `x-amz-copy-source`); like
    /// CompleteMultipartUpload, it may answer 200 with an error in its
    /// body.
    pub async fn copy_object(&self, from: &str, to: &str) -> Result<(), ErrorKind> {
        let source = format!("/{}/{}", self.bucket.name(), encode_key(from));
        let mut action = PutObject::new(&self.bucket, self.creds.as_ref(), to);
        self.add_write_headers(action.headers_mut());
        action
            .headers_mut()
            .insert("x-amz-copy-source", source.clone());
        let url = action.sign(SIGNED_FOR);
        let resp = self
            .send(|| {
                self.with_write_headers(self.http.put(url.clone()))
                    .header("x-amz-copy-source", &source)
            })
            .await?;
        let text = check(resp).await?.text().await?;
        match xml::parse_error(&text) {
            None => Ok(()),
            Some(e) => Err(ErrorKind::Status {
                status: 200,
                code: e.code,
                message: e.message,
            }),
        }
    }

    pub async fn delete(&self, object: &str) -> Result<(), ErrorKind> {
        let url = DeleteObject::new(&self.bucket, self.creds.as_ref(), object).sign(SIGNED_FOR);
        let resp = self.send(|| self.http.delete(url.clone())).await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(());
        }
        check(resp).await.map(drop)
    }

    /// Whether the bucket answers: a GET of `object` (git-annex's small
    /// `annex-uuid`), present or not. A HEAD cannot tell a missing object
    /// from a missing bucket (neither has a body); a GET's error document
    /// does (NoSuchKey against NoSuchBucket).
    pub async fn probe(&self, object: &str) -> Result<(), ErrorKind> {
        let url = GetObject::new(&self.bucket, self.creds.as_ref(), object).sign(SIGNED_FOR);
        let resp = self.send(|| self.http.get(url.clone())).await?;
        match check(resp).await {
            Ok(_) => Ok(()),
            Err(ErrorKind::Status {
                status: 404,
                code: Some(code),
                ..
            }) if code == "NoSuchKey" => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Sends the request `build` makes, again while it fails in a way
    /// another try may not ([`retry`]): a 5xx answer (its body read, so
    /// the connection is kept), or no answer at all. The last answer or
    /// error is the caller's.
    async fn send(
        &self,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ErrorKind> {
        let mut attempt = 1;
        loop {
            let last = attempt >= retry::ATTEMPTS;
            match build().send().await {
                Ok(resp) if !last && retry::transient_status(resp.status()) => {
                    let status = resp.status();
                    let body = resp.text().await.unwrap_or_default();
                    let code = xml::parse_error(&body).and_then(|e| e.code);
                    tracing::debug!(attempt, %status, ?code, "transient S3 answer; retrying");
                }
                Ok(resp) => return Ok(resp),
                Err(e) if !last && retry::transient_transport(&e) => {
                    tracing::debug!(attempt, "S3 request failed: {e}; retrying");
                }
                Err(e) => return Err(e.into()),
            }
            tokio::time::sleep(retry::delay(attempt)).await;
            attempt += 1;
        }
    }

    /// A GET on the bucket with `query` (sorted here), for the actions
    /// rusty-s3 does not have (ListMultipartUploads).
    fn sign_bucket_get(&self, query: &mut [(&str, String)]) -> url::Url {
        query.sort();
        let base = self.bucket.base_url().clone();
        match &self.creds {
            Some(c) => rusty_s3::signing::sign(
                &jiff::Timestamp::now(),
                rusty_s3::Method::Get,
                base,
                c.key(),
                c.secret(),
                c.token(),
                self.bucket.region(),
                SIGNED_FOR.as_secs(),
                query.iter().map(|(k, v)| (*k, v.as_str())),
                std::iter::empty(),
            ),
            None => {
                let mut url = base;
                url.query_pairs_mut()
                    .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
                url
            }
        }
    }

    fn add_write_headers(&self, headers: &mut rusty_s3::Map<'_>) {
        for (k, v) in &self.write_headers {
            headers.insert(*k, v.clone());
        }
    }

    fn with_write_headers(&self, mut req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        for (k, v) in &self.write_headers {
            req = req.header(*k, v);
        }
        req
    }
}

/// An object name as `x-amz-copy-source` wants it: percent-encoded but
/// for unreserved characters and `/`.
fn encode_key(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The HTTP client: rustls (reqwest's own provider, aws-lc-rs) with the
/// platform's roots, bounded connect and idle-read times so a dead server
/// fails a request instead of hanging a session.
fn http_client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(30))
        .read_timeout(Duration::from_secs(120))
        .build()
}

/// Passes a success through; turns an error status into [`ErrorKind::Status`]
/// with the S3 error document's code and message.
async fn check(resp: reqwest::Response) -> Result<reqwest::Response, ErrorKind> {
    let status = resp.status();
    if status.is_success() || status == StatusCode::PARTIAL_CONTENT {
        return Ok(resp);
    }
    let body = resp.text().await.unwrap_or_default();
    let e = xml::parse_error(&body).unwrap_or_default();
    Err(ErrorKind::Status {
        status: status.as_u16(),
        code: e.code,
        message: e.message,
    })
}
