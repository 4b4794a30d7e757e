//! git-annex's S3 parameters, as `remote.log` holds them (`key=value`
//! pairs), resolved once into where requests go and how they are signed.
//!
//! The rules follow git-annex's `Remote/S3.hs` (10.20261026): defaults
//! that `initremote` writes (`host=s3.amazonaws.com`, `port=80`,
//! `datacenter=US`, `storageclass=STANDARD`) are assumed when absent, the
//! bucket name is lower-cased, `protocol=https` turns the default port 80
//! into 443, and the SigV4 region is `region=` when given, else the one
//! git-annex's aws library derives from the endpoint: `us-east-1` for
//! `s3.amazonaws.com`, `X` for `s3-X.amazonaws.com` or `s3.X.amazonaws.com`,
//! and the host name itself for any other host.

use std::collections::BTreeMap;
use std::time::Duration;

use annex::repo::parse_data_size;

/// The host git-annex uses when `host=` is absent, and the one for which
/// `datacenter=` picks the endpoint.
pub const AWS_DEFAULT_HOST: &str = "s3.amazonaws.com";

/// The part size of staged writes when `partsize=` is absent: parts are
/// buffered in memory, at most two at a time (one filling, one sending).
pub const DEFAULT_PART_SIZE: u64 = 8 << 20;

/// S3 refuses parts smaller than this, except the last one.
pub const MIN_PART_SIZE: u64 = 5 << 20;

/// S3's limit on one part.
pub const MAX_PART_SIZE: u64 = 5 << 30;

/// How old an unfinished multipart upload of a key must be before a
/// session aborts it as abandoned, unless the operator says otherwise:
/// a client that comes back within a week still resumes.
pub const DEFAULT_STALE_UPLOAD_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

/// A parameter of the remote that cannot be used, named.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("S3 parameter {param}= is missing")]
    Missing { param: &'static str },
    #[error("S3 parameter {param}={value:?} is invalid: {reason}")]
    Invalid {
        param: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("S3 parameter {param}={value:?} is not supported: {reason}")]
    Unsupported {
        param: &'static str,
        value: String,
        reason: &'static str,
    },
}

/// `http` or `https`, from `protocol=` and `port=` as git-annex reads them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Http,
    Https,
}

/// Where the bucket's name goes in a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestStyle {
    /// `requeststyle=path`: `http://host:port/bucket/object`.
    Path,
    /// git-annex's default: `http://bucket.host:port/object`.
    VirtualHost,
}

/// How requests are authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signature {
    /// AWS Signature Version 4 (git-annex's `signature=v4`, and what we
    /// use when `signature=` is absent: see the README's compatibility
    /// table for git-annex's SigV2 default on non-AWS hosts).
    V4,
    /// `signature=anonymous`: unsigned requests, no credentials needed.
    Anonymous,
}

/// An S3 remote's parameters, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Config {
    /// Lower-cased, as git-annex does.
    pub bucket: String,
    /// The host requests go to (for AWS, the datacenter's endpoint).
    pub host: String,
    pub port: u16,
    pub protocol: Protocol,
    pub request_style: RequestStyle,
    pub signature: Signature,
    /// The region in the SigV4 scope.
    pub region: String,
    /// Put before every object name.
    pub fileprefix: String,
    /// `partsize=`, when given (git-annex uploads in one PUT without it).
    pub partsize: Option<u64>,
    pub storage_class: String,
    /// `public=yes`: objects are written with the `public-read` ACL.
    pub public: bool,
    /// `chunk=`, untouched: chunking belongs to the special-remote
    /// framework, which names the chunk keys this crate stores.
    pub chunk: Option<String>,
    /// Unfinished uploads older than this are abandoned (not a git-annex
    /// parameter: the proxy's operator sets it, see the README).
    pub stale_upload_age: Duration,
}

impl S3Config {
    /// Resolves the parameters of one remote (`remote.log`'s pairs for
    /// its UUID, `name=` and `type=` included or not).
    pub fn from_params(params: &BTreeMap<String, String>) -> Result<Self, ConfigError> {
        let get = |k: &str| params.get(k).map(String::as_str);
        let bucket = get("bucket")
            .filter(|b| !b.is_empty())
            .ok_or(ConfigError::Missing { param: "bucket" })?
            .to_lowercase();
        let configured_host = get("host").unwrap_or(AWS_DEFAULT_HOST);
        let host = if configured_host == AWS_DEFAULT_HOST {
            aws_endpoint(get("datacenter").unwrap_or("US"))
        } else {
            configured_host.to_string()
        };
        let (protocol, port) = protocol_and_port(get("protocol"), get("port"))?;
        let request_style = match get("requeststyle") {
            None => RequestStyle::VirtualHost,
            Some("path") => RequestStyle::Path,
            Some(v) => return Err(invalid("requeststyle", v, "the only value is \"path\"")),
        };
        let signature = match get("signature") {
            None | Some("v4") => Signature::V4,
            Some("anonymous") => Signature::Anonymous,
            Some(v @ "v2") => {
                return Err(ConfigError::Unsupported {
                    param: "signature",
                    value: v.into(),
                    reason: "requests are signed with SigV4 (v4) or not at all (anonymous)",
                })
            }
            Some(v) => return Err(invalid("signature", v, "expected v2, v4 or anonymous")),
        };
        let region = match get("region") {
            Some(r) if !r.is_empty() => r.to_string(),
            _ => region_of_endpoint(&host),
        };
        let partsize =
            match get("partsize") {
                None => None,
                Some(v) => Some(parse_data_size(v).ok_or_else(|| {
                    invalid("partsize", v, "not a size (for example 1GiB or 500MB)")
                })?),
            };
        Ok(S3Config {
            bucket,
            host,
            port,
            protocol,
            request_style,
            signature,
            region,
            fileprefix: get("fileprefix").unwrap_or_default().to_string(),
            partsize,
            storage_class: get("storageclass").unwrap_or("STANDARD").to_string(),
            public: yes_no("public", get("public"))?,
            chunk: get("chunk").map(str::to_string),
            stale_upload_age: DEFAULT_STALE_UPLOAD_AGE,
        })
    }

