//! What the client sees, in forms that can be compared between a run
//! against the real server and one against ours (UUIDs differ per run).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value;

use crate::env::TestEnv;

/// Each JSON object line of git-annex `--json` output.
pub fn json_lines(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .filter(|l| l.trim_start().starts_with('{'))
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// file → where the client believes its content is: one entry per copy,
/// `description` plus ` [here]` for the client itself. No UUIDs, so it
/// compares across runs.
pub type Whereis = BTreeMap<String, BTreeSet<String>>;

/// An expected [`Whereis`]: each file with the locations it should list.
pub fn expected_whereis(entries: &[(&str, &[&str])]) -> Whereis {
    entries
        .iter()
        .map(|(f, locs)| {
            (
                f.to_string(),
                locs.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>(),
            )
        })
        .collect()
}

/// A file's bytes in a client's worktree; empty when it has no content
/// (an annexed file whose content is not present reads as nothing).
pub fn worktree_bytes(client: &Path, file: &str) -> Vec<u8> {
    std::fs::read(client.join(file)).unwrap_or_default()
}

/// Parses `git annex whereis --json` output into a [`Whereis`].
pub fn parse_whereis(stdout: &str) -> Whereis {
    let mut map = Whereis::new();
    for v in json_lines(stdout) {
        let file = v["file"].as_str().unwrap_or_default().to_string();
        let entry = map.entry(file).or_default();
        for w in v["whereis"].as_array().into_iter().flatten() {
            let mut d = w["description"].as_str().unwrap_or_default().to_string();
            if w["here"].as_bool() == Some(true) {
                d.push_str(" [here]");
            }
            entry.insert(d);
        }
    }
    map
}

/// All UUIDs named in `whereis --json` output.
pub fn whereis_uuids(stdout: &str) -> Vec<String> {
    json_lines(stdout)
        .iter()
        .flat_map(|v| v["whereis"].as_array().cloned().unwrap_or_default())
        .filter_map(|w| w["uuid"].as_str().map(str::to_string))
        .collect()
}

/// Runs `git annex whereis --json` in `client` (any exit status: whereis
/// fails when a file has no copy, which is itself an observation). The
/// per-run temp dir in descriptions (servers describe themselves as
/// `user@host:/path`) becomes `<root>`.
pub fn whereis(env: &TestEnv, client: &Path) -> Whereis {
    let out = env.annex(client, &["whereis", "--json"]);
    parse_whereis(&env.unroot(&out.stdout))
}

/// One `(file, success, error messages)` per item of a `--json` run of an
/// action command (copy, get, drop, move...), in output order; free of the
/// progress and timing text that makes plain output differ between runs.
pub fn action_results(stdout: &str) -> Vec<(String, bool, Vec<String>)> {
    json_lines(stdout)
        .into_iter()
        .map(|v| {
            let file = v["file"]
                .as_str()
                .or(v["key"].as_str())
                .unwrap_or_default()
                .to_string();
            let errs = v["error-messages"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| e.as_str())
                .map(normalise_uuids)
                .collect();
            (file, v["success"].as_bool().unwrap_or(false), errs)
        })
        .collect()
}

/// file → (success, error messages with UUIDs normalised).
pub type FsckResults = BTreeMap<String, (bool, Vec<String>)>;

/// Parses `git annex fsck --json` output.
pub fn parse_fsck(stdout: &str) -> FsckResults {
    action_results(stdout)
        .into_iter()
        .map(|(file, ok, errs)| (file, (ok, errs)))
        .collect()
}

/// `git annex fsck --from <remote> --json` in `client`; also returns
/// whether the command as a whole succeeded.
pub fn fsck_from(env: &TestEnv, client: &Path, remote: &str) -> (bool, FsckResults) {
    let out = env.annex(client, &["fsck", "--from", remote, "--json"]);
    (out.success(), parse_fsck(&out.stdout))
}

fn is_uuid_at(b: &[u8], i: usize) -> bool {
    const SHAPE: [usize; 5] = [8, 4, 4, 4, 12];
    let mut pos = i;
    for (n, len) in SHAPE.iter().enumerate() {
        if pos + len > b.len() || !b[pos..pos + len].iter().all(u8::is_ascii_hexdigit) {
            return false;
        }
        pos += len;
        if n < 4 {
            if b.get(pos) != Some(&b'-') {
                return false;
            }
            pos += 1;
        }
    }
    // a longer hex run is not a UUID (e.g. part of a hash)
    !b.get(pos).is_some_and(u8::is_ascii_hexdigit) && (i == 0 || !b[i - 1].is_ascii_hexdigit())
}

/// Replaces every UUID in `s` with `<uuid>`.
pub fn normalise_uuids(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < b.len() {
        if is_uuid_at(b, i) {
            out.push_str("<uuid>");
            i += 36;
        } else {
            let ch = s[i..].chars().next().expect("i is on a char boundary");
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

/// A named list of observations a scenario made, for comparing the real
/// server with ours.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Transcript(pub Vec<(String, String)>);

impl Transcript {
    pub fn note(&mut self, step: &str, what: impl std::fmt::Debug) {
        self.0
            .push((step.to_string(), normalise_uuids(&format!("{what:#?}"))));
    }

    /// Panics with the first differing step when `self` (real) and `other`
    /// (ours) differ.
    #[track_caller]
    pub fn assert_same_as(&self, other: &Transcript) {
        for (i, (a, b)) in self.0.iter().zip(other.0.iter()).enumerate() {
            if a != b {
                panic!(
                    "observation {i} differs between the real server and ours\n\
                     --- real: {} ---\n{}\n--- ours: {} ---\n{}",
                    a.0, a.1, b.0, b.1
                );
            }
        }
        assert_eq!(
            self.0.len(),
            other.0.len(),
            "transcripts have different lengths"
        );
    }
}

/// Every key whose content is in the object directory `objects`
/// (`xxx/yyy/KEY/KEY` or `Xx/Yy/KEY/KEY`): the truth, read without
/// git-annex.
pub fn keys_in(objects: &Path) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    for a in read_dir(objects) {
        for b in read_dir(&a) {
            for k in read_dir(&b) {
                let name = k.file_name().unwrap_or_default().to_owned();
                if k.join(&name).is_file() {
                    keys.insert(name.to_string_lossy().into_owned());
                }
            }
        }
    }
    keys
}

/// The keys a bare repository holds.
pub fn keys_held(bare: &Path) -> BTreeSet<String> {
    keys_in(&bare.join("annex/objects"))
}

fn read_dir(dir: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_normalised_but_hashes_are_not() {
        let s = "e243b842-6c92-47f5-8bed-1cfb39d85710 -- origin; SHA256E-s6--5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03.txt";
        assert_eq!(
            normalise_uuids(s),
            "<uuid> -- origin; SHA256E-s6--5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03.txt"
        );
    }

    #[test]
    fn whereis_json_is_reduced_to_descriptions() {
        let line = r#"{"command":"whereis","error-messages":[],"file":"a.txt","input":["a.txt"],"key":"K","note":"","success":true,"untrusted":[],"whereis":[{"description":"client","here":true,"urls":[],"uuid":"186c4858-6d5f-4fea-b124-2036242db8a6"},{"description":"origin","here":false,"urls":[],"uuid":"e243b842-6c92-47f5-8bed-1cfb39d85710"}]}"#;
        let w = parse_whereis(line);
        let want: BTreeSet<String> = ["client [here]".to_string(), "origin".to_string()].into();
        assert_eq!(w["a.txt"], want);
        assert_eq!(whereis_uuids(line).len(), 2);
    }
}
