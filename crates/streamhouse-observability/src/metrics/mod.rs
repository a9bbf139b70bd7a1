//! Typed recorders, one per StreamHouse component.
//!
//! Label values from a closed set are enums ([`ProducerError`], [`ConsumerError`],
//! [`S3Operation`], [`S3Error`]). Hot paths bind a label set once (`producer().topic(..)`,
//! `consumer().group(..)`, `storage().partition(..)`) and then record at the cost of the
//! SDK's bound instruments. State is read by observable gauges from sources the owners
//! register; see [`GaugeRegistration`].
//!
//! Every label value a caller passes (topic, group, partition, method, route) is cut to
//! [`TelemetryConfig::max_label_value_bytes`](crate::TelemetryConfig::max_label_value_bytes)
//! on a character boundary, and past the cardinality limit new label sets share the
//! `otel_metric_overflow="true"` series, at no extra cost per call. How a component should
//! label untrusted input (validate first, label only real things, a fixed placeholder for
//! the rest) is in `docs/labels.md`.

pub(crate) mod bound_cache;
mod consumer;
mod http;
mod instruments;
mod labels;
mod observed;
mod process;
mod producer;
mod scrape;
mod storage;
mod system;
pub(crate) mod value_bound;

use std::time::Instant;

pub(crate) use instruments::Instruments;
pub(crate) use value_bound::{set_span_value_bytes, span_value_bytes, truncate_label_value};

pub use consumer::{ConsumerMetrics, GroupConsumerMetrics, LagReport};
pub use http::{
    ActiveRequest, DEFAULT_KNOWN_METHODS, HttpOutcome, HttpServerConfig, HttpServerMetrics,
    KnownMethods, MAX_KNOWN_METHODS, MAX_METHOD_BYTES, OTHER_METHOD,
};
pub use labels::{ConsumerError, ProducerError, S3Error, S3Operation, StorageFault};
pub use observed::GaugeRegistration;
pub use process::ProcessMetrics;
pub use producer::{ProducerMetrics, TopicProducerMetrics};
pub use scrape::{ScrapeMetrics, ScrapeStop};
pub use storage::{PartitionStorageMetrics, StorageMetrics};
pub use system::{PartitionReport, SystemMetrics};

/// Every recorder, built once per telemetry handle.
#[derive(Debug, Clone)]
pub(crate) struct Recorders {
    pub(crate) producer: ProducerMetrics,
    pub(crate) consumer: ConsumerMetrics,
    pub(crate) storage: StorageMetrics,
    pub(crate) system: SystemMetrics,
    pub(crate) http_server: HttpServerMetrics,
    pub(crate) process: ProcessMetrics,
}

impl Recorders {
    pub(crate) fn new(
        instruments: &Instruments<'_>,
        started: Instant,
        http_server: &HttpServerConfig,
    ) -> Self {
        Recorders {
            producer: ProducerMetrics::new(instruments),
            consumer: ConsumerMetrics::new(instruments),
            storage: StorageMetrics::new(instruments),
            system: SystemMetrics::new(
                instruments.meter,
                started,
                instruments.max_label_value_bytes,
            ),
            http_server: HttpServerMetrics::new(instruments, http_server),
            process: ProcessMetrics::new(instruments.meter),
        }
    }
}
