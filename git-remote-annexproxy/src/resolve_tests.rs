use super::*;

/// What our git-annex-shell printed for a gateway with a proxied remote
/// `node1`, cluster `mycl` and its node `n2` (annex-shell's
/// `Served::config_line`).
const OURS: &str = "annex.uuid=35917f72-b0b3-403b-852d-051c135294b7
core.gcrypt-id=
annexproxy.proxy.node1=4e711734-5faa-424c-9752-de8ff222a81e
annexproxy.cluster.mycl=ac7ac408-6810-83de-ade5-e2d206274730
annexproxy.proxy.n2=f31415ff-203f-443d-8e54-8b5cca09de2c
";

fn o(kind: Kind, name: &str, uuid: &str) -> Offered {
    Offered {
        kind,
        name: name.into(),
        uuid: uuid.into(),
    }
}

#[test]
fn reads_the_served_lines() {
    assert_eq!(
        parse_configlist(OURS),
        Some(vec![
            o(
                Kind::Proxied,
                "node1",
                "4e711734-5faa-424c-9752-de8ff222a81e"
            ),
            o(
                Kind::Cluster,
                "mycl",
                "ac7ac408-6810-83de-ade5-e2d206274730"
            ),
            o(Kind::Proxied, "n2", "f31415ff-203f-443d-8e54-8b5cca09de2c"),
        ])
    );
}

#[test]
fn real_git_annex_shell_offers_nothing() {
    // its configlist is exactly these two lines (spec §1.3)
    let real = "annex.uuid=35917f72-b0b3-403b-852d-051c135294b7\ncore.gcrypt-id=\n";
    assert_eq!(parse_configlist(real), Some(vec![]));
    // an uninitialised repository has no UUID to offer anything under
    assert_eq!(parse_configlist("annex.uuid=\ncore.gcrypt-id=\n"), None);
}

#[test]
fn odd_lines_are_skipped() {
    let out = "annex.uuid=35917f72-b0b3-403b-852d-051c135294b7
annexproxy.future.x=4e711734-5faa-424c-9752-de8ff222a81e
annexproxy.proxy.=4e711734-5faa-424c-9752-de8ff222a81e
annexproxy.proxy.bad=not-a-uuid
no equals sign
annexproxy.proxy.ok=4e711734-5faa-424c-9752-de8ff222a81e
";
    assert_eq!(
        parse_configlist(out),
        Some(vec![o(
            Kind::Proxied,
            "ok",
            "4e711734-5faa-424c-9752-de8ff222a81e"
        )])
    );
}

#[test]
fn names_resolve_and_unknown_names_list_the_offer() {
    let offered = parse_configlist(OURS).expect("has a uuid");
    let name = |n: &str| RemoteRef::Name(n.into());
    assert_eq!(
        pick(&name("mycl"), &offered).ok().as_deref(),
        Some("ac7ac408-6810-83de-ade5-e2d206274730")
    );
    let err = pick(&name("node3"), &offered).expect_err("not offered");
    assert_eq!(
        err.to_string(),
        "no proxied remote or cluster named \"node3\" on this server (it offers: mycl, n2, node1)"
    );
    let err = pick(&name("node3"), &[]).expect_err("nothing offered");
    assert!(err.to_string().ends_with("(it offers none)"), "{err}");
    // names are exact, as git-annex's remote names are
    assert!(pick(&name("Node1"), &offered).is_err());
    // a UUID needs no lookup
    let u = RemoteRef::Uuid("f31415ff-203f-443d-8e54-8b5cca09de2c".into());
    assert_eq!(
        pick(&u, &[]).ok().as_deref(),
        Some("f31415ff-203f-443d-8e54-8b5cca09de2c")
    );
}
