use super::*;

fn ssh(user: Option<&str>, host: &str, port: Option<u16>, dir: &str) -> Target {
    Target::Ssh {
        user: user.map(str::to_owned),
        host: host.to_owned(),
        port,
        dir: dir.to_owned(),
    }
}

fn local(p: &str) -> Target {
    Target::Local {
        path: PathBuf::from(p),
    }
}

#[test]
fn ssh_urls() {
    assert_eq!(
        parse("ssh://h/srv/r.git"),
        Ok(ssh(None, "h", None, "/srv/r.git"))
    );
    assert_eq!(
        parse("ssh://me@h:2222/srv/r.git"),
        Ok(ssh(Some("me"), "h", Some(2222), "/srv/r.git"))
    );
    assert_eq!(parse("git+ssh://h/r"), Ok(ssh(None, "h", None, "/r")));
    assert_eq!(parse("ssh+git://h/r"), Ok(ssh(None, "h", None, "/r")));
    // an empty port is the default port, as in git
    assert_eq!(parse("ssh://h:/r"), Ok(ssh(None, "h", None, "/r")));
    assert_eq!(
        parse("ssh://[::1]:22/r"),
        Ok(ssh(None, "::1", Some(22), "/r"))
    );
    assert_eq!(parse("ssh://[::1]/r"), Ok(ssh(None, "::1", None, "/r")));
    // the last '@' ends the user
    assert_eq!(
        parse("ssh://a@b@h/r"),
        Ok(ssh(Some("a@b"), "h", None, "/r"))
    );
}

#[test]
fn home_relative_forms_are_written_as_git_annex_writes_them() {
    // Git/Remote.hs: ssh://h/~/p → /~/p, scp h:p → /~/p, h:~u/p → /~u/p
    assert_eq!(parse("ssh://h/~/p"), Ok(ssh(None, "h", None, "/~/p")));
    assert_eq!(parse("h:p"), Ok(ssh(None, "h", None, "/~/p")));
    assert_eq!(parse("h:~u/p"), Ok(ssh(None, "h", None, "/~u/p")));
    assert_eq!(parse("h:/abs/p"), Ok(ssh(None, "h", None, "/abs/p")));
}

#[test]
fn scp_like() {
    assert_eq!(
        parse("localhost:/tmp/server.git"),
        Ok(ssh(None, "localhost", None, "/tmp/server.git"))
    );
    assert_eq!(
        parse("me@h:r.git"),
        Ok(ssh(Some("me"), "h", None, "/~/r.git"))
    );
    assert_eq!(parse("[::1]:/r"), Ok(ssh(None, "::1", None, "/r")));
    // a ':' after the first '/' is part of a local path, not a host
    assert_eq!(parse("/a:b/c"), Ok(local("/a:b/c")));
    // scp-like paths are not URLs: '%' stays
    assert_eq!(parse("h:/a%20b"), Ok(ssh(None, "h", None, "/a%20b")));
}

#[test]
fn url_paths_are_percent_decoded() {
    assert_eq!(parse("ssh://h/a%20b"), Ok(ssh(None, "h", None, "/a b")));
    assert_eq!(parse("file:///a%25b"), Ok(local("/a%b")));
    assert!(matches!(
        parse("ssh://h/a%2"),
        Err(UrlError::BadEscape { .. })
    ));
    assert!(matches!(
        parse("ssh://h/a%+1x"),
        Err(UrlError::BadEscape { .. })
    ));
    assert!(matches!(
        parse("ssh://h/a%0ab"),
        Err(UrlError::ControlCharacter { .. })
    ));
}

#[test]
fn local_paths() {
    assert_eq!(parse("/srv/r.git"), Ok(local("/srv/r.git")));
    assert_eq!(parse("file:///srv/r.git"), Ok(local("/srv/r.git")));
    assert_eq!(parse("file://localhost/srv/r.git"), Ok(local("/srv/r.git")));
}

#[test]
fn bad_urls() {
    assert_eq!(parse(""), Err(UrlError::Empty));
    assert_eq!(
        parse("http://h/r"),
        Err(UrlError::UnsupportedScheme {
            scheme: "http".into()
        })
    );
    assert_eq!(
        parse("relative/r.git"),
        Err(UrlError::RelativePath {
            path: "relative/r.git".into()
        })
    );
    assert!(matches!(
        parse("ssh://h"),
        Err(UrlError::MissingPath { .. })
    ));
    assert!(matches!(
        parse("ssh://h/"),
        Err(UrlError::MissingPath { .. })
    ));
    assert!(matches!(parse("h:"), Err(UrlError::MissingPath { .. })));
    assert!(matches!(
        parse("ssh:///r"),
        Err(UrlError::MissingHost { .. })
    ));
    assert!(matches!(parse(":r"), Err(UrlError::MissingHost { .. })));
    assert!(matches!(
        parse("ssh://h:99999/r"),
        Err(UrlError::BadPort { .. })
    ));
    assert!(matches!(
        parse("ssh://h:0/r"),
        Err(UrlError::BadPort { .. })
    ));
    assert!(matches!(
        parse("ssh://h:+22/r"),
        Err(UrlError::BadPort { .. })
    ));
    assert!(matches!(
        parse("ssh://h:x/r"),
        Err(UrlError::BadPort { .. })
    ));
    assert!(matches!(
        parse("ssh://[::1/r"),
        Err(UrlError::UnclosedBracket { .. })
    ));
    assert!(matches!(
        parse("file://elsewhere/r"),
        Err(UrlError::RemoteFileHost { .. })
    ));
    assert!(matches!(
        parse("file://"),
        Err(UrlError::MissingPath { .. })
    ));
    assert!(matches!(
        parse("h:/r\nx"),
        Err(UrlError::ControlCharacter { .. })
    ));
}

