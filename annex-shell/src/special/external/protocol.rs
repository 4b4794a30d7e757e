//! git-annex's external special remote protocol as lines, with no IO:
//! what we send a `git-annex-remote-NAME` program, and what it may send
//! us (`doc/design/external_special_remote_protocol.mdwn` and its
//! appendices).
//!
//! A line is a command word and a fixed number of parameters separated by
//! single spaces; the last parameter may hold spaces, and parameters may
//! be empty. A line that does not fit its command is garbage: the caller
//! ends the program, as git-annex ends it on a protocol error.
//!
//! With the ASYNC extension every message but VERSION, EXTENSIONS and
//! ERROR carries a job number (`J <n> …`): [`tag_job`] and [`split_job`]
//! add and strip it for a program shared by several jobs
//! ([`super::jobs`]); [`tag`] and [`untag`] for the one job (PREPARE, or
//! a program restarted within a request) a driver runs alone.

/// The extensions we offer in EXTENSIONS: those we implement. Not
/// offered: UNAVAILABLERESPONSE, TRANSFER-RETRIEVE-URL, CHECKPRESENT-URL
/// and DELEGATE (README, compatibility table).
pub const OFFERED_EXTENSIONS: &[&str] = &["INFO", "GETGITREMOTENAME", "ASYNC"];

/// The protocol versions we speak: git-annex's 1 and 2, the same but for
/// export requests (version 2 tells the program git-annex handles them
/// right), which we do not send.
pub const VERSIONS: &[u32] = &[1, 2];

/// The job number of a driver's lone job (PREPARE); a shared program's
/// jobs are numbered after it.
pub const JOB: u64 = 1;

/// Which way a TRANSFER goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Store,
    Retrieve,
}

impl Direction {
    pub fn word(self) -> &'static str {
        match self {
            Direction::Store => "STORE",
            Direction::Retrieve => "RETRIEVE",
        }
    }

    fn parse(s: &str) -> Option<Direction> {
        match s {
            "STORE" => Some(Direction::Store),
            "RETRIEVE" => Some(Direction::Retrieve),
            _ => None,
        }
    }
}

/// A request of ours to the program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    Extensions,
    InitRemote,
    Prepare,
    Transfer {
        direction: Direction,
        key: String,
        file: String,
    },
    CheckPresent(String),
    Remove(String),
    GetCost,
    GetAvailability,
}

impl Request {
    /// The request's line, without its newline.
    pub fn line(&self) -> String {
        match self {
            Request::Extensions => format!("EXTENSIONS {}", OFFERED_EXTENSIONS.join(" ")),
            Request::InitRemote => "INITREMOTE".into(),
            Request::Prepare => "PREPARE".into(),
            Request::Transfer {
                direction,
                key,
                file,
            } => format!("TRANSFER {} {key} {file}", direction.word()),
            Request::CheckPresent(key) => format!("CHECKPRESENT {key}"),
            Request::Remove(key) => format!("REMOVE {key}"),
            Request::GetCost => "GETCOST".into(),
            Request::GetAvailability => "GETAVAILABILITY".into(),
        }
    }

    /// The word that names it in errors.
    pub fn name(&self) -> &'static str {
        match self {
            Request::Extensions => "EXTENSIONS",
            Request::InitRemote => "INITREMOTE",
            Request::Prepare => "PREPARE",
            Request::Transfer { .. } => "TRANSFER",
            Request::CheckPresent(_) => "CHECKPRESENT",
            Request::Remove(_) => "REMOVE",
            Request::GetCost => "GETCOST",
            Request::GetAvailability => "GETAVAILABILITY",
        }
    }
}

/// Our answers to the program's queries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    Value(String),
    /// One VALUE per item, then an empty one (GETURLS's list).
    Values(Vec<String>),
    Creds {
        login: String,
        password: String,
    },
    /// The query cannot be answered here; git-annex sends the same, and a
    /// program then usually gives up.
    Error(String),
}

impl Answer {
    /// The answer's lines, without their newlines.
    pub fn lines(&self) -> Vec<String> {
        match self {
            Answer::Value(v) => vec![format!("VALUE {v}")],
            Answer::Values(items) => items
                .iter()
                .chain(std::iter::once(&String::new()))
                .map(|v| format!("VALUE {v}"))
                .collect(),
            Answer::Creds { login, password } => vec![format!("CREDS {login} {password}")],
            Answer::Error(why) => vec![format!("ERROR {why}")],
        }
    }

    /// The answer as one text (lines joined by newlines).
    pub fn line(&self) -> String {
        self.lines().join("\n")
    }
}

