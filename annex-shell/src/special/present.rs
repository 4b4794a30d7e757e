//! Direct uploads: after PUT the client answers `DATA-PRESENT` instead of
//! sending DATA, saying it put the content into the remote itself
//! (git-annex's "client side upload to a special remote", a browser
//! uploading to the bucket). The bytes never pass through the proxy, so
//! before the remote is recorded as holding the key the proxy checks what
//! it can: every object there with the sizes the key and its chunks must
//! have and, where the storage reads back cheaply (a directory), the
//! content hashed against the key, read in bounded pieces. Where reading
//! back would cost a download of the whole object, what the storage's
//! stat says is what is checked: S3 objects' sizes; an external program's
//! CHECKPRESENT (its protocol gives no size), which is all git-annex's
//! proxy asks of any remote.

use annex::key::Key;
use annex::store::{Mismatch, Verifier};

use super::put::hash_from;
use super::read::Objects;
use super::remote::Special;
use super::storage::{Storage, StorageError};
use crate::backend::BackendError;

/// Why a direct upload is not accepted.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PresentError {
    #[error("{remote}: does not have {key}")]
    Absent { remote: String, key: Key },
    #[error("{remote}: {key}: what it holds is not the key's content: {mismatch}")]
    Corrupt {
        remote: String,
        key: Key,
        mismatch: Mismatch,
    },
    /// Reading it back failed (the storage names the remote).
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Backend(#[from] BackendError),
}

impl<S: Storage> Special<S> {
    /// `DATA-PRESENT` for `key`: check the remote holds its content (and
    /// verify it where reading back is cheap), then log it as a stored
    /// upload is logged. Nothing is logged when it fails.
    pub(crate) async fn accept_present(&mut self, key: &Key) -> Result<(), PresentError> {
        let remote = self.name().to_owned();
        let Some(found) = self.locate(key).await? else {
            return Err(PresentError::Absent {
                remote,
                key: key.clone(),
            });
        };
        if self.storage().read_back_is_cheap() {
            let mut verifier = Verifier::new(key);
            let objects = Objects::new(self.storage(), &found, 0);
            hash_from(objects, &mut verifier, self.storage(), key).await?;
            verifier.check().map_err(|mismatch| PresentError::Corrupt {
                remote,
                key: key.clone(),
                mismatch,
            })?;
        }
        // `locate` logged the chunks it found; the location log is ours.
        self.log_presence(key, true)?;
        Ok(())
    }
}
