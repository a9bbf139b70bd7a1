//! The StreamHouse telemetry SDK.
//!
//! StreamHouse components record through OpenTelemetry meters; [views] derived from
//! the [metric catalog](catalog) pin every exposed name and histogram bucket; a
//! [Prometheus bridge](prometheus) serves the text format at [`/metrics`](http).
//! [OTLP push](otlp) of metrics and spans is optional; [`logging`] bridges `tracing` spans to
//! OpenTelemetry and stamps log lines with trace ids; [`propagation`] carries trace context
//! through HTTP and record headers.
//! Components register readiness checks in a [`health::HealthRegistry`], served at
//! `/health/ready`; with the `object-store` feature, `object_store::InstrumentedObjectStore`
//! counts, times and traces every call to any `object_store` store.
//!
//! # Features
//!
//! | feature | what it adds | default |
//! |---|---|---|
//! | `axum` | the `/metrics` and health routers, `HttpServerLayer`, bearer auth and the admin listener ([`serve`]) | yes |
//! | `otlp-grpc` | OTLP push over gRPC | yes |
//! | `otlp-http` | OTLP push as protobuf over HTTP | yes |
//! | `tls` | HTTPS and mutual TLS for push and the admin listener (rustls with aws-lc-rs) | yes |
//! | `object-store` | `object_store::InstrumentedObjectStore` | no |
//!
//! With `default-features = false` the SDK is pull-only: it records and renders the exposition
//! ([`Telemetry::render`]), and links no HTTP server, OTLP transport or TLS stack.
//!
//! ```
//! use std::time::Duration;
//! use streamhouse_observability::{Telemetry, TelemetryConfig};
//!
//! let telemetry = Telemetry::new(TelemetryConfig::default()).unwrap();
//! let orders = telemetry.producer().topic("orders");
//! orders.record_batch(3, 300, Duration::from_millis(4));
//! let text = telemetry.render_prometheus();
//! assert!(text.contains(r#"streamhouse_producer_latency_seconds_bucket{topic="orders",le="0.005"} 1"#));
//! ```

#![warn(missing_docs)]

pub mod catalog;
pub mod config;
pub mod exemplars;
pub mod health;
#[cfg(feature = "axum")]
pub mod http;
pub mod logging;
pub mod metrics;
#[cfg(feature = "object-store")]
pub mod object_store;
pub mod otlp;
pub mod prometheus;
pub mod propagation;
pub mod sampling;
pub mod series;
#[cfg(feature = "axum")]
pub mod serve;
mod telemetry;
pub mod views;

pub use config::TelemetryConfig;
pub use telemetry::{SCOPE_NAME, Telemetry, TelemetryError};
