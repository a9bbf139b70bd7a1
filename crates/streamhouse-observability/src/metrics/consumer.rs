//! Consumer metrics: records per group, lag per partition, rebalances, errors by type.

use super::ConsumerError;
use super::instruments::{HeldCounter, Instruments, LabeledCounter, attributes};
use super::observed::{Emit, GaugeRegistration, GaugeSources};
use super::value_bound::truncate_label_value;
use crate::catalog;

/// Records consumer activity. Get it from [`Telemetry::consumer`](crate::Telemetry::consumer).
///
/// Topic names and group ids are cut to the configured label value length; label only
/// topics and groups that exist (see `docs/labels.md`).
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
    records: LabeledCounter<2>,
    rebalances: LabeledCounter<1>,
    errors: LabeledCounter<3>,
    lag: GaugeSources,
    max_value_bytes: usize,
}

impl std::fmt::Debug for ConsumerMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsumerMetrics").finish_non_exhaustive()
    }
}

impl ConsumerMetrics {
    pub(crate) fn new(instruments: &Instruments<'_>) -> Self {
        let lag = GaugeSources::default();
        lag.register_gauge(instruments.meter, &catalog::CONSUMER_LAG);
        ConsumerMetrics {
            records: instruments.labeled(&catalog::CONSUMER_RECORDS),
            rebalances: instruments.labeled(&catalog::CONSUMER_REBALANCES),
            errors: instruments.labeled(&catalog::CONSUMER_ERRORS),
            lag,
            max_value_bytes: instruments.max_label_value_bytes,
        }
    }

    /// Resolves the label set of (`topic`, `group`) once for the hot path.
    pub fn group(&self, topic: &str, group: &str) -> GroupConsumerMetrics {
        GroupConsumerMetrics {
            records: self.records.hold([topic, group]),
        }
    }

    /// Counts `records` delivered to `group` from `topic`.
    #[inline]
    pub fn record_records(&self, topic: &str, group: &str, records: u64) {
        self.records.add([topic, group], records);
    }

    /// Counts one rebalance of `group`.
    #[inline]
    pub fn record_rebalance(&self, group: &str) {
        self.rebalances.add([group], 1);
    }

    /// Counts one failed consumer request.
    #[inline]
    pub fn record_error(&self, topic: &str, group: &str, error: ConsumerError) {
        self.errors.add([topic, group, error.as_str()], 1);
    }

    /// Registers a lag source, called at every collection.
    pub fn observe_lag(
        &self,
        source: impl Fn(&mut LagReport<'_>) + Send + Sync + 'static,
    ) -> GaugeRegistration {
        let max_value_bytes = self.max_value_bytes;
        self.lag.add(move |emit| {
            source(&mut LagReport {
                emit,
                max_value_bytes,
            })
        })
    }
}

/// Consumer metrics bound to one (topic, group).
#[derive(Debug, Clone)]
pub struct GroupConsumerMetrics {
    records: HeldCounter<2>,
}

impl GroupConsumerMetrics {
    /// Counts `records` delivered.
    #[inline]
    pub fn record_records(&self, records: u64) {
        self.records.add(records);
    }
}

/// Collects lag observations during one collection.
pub struct LagReport<'a> {
    emit: Emit<'a>,
    max_value_bytes: usize,
}

impl LagReport<'_> {
    /// Reports the lag (high watermark minus committed offset) of one partition for one group.
    pub fn lag(&mut self, topic: &str, partition: u32, group: &str, lag: u64) {
        let mut partition_buffer = itoa::Buffer::new();
        let values = [topic, partition_buffer.format(partition), group]
            .map(|v| truncate_label_value(v, self.max_value_bytes));
        (self.emit)(lag, &attributes(catalog::CONSUMER_LAG.labels, values));
    }
}