/// A reply that ends one of our requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    Extensions(Vec<String>),
    PrepareSuccess,
    PrepareFailure(String),
    InitRemoteSuccess,
    InitRemoteFailure(String),
    TransferSuccess(Direction, String),
    TransferFailure(Direction, String, String),
    CheckPresentSuccess(String),
    CheckPresentFailure(String),
    CheckPresentUnknown(String, String),
    RemoveSuccess(String),
    RemoveFailure(String, String),
    Cost(String),
    Availability(String),
    UnsupportedRequest,
}

/// A query or notice of the program's, sent while it handles a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Query {
    Progress(u64),
    DirHash(String),
    DirHashLower(String),
    SetConfig(String, String),
    GetConfig(String),
    SetCreds {
        setting: String,
        login: String,
        password: String,
    },
    GetCreds(String),
    GetUuid,
    GetGitDir,
    GetGitRemoteName,
    SetWanted(String),
    GetWanted,
    SetState(String, String),
    GetState(String),
    SetUrlPresent(String, String),
    SetUrlMissing(String, String),
    SetUriPresent(String, String),
    SetUriMissing(String, String),
    GetUrls(String, String),
    Debug(String),
    Info(String),
}

/// Any line the program sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    Version(u32),
    Reply(Reply),
    Query(Query),
    Error(String),
}

/// `rest` split into exactly `n` parameters, the last taking what is left
/// (spaces included); `None` if there are fewer.
fn params(rest: Option<&str>, n: usize) -> Option<Vec<String>> {
    if n == 0 {
        return rest.is_none().then(Vec::new);
    }
    let parts: Vec<String> = rest?.splitn(n, ' ').map(str::to_owned).collect();
    (parts.len() == n).then_some(parts)
}

fn one(rest: Option<&str>) -> Option<String> {
    params(rest, 1).map(|mut v| v.remove(0))
}

fn two(rest: Option<&str>) -> Option<(String, String)> {
    let mut v = params(rest, 2)?;
    let b = v.pop()?;
    Some((v.pop()?, b))
}

/// A key parameter: never empty, never with spaces (git-annex parses it
/// as a key and fails the line otherwise).
fn key(s: String) -> Option<String> {
    (!s.is_empty() && !s.contains(char::is_whitespace)).then_some(s)
}

fn one_key(rest: Option<&str>) -> Option<String> {
    key(one(rest)?)
}

fn key_and(rest: Option<&str>) -> Option<(String, String)> {
    let (k, v) = two(rest)?;
    Some((key(k)?, v))
}

fn reply(word: &str, rest: Option<&str>) -> Option<Reply> {
    Some(match word {
        "EXTENSIONS" => Reply::Extensions(
            rest.unwrap_or_default()
                .split(' ')
                .filter(|w| !w.is_empty())
                .map(str::to_owned)
                .collect(),
        ),
        "PREPARE-SUCCESS" => params(rest, 0).map(|_| Reply::PrepareSuccess)?,
        "PREPARE-FAILURE" => Reply::PrepareFailure(rest.unwrap_or_default().to_owned()),
        "INITREMOTE-SUCCESS" => params(rest, 0).map(|_| Reply::InitRemoteSuccess)?,
        "INITREMOTE-FAILURE" => Reply::InitRemoteFailure(rest.unwrap_or_default().to_owned()),
        "TRANSFER-SUCCESS" => {
            let (d, k) = two(rest)?;
            Reply::TransferSuccess(Direction::parse(&d)?, key(k)?)
        }
        "TRANSFER-FAILURE" => {
            // The message is optional in practice (git-annex-remote-rclone
            // sends none).
            let rest = rest?;
            let mut v = rest.splitn(3, ' ');
            let d = Direction::parse(v.next()?)?;
            let k = key(v.next()?.to_owned())?;
            Reply::TransferFailure(d, k, v.next().unwrap_or_default().to_owned())
        }
        "CHECKPRESENT-SUCCESS" => Reply::CheckPresentSuccess(one_key(rest)?),
        "CHECKPRESENT-FAILURE" => Reply::CheckPresentFailure(one_key(rest)?),
        "CHECKPRESENT-UNKNOWN" => {
            let (k, why) = key_and_optional(rest)?;
            Reply::CheckPresentUnknown(k, why)
        }
        "REMOVE-SUCCESS" => Reply::RemoveSuccess(one_key(rest)?),
        "REMOVE-FAILURE" => {
            let (k, why) = key_and_optional(rest)?;
            Reply::RemoveFailure(k, why)
        }
        "COST" => Reply::Cost(one(rest)?),
        "AVAILABILITY" => Reply::Availability(one(rest)?),
        "UNSUPPORTED-REQUEST" => params(rest, 0).map(|_| Reply::UnsupportedRequest)?,
        _ => return None,
    })
}

