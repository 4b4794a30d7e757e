//! The messages of the git-annex P2P protocol, one variant per verb.
//!
//! This is pure data: the wire form lives in [`super::codec`], what a message
//! means to a repository lives with the server.

use crate::key::Key;

/// The git service a `CONNECT` asks the peer to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Service {
    UploadPack,
    ReceivePack,
}

impl Service {
    /// The name used on the wire, which is also the git command's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Service::UploadPack => "git-upload-pack",
            Service::ReceivePack => "git-receive-pack",
        }
    }

    pub fn from_wire(s: &str) -> Option<Service> {
        match s {
            "git-upload-pack" => Some(Service::UploadPack),
            "git-receive-pack" => Some(Service::ReceivePack),
            _ => None,
        }
    }
}

/// One protocol message.
///
/// UUIDs are kept as the strings seen on the wire: the protocol accepts any
/// non-space text there, and an empty string stands for "no UUID".
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// Client authenticates; `token` is lower case `[a-z0-9]*`.
    Auth {
        uuid: String,
        token: String,
    },
    AuthSuccess(String),
    AuthFailure,
    Version(u32),
    Bypass(Vec<String>),
    CheckPresent(Key),
    LockContent(Key),
    UnlockContent,
    Remove(Key),
    RemoveBefore {
        timestamp: u64,
        key: Key,
    },
    GetTimestamp,
    Timestamp(u64),
    /// `file` is the associated file, already de-escaped; display-only.
    Get {
        offset: u64,
        file: Option<String>,
        key: Key,
    },
    Put {
        file: Option<String>,
        key: Key,
    },
    PutFrom(u64),
    AlreadyHave,
    AlreadyHavePlus(Vec<String>),
    /// Header of a body of exactly this many raw bytes, which follows at once.
    Data(u64),
    DataPresent,
    Valid,
    Invalid,
    Success,
    Failure,
    SuccessPlus(Vec<String>),
    FailurePlus(Vec<String>),
    Connect(Service),
    ConnectDone(i32),
    NotifyChange,
    /// New ref values (shas) of the refs that changed.
    Changed(Vec<String>),
    Error(String),
}

impl Message {
    /// The verb that starts this message's line.
    pub fn verb(&self) -> &'static str {
        match self {
            Message::Auth { .. } => "AUTH",
            Message::AuthSuccess(_) => "AUTH-SUCCESS",
            Message::AuthFailure => "AUTH-FAILURE",
            Message::Version(_) => "VERSION",
            Message::Bypass(_) => "BYPASS",
            Message::CheckPresent(_) => "CHECKPRESENT",
            Message::LockContent(_) => "LOCKCONTENT",
            Message::UnlockContent => "UNLOCKCONTENT",
            Message::Remove(_) => "REMOVE",
            Message::RemoveBefore { .. } => "REMOVE-BEFORE",
            Message::GetTimestamp => "GETTIMESTAMP",
            Message::Timestamp(_) => "TIMESTAMP",
            Message::Get { .. } => "GET",
            Message::Put { .. } => "PUT",
            Message::PutFrom(_) => "PUT-FROM",
            Message::AlreadyHave => "ALREADY-HAVE",
            Message::AlreadyHavePlus(_) => "ALREADY-HAVE-PLUS",
            Message::Data(_) => "DATA",
            Message::DataPresent => "DATA-PRESENT",
            Message::Valid => "VALID",
            Message::Invalid => "INVALID",
            Message::Success => "SUCCESS",
            Message::Failure => "FAILURE",
            Message::SuccessPlus(_) => "SUCCESS-PLUS",
            Message::FailurePlus(_) => "FAILURE-PLUS",
            Message::Connect(_) => "CONNECT",
            Message::ConnectDone(_) => "CONNECTDONE",
            Message::NotifyChange => "NOTIFYCHANGE",
            Message::Changed(_) => "CHANGED",
            Message::Error(_) => "ERROR",
        }
    }

    /// The protocol version that introduced this message; a peer that
    /// negotiated a lower version must not be sent it.
    pub fn min_version(&self) -> u32 {
        match self {
            Message::Valid | Message::Invalid => 1,
            Message::AlreadyHavePlus(_)
            | Message::SuccessPlus(_)
            | Message::FailurePlus(_)
            | Message::Bypass(_) => 2,
            Message::RemoveBefore { .. } | Message::GetTimestamp | Message::Timestamp(_) => 3,
            Message::DataPresent => 4,
            _ => 0,
        }
    }

    /// Whether a peer that negotiated `version` knows this message: the
    /// one test of what each side may send or expect.
    pub fn known_in(&self, version: u32) -> bool {
        self.min_version() <= version
    }

    /// This message as a peer speaking `version` may receive it: `-PLUS`
    /// forms lose their lists below version 2, and what the version does
    /// not know becomes an `ERROR`. (Both sides of a relay normally speak
    /// the same version; this is the guard for when they do not.)
    pub fn fit(self, version: u32) -> Message {
        if self.known_in(version) {
            return self;
        }
        match self {
            Message::SuccessPlus(_) => Message::Success,
            Message::FailurePlus(_) => Message::Failure,
            Message::AlreadyHavePlus(_) => Message::AlreadyHave,
            m => Message::Error(format!("{} is not in protocol version {version}", m.verb())),
        }
    }
}

