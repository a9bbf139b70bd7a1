//! Consumer metrics: records per group, lag per partition, rebalances, errors by type.

use opentelemetry::KeyValue;
use opentelemetry::metrics::Meter;

use super::instruments::{BoundCounter, Counter};

use super::ConsumerError;
use super::observed::{Emit, GaugeRegistration, GaugeSources};
use crate::catalog::{self, label};
use crate::exemplars::ExemplarStore;

/// Records consumer activity. Get it from [`Telemetry::consumer`](crate::Telemetry::consumer).
///
/// Lag is read, not pushed: register a source that reports the current lag of every
/// partition a group tracks. When the group leaves, drop its registration (or stop reporting
/// it) and its series are gone from the next scrape.
///
/// ```
/// use streamhouse_observability::{Telemetry, TelemetryConfig};
///
/// let telemetry = Telemetry::new(TelemetryConfig::default()).unwrap();
/// let lag = telemetry.consumer().observe_lag(|report| {
///     report.lag("orders", 0, "analytics", 500);
/// });
/// let text = telemetry.render_prometheus();
/// assert!(text.contains(r#"streamhouse_consumer_lag{consumer_group="analytics",partition="0",topic="orders"} 500"#));
/// drop(lag);
/// assert!(!telemetry.render_prometheus().contains("analytics"));
/// ```
#[derive(Clone)]
pub struct ConsumerMetrics {
    records: Counter,
    rebalances: Counter,
    errors: Counter,
    lag: GaugeSources,
}

impl std::fmt::Debug for ConsumerMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsumerMetrics").finish_non_exhaustive()
    }
}

impl ConsumerMetrics {
    pub(crate) fn new(meter: &Meter, exemplars: &ExemplarStore) -> Self {
        let lag = GaugeSources::default();
        lag.register_gauge(meter, &catalog::CONSUMER_LAG);
        ConsumerMetrics {
            records: Counter::new(meter, &catalog::CONSUMER_RECORDS, exemplars),
            rebalances: Counter::new(meter, &catalog::CONSUMER_REBALANCES, exemplars),
            errors: Counter::new(meter, &catalog::CONSUMER_ERRORS, exemplars),
            lag,
        }
    }

    /// Resolves the label set of (`topic`, `group`) once for the hot path.
    pub fn group(&self, topic: &str, group: &str) -> GroupConsumerMetrics {
        let attributes = group_attributes(topic, group);
        GroupConsumerMetrics {
            records: self.records.bind(&attributes),
        }
    }

    /// Counts `records` delivered to `group` from `topic`.
    pub fn record_records(&self, topic: &str, group: &str, records: u64) {
        self.records.add(records, &group_attributes(topic, group));
    }

    /// Counts one rebalance of `group`.
    pub fn record_rebalance(&self, group: &str) {
        self.rebalances
            .add(1, &[KeyValue::new(label::CONSUMER_GROUP, group.to_owned())]);
    }

    /// Counts one failed consumer request.
    pub fn record_error(&self, topic: &str, group: &str, error: ConsumerError) {
        let [topic, group] = group_attributes(topic, group);
        self.errors.add(
            1,
            &[
                topic,
                group,
                KeyValue::new(label::ERROR_TYPE, error.as_str()),
            ],
        );
    }

    /// Registers a lag source, called at every collection.
    pub fn observe_lag(
        &self,
        source: impl Fn(&mut LagReport<'_>) + Send + Sync + 'static,
    ) -> GaugeRegistration {
        self.lag.add(move |emit| source(&mut LagReport { emit }))
    }
}

fn group_attributes(topic: &str, group: &str) -> [KeyValue; 2] {
    [
        KeyValue::new(label::TOPIC, topic.to_owned()),
        KeyValue::new(label::CONSUMER_GROUP, group.to_owned()),
    ]
}

/// Consumer metrics bound to one (topic, group).
#[derive(Debug, Clone)]
pub struct GroupConsumerMetrics {
    records: BoundCounter,
}

impl GroupConsumerMetrics {
    /// Counts `records` delivered.
    pub fn record_records(&self, records: u64) {
        self.records.add(records);
    }
}

/// Collects lag observations during one collection.
pub struct LagReport<'a> {
    emit: Emit<'a>,
}

impl LagReport<'_> {
    /// Reports the lag (high watermark minus committed offset) of one partition for one group.
    pub fn lag(&mut self, topic: &str, partition: u32, group: &str, lag: u64) {
        (self.emit)(
            lag,
            &[
                KeyValue::new(label::TOPIC, topic.to_owned()),
                KeyValue::new(label::PARTITION, partition.to_string()),
                KeyValue::new(label::CONSUMER_GROUP, group.to_owned()),
            ],
        );
    }
}
