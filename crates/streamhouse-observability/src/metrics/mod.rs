//! Typed recorders, one per StreamHouse component.
//!
//! Label values from a closed set are enums ([`ProducerError`], [`ConsumerError`],
//! [`S3Operation`], [`S3Error`]). Hot paths bind a label set once (`producer().topic(..)`,
//! `consumer().group(..)`, `storage().partition(..)`) and then record at the cost of the
//! SDK's bound instruments. State is read by observable gauges from sources the owners
//! register; see [`GaugeRegistration`].

mod bound_cache;
mod consumer;
mod http;
mod instruments;
mod labels;
mod observed;
mod producer;
mod storage;
mod system;

use std::time::Instant;

pub(crate) use instruments::Instruments;

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
    pub(crate) fn new(instruments: &Instruments<'_>, started: Instant) -> Self {
        Recorders {
            producer: ProducerMetrics::new(instruments),
            consumer: ConsumerMetrics::new(instruments),
            storage: StorageMetrics::new(instruments),
            system: SystemMetrics::new(instruments.meter, started),
            http_server: HttpServerMetrics::new(instruments),
        }
    }
}
