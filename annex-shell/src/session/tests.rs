//! The session loop over an in-memory back-end: raw protocol bytes in,
//! the exact reply bytes out, for each verb and each restriction.

mod memory;

use std::sync::{Arc, Mutex};

use annex::key::Key;

use super::*;
use crate::restrict::ServerMode;
use memory::Memory;

const KEY: &str = "SHA256E-s5--2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
const ME: &str = "11111111-1111-1111-1111-111111111111";

fn key(s: &str) -> Key {
    Key::parse(s).expect("key")
}

/// Runs a session over `backend` under `rules` with `input` from the
/// client, then EOF; everything the session sent.
async fn session(backend: Memory, rules: Rules, input: &str) -> String {
    crate::testutil::run_session(backend, rules, input.as_bytes()).await
}

fn greeting() -> String {
    format!("AUTH-SUCCESS {ME}\n")
}

fn open() -> Rules {
    Rules::OPEN
}

fn mode(m: ServerMode) -> Rules {
    Rules::from(m)
}

fn limited() -> Rules {
    Rules {
        limited: true,
        restricted: true,
        ..Rules::OPEN
    }
}

fn calls(m: &Memory) -> Vec<String> {
    m.st().calls.clone()
}

/// `input` and the replies expected after the greeting.
async fn exchange(m: &Memory, rules: Rules, input: &str, replies: &str) {
    let out = session(m.clone(), rules, input).await;
    assert_eq!(
        out,
        format!("{}{replies}", greeting()),
        "for input {input:?}"
    );
    assert!(m.st().finished, "the session's changes are committed");
}

#[tokio::test]
async fn version_is_what_the_backend_settles_below_ours() {
    let m = Memory::default();
    exchange(
        &m,
        open(),
        "VERSION 9\nVERSION 1\n",
        "VERSION 4\nVERSION 1\n",
    )
    .await;
    assert_eq!(calls(&m), ["negotiate 4", "negotiate 1"]);
}

#[tokio::test]
async fn a_client_without_version_speaks_0() {
    let m = Memory::with(&[(KEY, b"hello")]);
    // Protocol 0: no VALID after the body.
    let input = format!("GET 0 f {KEY}\nSUCCESS\n");
    exchange(&m, open(), &input, "DATA 5\nhello").await;
    assert_eq!(
        calls(&m),
        ["negotiate 0", "retrieve 0", "retrieved Some(true)"]
    );
}

#[tokio::test]
async fn unparseable_and_out_of_place_lines_keep_the_session() {
    let m = Memory::with(&[(KEY, b"hello")]);
    let input = format!("VERSION 2\nNONSENSE\nSUCCESS\nCHECKPRESENT {KEY}\n");
    let replies = "VERSION 2\nERROR unknown command\nERROR unexpected command\nSUCCESS\n";
    exchange(&m, open(), &input, replies).await;
}

#[tokio::test]
async fn checkpresent_and_gettimestamp() {
    let m = Memory::with(&[(KEY, b"hello")]);
    let other = KEY.replace("s5--2", "s5--3");
    let input = format!("VERSION 2\nCHECKPRESENT {KEY}\nCHECKPRESENT {other}\nGETTIMESTAMP\n");
    exchange(
        &m,
        open(),
        &input,
        "VERSION 2\nSUCCESS\nFAILURE\nTIMESTAMP 100\n",
    )
    .await;
}

#[tokio::test]
async fn client_error_ends_the_session() {
    let m = Memory::with(&[(KEY, b"hello")]);
    let input = format!("VERSION 2\nERROR bye\nCHECKPRESENT {KEY}\n");
    exchange(&m, open(), &input, "VERSION 2\n").await;
    assert_eq!(calls(&m), ["negotiate 2", "bypass "]);
}

#[tokio::test]
async fn remove_and_remove_before_answer_the_outcome() {
    let m = Memory::with(&[(KEY, b"hello")]);
    let input =
        format!("VERSION 3\nREMOVE-BEFORE 50 {KEY}\nREMOVE-BEFORE 200 {KEY}\nREMOVE {KEY}\n");
    exchange(&m, open(), &input, "VERSION 3\nFAILURE\nSUCCESS\nSUCCESS\n").await;
    assert_eq!(
        calls(&m),
        [
            "negotiate 3",
            "bypass ",
            "remove Some(50)",
            "remove Some(200)",
            "remove None"
        ]
    );
}

