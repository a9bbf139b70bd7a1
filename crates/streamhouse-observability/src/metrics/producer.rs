//! Producer metrics: records, bytes, latency and batch size per topic; errors by type.

use std::sync::Arc;
use std::time::Duration;

use super::ProducerError;
use super::bound_cache::{BoundCache, Entry};
use super::instruments::{
    BoundCounter, BoundHistogram, Counter, Histogram, Instruments, LabeledCounter, attributes,
};
use super::value_bound::truncate_label_value;
use crate::catalog;

/// Records produce requests. Get it from [`Telemetry::producer`](crate::Telemetry::producer).
///
/// Topic names are cut to the configured label value length; label only topics that exist
/// (see `docs/labels.md`).
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
    /// Shared: every topic handle keeps one, for when its series is gone.
    inner: Arc<Recorders>,
}

#[derive(Debug)]
struct Recorders {
    records: Counter,
    bytes: Counter,
    latency: Histogram,
    batch_size: Histogram,
    errors: LabeledCounter<2>,
    topics: Arc<BoundCache<BoundBatch>>,
    max_value_bytes: usize,
}

impl ProducerMetrics {
    pub(crate) fn new(instruments: &Instruments<'_>) -> Self {
        let inner = Recorders {
            records: instruments.counter(&catalog::PRODUCER_RECORDS),
            bytes: instruments.counter(&catalog::PRODUCER_BYTES),
            latency: instruments.histogram(&catalog::PRODUCER_LATENCY),
            batch_size: instruments.histogram(&catalog::PRODUCER_BATCH_SIZE),
            errors: instruments.labeled(&catalog::PRODUCER_ERRORS),
            topics: instruments.cache(&[catalog::label::TOPIC], true),
            max_value_bytes: instruments.max_label_value_bytes,
        };
        ProducerMetrics {
            inner: Arc::new(inner),
        }
    }

    /// Resolves the label set of `topic` once; the handle then records at bound-instrument cost.
    pub fn topic(&self, topic: &str) -> TopicProducerMetrics {
        let topic = truncate_label_value(topic, self.inner.max_value_bytes);
        let entry =
            self.inner
                .topics
                .entry(&[topic], || self.bind_batch(topic), || self.bind_overflow());
        TopicProducerMetrics {
            batch: entry.value().clone(),
            entry,
            producer: self.clone(),
            topic: topic.into(),
        }
    }

    /// Records one successful produce request of `records` records and `bytes` payload bytes.
    /// Binds `topic` on first use, so later calls cost a lookup plus the bound records.
    #[inline]
    pub fn record_batch(&self, topic: &str, records: u64, bytes: u64, latency: Duration) {
        let topic = truncate_label_value(topic, self.inner.max_value_bytes);
        self.inner.topics.with(
            &[topic],
            || self.bind_batch(topic),
            || self.bind_overflow(),
            |batch| batch.record(records, bytes, latency),
        );
    }

    fn bind_overflow(&self) -> BoundBatch {
        BoundBatch {
            records: self.inner.records.bind_overflow(),
            bytes: self.inner.bytes.bind_overflow(),
            latency: self.inner.latency.bind_overflow(),
            batch_size: self.inner.batch_size.bind_overflow(),
        }
    }

    fn bind_batch(&self, truncated_topic: &str) -> BoundBatch {
        let attributes = attributes(catalog::PRODUCER_RECORDS.labels, [truncated_topic]);
        BoundBatch {
            records: self.inner.records.bind(&attributes),
            bytes: self.inner.bytes.bind(&attributes),
            latency: self.inner.latency.bind(&attributes),
            batch_size: self.inner.batch_size.bind(&attributes),
        }
    }

    /// Counts one failed produce request.
    #[inline]
    pub fn record_error(&self, topic: &str, error: ProducerError) {
        self.inner.errors.add([topic, error.as_str()], 1);
    }
}

/// The four instruments of a successful produce request, bound to one topic.
#[derive(Debug, Clone)]
struct BoundBatch {
    records: BoundCounter,
    bytes: BoundCounter,
    latency: BoundHistogram,
    batch_size: BoundHistogram,
}

impl BoundBatch {
    #[inline]
    fn record(&self, records: u64, bytes: u64, latency: Duration) {
        self.records.add(records);
        self.bytes.add(bytes);
        self.latency.record(latency.as_secs_f64());
        self.batch_size.record(records as f64);
    }
}

/// Producer metrics bound to one topic. Cheap to clone; share it across tasks.
///
/// When the topic's series are removed ([`Telemetry::remove_series`](crate::Telemetry::remove_series))
/// or idle, the handle records through the topic cache from then on, so its series start
/// again from zero.
#[derive(Debug, Clone)]
pub struct TopicProducerMetrics {
    /// The entry's handles, kept here too: the record does not wait for the entry's state.
    batch: BoundBatch,
    entry: Arc<Entry<BoundBatch>>,
    producer: ProducerMetrics,
    topic: Arc<str>,
}

impl TopicProducerMetrics {
    /// Records one successful produce request.
    #[inline]
    pub fn record_batch(&self, records: u64, bytes: u64, latency: Duration) {
        match self.entry.use_live() {
            true => self.batch.record(records, bytes, latency),
            false => self
                .producer
                .record_batch(&self.topic, records, bytes, latency),
        }
    }

    /// Counts one failed produce request on this topic.
    #[inline]
    pub fn record_error(&self, error: ProducerError) {
        self.producer.record_error(&self.topic, error);
    }
}