/// [`Message::fit`], as a function.
pub fn fit(msg: Message, version: u32) -> Message {
    msg.fit(version)
}

/// The highest protocol version this implementation speaks (as git-annex).
pub const MAX_PROTOCOL_VERSION: u32 = 4;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_versions_follow_the_protocol_history() {
        let key = Key::parse("SHA256E-s1--ab").expect("test key");
        assert_eq!(Message::Valid.min_version(), 1);
        assert_eq!(Message::Invalid.min_version(), 1);
        assert_eq!(Message::Bypass(vec![]).min_version(), 2);
        assert_eq!(Message::SuccessPlus(vec![]).min_version(), 2);
        assert_eq!(Message::FailurePlus(vec![]).min_version(), 2);
        assert_eq!(Message::AlreadyHavePlus(vec![]).min_version(), 2);
        assert_eq!(
            Message::RemoveBefore {
                timestamp: 1,
                key: key.clone()
            }
            .min_version(),
            3
        );
        assert_eq!(Message::GetTimestamp.min_version(), 3);
        assert_eq!(Message::Timestamp(1).min_version(), 3);
        assert_eq!(Message::DataPresent.min_version(), 4);
        assert_eq!(Message::Remove(key).min_version(), 0);
        assert_eq!(Message::Data(0).min_version(), 0);
        assert_eq!(Message::Success.min_version(), 0);
    }

    #[test]
    fn replies_fit_the_peers_version() {
        assert_eq!(
            Message::SuccessPlus(vec!["u".into()]).fit(1),
            Message::Success
        );
        assert_eq!(Message::FailurePlus(vec![]).fit(0), Message::Failure);
        assert_eq!(
            fit(Message::AlreadyHavePlus(vec!["u".into()]), 1),
            Message::AlreadyHave
        );
        assert_eq!(
            Message::SuccessPlus(vec!["u".into()]).fit(2),
            Message::SuccessPlus(vec!["u".into()])
        );
        assert_eq!(
            Message::Timestamp(5).fit(2),
            Message::Error("TIMESTAMP is not in protocol version 2".into())
        );
        assert_eq!(Message::Timestamp(5).fit(3), Message::Timestamp(5));
        assert_eq!(Message::DataPresent.fit(4), Message::DataPresent);
    }

    #[test]
    fn service_names() {
        for s in [Service::UploadPack, Service::ReceivePack] {
            assert_eq!(Service::from_wire(s.as_str()), Some(s));
        }
        assert_eq!(Service::from_wire("git-upload-archive"), None);
    }
}
