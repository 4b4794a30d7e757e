//! A strict, minimal reader of git config files: just enough to know the
//! two values `configlist` prints, and to be sure nothing else in the
//! files could make the full server (gix) print something else or fail.
//!
//! It reads a subset of git's syntax: `[section]` and `[section "sub"]`
//! headers, `key = value` and bare `key` lines, `#`/`;` comments, and
//! blank lines. Anything outside it — quoting, escapes, line
//! continuations, includes, a remote, a section it does not know, a `core`
//! key gix checks when it opens a repository with a value it cannot vouch
//! for — is [`Unsure`]: the caller then hands the call to the full server,
//! which reads git config completely. Being unsure is never wrong, only
//! slower; answering where gix would read something else is.

/// Why a config file is not one the reader can vouch for.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Unsure {
    #[error("line {0}: syntax the minimal reader does not handle")]
    Syntax(usize),
    #[error("line {0}: a key before any section")]
    KeyOutsideSection(usize),
    #[error("line {line}: [{section}] (includes are read by the full server)")]
    Include { line: usize, section: String },
    #[error("line {0}: a remote is configured (its proxy.log is read by the full server)")]
    Remote(usize),
    #[error("line {line}: section [{section}] is not one the reader knows to be inert")]
    Section { line: usize, section: String },
    #[error("line {line}: core.{key} with a value the reader cannot vouch for")]
    CoreKey { line: usize, key: String },
    #[error("line {line}: {key} has a value that is not printed as it is")]
    Printed { line: usize, key: &'static str },
}

/// The values `configlist` prints, the last one read winning as in git.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Found {
    /// `annex.uuid`.
    pub uuid: Option<String>,
    /// `core.gcrypt-id`.
    pub gcrypt_id: Option<String>,
}

/// Sections whose keys gix does not read when it opens a repository, or
/// reads leniently, and that cannot change the two values or the remotes.
/// `core` is checked key by key; everything else hands the call on.
const INERT_SECTIONS: &[&str] = &[
    "annex",
    "filter",
    "user",
    "init",
    "receive",
    "branch",
    "credential",
    "safe",
    "color",
    "advice",
    "push",
    "pull",
    "gc",
    "uploadpack",
    "merge",
];

/// `core` keys `git init` and `git annex init` write, which gix checks
/// when it opens a repository: accepted only with values both read alike.
const CORE_BOOLEANS: &[&str] = &[
    "filemode",
    "bare",
    "logallrefupdates",
    "ignorecase",
    "symlinks",
    "precomposeunicode",
];

/// Where the reader is in a file: the section of the last header.
struct Section {
    name: String,
    has_sub: bool,
}

impl Found {
    /// Read one config file's text into `self`, later values winning.
    pub fn read(&mut self, text: &str) -> Result<(), Unsure> {
        let mut section: Option<Section> = None;
        for (i, raw) in text.split('\n').enumerate() {
            let line = i + 1;
            // What git would read in another way than this reader:
            // quoting, escapes and continuations, CRLF, NUL.
            if raw.contains(['\\', '\r', '\0']) {
                return Err(Unsure::Syntax(line));
            }
            let trimmed = raw.trim_start_matches([' ', '\t']);
            if trimmed.is_empty() || trimmed.starts_with(['#', ';']) {
                continue;
            }
            if let Some(rest) = trimmed.strip_prefix('[') {
                let s = header(rest).ok_or(Unsure::Syntax(line))?;
                check_section(&s, line)?;
                section = Some(s);
                continue;
            }
            let Some(s) = &section else {
                return Err(Unsure::KeyOutsideSection(line));
            };
            let kv = key_value(trimmed).ok_or(Unsure::Syntax(line))?;
            self.take(s, &kv, line)?;
        }
        Ok(())
    }

    fn take(&mut self, section: &Section, kv: &KeyLine<'_>, line: usize) -> Result<(), Unsure> {
        let value = kv.value;
        match (section.name.as_str(), section.has_sub, kv.key.as_str()) {
            ("annex", false, "uuid") => {
                self.uuid = Some(printed(kv, "annex.uuid", line)?);
            }
            ("core", _, "gcrypt-id") => {
                self.gcrypt_id = Some(printed(kv, "core.gcrypt-id", line)?);
            }
            ("core", _, "repositoryformatversion") if matches!(value, Some("0" | "1")) => {}
            ("core", _, k) if CORE_BOOLEANS.contains(&k) && value.is_none_or(is_boolean) => {}
            ("core", _, "sharedrepository") => {}
            ("core", _, k) => {
                return Err(Unsure::CoreKey {
                    line,
                    key: k.to_owned(),
                })
            }
            _ => {}
        }
        Ok(())
    }
}

