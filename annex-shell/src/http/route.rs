//! The p2phttp API's endpoints: method, path and query in, a typed
//! [`Endpoint`] out, with no repository or connection in sight.
//!
//! Paths are `/git-annex/<server uuid>/v<N>/<op>` (and the unversioned
//! `/git-annex/<server uuid>/key/<key>`), after any prefix a reverse proxy
//! leaves. Values may be wrapped as `[base64url]` of their raw bytes, in
//! the path and in the query alike. What git-annex's server answers with
//! 400 "bad version" (a version an op does not have) is a 404 here: the
//! client retries with the next lower version only on a 404.

use annex::key::Key;
use base64::Engine;
use hyper::Method;

/// The versions each op exists in (P2P/Http.hs, spec "Paths and versions").
const ALL: std::ops::RangeInclusive<u32> = 0..=4;

/// What a request may do, for the auth modes (git-annex's `ActionClass`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    Read,
    Write,
    Remove,
    Lock,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// GET (or HEAD) of the content; `version` `None` is the unversioned
    /// endpoint meant for plain HTTP clients.
    Get {
        key: Key,
        file: Option<String>,
        offset: u64,
        head: bool,
    },
    CheckPresent(Key),
    LockContent(Key),
    KeepLocked(String),
    Remove(Key),
    RemoveBefore {
        key: Key,
        timestamp: u64,
    },
    GetTimestamp,
    PutOffset(Key),
    Put {
        key: Key,
        file: Option<String>,
        offset: u64,
        data_present: bool,
    },
}

impl Op {
    pub fn class(&self) -> Class {
        match self {
            Op::Get { .. } | Op::CheckPresent(_) | Op::GetTimestamp => Class::Read,
            Op::Put { .. } | Op::PutOffset(_) => Class::Write,
            Op::Remove(_) | Op::RemoveBefore { .. } => Class::Remove,
            Op::LockContent(_) | Op::KeepLocked(_) => Class::Lock,
        }
    }

    /// The key the request is about, if any.
    pub fn key(&self) -> Option<&Key> {
        match self {
            Op::Get { key, .. }
            | Op::CheckPresent(key)
            | Op::LockContent(key)
            | Op::Remove(key)
            | Op::RemoveBefore { key, .. }
            | Op::PutOffset(key)
            | Op::Put { key, .. } => Some(key),
            Op::KeepLocked(_) | Op::GetTimestamp => None,
        }
    }

    /// A short name for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Get { .. } => "get",
            Op::CheckPresent(_) => "checkpresent",
            Op::LockContent(_) => "lockcontent",
            Op::KeepLocked(_) => "keeplocked",
            Op::Remove(_) => "remove",
            Op::RemoveBefore { .. } => "remove-before",
            Op::GetTimestamp => "gettimestamp",
            Op::PutOffset(_) => "putoffset",
            Op::Put { .. } => "put",
        }
    }
}

/// One parsed request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub server: String,
    /// The API version, which is also the P2P protocol version spoken;
    /// `None` for the unversioned `key` endpoint.
    pub version: Option<u32>,
    pub client: Option<String>,
    pub bypass: Vec<String>,
    pub op: Op,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// No such path, op, or version of the op.
    #[error("not found")]
    NotFound,
    #[error("method not allowed")]
    Method,
    /// Servant's wording, which a client may show.
    #[error("{0}")]
    Bad(String),
}

