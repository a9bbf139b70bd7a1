//! Stream and upload wrappers: lists, deletes and multipart uploads outlive the call that
//! starts them, so they are counted as they finish.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use async_trait::async_trait;
use futures::Stream;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{MultipartUpload, ObjectMeta, PutPayload, PutResult, Result, UploadPart};
use tracing::{Instrument, Span};

use super::{record, record_outcome, s3_error_type};
use crate::metrics::{S3Error, S3Operation, StorageMetrics};

/// One listing: counted once, when it ends, fails, or is dropped unfinished.
pub(super) struct InstrumentedList {
    inner: BoxStream<'static, Result<ObjectMeta>>,
    metrics: StorageMetrics,
    span: Span,
    started: Instant,
    recorded: bool,
}

impl InstrumentedList {
    pub(super) fn new(
        inner: BoxStream<'static, Result<ObjectMeta>>,
        metrics: StorageMetrics,
        span: Span,
    ) -> Self {
        InstrumentedList {
            inner,
            metrics,
            span,
            started: Instant::now(),
            recorded: false,
        }
    }

    fn finish(&mut self, outcome: std::result::Result<(), S3Error>) {
        if !self.recorded {
            self.recorded = true;
            let operation = S3Operation::List;
            record_outcome(&self.metrics, operation, self.started, &self.span, outcome);
        }
    }
}

impl Stream for InstrumentedList {
    type Item = Result<ObjectMeta>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let polled = {
            let _entered = this.span.enter();
            this.inner.as_mut().poll_next(cx)
        };
        match &polled {
            Poll::Ready(None) => this.finish(Ok(())),
            // The stream may go on after an error; the listing failed all the same.
            Poll::Ready(Some(Err(error))) => this.finish(Err(s3_error_type(error))),
            _ => {}
        }
        polled
    }
}

impl Drop for InstrumentedList {
    fn drop(&mut self) {
        // Dropped unfinished: the caller had what it wanted.
        self.finish(Ok(()));
    }
}

/// A stream of deletes: each yielded path is one `delete`, timed since the previous one.
pub(super) struct InstrumentedDeletes {
    inner: BoxStream<'static, Result<Path>>,
    metrics: StorageMetrics,
    span: Span,
    last: Instant,
}

impl InstrumentedDeletes {
    pub(super) fn new(
        inner: BoxStream<'static, Result<Path>>,
        metrics: StorageMetrics,
        span: Span,
    ) -> Self {
        InstrumentedDeletes {
            inner,
            metrics,
            span,
            last: Instant::now(),
        }
    }
}

impl Stream for InstrumentedDeletes {
    type Item = Result<Path>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let polled = {
            let _entered = this.span.enter();
            this.inner.as_mut().poll_next(cx)
        };
        if let Poll::Ready(Some(result)) = &polled {
            record(
                &this.metrics,
                S3Operation::Delete,
                this.last,
                &this.span,
                result,
            );
            this.last = Instant::now();
        }
        polled
    }
}

/// A multipart upload: one `multipart_upload` request from start to `complete` or `abort`.
#[derive(Debug)]
pub(super) struct InstrumentedUpload {
    inner: Box<dyn MultipartUpload>,
    metrics: StorageMetrics,
    started: Instant,
    span: Span,
}

impl InstrumentedUpload {
    pub(super) fn new(
        inner: Box<dyn MultipartUpload>,
        metrics: StorageMetrics,
        started: Instant,
        span: Span,
    ) -> Self {
        InstrumentedUpload {
            inner,
            metrics,
            started,
            span,
        }
    }
}

#[async_trait]
impl MultipartUpload for InstrumentedUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        Box::pin(self.inner.put_part(data).instrument(self.span.clone()))
    }

    async fn complete(&mut self) -> Result<PutResult> {
        let span = self.span.clone();
        let result = self.inner.complete().instrument(span.clone()).await;
        let operation = S3Operation::MultipartUpload;
        record(&self.metrics, operation, self.started, &span, &result);
        result
    }

    async fn abort(&mut self) -> Result<()> {
        let span = self.span.clone();
        let result = self.inner.abort().instrument(span.clone()).await;
        let operation = S3Operation::MultipartUpload;
        record(&self.metrics, operation, self.started, &span, &result);
        result
    }
}