fn check_section(s: &Section, line: usize) -> Result<(), Unsure> {
    match s.name.as_str() {
        "include" | "includeif" => Err(Unsure::Include {
            line,
            section: s.name.clone(),
        }),
        "remote" => Err(Unsure::Remote(line)),
        // `[core "x"]` is not core to git; to gix it is not clear.
        "core" if s.has_sub => Err(Unsure::Syntax(line)),
        "core" => Ok(()),
        name if INERT_SECTIONS.contains(&name) => Ok(()),
        name => Err(Unsure::Section {
            line,
            section: name.to_owned(),
        }),
    }
}

/// `name]` or `name "sub"]`, then only blanks or a comment. Section names
/// are compared lower-cased, as git does; `[a.b]` (the old subsection
/// form) is not read.
fn header(rest: &str) -> Option<Section> {
    let end = rest.find(']')?;
    let (inside, after) = (
        &rest[..end],
        rest[end + 1..].trim_start_matches([' ', '\t']),
    );
    if !(after.is_empty() || after.starts_with(['#', ';'])) {
        return None;
    }
    let (name, sub) = match inside.split_once([' ', '\t']) {
        Some((name, sub)) => (name, Some(sub.trim_start_matches([' ', '\t']))),
        None => (inside, None),
    };
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return None;
    }
    if let Some(sub) = sub {
        let body = sub.strip_prefix('"')?.strip_suffix('"')?;
        if body.contains('"') {
            return None;
        }
    }
    Some(Section {
        name: name.to_ascii_lowercase(),
        has_sub: sub.is_some(),
    })
}

/// A key's line taken apart.
struct KeyLine<'a> {
    /// Lower-cased, as git compares keys.
    key: String,
    /// Without its comment and surrounding blanks; `None` for a bare key,
    /// which git reads as true.
    value: Option<&'a str>,
    /// A comment starts right after the value, with no blank between
    /// (`x#y`): read alike by git and gix as far as we know, but not
    /// printed on that belief.
    glued_comment: bool,
}

/// `key`, `key =`, `key = value # comment`. A `"` anywhere is not read
/// here.
fn key_value(line: &str) -> Option<KeyLine<'_>> {
    if line.contains('"') {
        return None;
    }
    let key_end = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .unwrap_or(line.len());
    let key = &line[..key_end];
    if !key.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return None;
    }
    let rest = line[key_end..].trim_start_matches([' ', '\t']);
    let mut glued_comment = false;
    let value = if rest.is_empty() || rest.starts_with(['#', ';']) {
        None
    } else {
        let v = rest.strip_prefix('=')?;
        let v = match v.find(['#', ';']) {
            Some(c) => {
                glued_comment = !v[..c].is_empty() && !v[..c].ends_with([' ', '\t']);
                &v[..c]
            }
            None => v,
        };
        Some(v.trim_matches([' ', '\t']))
    };
    Some(KeyLine {
        key: key.to_ascii_lowercase(),
        value,
        glued_comment,
    })
}

/// A value printed by configlist: only one that every reader reads alike
/// (visible ASCII, no comment glued to it; empty allowed).
fn printed(kv: &KeyLine<'_>, key: &'static str, line: usize) -> Result<String, Unsure> {
    match kv.value {
        Some(v) if !kv.glued_comment && v.bytes().all(|b| b.is_ascii_graphic()) => Ok(v.to_owned()),
        _ => Err(Unsure::Printed { line, key }),
    }
}

