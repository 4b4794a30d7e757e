//! `balanced=`, `fullybalanced=`, `sizebalanced=`, `fullysizebalanced=`
//! (git-annex `Limit.hs`, `Annex/Balanced.hs`).
//!
//! What git-annex guarantees, and so do we: the choice for a key is a pure
//! function of the key, the group's members and (for the size forms) the
//! repository sizes, so every repository agrees on it without talking.
//! `fullybalanced` spreads keys uniformly *in expectation* (a keyed hash
//! modulo the number of members with space), not exactly; `fullysizebalanced`
//! picks the members with the largest free fraction of their maxsize, so
//! equal members filled with equal keys stay within one key of each other.
//! Repositories without room for the key (maxsize) are never picked.
//! `--rebalance` is a client option and never applies on a server.

use std::collections::{BTreeMap, BTreeSet};

use sha2::{Digest, Sha256};

use crate::key::Key;

/// Bytes stored per repository UUID. A repository missing from the map
/// counts as empty, as git-annex counts every known repository.
pub type RepoSizes = BTreeMap<String, u64>;

/// Whether `uuid` has room for a key of `key_size` under its maxsize (no
/// maxsize: always).
pub fn has_space(
    maxsize: &BTreeMap<String, u64>,
    sizes: &RepoSizes,
    uuid: &str,
    key_size: u64,
    holds_it: bool,
) -> bool {
    let Some(max) = maxsize.get(uuid) else {
        return true;
    };
    let size = u128::from(sizes.get(uuid).copied().unwrap_or(0));
    let need = if holds_it { 0 } else { u128::from(key_size) };
    size + need <= u128::from(*max)
}

/// HMAC-SHA256, as the picker needs it (no extra dependency for 20 lines).
fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |b: u8| block.map(|k| k ^ b);
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(msg)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

/// git-annex's balanced picker: `n` of `candidates` (sorted), starting at
/// the HMAC of the key name keyed with all the group's members, wrapping
/// around (so fewer candidates than `n` are all picked).
pub fn pick<'a>(
    members: &BTreeSet<&str>,
    candidates: &BTreeSet<&'a str>,
    key: &Key,
    n: i64,
) -> BTreeSet<&'a str> {
    let m = candidates.len() as u128;
    if m == 0 || n <= 0 {
        return BTreeSet::new();
    }
    let secret: String = members.iter().copied().collect();
    let mac = hmac_sha256(secret.as_bytes(), key.to_string().as_bytes());
    let start = mac
        .iter()
        .fold(0u128, |r, b| (r * 256 + u128::from(*b)) % m);
    let list: Vec<&str> = candidates.iter().copied().collect();
    (0..n.min(list.len() as i64) as u128)
        .map(|i| list[((start + i) % m) as usize])
        .collect()
}

/// `fullybalanced`: members with space for the key.
pub fn space_candidates<'a>(
    members: &BTreeSet<&'a str>,
    maxsize: &BTreeMap<String, u64>,
    sizes: &RepoSizes,
    key_size: u64,
    holders: &BTreeSet<String>,
) -> BTreeSet<&'a str> {
    members
        .iter()
        .copied()
        .filter(|u| has_space(maxsize, sizes, u, key_size, holders.contains(*u)))
        .collect()
}

/// `fullysizebalanced`: of the members that have a maxsize and space, the
/// `n` with the largest free fraction (key not counted); ties go to the
/// larger UUID, as git-annex's reversed stable sort has it.
pub fn size_candidates<'a>(
    members: &BTreeSet<&'a str>,
    maxsize: &BTreeMap<String, u64>,
    sizes: &RepoSizes,
    key_size: u64,
    holders: &BTreeSet<String>,
    n: i64,
) -> BTreeSet<&'a str> {
    let mut free: Vec<(f64, &str)> = members
        .iter()
        .copied()
        .filter_map(|u| {
            let max = *maxsize.get(u)?;
            let inrepo = holders.contains(u);
            if max == 0 || !has_space(maxsize, sizes, u, key_size, inrepo) {
                return None;
            }
            let size = i128::from(sizes.get(u).copied().unwrap_or(0));
            let back = if inrepo { i128::from(key_size) } else { 0 };
            Some(((i128::from(max) - size + back) as f64 / max as f64, u))
        })
        .collect();
    // Members come in ascending order; a stable sort then a reverse puts
    // equal fractions in descending UUID order.
    free.sort_by(|a, b| a.0.total_cmp(&b.0));
    free.reverse();
    free.into_iter()
        .take(usize::try_from(n.max(0)).unwrap_or(usize::MAX))
        .map(|(_, u)| u)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picker_matches_git_annex_fixed_selection() {
        // git-annex's own stability property (Annex/Balanced.hs): UUIDs
        // "1".."500", key WORM--test.
        let names: Vec<String> = (1..=500).map(|i| i.to_string()).collect();
        let all: BTreeSet<&str> = names.iter().map(String::as_str).collect();
        let key = Key::parse("WORM--test").expect("key");
        assert_eq!(pick(&all, &all, &key, 1), BTreeSet::from(["332"]));
        assert_eq!(
            pick(&all, &all, &key, 3),
            BTreeSet::from(["332", "333", "334"])
        );
    }

    #[test]
    fn hmac_known_answer() {
        // RFC 4231 test case 2.
        assert_eq!(
            hex::encode(hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn space_and_size_candidates() {
        let members = BTreeSet::from(["a", "b", "c"]);
        let maxsize = BTreeMap::from([("a".into(), 100), ("b".into(), 100)]);
        let sizes = RepoSizes::from([("a".into(), 95), ("b".into(), 10)]);
        let none = BTreeSet::new();
        assert_eq!(
            space_candidates(&members, &maxsize, &sizes, 10, &none),
            BTreeSet::from(["b", "c"])
        );
        // a already holds the key: it only needs to be within its maxsize.
        let held = BTreeSet::from(["a".to_string()]);
        assert!(space_candidates(&members, &maxsize, &sizes, 10, &held).contains("a"));
        // c has no maxsize, so sizebalanced never picks it.
        assert_eq!(
            size_candidates(&members, &maxsize, &sizes, 10, &none, 2),
            BTreeSet::from(["b"])
        );
        let even = RepoSizes::new();
        assert_eq!(
            size_candidates(&members, &maxsize, &even, 10, &none, 1),
            BTreeSet::from(["b"])
        );
    }
}
