//! System gauges: connections, topics, partitions, agents and uptime, read at collection.

use std::time::Instant;

use opentelemetry::KeyValue;
use opentelemetry::metrics::Meter;

use super::observed::{Emit, GaugeRegistration, GaugeSources};
use super::value_bound::truncate_label_value;
use crate::catalog::{self, label};

/// Registers the sources of system-wide state. Get it from
/// [`Telemetry::system`](crate::Telemetry::system).
///
/// Uptime needs no source: it counts from the creation of the telemetry handle.
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use streamhouse_observability::{Telemetry, TelemetryConfig};
///
/// let telemetry = Telemetry::new(TelemetryConfig::default()).unwrap();
/// let connections = Arc::new(AtomicU64::new(0));
/// let open = Arc::clone(&connections);
/// let _registration = telemetry
///     .system()
///     .observe_connections(move || open.load(Ordering::Relaxed));
/// connections.fetch_add(2, Ordering::Relaxed);
/// assert!(telemetry.render_prometheus().contains("streamhouse_connections_active 2"));
/// ```
#[derive(Clone)]
pub struct SystemMetrics {
    connections: GaugeSources,
    partitions: GaugeSources,
    topics: GaugeSources,
    agents: GaugeSources,
    max_value_bytes: usize,
}

impl std::fmt::Debug for SystemMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SystemMetrics").finish_non_exhaustive()
    }
}

impl SystemMetrics {
    pub(crate) fn new(meter: &Meter, started: Instant, max_value_bytes: usize) -> Self {
        let gauge = |def| {
            let sources = GaugeSources::default();
            sources.register_gauge(meter, def);
            sources
        };
        meter
            .f64_observable_gauge(catalog::UPTIME.otel_name)
            .with_unit(catalog::UPTIME.unit)
            .with_description(catalog::UPTIME.description)
            .with_callback(move |observer| observer.observe(started.elapsed().as_secs_f64(), &[]))
            .build();
        SystemMetrics {
            connections: gauge(&catalog::CONNECTIONS_ACTIVE),
            partitions: gauge(&catalog::PARTITIONS),
            topics: gauge(&catalog::TOPICS),
            agents: gauge(&catalog::AGENTS_ACTIVE),
            max_value_bytes,
        }
    }

    /// Registers the source of the number of open client connections.
    pub fn observe_connections(
        &self,
        source: impl Fn() -> u64 + Send + Sync + 'static,
    ) -> GaugeRegistration {
        self.connections.add(move |emit| emit(source(), &[]))
    }

    /// Registers the source of the number of topics.
    pub fn observe_topics(
        &self,
        source: impl Fn() -> u64 + Send + Sync + 'static,
    ) -> GaugeRegistration {
        self.topics.add(move |emit| emit(source(), &[]))
    }

    /// Registers the source of the number of running agents.
    pub fn observe_agents(
        &self,
        source: impl Fn() -> u64 + Send + Sync + 'static,
    ) -> GaugeRegistration {
        self.agents.add(move |emit| emit(source(), &[]))
    }

    /// Registers a source that reports the partition count of every topic.
    pub fn observe_partitions(
        &self,
        source: impl Fn(&mut PartitionReport<'_>) + Send + Sync + 'static,
    ) -> GaugeRegistration {
        PartitionReport::observe(&self.partitions, self.max_value_bytes, source)
    }
}

/// Collects per-topic partition counts during one collection.
pub struct PartitionReport<'a> {
    emit: Emit<'a>,
    max_value_bytes: usize,
}

impl PartitionReport<'_> {
    /// Registers `source` in `sources`, handed a report cutting topics to `max_value_bytes`.
    pub(super) fn observe(
        sources: &GaugeSources,
        max_value_bytes: usize,
        source: impl Fn(&mut PartitionReport<'_>) + Send + Sync + 'static,
    ) -> GaugeRegistration {
        sources.add(move |emit| {
            source(&mut PartitionReport {
                emit,
                max_value_bytes,
            })
        })
    }

    /// Reports that `topic` (cut to the label value length) has `partitions` partitions.
    pub fn partitions(&mut self, topic: &str, partitions: u64) {
        let topic = truncate_label_value(topic, self.max_value_bytes);
        (self.emit)(partitions, &[KeyValue::new(label::TOPIC, topic.to_owned())]);
    }
}