#[tokio::test]
async fn others_are_named_from_version_2() {
    let m = Memory::with(&[(KEY, b"hello")]);
    m.st().others = vec!["u2".into(), "u3".into()];
    let input = format!("VERSION 2\nPUT f {KEY}\nREMOVE {KEY}\n");
    exchange(
        &m,
        open(),
        &input,
        "VERSION 2\nALREADY-HAVE-PLUS u2 u3\nSUCCESS-PLUS u2 u3\n",
    )
    .await;
    let m = Memory::with(&[(KEY, b"hello")]);
    m.st().others = vec!["u2".into()];
    let input = format!("VERSION 1\nPUT f {KEY}\nREMOVE {KEY}\n");
    exchange(&m, open(), &input, "VERSION 1\nALREADY-HAVE\nSUCCESS\n").await;
}

#[tokio::test]
async fn lockcontent_holds_until_unlockcontent() {
    let m = Memory::with(&[(KEY, b"hello")]);
    let other = KEY.replace("s5--2", "s5--3");
    let input = format!(
        "VERSION 2\nLOCKCONTENT {KEY}\nUNLOCKCONTENT\nLOCKCONTENT {other}\nLOCKCONTENT {KEY}\nCHECKPRESENT {KEY}\nCHECKPRESENT {KEY}\n"
    );
    let replies = format!("VERSION 2\nSUCCESS\nFAILURE\nSUCCESS\nERROR {LOCKED_ERROR}\nSUCCESS\n");
    exchange(&m, open(), &input, &replies).await;
    assert_eq!(
        calls(&m),
        [
            "negotiate 2",
            "bypass ",
            "lock",
            "unlock",
            "lock",
            "lock",
            "unlock",
            "check_present"
        ]
    );
}

#[tokio::test]
async fn get_sends_from_the_offset_then_validity_then_hears_the_verdict() {
    let m = Memory::with(&[(KEY, b"hello")]);
    let other = KEY.replace("s5--2", "s5--3");
    let input = format!(
        "VERSION 2\nGET 2 f {KEY}\nSUCCESS\nGET 0 f {other}\nFAILURE\nGET 0 f {KEY}\nVALID\n"
    );
    let replies = "VERSION 2\nDATA 3\nlloVALID\nDATA 0\nINVALID\nDATA 5\nhelloVALID\nERROR expected SUCCESS or SUCCESS-PLUS or FAILURE or FAILURE-PLUS\n";
    exchange(&m, open(), &input, replies).await;
    assert_eq!(
        calls(&m)[2..],
        [
            "retrieve 2",
            "retrieved Some(true)",
            "retrieve 0",
            "retrieved Some(false)",
            "retrieve 0",
            "retrieved Some(false)"
        ]
    );
}

#[tokio::test]
async fn get_ends_the_session_when_the_client_hangs_up_before_its_verdict() {
    let m = Memory::with(&[(KEY, b"hello")]);
    let input = format!("VERSION 1\nGET 0 f {KEY}\n");
    exchange(&m, open(), &input, "VERSION 1\nDATA 5\nhelloVALID\n").await;
    assert_eq!(calls(&m).last().map(String::as_str), Some("retrieved None"));
}

#[tokio::test]
async fn put_receives_from_the_offset_and_answers_the_outcome() {
    let m = Memory::default();
    m.st().partial.insert(key(KEY), b"he".to_vec());
    let input = format!("VERSION 2\nPUT f {KEY}\nDATA 3\nlloVALID\nPUT f {KEY}\n");
    exchange(
        &m,
        open(),
        &input,
        "VERSION 2\nPUT-FROM 2\nSUCCESS\nALREADY-HAVE\n",
    )
    .await;
    assert_eq!(m.st().objects[&key(KEY)], b"hello");
    assert_eq!(
        calls(&m)[2..],
        [
            "store_begin",
            "store_body 3",
            "store_end Body(Valid)",
            "store_begin"
        ]
    );
}

#[tokio::test]
async fn put_that_fails_verification_is_a_failure_for_this_key_alone() {
    let m = Memory::default();
    let input = format!(
        "VERSION 2\nPUT f {KEY}\nDATA 5\nhellpINVALID\nPUT f {KEY}\nDATA 5\nhelloJUNK\nCHECKPRESENT {KEY}\n"
    );
    let replies = "VERSION 2\nPUT-FROM 0\nFAILURE\nPUT-FROM 0\nERROR expected VALID or INVALID\nSUCCESS\nSUCCESS\n";
    exchange(&m, open(), &input, replies).await;
    assert_eq!(calls(&m)[7], "store_end Body(Unknown)");
}

