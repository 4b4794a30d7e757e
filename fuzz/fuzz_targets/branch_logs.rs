//! The git-annex branch's log parsers on the same bytes (they share the
//! line grammar): no panic, and parse → format → parse gives the same log.
#![no_main]

use annex::branch::maplog::{
    format_cluster_log, format_proxy_log, is_cluster_uuid, parse_cluster_log, parse_maxsize_log,
    parse_proxy_log,
};
use annex::branch::{LocationLog, MapLog, UuidLog};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let location = LocationLog::parse(data);
    let text = location.format();
    assert_eq!(
        LocationLog::parse(&text),
        location,
        "location log {:?}",
        lossy(&text)
    );
    assert_eq!(LocationLog::parse(&text).format(), text);

    let uuid = UuidLog::parse(data);
    let text = uuid.format();
    assert_eq!(UuidLog::parse(&text), uuid, "uuid log {:?}", lossy(&text));

    let map = MapLog::parse(data);
    let text = map.format();
    assert_eq!(MapLog::parse(&text), map, "map log {:?}", lossy(&text));

    let proxy = parse_proxy_log(data);
    let text = format_proxy_log(&proxy);
    assert_eq!(
        parse_proxy_log(&text),
        proxy,
        "proxy log {:?}",
        lossy(&text)
    );

    let cluster = parse_cluster_log(data);
    assert!(cluster.entries.keys().all(|u| is_cluster_uuid(u)));
    let text = format_cluster_log(&cluster);
    assert_eq!(
        parse_cluster_log(&text),
        cluster,
        "cluster log {:?}",
        lossy(&text)
    );

    let maxsize = parse_maxsize_log(data);
    let text = maxsize.format_with(u64::to_string);
    assert_eq!(
        parse_maxsize_log(&text),
        maxsize,
        "maxsize log {:?}",
        lossy(&text)
    );
});

fn lossy(b: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(b)
}