#[test]
fn option_lookalikes_are_refused() {
    assert_eq!(
        parse("ssh://-oProxyCommand=touch%20x/r"),
        Err(UrlError::UnsafeHost {
            host: "-oProxyCommand=touch%20x".into()
        })
    );
    assert_eq!(
        parse("-oProxyCommand=x:r"),
        Err(UrlError::UnsafeHost {
            host: "-oProxyCommand=x".into()
        })
    );
    assert_eq!(
        parse("ssh://-lroot@h/r"),
        Err(UrlError::UnsafeUser {
            user: "-lroot".into()
        })
    );
    assert_eq!(
        parse("-l@h:r"),
        Err(UrlError::UnsafeUser { user: "-l".into() })
    );
    assert_eq!(
        parse("ssh://[-oX]/r"),
        Err(UrlError::UnsafeHost { host: "-oX".into() })
    );
}

#[test]
fn errors_read_as_one_line() {
    let e = parse("ssh://-oProxyCommand=x/r").unwrap_err().to_string();
    assert_eq!(
        e,
        "host \"-oProxyCommand=x\" starts with '-' and would be taken as an ssh option"
    );
    assert!(!e.contains('\n'));
}

#[test]
fn p2p_addresses() {
    assert_eq!(
        parse("tor-annex::abcdefg.onion:5555"),
        Ok(Target::P2p {
            address: P2pAddress::Tor {
                onion: "abcdefg.onion".into(),
                port: 5555
            },
            token: None
        })
    );
    assert_eq!(
        parse("p2p-annex::unixsock:srvaddr1"),
        Ok(Target::P2p {
            address: P2pAddress::Net {
                net: "unixsock".into(),
                address: "srvaddr1".into()
            },
            token: None
        })
    );
    let Ok(Target::P2p { token: Some(t), .. }) = parse("tor-annex::x.onion:80:SeCrEt") else {
        panic!("token not taken");
    };
    assert_eq!(t.as_str(), "secret");
}

#[test]
fn bad_p2p_addresses_say_what_is_wrong() {
    let e = parse("tor-annex::abcdefg.onion").unwrap_err().to_string();
    assert_eq!(
        e,
        "\"tor-annex::abcdefg.onion\": onion address must include a port number (tor-annex::ONION:PORT)"
    );
    assert!(matches!(parse("p2p-annex::net:-oX"), Err(UrlError::P2p(_))));
    assert!(matches!(parse("p2p-annex::../x:a"), Err(UrlError::P2p(_))));
}

#[test]
fn remote_after_hash_on_every_shell_form() {
    let node = |t: Target, name: &str| Url {
        target: t,
        remote: Some(RemoteRef::Name(name.into())),
    };
    assert_eq!(
        parse_url("ssh://h/srv/r#node1"),
        Ok(node(ssh(None, "h", None, "/srv/r"), "node1"))
    );
    assert_eq!(
        parse_url("h:r#B-C"),
        Ok(node(ssh(None, "h", None, "/~/r"), "B-C"))
    );
    assert_eq!(
        parse_url("/abs/r#mycluster"),
        Ok(node(local("/abs/r"), "mycluster"))
    );
    assert_eq!(
        parse_url("file:///abs/r#n.1"),
        Ok(node(local("/abs/r"), "n.1"))
    );
    // a UUID is taken as one (lowercased, as git-annex writes them)
    assert_eq!(
        parse_url("/abs/r#AC15440A-D31A-8D6E-A592-60D4FCF6A0F2"),
        Ok(Url {
            target: local("/abs/r"),
            remote: Some(RemoteRef::Uuid(
                "ac15440a-d31a-8d6e-a592-60d4fcf6a0f2".into()
            ))
        })
    );
    // the last '#' starts the remote; an escaped one stays in the path
    assert_eq!(
        parse_url("ssh://h/a%23b#n"),
        Ok(node(ssh(None, "h", None, "/a#b"), "n"))
    );
    assert_eq!(
        parse_url("/abs/r"),
        Ok(Url {
            target: local("/abs/r"),
            remote: None
        })
    );
}

#[test]
fn bad_remote_names() {
    for bad in ["", "-x", ".x", "a b", "a=b", "x/y"] {
        assert_eq!(
            parse_url(&format!("/r#{bad}")),
            Err(UrlError::BadRemoteName { name: bad.into() }),
            "{bad:?}"
        );
    }
    assert_eq!(
        parse_url("tor-annex::abc.onion:5555#node1"),
        Err(UrlError::RemoteOverP2p {
            name: "node1".into()
        })
    );
    // the path part is still checked
    assert!(matches!(
        parse_url("rel/r#node1"),
        Err(UrlError::RelativePath { .. })
    ));
}
