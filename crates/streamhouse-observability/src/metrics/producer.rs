//! Producer metrics: records, bytes, latency and batch size per topic; errors by type.

use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::Meter;

use super::instruments::{BoundCounter, BoundHistogram, Counter, Histogram};

use super::ProducerError;
use crate::catalog::{self, label};
use crate::exemplars::ExemplarStore;

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
    errors: Counter,
}

impl ProducerMetrics {
    pub(crate) fn new(meter: &Meter, exemplars: &ExemplarStore) -> Self {
        ProducerMetrics {
            records: Counter::new(meter, &catalog::PRODUCER_RECORDS, exemplars),
            bytes: Counter::new(meter, &catalog::PRODUCER_BYTES, exemplars),
            latency: Histogram::new(meter, &catalog::PRODUCER_LATENCY, exemplars),
            batch_size: Histogram::new(meter, &catalog::PRODUCER_BATCH_SIZE, exemplars),
            errors: Counter::new(meter, &catalog::PRODUCER_ERRORS, exemplars),
        }
    }

    /// Resolves the label set of `topic` once; the handle then records at bound-instrument cost.
    pub fn topic(&self, topic: &str) -> TopicProducerMetrics {
        let attributes = [KeyValue::new(label::TOPIC, topic.to_owned())];
        TopicProducerMetrics {
            records: self.records.bind(&attributes),
            bytes: self.bytes.bind(&attributes),
            latency: self.latency.bind(&attributes),
            batch_size: self.batch_size.bind(&attributes),
            errors: self.errors.clone(),
            topic: attributes[0].clone(),
        }
    }

    /// Records one successful produce request of `records` records and `bytes` payload bytes.
    pub fn record_batch(&self, topic: &str, records: u64, bytes: u64, latency: Duration) {
        let attributes = [KeyValue::new(label::TOPIC, topic.to_owned())];
        self.records.add(records, &attributes);
        self.bytes.add(bytes, &attributes);
        self.latency.record(latency.as_secs_f64(), &attributes);
        self.batch_size.record(records as f64, &attributes);
    }

    /// Counts one failed produce request.
    pub fn record_error(&self, topic: &str, error: ProducerError) {
        self.errors.add(
            1,
            &[
                KeyValue::new(label::TOPIC, topic.to_owned()),
                KeyValue::new(label::ERROR_TYPE, error.as_str()),
            ],
        );
    }
}

/// Producer metrics bound to one topic. Cheap to clone; share it across tasks.
#[derive(Debug, Clone)]
pub struct TopicProducerMetrics {
    records: BoundCounter,
    bytes: BoundCounter,
    latency: BoundHistogram,
    batch_size: BoundHistogram,
    errors: Counter,
    topic: KeyValue,
}

impl TopicProducerMetrics {
    /// Records one successful produce request.
    pub fn record_batch(&self, records: u64, bytes: u64, latency: Duration) {
        self.records.add(records);
        self.bytes.add(bytes);
        self.latency.record(latency.as_secs_f64());
        self.batch_size.record(records as f64);
    }

    /// Counts one failed produce request on this topic.
    pub fn record_error(&self, error: ProducerError) {
        self.errors.add(
            1,
            &[
                self.topic.clone(),
                KeyValue::new(label::ERROR_TYPE, error.as_str()),
            ],
        );
    }
}
