use super::*;

fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// What `git annex initremote s3 type=S3 encryption=none bucket=B` writes
/// to remote.log for AWS (defaults included).
#[test]
fn aws_defaults_as_initremote_writes_them() {
    let c = S3Config::from_params(&params(&[
        ("type", "S3"),
        ("name", "s3"),
        ("bucket", "My-Bucket"),
        ("datacenter", "US"),
        ("host", "s3.amazonaws.com"),
        ("port", "80"),
        ("storageclass", "STANDARD"),
        ("encryption", "none"),
    ]))
    .unwrap();
    assert_eq!(c.bucket, "my-bucket");
    assert_eq!(c.host, "s3.amazonaws.com");
    assert_eq!((c.protocol, c.port), (Protocol::Http, 80));
    assert_eq!(c.request_style, RequestStyle::VirtualHost);
    assert_eq!(c.region, "us-east-1");
    assert_eq!(c.signature, Signature::V4);
    assert_eq!(c.endpoint_url(), "http://s3.amazonaws.com:80");
}

#[test]
fn datacenter_picks_the_aws_endpoint_and_its_region() {
    let c = S3Config::from_params(&params(&[("bucket", "b"), ("datacenter", "EU")])).unwrap();
    assert_eq!(
        (c.host.as_str(), c.region.as_str()),
        ("s3-eu-west-1.amazonaws.com", "eu-west-1")
    );
    let c =
        S3Config::from_params(&params(&[("bucket", "b"), ("datacenter", "us-west-2")])).unwrap();
    assert_eq!(
        (c.host.as_str(), c.region.as_str()),
        ("s3-us-west-2.amazonaws.com", "us-west-2")
    );
}

/// For a host that is not AWS's, git-annex puts the host name in the SigV4
/// scope as the region; `region=` overrides it.
#[test]
fn non_aws_host_signs_with_the_host_as_region_unless_region_is_given() {
    let base = [
        ("bucket", "b"),
        ("host", "garage.example.org"),
        ("port", "3900"),
        ("protocol", "http"),
        ("requeststyle", "path"),
        ("signature", "v4"),
    ];
    let c = S3Config::from_params(&params(&base)).unwrap();
    assert_eq!(c.region, "garage.example.org");
    assert_eq!(c.endpoint_url(), "http://garage.example.org:3900");
    assert_eq!(c.request_style, RequestStyle::Path);
    let mut with_region = params(&base);
    with_region.insert("region".into(), "garage".into());
    assert_eq!(
        S3Config::from_params(&with_region).unwrap().region,
        "garage"
    );
}

#[test]
fn protocol_and_port_follow_git_annex() {
    let get = |pairs: &[(&str, &str)]| {
        let mut p = params(pairs);
        p.insert("bucket".into(), "b".into());
        let c = S3Config::from_params(&p).unwrap();
        (c.protocol, c.port)
    };
    assert_eq!(get(&[("protocol", "https")]), (Protocol::Https, 443));
    assert_eq!(
        get(&[("protocol", "https"), ("port", "80")]),
        (Protocol::Https, 443)
    );
    assert_eq!(get(&[("port", "443")]), (Protocol::Https, 443));
    assert_eq!(get(&[("port", "9000")]), (Protocol::Http, 9000));
    assert_eq!(
        get(&[("protocol", "https"), ("port", "9000")]),
        (Protocol::Https, 9000)
    );
    assert_eq!(get(&[]), (Protocol::Http, 80));
}

#[test]
fn errors_name_the_parameter() {
    let err = |pairs: &[(&str, &str)]| S3Config::from_params(&params(pairs)).unwrap_err();
    assert_eq!(err(&[]), ConfigError::Missing { param: "bucket" });
    for (k, v) in [
        ("port", "eighty"),
        ("protocol", "ftp"),
        ("requeststyle", "vhost"),
        ("signature", "v3"),
        ("partsize", "lots"),
        ("public", "maybe"),
    ] {
        let e = err(&[("bucket", "b"), (k, v)]);
        assert!(e.to_string().contains(&format!("{k}={v:?}")), "{e}");
    }
    assert!(matches!(
        err(&[("bucket", "b"), ("signature", "v2")]),
        ConfigError::Unsupported {
            param: "signature",
            ..
        }
    ));
}

#[test]
fn partsize_prefix_class_chunk_public() {
    let c = S3Config::from_params(&params(&[
        ("bucket", "b"),
        ("partsize", "1GiB"),
        ("fileprefix", "annex/"),
        ("storageclass", "STANDARD_IA"),
        ("chunk", "10MiB"),
        ("public", "yes"),
        ("signature", "anonymous"),
    ]))
    .unwrap();
    assert_eq!(c.partsize, Some(1 << 30));
    assert_eq!(
        c.object_name("SHA256E-s3--abc.txt"),
        "annex/SHA256E-s3--abc.txt"
    );
    assert_eq!(c.storage_class, "STANDARD_IA");
    assert_eq!(c.chunk.as_deref(), Some("10MiB"));
    assert!(c.public);
    assert_eq!(c.signature, Signature::Anonymous);
}

#[test]
fn part_size_stays_within_what_s3_accepts() {
    let mut c = S3Config::from_params(&params(&[("bucket", "b")])).unwrap();
    assert_eq!(c.part_size_for(100), DEFAULT_PART_SIZE);
    c.partsize = Some(1 << 20);
    assert_eq!(c.part_size_for(100), MIN_PART_SIZE);
    c.partsize = Some(100 << 30);
    assert_eq!(c.part_size_for(100), MAX_PART_SIZE);
    c.partsize = None;
    // 10000 parts at most: 1 TiB needs parts over 100 MiB.
    let big = 1u64 << 40;
    assert!(c.part_size_for(big) * 10_000 >= big);
}

#[test]
fn ages_in_seconds_or_with_a_unit() {
    use std::time::Duration;
    assert_eq!(parse_age("90"), Some(Duration::from_secs(90)));
    assert_eq!(parse_age("0"), Some(Duration::ZERO));
    assert_eq!(parse_age("15m"), Some(Duration::from_secs(900)));
    assert_eq!(parse_age(" 7d "), Some(Duration::from_secs(7 * 86_400)));
    for bad in ["", "d", "7w", "-1", "1.5h"] {
        assert_eq!(parse_age(bad), None, "{bad}");
    }
}