/// Parse a request's method, path and query.
pub fn parse(method: &Method, path: &str, query: Option<&str>) -> Result<Endpoint, RouteError> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    // From the last `git-annex`, so a prefix may come before it.
    let at = segs
        .iter()
        .rposition(|s| *s == "git-annex")
        .ok_or(RouteError::NotFound)?;
    let rest: Vec<String> = segs[at + 1..].iter().map(|s| percent_decode(s)).collect();
    let q = Query::parse(query.unwrap_or(""));
    match rest
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [server, "key", key] => {
            let head = get_method(method)?;
            let key = capture_key(key)?;
            let server = capture_uuid(server)?;
            let op = Op::Get {
                key,
                file: None,
                offset: 0,
                head,
            };
            endpoint(server, None, &q, op, false)
        }
        [server, version, op @ ..] if !op.is_empty() => {
            let v = version
                .strip_prefix('v')
                .and_then(|n| n.parse::<u32>().ok())
                .ok_or(RouteError::NotFound)?;
            let server = capture_uuid(server)?;
            let (op, client_optional) = versioned(method, v, op, &q)?;
            endpoint(server, Some(v), &q, op, client_optional)
        }
        _ => Err(RouteError::NotFound),
    }
}

fn endpoint(
    server: String,
    version: Option<u32>,
    q: &Query,
    op: Op,
    client_optional: bool,
) -> Result<Endpoint, RouteError> {
    let client = match q.one("clientuuid") {
        Some(c) => Some(uuid_value("clientuuid", c)?),
        // The unversioned endpoint ignores it.
        None if version.is_none() || client_optional => None,
        None => return Err(required("clientuuid")),
    };
    let client = if version.is_none() { None } else { client };
    let bypass = q
        .all("bypass")
        .map(|b| uuid_value("bypass", b))
        .collect::<Result<_, _>>()?;
    Ok(Endpoint {
        server,
        version,
        client,
        bypass,
        op,
    })
}

/// The op of a versioned path, and whether clientuuid is optional for it.
fn versioned(m: &Method, v: u32, op: &[&str], q: &Query) -> Result<(Op, bool), RouteError> {
    let has = |versions: std::ops::RangeInclusive<u32>| {
        if versions.contains(&v) {
            Ok(())
        } else {
            Err(RouteError::NotFound)
        }
    };
    let post = || post_method(m);
    let parsed = match op {
        ["key", key] => {
            has(ALL)?;
            let head = get_method(m)?;
            Op::Get {
                key: capture_key(key)?,
                file: q.file()?,
                offset: q.number("offset")?.unwrap_or(0),
                head,
            }
        }
        ["checkpresent"] => {
            has(ALL)?;
            // POST, as git-annex; GET and HEAD too (the spec's open request).
            if *m != Method::GET && *m != Method::HEAD {
                post()?;
            }
            Op::CheckPresent(q.key()?)
        }
        ["lockcontent"] => {
            has(ALL)?;
            post()?;
            Op::LockContent(q.key()?)
        }
        ["keeplocked"] => {
            has(ALL)?;
            post()?;
            let id = q.one("lockid").ok_or_else(|| required("lockid"))?;
            return Ok((Op::KeepLocked(uuid_value("lockid", id)?), true));
        }
        ["remove"] => {
            has(ALL)?;
            post()?;
            Op::Remove(q.key()?)
        }
        ["remove-before"] => {
            has(3..=4)?;
            post()?;
            let key = q.key()?;
            let timestamp = q
                .number("timestamp")?
                .ok_or_else(|| required("timestamp"))?;
            Op::RemoveBefore { key, timestamp }
        }
        ["gettimestamp"] => {
            has(3..=4)?;
            post()?;
            Op::GetTimestamp
        }
        ["putoffset"] => {
            has(1..=4)?;
            post()?;
            Op::PutOffset(q.key()?)
        }
        ["put"] => {
            has(ALL)?;
            post()?;
            Op::Put {
                key: q.key()?,
                file: q.file()?,
                offset: q.number("offset")?.unwrap_or(0),
                data_present: v == 4 && q.one("data-present") == Some("true"),
            }
        }
        _ => return Err(RouteError::NotFound),
    };
    Ok((parsed, false))
}

fn get_method(m: &Method) -> Result<bool, RouteError> {
    match *m {
        Method::GET => Ok(false),
        Method::HEAD => Ok(true),
        _ => Err(RouteError::Method),
    }
}