#[tokio::test]
async fn put_without_data() {
    let m = Memory::default();
    // The sender's ERROR gets no reply; anything else is told DATA was
    // expected; DATA-PRESENT only from version 4.
    let input = format!(
        "VERSION 3\nPUT f {KEY}\nERROR cannot\nPUT f {KEY}\nDATA-PRESENT\nPUT f {KEY}\nGETTIMESTAMP\n"
    );
    let replies =
        "VERSION 3\nPUT-FROM 0\nPUT-FROM 0\nERROR expected DATA\nPUT-FROM 0\nERROR expected DATA\n";
    exchange(&m, open(), &input, replies).await;
    let v4 = Memory::default();
    let input = format!("VERSION 4\nPUT f {KEY}\nDATA-PRESENT\n");
    exchange(&v4, open(), &input, "VERSION 4\nPUT-FROM 0\nSUCCESS\n").await;
    let ends: Vec<_> = [calls(&m), calls(&v4)]
        .concat()
        .into_iter()
        .filter(|c| c.starts_with("store_end"))
        .collect();
    assert_eq!(
        ends,
        [
            "store_end Abandon(\"cannot\")",
            "store_end Abandon(\"expected DATA\")",
            "store_end Abandon(\"expected DATA\")",
            "store_end Present"
        ]
    );
}

#[tokio::test]
async fn put_whose_client_hangs_up_before_validity_is_still_kept() {
    let m = Memory::default();
    let input = format!("VERSION 2\nPUT f {KEY}\nDATA 5\nhello");
    exchange(&m, open(), &input, "VERSION 2\nPUT-FROM 0\nSUCCESS\n").await;
    assert!(m.st().objects.contains_key(&key(KEY)));
}

#[tokio::test]
async fn notifychange_answers_changed() {
    let m = Memory::default();
    exchange(
        &m,
        open(),
        "VERSION 2\nNOTIFYCHANGE\n",
        "VERSION 2\nCHANGED aaaa bbbb\n",
    )
    .await;
}

#[tokio::test]
async fn connect_tunnels_git_and_ends_the_session() {
    let m = Memory::with(&[(KEY, b"hello")]);
    let input = format!(
        "VERSION 2\nCONNECT git-upload-pack\nDATA 3\nabcCONNECTDONE 0\nCHECKPRESENT {KEY}\n"
    );
    exchange(&m, open(), &input, "VERSION 2\nDATA 3\nabcCONNECTDONE 0\n").await;
}

#[tokio::test]
async fn bypass_is_passed_on_and_a_loop_ends_the_session() {
    let m = Memory::with(&[(KEY, b"hello")]);
    let input = format!("VERSION 2\nBYPASS u1 u2\nBYPASS {ME}\nCHECKPRESENT {KEY}\n");
    exchange(
        &m,
        open(),
        &input,
        &format!("VERSION 2\nERROR {ME}: proxy loop\n"),
    )
    .await;
    assert_eq!(
        calls(&m)[1..],
        ["bypass u1 u2".to_owned(), format!("bypass {ME}")]
    );
}

#[tokio::test]
async fn a_refused_request_is_an_error_naming_the_node_and_the_session_goes_on() {
    let m = Memory::with(&[(KEY, b"hello")]);
    m.st().down = true;
    let input =
        format!("VERSION 2\nCHECKPRESENT {KEY}\nGET 0 f {KEY}\nPUT f {KEY}\nREMOVE {KEY}\n");
    let e = "ERROR node1: connection lost\n";
    exchange(&m, open(), &input, &format!("VERSION 2\n{e}{e}{e}{e}")).await;
}

/// Each restriction refuses before the back-end is asked anything.
#[tokio::test]
async fn readonly_refuses_put_remove_and_push() {
    let m = Memory::with(&[(KEY, b"hello")]);
    let ro = crate::restrict::READONLY_ERROR;
    let input = format!(
        "VERSION 3\nPUT f {KEY}\nREMOVE {KEY}\nREMOVE-BEFORE 200 {KEY}\nCHECKPRESENT {KEY}\nCONNECT git-receive-pack\nCHECKPRESENT {KEY}\n"
    );
    let replies = format!("VERSION 3\nERROR {ro}\nERROR {ro}\nERROR {ro}\nSUCCESS\nERROR {ro}\n");
    exchange(&m, mode(ServerMode::ReadOnly), &input, &replies).await;
    assert_eq!(calls(&m), ["negotiate 3", "bypass ", "check_present"]);
}

