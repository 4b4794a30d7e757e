//! Key parsing and the paths built from a key: no panic, parse → display →
//! parse is stable, and no path made from a key leaves its directory.
#![no_main]

use std::path::{Component, Path, PathBuf};

use annex::branch::location::location_log_path_for;
use annex::key::{safe_path_component, Key};
use annex::store::ObjectStore;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(key) = Key::parse(text) else { return };

    let shown = key.to_string();
    let again = Key::parse(&shown).expect("a displayed key parses");
    assert_eq!(again, key);
    assert_eq!(again.to_string(), shown, "display is canonical");
    // A chunk's hash directories are those of its whole key.
    assert_eq!(key.non_chunk().hash_dir_lower(), key.hash_dir_lower());

    let kf = key.key_file();
    assert!(safe_path_component(&kf).is_ok(), "key file {kf:?}");
    assert_eq!(key.hash_dir_lower().len(), 7);
    assert_eq!(key.hash_dir_mixed().len(), 5);

    let log = location_log_path_for(&key);
    assert!(only_normal(Path::new(&log)), "location log {log:?}");
    assert_eq!(
        Path::new(&log).components().count(),
        3,
        "location log {log:?}"
    );

    for bare in [false, true] {
        let gitdir = PathBuf::from("/repo/.git");
        let store = ObjectStore::new(gitdir.clone(), bare, 0);
        let objects = gitdir.join("annex/objects");
        // hashdir (2 components), key-file dir, key file
        for p in store
            .candidate_paths(&key)
            .expect("a parsed key has a safe key file")
        {
            let inner = p
                .strip_prefix(&objects)
                .expect("object path under annex/objects");
            assert!(
                only_normal(inner) && inner.components().count() == 4,
                "object path {p:?}"
            );
        }
        let tmp = store
            .tmp_path(&key)
            .expect("a parsed key has a safe key file");
        let inner = tmp
            .strip_prefix(gitdir.join("annex/tmp"))
            .expect("tmp path under annex/tmp");
        assert!(
            only_normal(inner) && inner.components().count() == 1,
            "tmp path {tmp:?}"
        );
    }
});

fn only_normal(p: &Path) -> bool {
    p.components().all(|c| matches!(c, Component::Normal(_)))
}
