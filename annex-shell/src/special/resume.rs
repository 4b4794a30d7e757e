//! Hash states saved while an upload goes to a storage that cannot read
//! its staged bytes back (S3 multipart parts), so an interrupted upload
//! resumes after what the storage holds instead of at byte 0.
//!
//! One small file per key and remote in the proxy's
//! `annex/tmp/special-resume/<remote uuid>/<keyfile>`: a line per saved
//! point, `<token> <hash state>` (the token is the storage's name for the
//! staged write, an S3 upload id; the state is
//! [`annex::store::Verifier::midstate`]'s line, which starts with the
//! kind and the byte count). The last [`KEPT`] points are kept: the part
//! just finished may still be on its way to the bucket when the client
//! goes. A point is used only for the same token at the same offset, so
//! what the storage says it holds (ListParts) decides.

use std::path::{Path, PathBuf};

use annex::key::{safe_path_component, Key};

/// Saved points kept per upload.
const KEPT: usize = 2;

/// The saved points of one key's upload to one remote.
pub struct ResumeFile {
    path: Option<PathBuf>,
    points: Vec<String>,
}

impl ResumeFile {
    pub fn new(annex_dir: &Path, remote_uuid: &str, key: &Key) -> ResumeFile {
        let path = safe_path_component(remote_uuid).ok().map(|uuid| {
            annex_dir
                .join("tmp/special-resume")
                .join(uuid)
                .join(key.key_file())
        });
        ResumeFile {
            path,
            points: Vec::new(),
        }
    }

    /// The hash state saved for `token` after `offset` bytes.
    pub fn find(&self, token: &str, offset: u64) -> Option<String> {
        let text = std::fs::read_to_string(self.path.as_ref()?).ok()?;
        text.lines().find_map(|line| {
            let (t, state) = line.split_once(' ')?;
            let bytes: u64 = state.split(' ').nth(1)?.parse().ok()?;
            (t == token && bytes == offset).then(|| state.to_owned())
        })
    }

    /// Records a point; a failure to write it only costs a later resume.
    pub fn save(&mut self, token: &str, state: &str) {
        let Some(path) = &self.path else { return };
        self.points.push(format!("{token} {state}"));
        if self.points.len() > KEPT {
            self.points.remove(0);
        }
        let tmp = path.with_extension("new");
        let written = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(&tmp, self.points.join("\n") + "\n"))
            .and_then(|()| std::fs::rename(&tmp, path));
        if let Err(e) = written {
            tracing::warn!(path = %path.display(), "saving the hash state: {e}");
        }
    }

    /// The upload ended (stored, or given up): nothing to resume.
    pub fn remove(&self) {
        if let Some(path) = &self.path {
            let _ = std::fs::remove_file(path);
        }
    }
}
