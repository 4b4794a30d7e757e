//! A node that cannot take what it is sent: its directory read-only, or
//! its disk full. The other nodes get the key, the client is told only of
//! them, and once the node can write again a copy fills it in.

use std::collections::BTreeSet;

use annexproxy_tests::pseudo_random_bytes;

use crate::world::{self, sh, World, REMOTE};

/// After a copy that `n2` (index 1) could not take: the client names n1
/// and n3 only, and every claim is true.
#[track_caller]
fn only_the_others_have(w: &World, key: &str) {
    assert_eq!(w.holding_nodes(key), BTreeSet::from([0, 2]));
    let claims = w.assert_claims_true(&w.client);
    assert_eq!(
        w.claimed_nodes(&claims, key),
        BTreeSet::from([0, 2]),
        "{claims:#?}"
    );
}

/// Fills in n2 by copying to it through the gateway (`origin-n2`: a copy
/// to the cluster is skipped, the client rightly believing the cluster
/// has the key), then checks that
/// every node holds `keys`, the client says so, and all is clean.
#[track_caller]
fn fill_in_n2(w: &World, files: &[&str], keys: &[String]) {
    let mut args = vec!["copy", "--to", "origin-n2"];
    args.extend_from_slice(files);
    w.env.annex(&w.client, &args).ok();
    let claims = w.assert_claims_true(&w.client);
    for key in keys {
        assert_eq!(w.holding_nodes(key), BTreeSet::from([0, 1, 2]), "{key}");
        assert_eq!(
            w.claimed_nodes(&claims, key),
            BTreeSet::from([0, 1, 2]),
            "{key}"
        );
    }
    w.assert_servers_fsck_clean();
    w.env.annex(&w.client, &["fsck", "--quiet"]).ok();
}

#[test]
fn read_only_node() {
    let w = world::world(3, |_, _| ());
    let (env, client) = (&w.env, &w.client);
    env.add_file(client, "a.bin", &pseudo_random_bytes(1, 300_000));
    let key = env.key_of(client, "a.bin");
    let how = w.make_read_only(&w.nodes[1]);
    let out = env.annex(client, &["copy", "--to", REMOTE, "a.bin"]);
    assert!(!out.timed_out, "{out}");
    assert!(!out.all().contains("panicked"), "{out}");
    // n1 and n3 took it: the copy to the cluster succeeded.
    out.ok().says("n2: ");
    only_the_others_have(&w, &key);
    w.make_writable(&w.nodes[1], how);
    w.assert_servers_fsck_clean();
    fill_in_n2(&w, &["a.bin"], &[key]);
}

/// The largest tmpfs a 4 MB object cannot fit in, with room for a
/// bare repository's annex directory.
const SMALL_FS: &str = "2m";
const BIG: usize = 4 << 20;

/// Mounts a small file system over `n2`'s `annex` directory (where both
/// its temp files and its objects live), carrying over what is there.
/// Tries tmpfs, then a loop-mounted ext4 image; returns which, or None
/// when neither can be mounted here.
fn small_annex_dir(w: &World) -> Option<&'static str> {
    let annex = w.nodes[1].join("annex");
    let keep = w.nodes[1].join("annex.before");
    let a = sh_quote(&annex);
    let k = sh_quote(&keep);
    sh(&format!("mv {a} {k} && mkdir {a}")).unwrap_or_else(|e| panic!("{e}"));
    let img = sh_quote(&w.env.root().join("n2.img"));
    let tries = [
        (
            "tmpfs",
            format!("mount -t tmpfs -o size={SMALL_FS} tmpfs {a}"),
        ),
        (
            "ext4 loop image",
            format!("truncate -s 3m {img} && mkfs.ext4 -q -m 0 {img} && mount -o loop {img} {a}"),
        ),
    ];
    let mut used = None;
    for (name, cmd) in tries {
        if sh(&cmd).is_ok() {
            w.mounted(&annex);
            used = Some(name);
            break;
        }
    }
    sh(&format!("cp -a {k}/. {a}/ && rm -rf {k}")).unwrap_or_else(|e| panic!("{e}"));
    used
}

fn sh_quote(p: &std::path::Path) -> String {
    annexproxy_tests::standin::sh_quote(&p.display().to_string())
}

/// n2 has too little space for a 4 MB object. Where no small file system
/// can be mounted, `annex.diskreserve` far above the free space stands in
/// for it (our store honours it as git-annex does).
#[test]
fn node_disk_full() {
    let w = world::world(3, |_, _| ());
    let (env, client) = (&w.env, &w.client);
    let fs = small_annex_dir(&w);
    let n2 = &w.nodes[1];
    match fs {
        // The store's own free-space check must not hide the file
        // system's ENOSPC: no reserve.
        Some(_) => env.oracle(n2, &["config", "annex.diskreserve", "0"]).ok(),
        None => {
            eprintln!("no small file system here: annex.diskreserve stands in");
            env.oracle(n2, &["config", "annex.diskreserve", "1000 tb"])
                .ok()
        }
    };
    env.add_file(client, "big.bin", &pseudo_random_bytes(2, BIG));
    let key = env.key_of(client, "big.bin");
    let out = env.annex(client, &["copy", "--to", REMOTE, "big.bin"]);
    assert!(!out.timed_out, "{out}");
    assert!(!out.all().contains("panicked"), "{out}");
    out.ok().says("not enough free space");
    only_the_others_have(&w, &key);
    w.assert_servers_fsck_clean();

    // Two objects that each fit, but not together, sent at once: at least
    // one runs out of space part-way, past the store's check.
    let halves = ["h1.bin", "h2.bin"];
    for (i, f) in halves.iter().enumerate() {
        env.add_file(client, f, &pseudo_random_bytes(10 + i as u64, 1_200_000));
    }
    let hkeys: Vec<String> = halves.iter().map(|f| env.key_of(client, f)).collect();
    let out = env.annex(client, &["copy", "-J2", "--to", REMOTE, "h1.bin", "h2.bin"]);
    assert!(!out.timed_out, "{out}");
    assert!(!out.all().contains("panicked"), "{out}");
    let claims = w.assert_claims_true(client);
    for k in &hkeys {
        assert!(
            w.claimed_nodes(&claims, k)
                .is_superset(&BTreeSet::from([0, 2])),
            "{claims:#?}"
        );
    }
    // (No fsck inside n2 yet: the partial files it keeps for a resume
    // leave git-annex no room for its index.)

    // Room again: the retry fills n2 in.
    match fs {
        Some("tmpfs") => sh(&format!(
            "mount -o remount,size=64m {}",
            sh_quote(&n2.join("annex"))
        ))
        .unwrap_or_else(|e| panic!("{e}")),
        Some(_) => {
            let annex = n2.join("annex");
            let a = sh_quote(&annex);
            sh(&format!("cp -a {a} {a}.copy")).unwrap_or_else(|e| panic!("{e}"));
            w.unmount(&annex);
            sh(&format!("rm -rf {a} && mv {a}.copy {a}")).unwrap_or_else(|e| panic!("{e}"));
        }
        None => {}
    }
    env.oracle(n2, &["config", "annex.diskreserve", "0"]).ok();
    let mut keys = vec![key];
    keys.extend(hkeys);
    fill_in_n2(&w, &["big.bin", "h1.bin", "h2.bin"], &keys);
}
