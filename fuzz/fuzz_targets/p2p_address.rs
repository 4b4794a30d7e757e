//! P2P addresses with and without tokens: no panic, display → parse gives
//! the same address, and the creds file name is one safe path component.
#![no_main]

use annex::key::safe_path_component;
use annex::transport::p2paddr::P2pAddress;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(addr) = P2pAddress::parse(text) {
        check(&addr);
    }
    if let Ok((addr, token)) = P2pAddress::parse_with_token(text) {
        check(&addr);
        let written = format!("{addr}:{}", token.as_str());
        let (addr2, token2) = P2pAddress::parse_with_token(&written).expect("written form parses");
        assert_eq!((addr2, token2.as_str()), (addr.clone(), token.as_str()));
    }
    if let Ok((addr, _token)) = P2pAddress::parse_maybe_token(text) {
        check(&addr);
    }
});

fn check(addr: &P2pAddress) {
    assert_eq!(P2pAddress::parse(&addr.to_string()).as_ref(), Ok(addr));
    let creds = addr.creds_file_name();
    assert!(safe_path_component(&creds).is_ok(), "creds file {creds:?}");
    assert!(creds
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'%'));
}
