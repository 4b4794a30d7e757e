//! The server account's authorized_keys forces
//! `git-annex-shell -c "$SSH_ORIGINAL_COMMAND"`: plain git (clone, fetch,
//! push) must pass through git-annex-shell to git-shell, and git-annex's own
//! commands arrive as one `git-annex-shell '...' ...` string to unescape.

use annexproxy_tests::observe::whereis;
use annexproxy_tests::{ServerKind, TestEnv, Transcript};

fn forced_command_clone_push(kind: ServerKind) -> Transcript {
    let mut t = Transcript::default();
    let env = TestEnv::new(kind);
    let server = env.server_bare("server.git");
    env.set_forced_command(true);

    let first = env.clone_client(&server, "first");
    env.add_file(&first, "f.txt", b"forced\n");
    env.annex(&first, &["sync"]).ok();
    assert!(
        !env.server_uuid(&server).is_empty(),
        "sync through the forced command should autoinit the server"
    );
    env.annex(&first, &["copy", "--to", "origin", "f.txt"]).ok();

    let second = env.clone_client(&server, "second");
    env.annex(&second, &["sync"]).ok();
    env.annex(&second, &["get", "--from", "origin", "f.txt"])
        .ok();
    assert_eq!(
        std::fs::read(second.join("f.txt")).unwrap_or_default(),
        b"forced\n"
    );

    // plain git push and pull through the forced command
    std::fs::write(second.join("plain.txt"), "plain git file\n").expect("write plain.txt");
    env.git(&second, &["add", "plain.txt"]).ok();
    env.git(&second, &["commit", "-q", "-m", "plain"]).ok();
    env.git(&second, &["push", "-q", "origin", "main"]).ok();
    env.git(&first, &["pull", "-q", "--no-rebase", "origin", "main"])
        .ok();
    assert!(
        first.join("plain.txt").exists(),
        "first should have pulled plain.txt"
    );
    env.annex(&second, &["sync"]).ok();
    env.annex(&first, &["sync"]).ok();

    let calls = env.ssh_calls();
    for c in &calls {
        assert_eq!(
            c.exit,
            Some(0),
            "server session failed: {c:?}\n{}",
            env.ssh_log_text()
        );
    }
    let mut shapes: Vec<String> = calls
        .iter()
        .map(|c| {
            env.unroot(&c.command)
                .split(' ')
                .next()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    shapes.sort();
    shapes.dedup();
    assert_eq!(
        shapes,
        ["git-annex-shell", "git-receive-pack", "git-upload-pack"]
    );
    let seen = whereis(&env, &first);
    t.note("whereis", &seen);
    assert_eq!(seen["f.txt"].len(), 3, "{seen:?}");
    env.assert_server_fsck_clean(&server);
    t
}

#[test]
fn forced_command_clone_push_real() {
    forced_command_clone_push(ServerKind::Real);
}

#[test]
fn forced_command_clone_push_ours() {
    forced_command_clone_push(ServerKind::Ours);
}
