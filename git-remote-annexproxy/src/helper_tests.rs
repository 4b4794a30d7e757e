use super::*;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("no route to server")]
struct Unreachable;

/// What the loop returned, what it wrote to git, what it asked to connect.
type Driven = (
    Result<Outcome<&'static str>, String>,
    String,
    Option<(Service, Options)>,
);

/// Runs the loop on `input`; the connector records what it was asked and
/// returns `result`.
fn drive(input: &str, result: Result<&'static str, Unreachable>) -> Driven {
    let mut out = Vec::new();
    let mut asked = None;
    let res = run(&mut input.as_bytes(), &mut out, |svc, opts: &Options| {
        asked = Some((svc, opts.clone()));
        result
    });
    (
        res.map_err(|e| e.to_string()),
        String::from_utf8(out).expect("replies are text"),
        asked,
    )
}

#[test]
fn capabilities_then_blank_line_ends() {
    let (res, out, asked) = drive("capabilities\n\n", Ok("t"));
    assert_eq!(res, Ok(Outcome::Done));
    assert_eq!(out, "connect\noption\n\n");
    assert_eq!(asked, None);
}

#[test]
fn eof_ends_quietly() {
    let (res, out, _) = drive("capabilities\n", Ok("t"));
    assert_eq!(res, Ok(Outcome::Done));
    assert_eq!(out, "connect\noption\n\n");
}

#[test]
fn options_git_sends_before_connecting() {
    // what git's standard_options() sends, then one it may add for -4
    let input = "capabilities\noption progress true\noption verbosity 2\noption family ipv4\n\
                 connect git-upload-pack\n";
    let (res, out, asked) = drive(input, Ok("tunnel"));
    let want = Options {
        verbosity: 2,
        progress: true,
        family: Family::Ipv4,
    };
    assert_eq!(
        res,
        Ok(Outcome::Connected {
            service: Service::UploadPack,
            options: want.clone(),
            tunnel: "tunnel"
        })
    );
    // one reply per option, then the empty line that hands the pipes over
    assert_eq!(out, "connect\noption\n\nok\nok\nok\n\n");
    assert_eq!(asked, Some((Service::UploadPack, want)));
}

#[test]
fn unknown_and_bad_options() {
    let input = "option servpath \"/usr/bin/git-upload-pack\"\noption depth 1\n\
                 option verbosity loud\noption progress maybe\noption family ipx\n\n";
    let (res, out, _) = drive(input, Ok("t"));
    assert_eq!(res, Ok(Outcome::Done));
    assert_eq!(
        out,
        "unsupported\nunsupported\nerror invalid verbosity \"loud\"\n\
         error invalid progress value \"maybe\"\nerror invalid address family \"ipx\"\n"
    );
}

#[test]
fn receive_pack_connects() {
    let (res, out, asked) = drive("connect git-receive-pack\n", Ok("t"));
    assert!(matches!(
        res,
        Ok(Outcome::Connected {
            service: Service::ReceivePack,
            ..
        })
    ));
    assert_eq!(out, "\n");
    assert_eq!(asked.map(|a| a.0), Some(Service::ReceivePack));
}

#[test]
fn failed_connect_says_nothing_to_git() {
    // git must see the helper exit, not an empty line and then a dead pipe
    let (res, out, asked) = drive("capabilities\nconnect git-upload-pack\n", Err(Unreachable));
    assert_eq!(res, Err("no route to server".to_string()));
    assert_eq!(out, "connect\noption\n\n");
    assert!(asked.is_some());
}

#[test]
fn other_services_are_refused_without_connecting() {
    let (res, out, asked) = drive("connect git-upload-archive\n", Ok("t"));
    assert_eq!(
        res,
        Err(
            "service \"git-upload-archive\" is not available over annexproxy \
             (only git-upload-pack and git-receive-pack)"
                .to_string()
        )
    );
    assert_eq!(out, "");
    assert_eq!(asked, None);
}

#[test]
fn commands_we_do_not_advertise_are_protocol_errors() {
    for cmd in [
        "list",
        "fetch 0000 HEAD",
        "stateless-connect git-upload-pack",
        "connect",
    ] {
        let (res, _, _) = drive(&format!("{cmd}\n"), Ok("t"));
        assert_eq!(
            res,
            Err(format!("gitremote-helpers protocol error at {cmd:?}"))
        );
    }
}

#[test]
fn nothing_is_read_past_the_connect_line() {
    // after the empty reply git's pack protocol owns stdin; bytes that
    // follow the connect line must still be there for the tunnel
    let mut input: &[u8] = b"connect git-upload-pack\n0032want 1234\n";
    let mut out = Vec::new();
    let res = run(&mut input, &mut out, |_, _| Ok::<_, Unreachable>(()));
    assert!(res.is_ok());
    assert_eq!(input, b"0032want 1234\n");
}