/// A key, then a message that may be left out.
fn key_and_optional(rest: Option<&str>) -> Option<(String, String)> {
    let rest = rest?;
    let (k, why) = rest.split_once(' ').unwrap_or((rest, ""));
    Some((key(k.to_owned())?, why.to_owned()))
}

fn query(word: &str, rest: Option<&str>) -> Option<Query> {
    Some(match word {
        "PROGRESS" => Query::Progress(one(rest)?.parse().ok()?),
        "DIRHASH" => Query::DirHash(one_key(rest)?),
        "DIRHASH-LOWER" => Query::DirHashLower(one_key(rest)?),
        "SETCONFIG" => {
            let (k, v) = two(rest)?;
            Query::SetConfig(k, v)
        }
        "GETCONFIG" => Query::GetConfig(one(rest)?),
        "SETCREDS" => {
            let mut v = params(rest, 3)?;
            let password = v.pop()?;
            let login = v.pop()?;
            Query::SetCreds {
                setting: v.pop()?,
                login,
                password,
            }
        }
        "GETCREDS" => Query::GetCreds(one(rest)?),
        "GETUUID" => params(rest, 0).map(|_| Query::GetUuid)?,
        "GETGITDIR" => params(rest, 0).map(|_| Query::GetGitDir)?,
        "GETGITREMOTENAME" => params(rest, 0).map(|_| Query::GetGitRemoteName)?,
        "SETWANTED" => Query::SetWanted(one(rest)?),
        "GETWANTED" => params(rest, 0).map(|_| Query::GetWanted)?,
        "SETSTATE" => {
            let (k, v) = key_and(rest)?;
            Query::SetState(k, v)
        }
        "GETSTATE" => Query::GetState(one_key(rest)?),
        "SETURLPRESENT" => key_and(rest).map(|(k, u)| Query::SetUrlPresent(k, u))?,
        "SETURLMISSING" => key_and(rest).map(|(k, u)| Query::SetUrlMissing(k, u))?,
        "SETURIPRESENT" => key_and(rest).map(|(k, u)| Query::SetUriPresent(k, u))?,
        "SETURIMISSING" => key_and(rest).map(|(k, u)| Query::SetUriMissing(k, u))?,
        "GETURLS" => key_and(rest).map(|(k, p)| Query::GetUrls(k, p))?,
        "DEBUG" => Query::Debug(rest.unwrap_or_default().to_owned()),
        "INFO" => Query::Info(rest.unwrap_or_default().to_owned()),
        _ => return None,
    })
}

/// One line of the program's (its job tag already stripped), or `None`
/// for garbage.
pub fn parse(line: &str) -> Option<Message> {
    let (word, rest) = match line.split_once(' ') {
        Some((w, r)) => (w, Some(r)),
        None => (line, None),
    };
    match word {
        "VERSION" => one(rest)?.parse().ok().map(Message::Version),
        "ERROR" => Some(Message::Error(rest.unwrap_or_default().to_owned())),
        _ => reply(word, rest)
            .map(Message::Reply)
            .or_else(|| query(word, rest).map(Message::Query)),
    }
}

/// Whether a line is sent without a job number even under ASYNC.
fn untagged(line: &str) -> bool {
    let word = line.split(' ').next().unwrap_or_default();
    matches!(word, "VERSION" | "EXTENSIONS" | "ERROR")
}

/// Our line as sent: tagged with the job number when ASYNC is in use.
pub fn tag(line: &str, asynchronous: bool) -> String {
    if asynchronous {
        tag_job(line, JOB)
    } else {
        line.to_owned()
    }
}

/// Our line for job `job` of an ASYNC program (ERROR goes untagged).
pub fn tag_job(line: &str, job: u64) -> String {
    if untagged(line) {
        line.to_owned()
    } else {
        format!("J {job} {line}")
    }
}

/// A line of an ASYNC program's: its job number and message, or `None`
/// when it carries none (ERROR, or garbage).
pub fn split_job(line: &str) -> Option<(u64, &str)> {
    let (n, msg) = line.strip_prefix("J ")?.split_once(' ')?;
    Some((n.parse().ok()?, msg))
}

/// A received line without its job tag; `None` when it is tagged for
/// another job, or tagged without ASYNC, or untagged where a tag is due.
pub fn untag(line: &str, asynchronous: bool) -> Option<&str> {
    match line.strip_prefix("J ") {
        Some(rest) if asynchronous => {
            let (n, msg) = rest.split_once(' ')?;
            (n.parse::<u64>().ok()? == JOB).then_some(msg)
        }
        Some(_) => None,
        None if asynchronous && !untagged(line) => None,
        None => Some(line),
    }
}

#[cfg(test)]
#[path = "protocol_tests.rs"]
mod tests;
