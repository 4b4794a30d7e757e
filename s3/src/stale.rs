//! Abandoned multipart uploads: an upload cut off and never resumed (the
//! client gave up on the key, or stored it elsewhere) keeps its parts in
//! the bucket, unseen and billed, until someone aborts it. A later write
//! of the same object aborts the ones it does not resume
//! ([`crate::StagedWrite`]); this sweeps the rest, for the keys no one
//! writes again, once they are older than the remote's
//! [`crate::S3Config::stale_upload_age`].

use std::time::Duration;

use crate::error::{Op, S3Error};
use crate::storage::S3Storage;

/// Pages of ListMultipartUploads a sweep reads at most (1000 uploads
/// each): a sweep costs a bounded time, and the next one goes on.
const SWEEP_PAGES: usize = 5;

impl S3Storage {
    /// Aborts the unfinished uploads under the file prefix whose name
    /// (prefix removed) `is_ours` accepts, that began longer ago than the
    /// remote's stale-upload age and have no part stored since; returns
    /// how many it aborted. An upload with no start time, or a part with
    /// no time, is left alone.
    #[tracing::instrument(level = "debug", skip_all, fields(remote = %self.inner.remote))]
    pub async fn abort_stale_uploads(
        &self,
        is_ours: impl Fn(&str) -> bool,
    ) -> Result<usize, S3Error> {
        let inner = &self.inner;
        let prefix = &inner.config.fileprefix;
        let age = inner.config.stale_upload_age;
        let uploads = inner
            .client
            .list_uploads_under(prefix, SWEEP_PAGES)
            .await
            .map_err(|k| inner.error(Op::Abort, prefix, k))?;
        let now = jiff::Timestamp::now();
        let mut aborted = 0;
        for u in uploads {
            let Some(name) = u.key.strip_prefix(prefix.as_str()) else {
                continue;
            };
            let began = u.initiated.as_deref().and_then(|t| t.parse().ok());
            if !is_ours(name) || !began.is_some_and(|b| older_than(now, b, age)) {
                continue;
            }
            // Old, but a part stored within the age: still being written,
            // or cut off lately and to be resumed. (moto also reports a
            // fixed start time of 2010 for every upload.)
            let parts = inner
                .client
                .list_parts(&u.key, &u.upload_id)
                .await
                .map_err(|k| inner.error(Op::Abort, &u.key, k))?;
            let lately = parts.iter().any(|p| {
                let stored = p.last_modified.as_deref().and_then(|t| t.parse().ok());
                stored.is_none_or(|t| !older_than(now, t, age))
            });
            if lately {
                continue;
            }
            tracing::info!(object = %u.key, upload_id = %u.upload_id, initiated = ?u.initiated, "aborting a stale upload");
            inner
                .client
                .abort(&u.key, &u.upload_id)
                .await
                .map_err(|k| inner.error(Op::Abort, &u.key, k))?;
            aborted += 1;
        }
        Ok(aborted)
    }
}

/// Whether `began` is more than `age` before `now`.
fn older_than(now: jiff::Timestamp, began: jiff::Timestamp, age: Duration) -> bool {
    let elapsed = now.as_millisecond().saturating_sub(began.as_millisecond());
    u128::try_from(elapsed).is_ok_and(|ms| ms >= age.as_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn age_is_measured_from_the_upload_start() {
        let began: jiff::Timestamp = "2026-12-06T07:00:00.000Z".parse().unwrap();
        let now: jiff::Timestamp = "2026-12-06T08:00:00Z".parse().unwrap();
        assert!(older_than(now, began, Duration::from_secs(3600)));
        assert!(!older_than(now, began, Duration::from_secs(3601)));
        assert!(!older_than(began, now, Duration::ZERO));
    }
}
