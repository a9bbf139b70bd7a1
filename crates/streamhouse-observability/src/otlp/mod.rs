//! Optional OTLP push of metrics, spans and logs, next to the Prometheus bridge on the same
//! providers.
//!
//! Metrics are pushed from the series store by a thread of our own (`push`), with their
//! exemplars, cumulative or delta; spans and log records go through the SDK's batch
//! processors (bounded queues, dropped records counted). All run on their own threads, so a
//! slow or absent collector never blocks recording. The transports are our own (see
//! `transport`): gRPC with the `otlp-grpc` feature, HTTP/protobuf with `otlp-http`, TLS and
//! mutual TLS through rustls with `tls`. A config built in code is used exactly as given;
//! only [`TelemetryConfig::from_env`](crate::TelemetryConfig::from_env) reads the
//! environment. Every exporter is wrapped to count failed exports in
//! [`TELEMETRY_EXPORT_FAILURES`](crate::catalog::TELEMETRY_EXPORT_FAILURES), visible on
//! `/metrics`. The exporters retry on the next interval by themselves when the collector
//! comes back.
//!
//! ```
//! use std::time::Duration;
//! use streamhouse_observability::otlp::{OtlpConfig, OtlpProtocol};
//! use streamhouse_observability::{Telemetry, TelemetryConfig};
//!
//! // Nothing listens there: recording and shutdown still work, failures are counted.
//! let otlp = OtlpConfig::default()
//!     .with_endpoint("http://127.0.0.1:9", OtlpProtocol::HttpProtobuf)
//!     .map_exporters(|e| e.with_timeout(Duration::from_millis(200)));
//! let telemetry = Telemetry::new(
//!     TelemetryConfig::default()
//!         .with_otlp(otlp)
//!         .with_shutdown_timeout(Duration::from_secs(2)),
//! )
//! .unwrap();
//! telemetry.producer().record_batch("orders", 1, 10, Duration::from_millis(1));
//! let _ = telemetry.shutdown();
//! ```

// Without a transport the push machinery is compiled (its types are part of the handle) but
// never built.
#![cfg_attr(
    not(any(feature = "otlp-grpc", feature = "otlp-http")),
    allow(dead_code)
)]

mod bounded;
mod config;
mod counted;
mod env;
mod exporters;
#[cfg(any(feature = "otlp-grpc", feature = "otlp-http"))]
mod push;
mod runtime;
#[cfg(any(feature = "otlp-grpc", feature = "otlp-http"))]
mod store_request;
mod transport;

pub use config::{
    BatchConfig, DEFAULT_BATCH_EXPORT_TIMEOUT, DEFAULT_EXPORT_TIMEOUT,
    DEFAULT_MAX_EXPORT_BATCH_SIZE, DEFAULT_METRIC_EXPORT_INTERVAL, DEFAULT_SPAN_QUEUE_SIZE,
    OtlpConfig, OtlpExporterConfig, OtlpProtocol, OtlpTlsConfig, PemFile, Signal,
};
pub(crate) use counted::ExportFailures;
pub(crate) use exporters::build_pipelines;
pub(crate) use runtime::ExportRuntime;
