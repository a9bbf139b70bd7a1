//! Opens the object store a [`StoreLocation`] names.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, RetryConfig};

use crate::config::StoreLocation;

/// Opens the store at `location`, uninstrumented (the broker wraps it).
///
/// S3 is configured from the usual variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
/// `AWS_REGION`, `AWS_ENDPOINT_URL`, ...); plain `http://` endpoints are allowed, for
/// S3-compatible servers on a private network.
///
/// # Errors
/// The directory cannot be created, or the S3 configuration is incomplete.
pub fn open(location: &StoreLocation) -> Result<Arc<dyn ObjectStore>, object_store::Error> {
    open_with_env(location, std::env::vars())
}

/// As [`open`], reading the `AWS_*` settings from `vars` instead of the process environment.
///
/// # Errors
/// As [`open`].
pub fn open_with_env(
    location: &StoreLocation,
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<Arc<dyn ObjectStore>, object_store::Error> {
    Ok(match location {
        StoreLocation::Memory => Arc::new(InMemory::new()),
        StoreLocation::Local(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| object_store::Error::Generic {
                store: "LocalFileSystem",
                source: Box::new(e),
            })?;
            // Cleanup removes the directories a deleted topic's segments leave empty; fsync
            // makes a put durable before it returns, as S3's is, so a flushed acknowledgement
            // survives a power loss.
            Arc::new(
                LocalFileSystem::new_with_prefix(dir)?
                    .with_automatic_cleanup(true)
                    .with_fsync(true),
            )
        }
        StoreLocation::S3 { bucket, prefix } => {
            let mut builder = AmazonS3Builder::new();
            let mut endpoint = None;
            for (key, value) in vars {
                match key.as_str() {
                    // The AWS SDKs' names; `AWS_ENDPOINT` is object_store's own.
                    "AWS_ENDPOINT_URL_S3" => endpoint = Some(value),
                    "AWS_ENDPOINT_URL" => {
                        endpoint.get_or_insert(value);
                    }
                    _ if key.starts_with("AWS_") => {
                        if let Ok(config) = AmazonS3ConfigKey::from_str(&key.to_ascii_lowercase()) {
                            builder = builder.with_config(config, value);
                        }
                    }
                    _ => {}
                }
            }
            if let Some(endpoint) = endpoint {
                builder = builder.with_endpoint(endpoint);
            }
            // A broker retries flushes itself: fail a request in seconds, not minutes.
            let retry = RetryConfig {
                max_retries: 3,
                retry_timeout: Duration::from_secs(10),
                ..RetryConfig::default()
            };
            let s3 = builder
                .with_bucket_name(bucket)
                .with_allow_http(true)
                .with_retry(retry)
                .build()?;
            if prefix.is_empty() {
                Arc::new(s3)
            } else {
                Arc::new(PrefixStore::new(s3, prefix.as_str()))
            }
        }
    })
}
