use super::*;

const A: &str = "1111111111111111111111111111111111111111";
const B: &str = "2222222222222222222222222222222222222222";
const Z: &str = "0000000000000000000000000000000000000000";

fn pkt(s: &str) -> Vec<u8> {
    format!("{:04x}{s}", s.len() + 4).into_bytes()
}

fn up(old: &str, new: &str, name: &str) -> RefUpdate {
    RefUpdate {
        old: old.into(),
        new: new.into(),
        name: name.into(),
    }
}

/// What git push sends first: commands (capabilities after a NUL on the
/// first), a flush, then the pack.
fn push_start() -> Vec<u8> {
    let mut v = pkt(&format!(
        "{A} {B} refs/heads/main\0 report-status side-band-64k agent=git/2\n"
    ));
    v.extend(pkt(&format!("{Z} {A} refs/tags/v1\n")));
    v.extend(pkt(&format!("{B} {Z} refs/heads/gone\n")));
    v.extend(b"0000PACK\0\0\0\x02");
    v
}

#[test]
fn commands_are_read_up_to_the_flush() {
    let mut c = Commands::default();
    c.feed(&push_start());
    assert!(c.done && !c.incomplete);
    assert_eq!(
        c.updates,
        [
            up(A, B, "refs/heads/main"),
            up(Z, A, "refs/tags/v1"),
            up(B, Z, "refs/heads/gone")
        ]
    );
}

#[test]
fn commands_split_across_data_messages() {
    let bytes = push_start();
    let mut c = Commands::default();
    for chunk in bytes.chunks(3) {
        c.feed(chunk);
    }
    assert!(c.done && !c.incomplete);
    assert_eq!(c.updates.len(), 3);
    // what follows the flush (the pack) is not kept
    assert!(c.buf.is_empty());
}

#[test]
fn other_lines_name_no_update() {
    let mut c = Commands::default();
    let mut v = pkt(&format!("shallow {A}\n"));
    v.extend(pkt(&format!("{A} {B} refs/heads/main\0caps\n")));
    v.extend(pkt("not a command\n"));
    v.extend(pkt(&format!("{A} {B} HEAD\n")));
    v.extend(b"0000");
    c.feed(&v);
    assert_eq!(c.updates, [up(A, B, "refs/heads/main")]);
}

#[test]
fn garbage_marks_the_list_incomplete() {
    let mut c = Commands::default();
    c.feed(b"zzzz");
    assert!(c.done && c.incomplete);
    // a length below 4 is no pkt-line either
    let mut c = Commands::default();
    c.feed(b"0002");
    assert!(c.incomplete);
    // and a list longer than anyone pushes: memory stays bounded
    let mut c = Commands::default();
    let line = pkt(&format!("{A} {B} refs/heads/main\n"));
    for _ in 0..=MAX_COMMANDS / line.len() {
        c.feed(&line);
    }
    assert!(c.done && c.incomplete);
    assert!(c.updates.len() <= MAX_COMMANDS / line.len());
}

#[test]
fn push_args_force_only_under_a_lease() {
    let main = up(A, B, "refs/heads/main");
    let tag = up(Z, A, "refs/tags/v1");
    let gone = up(B, Z, "refs/heads/gone");
    let args = push_args("node1", &[&main, &tag, &gone], |_| true);
    assert_eq!(
        args,
        [
            "push",
            "--porcelain",
            &format!("--force-with-lease=refs/heads/gone:{B}"),
            "node1",
            &format!("{B}:refs/heads/main"),
            &format!("{A}:refs/tags/v1"),
            ":refs/heads/gone",
        ]
    );
    // a forced update is forced only where the node still had the old value
    let args = push_args("node1", &[&main], |_| false);
    assert_eq!(
        args,
        [
            "push",
            "--porcelain",
            &format!("--force-with-lease=refs/heads/main:{A}"),
            "node1",
            &format!("{B}:refs/heads/main"),
        ]
    );
}

#[test]
fn porcelain_separates_taken_from_refused_refs() {
    let out = format!(
        "To /srv/n2.git\n\
         =\trefs/heads/a:refs/heads/a\t[up to date]\n\
         *\t{A}:refs/tags/v1\t[new tag]\n\
         -\t:refs/heads/gone\t[deleted]\n\
         !\t{B}:refs/heads/main\t[remote rejected] (pre-receive hook declined)\n\
         Done\n"
    );
    let (done, refused) = porcelain(&out);
    assert_eq!(done, ["refs/heads/a", "refs/tags/v1", "refs/heads/gone"]);
    assert_eq!(
        refused,
        ["refs/heads/main [remote rejected] (pre-receive hook declined)"]
    );
}