/// git's boolean words, and 0 and 1.
pub fn is_boolean(v: &str) -> bool {
    ["true", "false", "yes", "no", "on", "off", "1", "0"]
        .iter()
        .any(|w| v.eq_ignore_ascii_case(w))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(files: &[&str]) -> Result<Found, Unsure> {
        let mut found = Found::default();
        for f in files {
            found.read(f)?;
        }
        Ok(found)
    }

    /// Each text alone is one the reader is unsure of, for the reason `is`.
    #[track_caller]
    fn all_unsure(texts: &[&str], is: fn(&Unsure) -> bool) {
        for text in texts {
            match read(&[text]) {
                Err(e) if is(&e) => {}
                other => panic!("{text:?}: {other:?}"),
            }
        }
    }

    const INIT: &str = "[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = true\n\
        [annex]\n\tuuid = 9c0e0c22-39a4-4b8a-8e47-3c3c8a0e7a11\n\tversion = 10\n";

    #[test]
    fn reads_what_git_and_git_annex_init_write() {
        let found = read(&[INIT]).expect("read");
        assert_eq!(
            found.uuid.as_deref(),
            Some("9c0e0c22-39a4-4b8a-8e47-3c3c8a0e7a11")
        );
        assert_eq!(found.gcrypt_id, None);
        let worktree = "[core]\n\tbare = false\n\tlogallrefupdates = true\n\
            [filter \"annex\"]\n\tsmudge = git-annex smudge -- %f\n\tprocess = git-annex filter-process\n\
            [annex]\n\tuuid = u1\n[user]\n\tname = A B\n";
        assert_eq!(read(&[worktree]).expect("read").uuid.as_deref(), Some("u1"));
    }

    #[test]
    fn the_last_value_wins_across_files_and_sections() {
        let global = "[annex]\n\tuuid = from-global\n[core]\n\tgcrypt-id = g1\n";
        let repo = "[annex]\nuuid=a\n[user]\nname = x\n[ANNEX]\n  UUID =  b  ; why\n";
        let found = read(&[global, repo]).expect("read");
        assert_eq!(found.uuid.as_deref(), Some("b"));
        assert_eq!(found.gcrypt_id.as_deref(), Some("g1"));
        // The repository's config is read last: a global value is overridden.
        let found = read(&[repo, global]).expect("read");
        assert_eq!(found.uuid.as_deref(), Some("from-global"));
        // An empty value is a value (configlist then hands on for no UUID).
        assert_eq!(
            read(&[global, "[annex]\nuuid =\n"]).expect("read").uuid,
            Some(String::new())
        );
        // A subsection is another key: [annex "x"] uuid is not annex.uuid.
        let sub = read(&["[annex \"x\"]\nuuid = other\n"]).expect("read");
        assert_eq!(sub.uuid, None);
    }

    #[test]
    fn includes_and_remotes_hand_on() {
        all_unsure(
            &[
                "[include]\n\tpath = other\n",
                "[includeIf \"gitdir:/srv/\"]\n\tpath = other\n",
                "[IncludeIf \"onbranch:main\"]\n",
            ],
            |e| matches!(e, Unsure::Include { .. }),
        );
        let remote = "[annex]\n\tuuid = u\n[remote \"n1\"]\n\turl = ../n1\n";
        assert_eq!(read(&[remote]), Err(Unsure::Remote(3)));
    }

    #[test]
    fn quoting_escapes_and_odd_syntax_hand_on() {
        all_unsure(
            &[
                "[annex]\n\tuuid = \"u\"\n",
                "[annex]\n\tuuid = u\\\n1\n",
                "[annex]\r\n\tuuid = u\r\n",
                "[annex] uuid = u\n",
                "[annex.sub]\n",
                "[filter \"a\\\"b\"]\n",
                "[filter \"a]\n",
                "[annex]\n\tu_id = 1\n",
                "[annex]\n\t1uuid = 1\n",
                "[annex]\n\tuuid : 1\n",
            ],
            |e| matches!(e, Unsure::Syntax(_)),
        );
        assert_eq!(read(&["uuid = u\n"]), Err(Unsure::KeyOutsideSection(1)));
    }

    #[test]
    fn printed_values_must_read_alike_everywhere() {
        all_unsure(
            &[
                "[annex]\n\tuuid\n",
                "[annex]\n\tuuid = a b\n",
                "[core]\n\tgcrypt-id = x#y\n",
            ],
            |e| matches!(e, Unsure::Printed { .. }),
        );
        // A comment after the value is not part of it.
        let found = read(&["[core]\n\tgcrypt-id = abc # set by gcrypt\n"]).expect("read");
        assert_eq!(found.gcrypt_id.as_deref(), Some("abc"));
    }

    #[test]
    fn core_keys_gix_checks_need_plain_values() {
        assert!(read(&["[core]\n\tbare\n\tfilemode = No\n\tsharedrepository = group\n"]).is_ok());
        all_unsure(
            &[
                "[core]\n\trepositoryformatversion = 2\n",
                "[core]\n\tbare = maybe\n",
                "[core]\n\tworktree = /elsewhere\n",
                "[core]\n\tlogallrefupdates = always\n",
            ],
            |e| matches!(e, Unsure::CoreKey { .. }),
        );
        all_unsure(
            &[
                "[extensions]\n\tobjectformat = sha256\n",
                "[gitoxide]\n",
                "[http]\n",
            ],
            |e| matches!(e, Unsure::Section { .. }),
        );
    }
}
