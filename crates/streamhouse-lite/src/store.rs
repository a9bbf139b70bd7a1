//! Opens the object store a [`StoreLocation`] names.

use std::sync::Arc;

use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::prefix::PrefixStore;

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
    Ok(match location {
        StoreLocation::Memory => Arc::new(InMemory::new()),
        StoreLocation::Local(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| object_store::Error::Generic {
                store: "LocalFileSystem",
                source: Box::new(e),
            })?;
            Arc::new(LocalFileSystem::new_with_prefix(dir)?)
        }
        StoreLocation::S3 { bucket, prefix } => {
            let mut builder = AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .with_allow_http(true);
            if let Some(endpoint) = std::env::var("AWS_ENDPOINT_URL_S3")
                .ok()
                .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
            {
                builder = builder.with_endpoint(endpoint);
            }
            let s3 = builder.build()?;
            if prefix.is_empty() {
                Arc::new(s3)
            } else {
                Arc::new(PrefixStore::new(s3, prefix.as_str()))
            }
        }
    })
}
