//! Producer metrics: records, bytes, latency and batch size per topic; errors by type.

use std::sync::Arc;
use std::time::Duration;

use super::ProducerError;
use super::bound_cache::BoundCache;
use super::instruments::{
    BoundCounter, BoundHistogram, Counter, Histogram, Instruments, LabeledCounter, attributes,
};
use crate::catalog;

/// Records produce requests. Get it from [`Telemetry::producer`](crate::Telemetry::producer).
///
/// ```
/// use std::time::Duration;
/// use streamhouse_observability::{Telemetry, TelemetryConfig, metrics::ProducerError};
///
/// let telemetry = Telemetry::new(TelemetryConfig::default()).unwrap();
/// let orders = telemetry.producer().topic("orders"); // bind once, on the hot path
/// orders.record_batch(100, 12_800, Duration::from_millis(3));
/// telemetry.producer().record_error("orders", ProducerError::RecordTooLarge);
/// assert!(telemetry.render_prometheus().contains(r#"streamhouse_producer_records_total{topic="orders"} 100"#));
/// ```
#[derive(Debug, Clone)]
pub struct ProducerMetrics {
    records: Counter,
    bytes: Counter,
    latency: Histogram,
    batch_size: Histogram,
    errors: LabeledCounter<2>,
    topics: Arc<BoundCache<TopicProducerMetrics>>,
}

impl ProducerMetrics {
    pub(crate) fn new(instruments: &Instruments<'_>) -> Self {
        ProducerMetrics {
            records: instruments.counter(&catalog::PRODUCER_RECORDS),
            bytes: instruments.counter(&catalog::PRODUCER_BYTES),
            latency: instruments.histogram(&catalog::PRODUCER_LATENCY),
            batch_size: instruments.histogram(&catalog::PRODUCER_BATCH_SIZE),
            errors: instruments.labeled(&catalog::PRODUCER_ERRORS),
            topics: instruments.cache(),
        }
    }

    /// Resolves the label set of `topic` once; the handle then records at bound-instrument cost.
    pub fn topic(&self, topic: &str) -> TopicProducerMetrics {
        let attributes = attributes(catalog::PRODUCER_RECORDS.labels, [topic]);
        TopicProducerMetrics {
            records: self.records.bind(&attributes),
            bytes: self.bytes.bind(&attributes),
            latency: self.latency.bind(&attributes),
            batch_size: self.batch_size.bind(&attributes),
            errors: self.errors.clone(),
            topic: topic.into(),
        }
    }

    /// Records one successful produce request of `records` records and `bytes` payload bytes.
    /// Binds `topic` on first use, so later calls cost a lookup plus the bound records.
    #[inline]
    pub fn record_batch(&self, topic: &str, records: u64, bytes: u64, latency: Duration) {
        let bound = self.topics.with(
            &[topic],
            || self.topic(topic),
            |t| t.record_batch(records, bytes, latency),
        );
        if bound.is_none() {
            let attributes = attributes(catalog::PRODUCER_RECORDS.labels, [topic]);
            self.records.add(records, &attributes);
            self.bytes.add(bytes, &attributes);
            self.latency.record(latency.as_secs_f64(), &attributes);
            self.batch_size.record(records as f64, &attributes);
        }
    }

    /// Counts one failed produce request.
    #[inline]
    pub fn record_error(&self, topic: &str, error: ProducerError) {
        self.errors.add([topic, error.as_str()], 1);
    }
}

/// Producer metrics bound to one topic. Cheap to clone; share it across tasks.
#[derive(Debug, Clone)]
pub struct TopicProducerMetrics {
    records: BoundCounter,
    bytes: BoundCounter,
    latency: BoundHistogram,
    batch_size: BoundHistogram,
    errors: LabeledCounter<2>,
    topic: Arc<str>,
}

impl TopicProducerMetrics {
    /// Records one successful produce request.
    #[inline]
    pub fn record_batch(&self, records: u64, bytes: u64, latency: Duration) {
        self.records.add(records);
        self.bytes.add(bytes);
        self.latency.record(latency.as_secs_f64());
        self.batch_size.record(records as f64);
    }

    /// Counts one failed produce request on this topic.
    #[inline]
    pub fn record_error(&self, error: ProducerError) {
        self.errors.add([&self.topic, error.as_str()], 1);
    }
}
