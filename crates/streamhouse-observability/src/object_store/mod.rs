//! [`InstrumentedObjectStore`]: request counts, errors, latency and a client span for every
//! call to any [`ObjectStore`]. Enabled by the `object-store` cargo feature.
//!
//! What counts as one request, per operation label:
//!
//! | call | `operation` | counted when |
//! |---|---|---|
//! | `put_opts` | `put` | the call returns |
//! | `get_opts` (and `get`, `get_range`, `get_ranges`) | `get` | the call returns (time to first byte; errors later in the body stream are the caller's to see) |
//! | `get_opts` with `head: true` (and `head`) | `head` | the call returns |
//! | `delete_stream` (and `delete`) | `delete` | each deleted path the stream yields, timed since the previous one |
//! | `list`, `list_with_offset` | `list` | the stream ends, fails, or is dropped: one listing, however many pages |
//! | `list_with_delimiter` | `list` | the call returns |
//! | `copy_opts` | `copy` | the call returns |
//! | `rename_opts` | `rename` | the call returns |
//! | `put_multipart_opts` + parts + `complete`/`abort` | `multipart_upload` | `complete` or `abort` returns, timed from the start; a failed start counts at once |
//!
//! Everything else is the inner store's behaviour, unchanged: results, errors and streams are
//! passed through as they are.

mod error_type;
mod streams;

use std::fmt;
use std::ops::Range;
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result,
};
use tracing::{Instrument, Span};

pub use error_type::s3_error_type;
use streams::{InstrumentedDeletes, InstrumentedList, InstrumentedUpload};

use crate::Telemetry;
use crate::metrics::{S3Error, S3Operation, StorageMetrics};

/// Wraps an [`ObjectStore`] so every request is counted in `streamhouse_s3_requests_total`,
/// timed in `streamhouse_s3_latency_seconds`, counted in `streamhouse_s3_errors_total` by
/// [error type](s3_error_type) when it fails, and traced in a client span named
/// `object_store.request`. See the [module docs](self) for what counts as one request.
///
/// ```
/// use object_store::{ObjectStore, ObjectStoreExt, memory::InMemory, path::Path};
/// use streamhouse_observability::object_store::InstrumentedObjectStore;
/// use streamhouse_observability::{Telemetry, TelemetryConfig};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let telemetry = Telemetry::new(TelemetryConfig::default()).unwrap();
/// let store = InstrumentedObjectStore::new(InMemory::new(), &telemetry);
/// store.put(&Path::from("a/b"), "hello".into()).await.unwrap();
/// assert!(store.get(&Path::from("missing")).await.is_err());
/// let text = telemetry.render_prometheus();
/// assert!(text.contains(r#"streamhouse_s3_requests_total{operation="put"} 1"#));
/// assert!(text.contains(r#"streamhouse_s3_errors_total{error_type="not_found",operation="get"} 1"#));
/// # }
/// ```
pub struct InstrumentedObjectStore<S> {
    inner: S,
    metrics: StorageMetrics,
}

impl<S: ObjectStore> InstrumentedObjectStore<S> {
    /// Wraps `inner`, recording into `telemetry`'s storage metrics.
    pub fn new(inner: S, telemetry: &Telemetry) -> Self {
        InstrumentedObjectStore {
            inner,
            metrics: telemetry.storage().clone(),
        }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Runs one request inside its span and records its outcome.
    async fn observe<T>(
        &self,
        operation: S3Operation,
        span: Span,
        request: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        let started = Instant::now();
        let result = request.instrument(span.clone()).await;
        record(&self.metrics, operation, started, &span, &result);
        result
    }
}

/// The client span of one request (or one stream of requests).
pub(crate) fn request_span(operation: S3Operation, location: Option<&Path>) -> Span {
    tracing::info_span!(
        "object_store.request",
        otel.kind = "client",
        object_store.operation = operation.as_str(),
        object_store.path = location.map(Path::as_ref).unwrap_or(""),
        error.r#type = tracing::field::Empty,
    )
}

/// Records one finished request in the metrics and on its span.
pub(crate) fn record<T>(
    metrics: &StorageMetrics,
    operation: S3Operation,
    started: Instant,
    span: &Span,
    result: &Result<T>,
) {
    let outcome = result.as_ref().map(|_| ()).map_err(s3_error_type);
    record_outcome(metrics, operation, started, span, outcome);
}

/// Records one finished request whose error is already classified.
pub(crate) fn record_outcome(
    metrics: &StorageMetrics,
    operation: S3Operation,
    started: Instant,
    span: &Span,
    outcome: std::result::Result<(), S3Error>,
) {
    if let Err(kind) = outcome {
        span.record("error.type", kind.as_str());
    }
    metrics.record_s3_request(operation, started.elapsed(), outcome);
}

impl<S: fmt::Display> fmt::Display for InstrumentedObjectStore<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Instrumented({})", self.inner)
    }
}

impl<S: fmt::Debug> fmt::Debug for InstrumentedObjectStore<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InstrumentedObjectStore")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl<S: ObjectStore> ObjectStore for InstrumentedObjectStore<S> {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        let span = request_span(S3Operation::Put, Some(location));
        self.observe(
            S3Operation::Put,
            span,
            self.inner.put_opts(location, payload, opts),
        )
        .await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        let operation = S3Operation::MultipartUpload;
        let span = request_span(operation, Some(location));
        let started = Instant::now();
        let result = self
            .inner
            .put_multipart_opts(location, opts)
            .instrument(span.clone())
            .await;
        match result {
            Ok(upload) => Ok(Box::new(InstrumentedUpload::new(
                upload,
                self.metrics.clone(),
                started,
                span,
            ))),
            Err(error) => {
                let result = Err(error);
                record(&self.metrics, operation, started, &span, &result);
                result
            }
        }
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let operation = if options.head {
            S3Operation::Head
        } else {
            S3Operation::Get
        };
        let span = request_span(operation, Some(location));
        self.observe(operation, span, self.inner.get_opts(location, options))
            .await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        let span = request_span(S3Operation::Get, Some(location));
        self.observe(
            S3Operation::Get,
            span,
            self.inner.get_ranges(location, ranges),
        )
        .await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        let span = request_span(S3Operation::Delete, None);
        let inner = {
            let _entered = span.enter();
            self.inner.delete_stream(locations)
        };
        Box::pin(InstrumentedDeletes::new(inner, self.metrics.clone(), span))
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        let span = request_span(S3Operation::List, prefix);
        let inner = {
            let _entered = span.enter();
            self.inner.list(prefix)
        };
        Box::pin(InstrumentedList::new(inner, self.metrics.clone(), span))
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        let span = request_span(S3Operation::List, prefix);
        let inner = {
            let _entered = span.enter();
            self.inner.list_with_offset(prefix, offset)
        };
        Box::pin(InstrumentedList::new(inner, self.metrics.clone(), span))
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        let span = request_span(S3Operation::List, prefix);
        self.observe(
            S3Operation::List,
            span,
            self.inner.list_with_delimiter(prefix),
        )
        .await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        let span = request_span(S3Operation::Copy, Some(from));
        self.observe(
            S3Operation::Copy,
            span,
            self.inner.copy_opts(from, to, options),
        )
        .await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        let span = request_span(S3Operation::Rename, Some(from));
        self.observe(
            S3Operation::Rename,
            span,
            self.inner.rename_opts(from, to, options),
        )
        .await
    }
}
