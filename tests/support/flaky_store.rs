//! An object store that fails or slows down on demand, for outage and race tests.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::{self, BoxStream};
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};

/// Which calls a failing store fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outage {
    Everything,
    SegmentPuts,
    /// Segment puts of one partition are refused: permission denied, a permanent error.
    PartitionRefused(u32),
}

/// Wraps an in-memory store; while `failing`, calls time out (every call, or only segment
/// puts), and segment reads may be slowed down.
#[derive(Debug)]
pub struct FlakyStore {
    inner: InMemory,
    failing: Arc<AtomicBool>,
    outage: Outage,
    segment_read_delay: Duration,
}

impl fmt::Display for FlakyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Flaky({})", self.inner)
    }
}

impl FlakyStore {
    /// An in-memory store, and the switch that makes every call on it fail while set.
    pub fn new(failing: bool) -> (Self, Arc<AtomicBool>) {
        let switch = Arc::new(AtomicBool::new(failing));
        let store = FlakyStore {
            inner: InMemory::new(),
            failing: Arc::clone(&switch),
            outage: Outage::Everything,
            segment_read_delay: Duration::ZERO,
        };
        (store, switch)
    }

    /// A store whose switch fails segment puts only (`.seg` objects; manifests still land).
    pub fn failing_segment_puts() -> (Self, Arc<AtomicBool>) {
        let (mut store, switch) = FlakyStore::new(false);
        store.outage = Outage::SegmentPuts;
        (store, switch)
    }

    /// A store whose switch refuses segment puts of `partition` (of any topic) with
    /// "permission denied", as a bucket policy denying one prefix does.
    pub fn refusing_partition(partition: u32) -> (Self, Arc<AtomicBool>) {
        let (mut store, switch) = FlakyStore::new(false);
        store.outage = Outage::PartitionRefused(partition);
        (store, switch)
    }

    /// A store that never fails and takes `delay` to read each segment, so a consume of
    /// several segments is still reading when something races it.
    pub fn with_slow_segment_reads(delay: Duration) -> Self {
        let (mut store, _) = FlakyStore::new(false);
        store.segment_read_delay = delay;
        store
    }

    fn check(&self) -> Result<()> {
        if self.failing.load(Ordering::SeqCst) && self.outage == Outage::Everything {
            return Err(injected());
        }
        Ok(())
    }
}

/// The error of a failing call: a timeout, as a store that is down gives.
fn injected() -> object_store::Error {
    let timeout = std::io::Error::new(std::io::ErrorKind::TimedOut, "injected");
    object_store::Error::Generic {
        store: "Flaky",
        source: Box::new(timeout),
    }
}

#[async_trait]
impl ObjectStore for FlakyStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.check()?;
        let segment = location.as_ref().ends_with(".seg");
        if segment && self.failing.load(Ordering::SeqCst) {
            match (self.outage, streamhouse_lite::segment::parse_path(location)) {
                (Outage::SegmentPuts, _) => return Err(injected()),
                (Outage::PartitionRefused(refused), Some(at)) if at.partition == refused => {
                    return Err(object_store::Error::PermissionDenied {
                        path: location.to_string(),
                        source: "injected: access denied by policy".into(),
                    });
                }
                _ => {}
            }
        }
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.check()?;
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.check()?;
        if !self.segment_read_delay.is_zero() && location.as_ref().ends_with(".seg") {
            tokio::time::sleep(self.segment_read_delay).await;
        }
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        match self.check() {
            Ok(()) => self.inner.delete_stream(locations),
            Err(error) => stream::once(async move { Err(error) }).boxed(),
        }
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        match self.check() {
            Ok(()) => self.inner.list(prefix),
            Err(error) => stream::once(async move { Err(error) }).boxed(),
        }
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.check()?;
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.check()?;
        self.inner.copy_opts(from, to, options).await
    }
}
