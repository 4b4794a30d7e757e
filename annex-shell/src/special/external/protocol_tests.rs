use super::*;

const K: &str = "SHA256E-s5--abc.txt";

#[test]
fn our_requests_as_lines() {
    let t = Request::Transfer {
        direction: Direction::Store,
        key: K.into(),
        file: "annex/tmp/external/x".into(),
    };
    assert_eq!(t.line(), format!("TRANSFER STORE {K} annex/tmp/external/x"));
    assert_eq!(
        Request::CheckPresent(K.into()).line(),
        format!("CHECKPRESENT {K}")
    );
    assert_eq!(
        Request::Extensions.line(),
        "EXTENSIONS INFO GETGITREMOTENAME ASYNC"
    );
    assert_eq!(Answer::Value(String::new()).line(), "VALUE ");
    let creds = Answer::Creds {
        login: "me".into(),
        password: "p w".into(),
    };
    assert_eq!(creds.line(), "CREDS me p w");
}

#[test]
fn replies_with_their_parameters() {
    let ok = |l: &str| parse(l).unwrap_or_else(|| panic!("{l:?} refused"));
    assert_eq!(ok("VERSION 1"), Message::Version(1));
    assert_eq!(
        ok(&format!("TRANSFER-SUCCESS RETRIEVE {K}")),
        Message::Reply(Reply::TransferSuccess(Direction::Retrieve, K.into()))
    );
    // The message may hold spaces, or be left out.
    assert_eq!(
        ok(&format!("TRANSFER-FAILURE STORE {K} disk full, sorry")),
        Message::Reply(Reply::TransferFailure(
            Direction::Store,
            K.into(),
            "disk full, sorry".into()
        ))
    );
    assert_eq!(
        ok(&format!("TRANSFER-FAILURE STORE {K}")),
        Message::Reply(Reply::TransferFailure(
            Direction::Store,
            K.into(),
            "".into()
        ))
    );
    assert_eq!(
        ok(&format!("CHECKPRESENT-UNKNOWN {K} no network")),
        Message::Reply(Reply::CheckPresentUnknown(K.into(), "no network".into()))
    );
    assert_eq!(
        ok("EXTENSIONS INFO ASYNC"),
        Message::Reply(Reply::Extensions(vec!["INFO".into(), "ASYNC".into()]))
    );
    assert_eq!(ok("EXTENSIONS"), Message::Reply(Reply::Extensions(vec![])));
    assert_eq!(
        ok("PREPARE-FAILURE"),
        Message::Reply(Reply::PrepareFailure("".into()))
    );
    assert_eq!(ok("ERROR it broke"), Message::Error("it broke".into()));
}

#[test]
fn queries_with_their_parameters() {
    let q = |l: &str| match parse(l) {
        Some(Message::Query(q)) => q,
        other => panic!("{l:?}: {other:?}"),
    };
    assert_eq!(q("GETCONFIG url"), Query::GetConfig("url".into()));
    // The last parameter takes the rest, spaces included; it may be empty.
    assert_eq!(
        q("SETCONFIG prefix a b"),
        Query::SetConfig("prefix".into(), "a b".into())
    );
    assert_eq!(
        q("SETCONFIG prefix "),
        Query::SetConfig("prefix".into(), "".into())
    );
    assert_eq!(
        q("SETCREDS mycreds me secret with space"),
        Query::SetCreds {
            setting: "mycreds".into(),
            login: "me".into(),
            password: "secret with space".into()
        }
    );
    assert_eq!(q("PROGRESS 1024"), Query::Progress(1024));
    assert_eq!(
        q(&format!("DIRHASH-LOWER {K}")),
        Query::DirHashLower(K.into())
    );
    assert_eq!(q("GETUUID"), Query::GetUuid);
    assert_eq!(q("INFO hello there"), Query::Info("hello there".into()));
    assert_eq!(
        q(&format!("GETURLS {K} ")),
        Query::GetUrls(K.into(), "".into())
    );
}

#[test]
fn garbage_is_refused() {
    for line in [
        "",
        "HELLO",
        "VERSION one",
        "VERSION",
        "GETUUID extra",
        "PREPARE-SUCCESS now",
        "TRANSFER-SUCCESS SIDEWAYS k",
        "TRANSFER-SUCCESS STORE",
        "CHECKPRESENT-SUCCESS",
        "SETCONFIG onlyone",
        "PROGRESS lots",
        "\u{0}\u{1}binary",
    ] {
        assert_eq!(parse(line), None, "{line:?}");
    }
}

#[test]
fn async_job_tags() {
    assert_eq!(tag("PREPARE", true), "J 1 PREPARE");
    assert_eq!(tag("PREPARE", false), "PREPARE");
    // VERSION, EXTENSIONS and ERROR are never tagged.
    assert_eq!(tag("EXTENSIONS INFO", true), "EXTENSIONS INFO");
    assert_eq!(tag("ERROR x", true), "ERROR x");
    assert_eq!(untag("J 1 PREPARE-SUCCESS", true), Some("PREPARE-SUCCESS"));
    assert_eq!(untag("J 2 PREPARE-SUCCESS", true), None);
    assert_eq!(untag("PREPARE-SUCCESS", true), None);
    assert_eq!(untag("ERROR bad", true), Some("ERROR bad"));
    assert_eq!(untag("J 1 PREPARE-SUCCESS", false), None);
    assert_eq!(untag("PREPARE-SUCCESS", false), Some("PREPARE-SUCCESS"));
}

#[test]
fn many_jobs_tags() {
    assert_eq!(
        tag_job(&format!("TRANSFER STORE {K} f"), 7),
        format!("J 7 TRANSFER STORE {K} f")
    );
    assert_eq!(tag_job("VALUE a b", 12), "J 12 VALUE a b");
    assert_eq!(tag_job("ERROR no such setting", 3), "ERROR no such setting");
    assert_eq!(
        split_job(&format!("J 12 CHECKPRESENT-SUCCESS {K}")),
        Some((12, format!("CHECKPRESENT-SUCCESS {K}").as_str()))
    );
    // The message keeps its spaces; an empty one is still a message.
    assert_eq!(split_job("J 3 INFO a  b"), Some((3, "INFO a  b")));
    for line in [
        "ERROR x",
        "J",
        "J 3",
        "J x PREPARE-SUCCESS",
        "J -1 X",
        "JJ 1 X",
    ] {
        assert_eq!(split_job(line), None, "{line:?}");
    }
}
