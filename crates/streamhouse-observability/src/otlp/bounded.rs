//! A span processor in front of the SDK's batch processor that enforces the queue bound
//! itself, so every dropped span is counted for this telemetry instance.
//!
//! The SDK drops spans when its queue is full but exposes the count only through the
//! process-global meter provider; this wrapper keeps an exact per-instance count instead.
//! A span is "in flight" from `on_end` until the exporter returns for its batch (success or
//! failure); past `limit` in flight, new spans are dropped here and counted.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use opentelemetry::Context;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{BatchSpanProcessor, Span, SpanData, SpanProcessor};

/// Spans waiting for export and spans dropped, shared with the exporter wrapper.
#[derive(Debug, Default)]
pub(crate) struct SpanQueue {
    in_flight: AtomicUsize,
    dropped: AtomicU64,
}

impl SpanQueue {
    /// Called by the exporter wrapper when a batch is done (exported or failed).
    pub(crate) fn release(&self, spans: usize) {
        // Saturating: spans exported at shutdown may have been counted before a reset.
        let _ = self
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                Some(n.saturating_sub(spans))
            });
    }

    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

#[derive(Debug)]
pub(crate) struct BoundedSpanProcessor {
    pub(crate) inner: BatchSpanProcessor,
    pub(crate) queue: Arc<SpanQueue>,
    pub(crate) limit: usize,
}

impl SpanProcessor for BoundedSpanProcessor {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        // The batch processor ignores unsampled spans; so does the count.
        if !span.span_context.is_sampled() {
            return;
        }
        let admitted = self
            .queue
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.limit).then_some(n + 1)
            })
            .is_ok();
        if admitted {
            self.inner.on_end(span);
        } else {
            self.queue.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}
