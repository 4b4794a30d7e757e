//! `initremote NAME type=S3 …` and `enableremote` of an S3 remote, as
//! git-annex 10.20261026 sets one up (`Remote/S3.hs: s3Setup`):
//!
//! - remote.log gets the parameters given plus git-annex's defaults
//!   (`datacenter=US`, `storageclass=STANDARD`, `host=s3.amazonaws.com`,
//!   `port=80`, `bucket=NAME-UUID`), never the credentials unless
//!   `embedcreds=yes` (then `s3creds=`, base64, as git-annex embeds them
//!   without a cipher);
//! - the credentials, from `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`,
//!   are cached in `annex/creds/<uuid>` (owner-only), as git-annex caches
//!   them in either case;
//! - git config `remote.NAME.annex-s3=true`;
//! - `initremote` writes the remote's UUID in the bucket's `annex-uuid`
//!   object (under `fileprefix`), refusing a bucket another remote uses.
//!   Unlike git-annex we do not create a missing bucket: its region and
//!   ACLs are the operator's choice (README, compatibility table).

use annex_s3::creds::{self, Env, ProcessEnv};
use annex_s3::{S3Config, S3Credentials, S3Storage};
use tokio::io::AsyncReadExt as _;

use crate::special::config::Params;

/// What an S3 remote's set-up found wrong.
#[derive(Debug, thiserror::Error)]
pub enum S3SetupError {
    #[error("Set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY to use S3")]
    NoCredentials,
    #[error(transparent)]
    Config(#[from] annex_s3::ConfigError),
    #[error(transparent)]
    Creds(#[from] annex_s3::CredsError),
    #[error(transparent)]
    Client(#[from] annex_s3::SetupError),
    #[error("bucket {bucket}: {source}")]
    Bucket {
        bucket: String,
        #[source]
        source: Box<annex_s3::S3Error>,
    },
    #[error("reading the bucket's annex-uuid object: {0}")]
    Read(#[source] std::io::Error),
    #[error("This bucket is already in use by a different S3 special remote, with UUID: {0}")]
    OtherUuid(String),
    #[error("starting the runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

/// An S3 remote's resolved set-up, once its parameters are complete.
pub struct S3Setup {
    pub config: S3Config,
    /// The credentials given in the environment, to cache.
    pub creds: Option<S3Credentials>,
}

/// git-annex's defaults for what `params` leaves out.
fn add_defaults(params: &mut Params, name: &str, uuid: &str) {
    let defaults = [
        ("datacenter", "US".to_owned()),
        ("storageclass", "STANDARD".to_owned()),
        ("host", annex_s3::config::AWS_DEFAULT_HOST.to_owned()),
        ("port", "80".to_owned()),
        ("bucket", format!("{name}-{uuid}")),
    ];
    for (k, v) in defaults {
        params.entry(k.to_owned()).or_insert(v);
    }
}

/// Completes `params` (defaults, embedded credentials) and checks them.
pub fn prepare(name: &str, uuid: &str, params: &mut Params) -> Result<S3Setup, S3SetupError> {
    add_defaults(params, name, uuid);
    let env = ProcessEnv;
    let given = match (
        env.var("AWS_ACCESS_KEY_ID"),
        env.var("AWS_SECRET_ACCESS_KEY"),
    ) {
        (Some(k), Some(s)) => Some(S3Credentials {
            access_key_id: k,
            secret_access_key: s,
            session_token: None,
        }),
        _ => None,
    };
    if let Some(c) = &given {
        if params.get("embedcreds").map(String::as_str) == Some("yes") {
            let embedded = creds::encode_embedded(&c.access_key_id, &c.secret_access_key);
            params.insert("s3creds".into(), embedded);
        }
    }
    let config = S3Config::from_params(params)?;
    Ok(S3Setup {
        config,
        creds: given,
    })
}

/// Caches the credentials given where git-annex caches them.
pub fn cache_creds(
    git_dir: &std::path::Path,
    uuid: &str,
    setup: &S3Setup,
) -> Result<(), S3SetupError> {
    if let Some(c) = &setup.creds {
        creds::write_creds_file(git_dir, uuid, &c.access_key_id, &c.secret_access_key)?;
    }
    Ok(())
}

/// `initremote`'s bucket check: the bucket's `annex-uuid` object names
/// this remote, written now if absent.
pub fn claim_bucket(
    name: &str,
    uuid: &str,
    git_dir: &std::path::Path,
    params: &Params,
    setup: &S3Setup,
) -> Result<(), S3SetupError> {
    let creds = match &setup.creds {
        Some(c) => Some(c.clone()),
        None => creds::find_credentials(&ProcessEnv, git_dir, uuid, params)?.map(|(c, _)| c),
    };
    if creds.is_none() && setup.config.signature != annex_s3::Signature::Anonymous {
        return Err(S3SetupError::NoCredentials);
    }
    let storage = S3Storage::new(name, setup.config.clone(), creds)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(S3SetupError::Runtime)?;
    let bucket = setup.config.bucket.clone();
    let failed = |source| S3SetupError::Bucket {
        bucket: bucket.clone(),
        source: Box::new(source),
    };
    runtime.block_on(async {
        let object = S3Storage::UUID_OBJECT;
        if storage.stat(object).await.map_err(failed)?.is_some() {
            let mut reader = storage.read(object, 0).await.map_err(failed)?;
            let mut text = String::new();
            reader
                .read_to_string(&mut text)
                .await
                .map_err(S3SetupError::Read)?;
            let found = text.trim();
            if found == uuid {
                return Ok(());
            }
            return Err(S3SetupError::OtherUuid(found.to_owned()));
        }
        let mut write = storage
            .begin_write(object, Some(uuid.len() as u64))
            .await
            .map_err(failed)?;
        write.write(uuid.as_bytes()).await.map_err(failed)?;
        write.commit().await.map_err(failed)?;
        tracing::info!(remote = name, %bucket, "bucket claimed");
        Ok(())
    })
}