#[tokio::test]
async fn readonly_lets_git_fetch() {
    let m = Memory::default();
    let input = "VERSION 2\nCONNECT git-upload-pack\nCONNECTDONE 0\n";
    exchange(
        &m,
        mode(ServerMode::ReadOnly),
        input,
        "VERSION 2\nCONNECTDONE 0\n",
    )
    .await;
}

#[tokio::test]
async fn appendonly_refuses_removal_and_push_but_stores() {
    let m = Memory::with(&[(KEY, b"hello")]);
    let ao = crate::restrict::APPENDONLY_ERROR;
    let ro = crate::restrict::READONLY_ERROR;
    let other = KEY.replace("s5--2", "s5--3");
    let input = format!(
        "VERSION 3\nREMOVE {KEY}\nREMOVE-BEFORE 200 {KEY}\nPUT f {other}\nERROR no\nCONNECT git-receive-pack\n"
    );
    let replies = format!("VERSION 3\nERROR {ao}\nERROR {ao}\nPUT-FROM 0\nERROR {ro}\n");
    exchange(&m, mode(ServerMode::AppendOnly), &input, &replies).await;
    assert!(m.st().objects.contains_key(&key(KEY)));
}

#[tokio::test]
async fn limited_refuses_all_git() {
    for service in ["git-upload-pack", "git-receive-pack"] {
        let m = Memory::default();
        let input = format!("VERSION 2\nCONNECT {service}\nGETTIMESTAMP\n");
        let replies = "VERSION 2\nERROR Action blocked by GIT_ANNEX_SHELL_LIMITED\n";
        exchange(&m, limited(), &input, replies).await;
        assert_eq!(calls(&m), ["negotiate 2"]);
    }
}

#[tokio::test]
async fn the_backend_hears_an_empty_bypass_when_the_client_sends_none() {
    let m = Memory::with(&[(KEY, b"hello")]);
    let input = format!("VERSION 1\nCHECKPRESENT {KEY}\n");
    exchange(&m, open(), &input, "VERSION 1\nSUCCESS\n").await;
    // Below version 2 there is no BYPASS.
    assert_eq!(calls(&m), ["negotiate 1", "check_present"]);
    let m = Memory::with(&[(KEY, b"hello")]);
    let input = format!("VERSION 2\nNONSENSE\nCHECKPRESENT {KEY}\nBYPASS u1\n");
    let replies = "VERSION 2\nERROR unknown command\nSUCCESS\n";
    exchange(&m, open(), &input, replies).await;
    assert_eq!(
        calls(&m),
        ["negotiate 2", "bypass ", "check_present", "bypass u1"]
    );
}

/// What a session writes to its tracing subscriber.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// An operator can follow a request: one span per session and per
/// request, with the verb, key, bytes, outcome and duration.
#[tokio::test]
async fn each_request_is_traced_in_its_sessions_span() {
    let log = Captured::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    // Other tests' threads may have registered the session's callsites
    // while no subscriber of this thread wanted them, and their cached
    // interest would then skip this test's events (seen as a rare
    // failure in a full run): recompute it with this subscriber in.
    tracing::callsite::rebuild_interest_cache();
    let input = format!("VERSION 2\nPUT f {KEY}\nDATA 5\nhelloVALID\n");
    exchange(
        &Memory::default(),
        open(),
        &input,
        "VERSION 2\nPUT-FROM 0\nSUCCESS\n",
    )
    .await;
    let text = String::from_utf8(log.0.lock().expect("log").clone()).expect("utf-8");
    let put = text
        .lines()
        .find(|l| l.contains("verb=\"PUT\"") && l.contains("request done"))
        .unwrap_or_else(|| panic!("no PUT request in {text}"));
    for part in [
        &format!("session{{repo={ME}}}"),
        &format!("key={KEY}"),
        "bytes=5",
        "outcome=\"served\"",
        "elapsed_ms=",
    ] {
        assert!(put.contains(part), "{part} in {put}");
    }
    assert!(text.contains("session ends ok=true"), "{text}");
}
