//! The `annexproxy::` URL parser: no panic, and nothing it accepts can be
//! taken by ssh as an option or carry a control character onward.
#![no_main]

use annex::transport::p2paddr::P2pAddress;
use git_remote_annexproxy::url::{parse, Target};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(target) = parse(text) else { return };
    let clean = |s: &str| !s.chars().any(char::is_control);
    match target {
        Target::Ssh {
            user,
            host,
            port,
            dir,
        } => {
            assert!(
                !host.is_empty() && !host.starts_with('-') && clean(&host),
                "host {host:?}"
            );
            if let Some(u) = &user {
                assert!(
                    !u.is_empty() && !u.starts_with('-') && clean(u),
                    "user {u:?}"
                );
            }
            assert_ne!(port, Some(0));
            assert!(dir.starts_with('/') && clean(&dir), "dir {dir:?}");
        }
        Target::Local { path } => {
            assert!(path.is_absolute(), "local path {path:?}");
            assert!(clean(&path.to_string_lossy()));
        }
        Target::P2p { address, .. } => {
            assert_eq!(P2pAddress::parse(&address.to_string()), Ok(address));
        }
    }
});