fn post_method(m: &Method) -> Result<(), RouteError> {
    if *m == Method::POST {
        Ok(())
    } else {
        Err(RouteError::Method)
    }
}

fn required(name: &str) -> RouteError {
    RouteError::Bad(format!("Query parameter {name} is required"))
}

fn capture_key(s: &str) -> Result<Key, RouteError> {
    decode_key(s).map_err(|e| RouteError::Bad(format!("Error parsing capture key failed: {e}")))
}

fn capture_uuid(s: &str) -> Result<String, RouteError> {
    // An unparseable server UUID is no server of ours.
    decode_uuid(s).map_err(|_| RouteError::NotFound)
}

fn uuid_value(name: &str, s: &str) -> Result<String, RouteError> {
    decode_uuid(s)
        .map_err(|e| RouteError::Bad(format!("Error parsing query parameter {name} failed: {e}")))
}

fn decode_key(s: &str) -> Result<Key, &'static str> {
    let raw = decode_b64_text(s)?;
    let text = String::from_utf8(raw).map_err(|_| "key parse error")?;
    Key::parse(&text).map_err(|_| "key parse error")
}

fn decode_uuid(s: &str) -> Result<String, &'static str> {
    let raw = decode_b64_text(s)?;
    let text = String::from_utf8(raw).map_err(|_| "unable to base64 decode [] wrapped value")?;
    if text.is_empty() {
        return Err("empty UUID");
    }
    Ok(text)
}

/// `[base64url]` is the raw bytes it encodes (padded or not); anything
/// else is itself.
pub fn decode_b64_text(s: &str) -> Result<Vec<u8>, &'static str> {
    match s.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
        Some(inner) => base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(inner.trim_end_matches('='))
            .map_err(|_| "unable to base64 decode [] wrapped value"),
        None => Ok(s.as_bytes().to_vec()),
    }
}

/// `%XX` escapes decoded (invalid ones kept as they are); bytes that are
/// not UTF-8 become U+FFFD.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (b[i], b.get(i + 1).copied(), b.get(i + 2).copied()) {
            (b'%', Some(h), Some(l)) if hex(h).is_some() && hex(l).is_some() => {
                let v = hex(h).and_then(|h| hex(l).map(|l| h * 16 + l));
                out.push(u8::try_from(v.unwrap_or(0)).unwrap_or(0));
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The query's parameters, decoded (`+` is a space, as in forms).
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(q: &str) -> Query {
        let decode = |s: &str| percent_decode(&s.replace('+', " "));
        Query(
            q.split('&')
                .filter(|p| !p.is_empty())
                .map(|p| match p.split_once('=') {
                    Some((k, v)) => (decode(k), decode(v)),
                    None => (decode(p), String::new()),
                })
                .collect(),
        )
    }

    fn one(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn key(&self) -> Result<Key, RouteError> {
        let k = self.one("key").ok_or_else(|| required("key"))?;
        decode_key(k)
            .map_err(|e| RouteError::Bad(format!("Error parsing query parameter key failed: {e}")))
    }

    fn file(&self) -> Result<Option<String>, RouteError> {
        let Some(f) = self.one("associatedfile") else {
            return Ok(None);
        };
        let raw = decode_b64_text(f).map_err(|e| {
            RouteError::Bad(format!(
                "Error parsing query parameter associatedfile failed: {e}"
            ))
        })?;
        Ok(Some(String::from_utf8_lossy(&raw).into_owned()))
    }

    fn number(&self, name: &str) -> Result<Option<u64>, RouteError> {
        self.one(name)
            .map(|n| {
                n.parse::<u64>().map_err(|_| {
                    RouteError::Bad(format!(
                        "Error parsing query parameter {name} failed: {name} parse error"
                    ))
                })
            })
            .transpose()
    }
}

#[cfg(test)]
#[path = "route_tests.rs"]
mod tests;
