//! Exporter wrappers that count failed exports and log when export starts or stops failing.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::logs::{LogBatch, LogExporter};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use tokio::runtime::Handle;

use super::Signal;
use super::bounded::Queue;
use super::runtime::InRuntime;

/// Failed exports per signal, read by the self-metric's callback.
#[derive(Debug, Default)]
pub(crate) struct ExportFailures {
    metrics: SignalFailures,
    traces: SignalFailures,
    logs: SignalFailures,
    /// Spans waiting for export, and those dropped because too many were.
    pub(crate) span_queue: Arc<Queue>,
    /// Log records waiting for export, and those dropped because too many were.
    pub(crate) log_queue: Arc<Queue>,
}

#[derive(Debug, Default)]
struct SignalFailures {
    count: AtomicU64,
    failing: AtomicBool,
}

impl ExportFailures {
    pub(crate) fn count(&self, signal: Signal) -> u64 {
        self.of(signal).count.load(Ordering::Relaxed)
    }

    fn of(&self, signal: Signal) -> &SignalFailures {
        match signal {
            Signal::Metrics => &self.metrics,
            Signal::Traces => &self.traces,
            Signal::Logs => &self.logs,
        }
    }

    fn record(&self, signal: Signal, result: &OTelSdkResult) {
        let state = self.of(signal);
        match result {
            Ok(()) => {
                if state.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!(signal = signal.as_str(), "OTLP export recovered");
                }
            }
            Err(error) => {
                state.count.fetch_add(1, Ordering::Relaxed);
                // Once per outage, not once per interval.
                if !state.failing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(signal = signal.as_str(), %error, "OTLP export failed");
                }
            }
        }
    }
}

/// An exporter that bounds each whole export by `deadline` (the signal's export timeout,
/// which the SDK's thread-based processors do not enforce), records its outcome in
/// [`ExportFailures`] and releases the batch from its queue.
pub(crate) struct Counted<E> {
    pub(crate) inner: E,
    pub(crate) signal: Signal,
    pub(crate) failures: Arc<ExportFailures>,
    /// The runtime the deadline's timer runs on.
    pub(crate) runtime: Handle,
    pub(crate) deadline: Duration,
    /// For spans and logs: released once a batch is done, so the bound counts only waiting
    /// records.
    pub(crate) queue: Option<Arc<Queue>>,
}

impl<E> Counted<E> {
    async fn run<F: Future<Output = OTelSdkResult>>(&self, export: F) -> OTelSdkResult {
        let deadline = self.deadline;
        let bounded = async move {
            // Created on first poll, inside the runtime context InRuntime enters.
            match tokio::time::timeout(deadline, export).await {
                Ok(result) => result,
                Err(_) => Err(OTelSdkError::Timeout(deadline)),
            }
        };
        let result = InRuntime {
            handle: self.runtime.clone(),
            inner: Box::pin(bounded),
        }
        .await;
        self.failures.record(self.signal, &result);
        result
    }

    fn release(&self, records: usize) {
        if let Some(queue) = &self.queue {
            queue.release(records);
        }
    }
}

impl<E: std::fmt::Debug> std::fmt::Debug for Counted<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Counted")
            .field("inner", &self.inner)
            .field("signal", &self.signal)
            .finish_non_exhaustive()
    }
}

#[cfg(any(feature = "otlp-grpc", feature = "otlp-http"))]
impl Counted<super::transport::OtlpExporter> {
    /// Exports a request of the series store, bounded and counted like any export.
    pub(crate) async fn export_request(
        &self,
        request: opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest,
    ) -> OTelSdkResult {
        self.run(self.inner.export_metrics(request)).await
    }
}

impl<E: SpanExporter> SpanExporter for Counted<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let spans = batch.len();
        let result = self.run(self.inner.export(batch)).await;
        self.release(spans);
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

impl<E: LogExporter> LogExporter for Counted<E> {
    async fn export(&self, batch: LogBatch<'_>) -> OTelSdkResult {
        let records = batch.iter().count();
        let result = self.run(self.inner.export(batch)).await;
        self.release(records);
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}
