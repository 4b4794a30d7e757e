//! Harness for the end-to-end tests: the real git-annex client talks over a
//! loopback ssh stand-in to a server repository served either by the real
//! git-annex-shell or by ours, and scenarios compare what the client sees.
//!
//! - [`tools`]: finding the real git-annex (`<workspace>/.venv` or
//!   `$ANNEX_VENV`) and our binary (`$ANNEXPROXY_BIN_DIR`, else built once).
//! - [`standin`]: the generated `ssh` stand-in and its session log.
//! - [`sshd`]: a real OpenSSH server on a loopback port, for the scenario
//!   that checks the forced command behind the real thing.
//! - [`env`]: [`TestEnv`], one scenario's temp world, commands and fixtures.
//! - [`run`]: [`Out`], a finished command with good failure messages.
//! - [`observe`]: whereis/fsck results normalised for Real-vs-Ours checks.
//! - [`socks`]: a loopback SOCKS5 stand-in for tor, for `tor-annex::`
//!   addresses; [`serve_p2p`]: our P2P listener, run for a test.
//! - [`p2p_driver`]: `git-annex-shell p2pstdio` driven with raw protocol
//!   lines, no ssh and no client, for byte-level Real-vs-Ours checks.
//! - [`p2phttp`]: our `annexproxy p2phttp`, with clients made to reach it
//!   only over HTTP; [`http_raw`]: HTTP/1.1 by hand, for exact replies;
//!   [`tls`]: a throw-away CA for HTTPS.

pub mod env;
pub mod http_raw;
pub mod observe;
pub mod p2p_driver;
pub mod p2phttp;
pub mod run;
pub mod serve_p2p;
pub mod socks;
pub mod sshd;
pub mod standin;
pub mod tls;
pub mod tools;

pub use env::{ServerKind, TestEnv};
pub use observe::{Transcript, Whereis};
pub use run::Out;

/// The tests of one scenario function `fn SCENARIO(kind: ServerKind)`: on
/// the real server (`SCENARIO::real`), on ours (`SCENARIO::ours`) and, with
/// `compare`, on both with equal observations (`SCENARIO::compare`, for
/// scenarios returning a [`Transcript`]).
#[macro_export]
macro_rules! on_both_servers {
    ($scenario:ident) => {
        mod $scenario {
            $crate::on_both_servers!(@each $scenario);
        }
    };
    ($scenario:ident, compare) => {
        mod $scenario {
            $crate::on_both_servers!(@each $scenario);

            #[test]
            fn compare() {
                super::$scenario($crate::ServerKind::Real)
                    .assert_same_as(&super::$scenario($crate::ServerKind::Ours));
            }
        }
    };
    (@each $scenario:ident) => {
        #[test]
        fn real() {
            let _ = super::$scenario($crate::ServerKind::Real);
        }

        #[test]
        fn ours() {
            let _ = super::$scenario($crate::ServerKind::Ours);
        }
    };
}

/// Deterministic pseudo-random bytes (splitmix64), so big test files are
/// cheap to make and incompressible.
pub fn pseudo_random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        out.extend_from_slice(&z.to_le_bytes());
    }
    out.truncate(len);
    out
}
