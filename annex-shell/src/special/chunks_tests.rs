use super::*;

// Written by git-annex 10.20261026: `initremote dd type=directory
// chunk=1KiB`, then `copy --to dd` of a 2500-byte file.
const KEY: &str = "SHA256E-s2500--51fc06835b7175813d12dc92865b12f5d6186f22c412e38cfcaba19b7c23524a";
const UUID: &str = "053c6669-3b72-4e20-9304-85f727d1d44f";
const REAL_LOG: &str = "1796542382s 053c6669-3b72-4e20-9304-85f727d1d44f:1024 3\n";

fn key() -> Key {
    Key::parse(KEY).expect("key parses")
}

#[test]
fn chunk_keys_are_named_as_git_annex_names_them() {
    let k = key();
    assert_eq!(
        k.chunk(1024, 2).to_string(),
        "SHA256E-s2500-S1024-C2--51fc06835b7175813d12dc92865b12f5d6186f22c412e38cfcaba19b7c23524a"
    );
    // A chunk of a chunk is a chunk of the key.
    assert_eq!(k.chunk(1024, 2).chunk(1024, 3), k.chunk(1024, 3));
    // Every chunk lives in the key's own hash directory: "455/bf7" above.
    assert_eq!(k.chunk(1024, 3).hash_dir_lower(), "455/bf7");
    assert_eq!(
        chunk_log_path(&k.chunk(1024, 1)),
        format!("455/bf7/{KEY}.log.cnk")
    );
}

#[test]
fn chunk_counts() {
    assert_eq!(chunk_count(2500, 1024), 3);
    assert_eq!(chunk_count(2048, 1024), 2);
    assert_eq!(chunk_count(3, 1024), 1);
    // An empty key is one empty chunk, as git-annex stores it.
    assert_eq!(chunk_count(0, 1024), 1);
}

#[test]
fn real_chunk_log_parses_and_roundtrips() {
    let log = parse_chunk_log(REAL_LOG.as_bytes());
    assert_eq!(recorded(&log, UUID), vec![(1024, 3)]);
    assert_eq!(recorded(&log, "other"), vec![]);
    assert_eq!(log.format_with(u64::to_string), REAL_LOG.as_bytes());
    // Removed: the count goes to 0 and nothing is recorded any more.
    let removed = change_chunk_log(REAL_LOG.as_bytes(), UUID, 1024, 0);
    assert_eq!(recorded(&parse_chunk_log(&removed), UUID), vec![]);
    let text = String::from_utf8(removed).expect("utf8");
    assert!(text.ends_with(&format!(" {UUID}:1024 0\n")), "{text}");
}

#[test]
fn unknown_chunk_methods_and_bad_lines_are_skipped() {
    let log = parse_chunk_log(b"1s u:abc 3\n2s u:512 x\n3s u:512 2\n");
    assert_eq!(recorded(&log, "u"), vec![(512, 2)]);
}

#[test]
fn layouts_in_git_annex_order() {
    let k = key();
    let whole = layouts(&k, ChunkConfig::Whole, &[(1024, 3)]);
    assert_eq!(
        whole,
        vec![
            Layout::Whole,
            Layout::Chunks {
                size: 1024,
                count: 3,
                logged: true
            }
        ]
    );
    let chunked = layouts(&k, ChunkConfig::Fixed(1000), &[]);
    assert_eq!(
        chunked,
        vec![
            Layout::Whole,
            Layout::Chunks {
                size: 1000,
                count: 3,
                logged: false
            }
        ]
    );
    // Recorded first; no speculative list when it is the recorded one.
    let logged = layouts(&k, ChunkConfig::Fixed(1024), &[(1024, 3)]);
    assert_eq!(logged.len(), 2);
    assert_eq!(logged[1], Layout::Whole);
    assert_eq!(logged[0].objects(&k).len(), 3);
}

#[test]
fn chunk_config_from_params() {
    assert_eq!(
        ChunkConfig::from_params(Some("1KiB"), None),
        Ok(ChunkConfig::Fixed(1024))
    );
    assert_eq!(
        ChunkConfig::from_params(Some("1MB"), None),
        Ok(ChunkConfig::Fixed(1_000_000))
    );
    assert_eq!(
        ChunkConfig::from_params(Some("0"), None),
        Ok(ChunkConfig::Whole)
    );
    assert_eq!(ChunkConfig::from_params(None, None), Ok(ChunkConfig::Whole));
    assert!(ChunkConfig::from_params(Some("lots"), None).is_err());
    assert!(matches!(
        ChunkConfig::from_params(None, Some("1MiB")),
        Err(ChunkConfigError::Legacy(_))
    ));
    let url = Key::parse("URL--http&c%%example.com%x").expect("url key");
    assert_eq!(ChunkConfig::Fixed(10).chunk_size_for(&url), None);
    assert_eq!(ChunkConfig::Fixed(10).chunk_size_for(&key()), Some(10));
}
