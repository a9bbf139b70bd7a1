//! Span and log processors in front of the SDK's batch processors that enforce the queue
//! bound themselves, so every dropped span or log record is counted for this telemetry
//! instance.
//!
//! The SDK drops records when its queue is full but exposes the count only through the
//! process-global meter provider; these wrappers keep an exact per-instance count instead.
//! A record is "in flight" from `on_end`/`emit` until the exporter returns for its batch
//! (success or failure); past `limit` in flight, new records are dropped here and counted.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use opentelemetry::logs::Severity;
use opentelemetry::{Context, InstrumentationScope};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::{BatchLogProcessor, LogProcessor, SdkLogRecord};
use opentelemetry_sdk::trace::{BatchSpanProcessor, Span, SpanData, SpanProcessor};

/// Records waiting for export and records dropped, shared with the exporter wrapper.
#[derive(Debug, Default)]
pub(crate) struct Queue {
    in_flight: AtomicUsize,
    dropped: AtomicU64,
}

impl Queue {
    /// Called by the exporter wrapper when a batch is done (exported or failed).
    pub(crate) fn release(&self, records: usize) {
        // Saturating: records exported at shutdown may have been counted before a reset.
        let _ = self
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                Some(n.saturating_sub(records))
            });
    }

    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Admits one record if fewer than `limit` are in flight; counts it as dropped if not.
    fn admit(&self, limit: usize) -> bool {
        let admitted = self
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .is_ok();
        if !admitted {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        admitted
    }
}

#[derive(Debug)]
pub(crate) struct BoundedSpanProcessor {
    pub(crate) inner: BatchSpanProcessor,
    pub(crate) queue: Arc<Queue>,
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
        if self.queue.admit(self.limit) {
            self.inner.on_end(span);
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

#[derive(Debug)]
pub(crate) struct BoundedLogProcessor {
    pub(crate) inner: BatchLogProcessor,
    pub(crate) queue: Arc<Queue>,
    pub(crate) limit: usize,
}

impl LogProcessor for BoundedLogProcessor {
    fn emit(&self, record: &mut SdkLogRecord, scope: &InstrumentationScope) {
        if self.queue.admit(self.limit) {
            self.inner.emit(record, scope);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn event_enabled(&self, level: Severity, target: &str, name: Option<&str>) -> bool {
        self.inner.event_enabled(level, target, name)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn past_the_limit_records_are_dropped_and_counted_until_released() {
        let queue = Queue::default();
        assert!(queue.admit(2));
        assert!(queue.admit(2));
        assert!(!queue.admit(2));
        assert!(!queue.admit(2));
        assert_eq!(queue.dropped(), 2);
        queue.release(2);
        assert!(queue.admit(2));
        assert_eq!(queue.dropped(), 2);
        // More released than in flight saturates instead of wrapping.
        queue.release(10);
        assert!(queue.admit(1));
    }
}
