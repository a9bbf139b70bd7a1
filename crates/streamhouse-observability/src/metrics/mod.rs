//! Typed recorders, one per StreamHouse component.
//!
//! Label values from a closed set are enums ([`ProducerError`], [`ConsumerError`],
//! [`S3Operation`], [`S3Error`]). Hot paths bind a label set once (`producer().topic(..)`,
//! `consumer().group(..)`, `storage().partition(..)`) and then record at the cost of the
//! SDK's bound instruments. State is read by observable gauges from sources the owners
//! register; see [`GaugeRegistration`].

mod consumer;
mod http;
mod instruments;
mod labels;
mod observed;
mod producer;
mod storage;
mod system;

use std::time::Instant;

use opentelemetry::metrics::Meter;

use crate::exemplars::ExemplarStore;

pub use consumer::{ConsumerMetrics, GroupConsumerMetrics, LagReport};
pub use http::HttpServerMetrics;
pub use labels::{ConsumerError, ProducerError, S3Error, S3Operation};
pub use observed::GaugeRegistration;
pub use producer::{ProducerMetrics, TopicProducerMetrics};
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
}

impl Recorders {
    pub(crate) fn new(meter: &Meter, started: Instant, exemplars: &ExemplarStore) -> Self {
        Recorders {
            producer: ProducerMetrics::new(meter, exemplars),
            consumer: ConsumerMetrics::new(meter, exemplars),
            storage: StorageMetrics::new(meter, exemplars),
            system: SystemMetrics::new(meter, started),
            http_server: HttpServerMetrics::new(meter, exemplars),
        }
    }
}
