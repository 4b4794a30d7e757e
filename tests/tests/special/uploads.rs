//! The data path in raw protocol: corrupted uploads never appear under
//! the key, interrupted ones resume where they stopped, the reserve is
//! kept, and GETs start at the client's offset across chunks.

use annexproxy_tests::p2p_driver::sha256e_key;
use annexproxy_tests::pseudo_random_bytes;

use super::world::*;

fn corrupted_upload_never_appears(extra: &[&str]) {
    corrupted_upload_never_appears_in(&world(extra));
}

#[test]
fn corrupted_upload_never_appears_unchunked() {
    corrupted_upload_never_appears(&[]);
}

#[test]
fn corrupted_upload_never_appears_chunked() {
    corrupted_upload_never_appears(&["chunk=100000"]);
}

/// An upload cut off after two and a half chunks resumes at the byte
/// where it stopped: the two complete chunks are not sent again (nor the
/// half chunk staged in the directory's `tmp/`), and the result is what
/// real git-annex finds whole.
#[test]
fn interrupted_chunked_upload_resumes_where_it_stopped() {
    interrupted_upload_resumes(&["chunk=100000"], 2, 4);
}

/// Unchunked, the staged `tmp/` file is continued.
#[test]
fn interrupted_unchunked_upload_resumes_where_it_stopped() {
    interrupted_upload_resumes(&[], 0, 1);
}

/// Cut off after 250000 of 350000 bytes, `stored` objects visible; then
/// resumed at 250000, `complete` objects in the end.
fn interrupted_upload_resumes(extra: &[&str], stored: usize, complete: usize) {
    let wd = world(extra);
    let content = pseudo_random_bytes(5, 350_000);
    let key = sha256e_key(&content, ".bin");
    let mut shell = shell_to_d(&wd);
    shell.send(&format!("PUT f.bin {key}"));
    shell.expect("PUT-FROM 0");
    shell.send_raw(&data(&content[..250_000], content.len()));
    // The client goes away mid-body.
    let out = shell.finish();
    out.assert_exit(0);
    let objects = stored_files(&wd.store);
    assert_eq!(objects.len(), stored, "{objects:?}");
    // The key is not on the remote, for us and for real git-annex.
    let mut shell = shell_to_d(&wd);
    shell.send(&format!("CHECKPRESENT {key}"));
    shell.expect("FAILURE");
    // A sender with nothing to send after all (DATA 0, INVALID) fails
    // the key but leaves what is stored for the next attempt.
    shell.send(&format!("PUT f.bin {key}"));
    shell.expect("PUT-FROM 250000");
    shell.send_raw(b"DATA 0\n");
    shell.send("INVALID");
    shell.expect("FAILURE");
    shell.send(&format!("PUT f.bin {key}"));
    shell.expect("PUT-FROM 250000");
    shell.send_raw(&data(&content[250_000..], 100_000));
    shell.send("VALID");
    shell.expect("SUCCESS");
    shell.finish().assert_exit(0);
    assert_eq!(stored_files(&wd.store).len(), complete);
    server_fsck_from_d(&wd);
    // The client gets it whole through the proxy.
    let client = &wd.client;
    wd.env.annex(client, &["sync"]).ok();
    let out = wd.env.annex(client, &["whereis", "--key", &key]).ok();
    assert!(out.stdout.contains("origin-d"), "{out}");
}

/// The proxy keeps its `annex.diskreserve` free on the remote's disk, as
/// git-annex does: a key that would eat into it fails, saying why, and
/// nothing is stored.
#[test]
fn upload_that_would_eat_the_reserve_fails() {
    let wd = world(&[]);
    let (env, client) = (&wd.env, &wd.client);
    env.oracle(&wd.proxy, &["config", "annex.diskreserve", "1000000TB"])
        .ok();
    env.add_file(client, "f.txt", b"content\n");
    env.annex(client, &["copy", "--to", "origin-d", "f.txt"])
        .fails()
        .says("not enough free space");
    assert_eq!(stored_files(&wd.store), Vec::<String>::new());
}

/// A GET from an offset inside the second chunk sends the rest of the
/// content only, read across the chunks from there.
#[test]
fn get_from_an_offset_across_chunks() {
    let wd = world(&["chunk=100000"]);
    let content = pseudo_random_bytes(6, 320_000);
    let key = sha256e_key(&content, ".bin");
    let mut shell = shell_to_d(&wd);
    put_whole(&mut shell, &key, &content);
    get_rest(&mut shell, &key, &content, 150_000);
    // Past the end: nothing to send.
    shell.send(&format!("GET 320000 f.bin {key}"));
    shell.expect("DATA 0");
    shell.expect("VALID");
    shell.send("SUCCESS");
    shell.finish().assert_exit(0);
}

/// Two uploads of one key at once: the second fails that key (its body is
/// still read), the first completes; they never write the same chunks.
#[test]
fn one_upload_of_a_key_at_a_time() {
    let wd = world(&["chunk=100000"]);
    let content = pseudo_random_bytes(8, 250_000);
    let key = sha256e_key(&content, ".bin");
    let mut first = shell_to_d(&wd);
    first.send(&format!("PUT f.bin {key}"));
    first.expect("PUT-FROM 0");
    first.send_raw(&data(&content[..120_000], content.len()));
    let mut second = shell_to_d(&wd);
    second.send(&format!("PUT f.bin {key}"));
    second.expect("PUT-FROM 0");
    second.send_raw(&data(&content, content.len()));
    second.send("VALID");
    second.expect("FAILURE");
    let out = second.finish();
    assert!(
        out.stderr.contains("transfer already in progress"),
        "{}",
        out.show()
    );
    first.send_raw(&content[120_000..]);
    first.send("VALID");
    first.expect("SUCCESS");
    first.finish().assert_exit(0);
    assert_eq!(stored_files(&wd.store).len(), 3);
    server_fsck_from_d(&wd);
}