    /// The bucket's object name for git-annex's object name `name`.
    pub fn object_name(&self, name: &str) -> String {
        format!("{}{}", self.fileprefix, name)
    }

    /// The endpoint URL (scheme, host and port, no bucket).
    pub fn endpoint_url(&self) -> String {
        let scheme = match self.protocol {
            Protocol::Http => "http",
            Protocol::Https => "https",
        };
        let host = if self.host.contains(':') && !self.host.starts_with('[') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        format!("{scheme}://{host}:{}", self.port)
    }

    /// The size of each part of a staged write of `size` bytes: `partsize=`
    /// or [`DEFAULT_PART_SIZE`], kept within what S3 accepts (5 MiB to
    /// 5 GiB, at most 10000 parts). The same inputs always give the same
    /// size, so a resumed write cuts its parts where the first attempt did.
    pub fn part_size_for(&self, size: u64) -> u64 {
        let wanted = self
            .partsize
            .filter(|p| *p > 0)
            .unwrap_or(DEFAULT_PART_SIZE);
        let fewest = size.div_ceil(10_000);
        wanted.max(fewest).clamp(MIN_PART_SIZE, MAX_PART_SIZE)
    }
}

/// An age as the operator writes one: a number of seconds, or a number
/// with `s`, `m`, `h` or `d` after it (`90s`, `12h`, `7d`).
pub fn parse_age(v: &str) -> Option<Duration> {
    let v = v.trim();
    let (digits, unit) = match v.char_indices().last()? {
        (i, c) if c.is_ascii_alphabetic() => (&v[..i], c),
        _ => (v, 's'),
    };
    let n: u64 = digits.trim().parse().ok()?;
    let secs = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return None,
    };
    Some(Duration::from_secs(n.checked_mul(secs)?))
}

fn invalid(param: &'static str, value: &str, reason: &'static str) -> ConfigError {
    ConfigError::Invalid {
        param,
        value: value.to_string(),
        reason,
    }
}

fn yes_no(param: &'static str, v: Option<&str>) -> Result<bool, ConfigError> {
    match v {
        None | Some("no") => Ok(false),
        Some("yes") => Ok(true),
        Some(v) => Err(invalid(param, v, "expected yes or no")),
    }
}

/// git-annex's rules: an explicit protocol wins; port 80 with https means
/// 443; with no protocol, port 443 means https.
fn protocol_and_port(
    protocol: Option<&str>,
    port: Option<&str>,
) -> Result<(Protocol, u16), ConfigError> {
    let cfgproto = match protocol {
        None => None,
        Some("http") => Some(Protocol::Http),
        Some("https") => Some(Protocol::Https),
        Some(v) => return Err(invalid("protocol", v, "expected http or https")),
    };
    let port = match port {
        Some(v) => {
            let p: u16 = v
                .trim()
                .parse()
                .map_err(|_| invalid("port", v, "not a port number"))?;
            if p == 80 && cfgproto == Some(Protocol::Https) {
                443
            } else {
                p
            }
        }
        None if cfgproto == Some(Protocol::Https) => 443,
        None => 80,
    };
    let protocol = cfgproto.unwrap_or(if port == 443 {
        Protocol::Https
    } else {
        Protocol::Http
    });
    Ok((protocol, port))
}

/// The endpoint git-annex connects to for `datacenter=` on AWS.
fn aws_endpoint(datacenter: &str) -> String {
    match datacenter {
        "US" => AWS_DEFAULT_HOST.to_string(),
        "EU" => "s3-eu-west-1.amazonaws.com".to_string(),
        "cn-north-1" => "s3.cn-north-1.amazonaws.com.cn".to_string(),
        dc => format!("s3-{dc}.amazonaws.com"),
    }
}

/// The SigV4 region git-annex's aws library derives from an endpoint when
/// `region=` is absent: for a host that is not AWS's, the host itself.
fn region_of_endpoint(host: &str) -> String {
    if host == AWS_DEFAULT_HOST || host == "s3-external-1.amazonaws.com" {
        return "us-east-1".to_string();
    }
    let inner = host.strip_prefix("s3").and_then(|rest| {
        let rest = rest
            .strip_prefix(".dualstack.")
            .or_else(|| rest.strip_prefix('-'))
            .or_else(|| rest.strip_prefix('.'))?;
        rest.strip_suffix(".amazonaws.com")
    });
    match inner {
        Some(r) if !r.is_empty() => r.to_string(),
        _ => host.to_string(),
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
