//! One pass over the location logs of the git-annex branch, through
//! `git ls-tree` and `git cat-file --batch`, with the journal's versions
//! taking precedence as git-annex reads them.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use annex::branch::LocationLog;
use annex::key::Key;
use annex::repo::Repo;

use super::{one_line, StatusError};
use crate::operator::OperatorError;

/// Call `visit(size, log)` for every location log of the git-annex
/// branch, the journal's version where it has one. One `git ls-tree`
/// lists the branch and one `git cat-file --batch` reads the logs, one
/// at a time, so memory stays bounded however many keys there are.
pub(super) fn scan_location_logs(
    repo: &Repo,
    mut visit: impl FnMut(u64, &LocationLog),
) -> Result<(), OperatorError> {
    let branch = repo.branch();
    let mut journalled: BTreeSet<String> = branch
        .journal()
        .list()
        .map_err(StatusError::Journal)?
        .into_iter()
        .map(|(_, path)| path)
        .filter(|p| is_location_log(p))
        .collect();
    let from_journal = |path: &str, visit: &mut dyn FnMut(u64, &LocationLog)| {
        branch.read_file(path).map(|content| {
            visit(
                key_size(path),
                &LocationLog::parse(&content.unwrap_or_default()),
            );
        })
    };
    if branch.exists()? {
        let mut lister = git(
            repo,
            "ls-tree",
            &["ls-tree", "-r", "-z", "refs/heads/git-annex"],
        )?;
        let mut reader = CatFile::start(repo)?;
        let listing = lister.stdout.take().expect("stdout was piped");
        let mut listing = BufReader::new(listing);
        let mut entry = Vec::new();
        loop {
            entry.clear();
            if listing
                .read_until(0, &mut entry)
                .map_err(git_io("ls-tree"))?
                == 0
            {
                break;
            }
            let entry = String::from_utf8_lossy(entry.strip_suffix(b"\0").unwrap_or(&entry));
            // `<mode> blob <oid>\t<path>`
            let Some((meta, path)) = entry.split_once('\t') else {
                continue;
            };
            let fields: Vec<&str> = meta.split(' ').collect();
            let [_, "blob", oid] = fields.as_slice() else {
                continue;
            };
            if !is_location_log(path) {
                continue;
            }
            if journalled.remove(path) {
                from_journal(path, &mut visit)?;
            } else if let Some(content) = reader.read(oid)? {
                visit(key_size(path), &LocationLog::parse(&content));
            }
        }
        finish(lister, "ls-tree")?;
        reader.finish()?;
    }
    // Logs of keys the branch has not seen committed yet.
    for path in journalled {
        from_journal(&path, &mut visit)?;
    }
    Ok(())
}

/// `<3 hex>/<3 hex>/<key file>.log`: where git-annex keeps location logs
/// (other per-key logs end `.log.met`, `.log.web`, …).
pub(super) fn is_location_log(path: &str) -> bool {
    let parts: Vec<&str> = path.split('/').collect();
    let hex_dir = |d: &str| d.len() == 3 && d.bytes().all(|b| b.is_ascii_hexdigit());
    matches!(parts.as_slice(), [a, b, f]
        if hex_dir(a) && hex_dir(b) && f.len() > 4 && f.ends_with(".log"))
}

/// The size a location log's key records, 0 when it records none.
pub(super) fn key_size(path: &str) -> u64 {
    let file = path.rsplit('/').next().unwrap_or(path);
    let file = file.strip_suffix(".log").unwrap_or(file);
    Key::parse(&unescape_key_file(file))
        .ok()
        .and_then(|k| k.size())
        .unwrap_or(0)
}

/// The key a key file name stands for (the inverse of `Key::key_file`).
pub(super) fn unescape_key_file(file: &str) -> String {
    let mut out = String::with_capacity(file.len());
    let mut chars = file.chars();
    while let Some(c) = chars.next() {
        match c {
            '%' => out.push('/'),
            '&' => match chars.next() {
                Some('a') => out.push('&'),
                Some('s') => out.push('%'),
                Some('c') => out.push(':'),
                Some(other) => {
                    out.push('&');
                    out.push(other);
                }
                None => out.push('&'),
            },
            c => out.push(c),
        }
    }
    out
}

fn git_io(what: &'static str) -> impl FnOnce(std::io::Error) -> StatusError {
    move |source| StatusError::Git { what, source }
}

fn git(repo: &Repo, what: &'static str, args: &[&str]) -> Result<Child, StatusError> {
    Command::new("git")
        .arg("--git-dir")
        .arg(repo.git_dir())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(git_io(what))
}

/// `git args…` run to its end: what it wrote, or why it failed.
pub(super) fn git_output(
    repo: &Repo,
    what: &'static str,
    args: &[&str],
) -> Result<Vec<u8>, StatusError> {
    let mut child = git(repo, what, args)?;
    let mut out = Vec::new();
    if let Some(mut stdout) = child.stdout.take() {
        stdout.read_to_end(&mut out).map_err(git_io(what))?;
    }
    finish(child, what)?;
    Ok(out)
}

/// Wait for a git child; its stderr carries the reason when it failed.
/// Only called once its stdout is read to the end, so stderr (small for
/// these commands) cannot have filled up and stalled it meanwhile.
fn finish(mut child: Child, what: &'static str) -> Result<(), StatusError> {
    drop(child.stdin.take());
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    let status = child.wait().map_err(git_io(what))?;
    if status.success() {
        Ok(())
    } else {
        Err(StatusError::GitFailed {
            what,
            stderr: one_line(&stderr),
        })
    }
}

/// `git cat-file --batch`, asked for one object at a time.
struct CatFile {
    child: Child,
    input: ChildStdin,
    output: BufReader<ChildStdout>,
}

impl CatFile {
    fn start(repo: &Repo) -> Result<CatFile, StatusError> {
        let mut child = git(repo, "cat-file", &["cat-file", "--batch"])?;
        let input = child.stdin.take().expect("stdin was piped");
        let output = BufReader::new(child.stdout.take().expect("stdout was piped"));
        Ok(CatFile {
            child,
            input,
            output,
        })
    }

    /// The blob's content; `None` when git says it is missing.
    fn read(&mut self, oid: &str) -> Result<Option<Vec<u8>>, StatusError> {
        writeln!(self.input, "{oid}").map_err(git_io("cat-file"))?;
        self.input.flush().map_err(git_io("cat-file"))?;
        let mut header = String::new();
        self.output
            .read_line(&mut header)
            .map_err(git_io("cat-file"))?;
        let header = header.trim_end();
        if header.ends_with(" missing") {
            return Ok(None);
        }
        let size: u64 = header
            .rsplit(' ')
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| StatusError::CatFile(header.to_owned()))?;
        let mut content = Vec::new();
        (&mut self.output)
            .take(size + 1)
            .read_to_end(&mut content)
            .map_err(git_io("cat-file"))?;
        if content.pop() != Some(b'\n') {
            return Err(StatusError::CatFile(header.to_owned()));
        }
        Ok(Some(content))
    }

    fn finish(self) -> Result<(), StatusError> {
        let CatFile { child, input, .. } = self;
        drop(input);
        finish(child, "cat-file")
    }
}
