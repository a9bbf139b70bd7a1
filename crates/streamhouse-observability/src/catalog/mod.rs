//! The metric catalog: the one table of every metric StreamHouse exposes.
//!
//! Each [`MetricDef`] names an OpenTelemetry instrument (dotted name, UCUM unit) and the
//! Prometheus name it is pinned to. Views, recorders, docs and tests are derived from this
//! table; no other file spells a metric name. The Prometheus names are a contract with
//! dashboards and alerts (see the seed document): never rename one. Components outside this
//! crate declare their own entries and register them in a [`Catalog`].
//!
//! ```
//! use streamhouse_observability::catalog::{self, MetricKind};
//!
//! let latency = catalog::PRODUCER_LATENCY;
//! assert_eq!(latency.prometheus_name, "streamhouse_producer_latency_seconds");
//! assert_eq!(latency.kind, MetricKind::Histogram);
//! assert!(catalog::by_prometheus_name("streamhouse_topics_total").is_some());
//! ```

mod registry;

#[cfg(test)]
pub(crate) use registry::family_type;
pub use registry::{Catalog, CatalogError};

/// How a metric is recorded and exposed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetricKind {
    /// A monotonic counter: an OTel `Counter<u64>`, a Prometheus `counter`.
    Counter,
    /// A histogram with explicit buckets: an OTel `Histogram<f64>`, a Prometheus `histogram`.
    Histogram,
    /// A value read from state when scraped: an OTel observable gauge, a Prometheus `gauge`.
    Gauge,
}

impl MetricKind {
    /// The Prometheus `# TYPE` of this kind.
    pub const fn prometheus_type(self) -> &'static str {
        match self {
            MetricKind::Counter => "counter",
            MetricKind::Histogram => "histogram",
            MetricKind::Gauge => "gauge",
        }
    }
}

/// One metric of the catalog.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MetricDef {
    /// OpenTelemetry instrument name, dotted (`streamhouse.producer.latency`).
    pub otel_name: &'static str,
    /// The exposed name every reader carries, pinned by a view.
    pub prometheus_name: &'static str,
    /// Instrument kind.
    pub kind: MetricKind,
    /// UCUM unit (`s`, `By`, `{record}`).
    pub unit: &'static str,
    /// Help text.
    pub description: &'static str,
    /// Attribute keys, in exposition order. Any other attribute is dropped by the view.
    /// Semantic-convention keys are dotted (`http.route`); Prometheus exposes them with
    /// underscores (`http_route`), OTLP as they are.
    pub labels: &'static [&'static str],
    /// Histogram bucket upper bounds, ascending; empty for other kinds.
    pub buckets: &'static [f64],
}

/// Label keys used by the catalog.
pub mod label {
    /// Topic name.
    pub const TOPIC: &str = "topic";
    /// Partition number, as a decimal string.
    pub const PARTITION: &str = "partition";
    /// Consumer group id.
    pub const CONSUMER_GROUP: &str = "consumer_group";
    /// A closed set of error kinds; see the error enums in [`crate::metrics`].
    pub const ERROR_TYPE: &str = "error_type";
    /// Object store operation; see [`crate::metrics::S3Operation`].
    pub const OPERATION: &str = "operation";
    /// The telemetry signal an exporter carries: `metrics`, `traces` or `logs`.
    pub const SIGNAL: &str = "signal";
    /// What recovery or a read found wrong in the store; see [`crate::metrics::StorageFault`].
    pub const FAULT: &str = "fault";
    /// Why a series was left out of `/metrics` (see `docs/exposition.md`), or why a scrape
    /// stopped before its end (`deadline`, `client_gone`).
    pub const REASON: &str = "reason";
    /// HTTP request method (semantic conventions).
    pub const HTTP_REQUEST_METHOD: &str = "http.request.method";
    /// Matched route template, such as `/topics/{topic}` (semantic conventions).
    pub const HTTP_ROUTE: &str = "http.route";
    /// HTTP response status code (semantic conventions).
    pub const HTTP_RESPONSE_STATUS_CODE: &str = "http.response.status_code";
    /// Request scheme, `http` or `https` (semantic conventions).
    pub const URL_SCHEME: &str = "url.scheme";
    /// Why an HTTP request failed: the status code as a string for 5xx answers, or a
    /// closed set of transport failures (semantic conventions' `error.type`); absent on
    /// success.
    pub const HTTP_ERROR_TYPE: &str = "error.type";
}

use label::{
    CONSUMER_GROUP, ERROR_TYPE, FAULT, HTTP_ERROR_TYPE, HTTP_REQUEST_METHOD,
    HTTP_RESPONSE_STATUS_CODE, HTTP_ROUTE, OPERATION, PARTITION, REASON, SIGNAL, TOPIC, URL_SCHEME,
};

/// Produce latency buckets, 1 ms to 5 s (seed contract).
pub const PRODUCER_LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];
/// Records per produce request (seed contract).
pub const PRODUCER_BATCH_SIZE_BUCKETS: &[f64] =
    &[1.0, 10.0, 50.0, 100.0, 500.0, 1000.0, 5000.0, 10000.0];
/// Object store latency buckets, 10 ms to 10 s (seed contract).
pub const S3_LATENCY_BUCKETS: &[f64] = &[0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// HTTP server duration buckets, 5 ms to 10 s (semantic conventions).
pub const HTTP_SERVER_DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

impl MetricDef {
    /// A counter entry (no buckets).
    pub const fn counter(
        otel_name: &'static str,
        prometheus_name: &'static str,
        unit: &'static str,
        description: &'static str,
        labels: &'static [&'static str],
    ) -> MetricDef {
        let kind = MetricKind::Counter;
        Self::entry(
            otel_name,
            prometheus_name,
            kind,
            unit,
            description,
            labels,
            &[],
        )
    }

    /// A gauge entry (no buckets).
    pub const fn gauge(
        otel_name: &'static str,
        prometheus_name: &'static str,
        unit: &'static str,
        description: &'static str,
        labels: &'static [&'static str],
    ) -> MetricDef {
        let kind = MetricKind::Gauge;
        Self::entry(
            otel_name,
            prometheus_name,
            kind,
            unit,
            description,
            labels,
            &[],
        )
    }

    /// A histogram entry with bucket upper bounds `buckets`, ascending.
    pub const fn histogram(
        otel_name: &'static str,
        prometheus_name: &'static str,
        unit: &'static str,
        description: &'static str,
        labels: &'static [&'static str],
        buckets: &'static [f64],
    ) -> MetricDef {
        let kind = MetricKind::Histogram;
        Self::entry(
            otel_name,
            prometheus_name,
            kind,
            unit,
            description,
            labels,
            buckets,
        )
    }

    const fn entry(
        otel_name: &'static str,
        prometheus_name: &'static str,
        kind: MetricKind,
        unit: &'static str,
        description: &'static str,
        labels: &'static [&'static str],
        buckets: &'static [f64],
    ) -> MetricDef {
        MetricDef {
            otel_name,
            prometheus_name,
            kind,
            unit,
            description,
            labels,
            buckets,
        }
    }
}

// Producer.

/// Records accepted by produce requests, per topic.
pub const PRODUCER_RECORDS: MetricDef = MetricDef::counter(
    "streamhouse.producer.records",
    "streamhouse_producer_records_total",
    "{record}",
    "Total records produced",
    &[TOPIC],
);
/// Payload bytes accepted by produce requests, per topic.
pub const PRODUCER_BYTES: MetricDef = MetricDef::counter(
    "streamhouse.producer.bytes",
    "streamhouse_producer_bytes_total",
    "By",
    "Total bytes produced",
    &[TOPIC],
);
/// Produce request latency, per topic.
pub const PRODUCER_LATENCY: MetricDef = MetricDef::histogram(
    "streamhouse.producer.latency",
    "streamhouse_producer_latency_seconds",
    "s",
    "Produce request latency in seconds",
    &[TOPIC],
    PRODUCER_LATENCY_BUCKETS,
);
/// Records per produce request, per topic.
pub const PRODUCER_BATCH_SIZE: MetricDef = MetricDef::histogram(
    "streamhouse.producer.batch.size",
    "streamhouse_producer_batch_size",
    "{record}",
    "Records per produce batch",
    &[TOPIC],
    PRODUCER_BATCH_SIZE_BUCKETS,
);
/// Failed produce requests, per topic and error type.
pub const PRODUCER_ERRORS: MetricDef = MetricDef::counter(
    "streamhouse.producer.errors",
    "streamhouse_producer_errors_total",
    "{error}",
    "Total produce errors by topic and type",
    &[TOPIC, ERROR_TYPE],
);

// Consumer.

/// Records delivered to consumers, per topic and group.
pub const CONSUMER_RECORDS: MetricDef = MetricDef::counter(
    "streamhouse.consumer.records",
    "streamhouse_consumer_records_total",
    "{record}",
    "Total records consumed by topic and consumer group",
    &[TOPIC, CONSUMER_GROUP],
);
/// High watermark minus committed offset, per topic, partition and group.
pub const CONSUMER_LAG: MetricDef = MetricDef::gauge(
    "streamhouse.consumer.lag",
    "streamhouse_consumer_lag",
    "{record}",
    "Consumer lag in number of messages",
    &[TOPIC, PARTITION, CONSUMER_GROUP],
);
/// Consumer group rebalances, per group.
pub const CONSUMER_REBALANCES: MetricDef = MetricDef::counter(
    "streamhouse.consumer.rebalances",
    "streamhouse_consumer_rebalances_total",
    "{rebalance}",
    "Total consumer group rebalances",
    &[CONSUMER_GROUP],
);
/// Failed consume requests, per topic, group and error type.
pub const CONSUMER_ERRORS: MetricDef = MetricDef::counter(
    "streamhouse.consumer.errors",
    "streamhouse_consumer_errors_total",
    "{error}",
    "Total consumer errors by topic, consumer group and type",
    &[TOPIC, CONSUMER_GROUP, ERROR_TYPE],
);

// Storage.

/// Segments written by the writer pool, per topic and partition.
pub const SEGMENT_WRITES: MetricDef = MetricDef::counter(
    "streamhouse.segment.writes",
    "streamhouse_segment_writes_total",
    "{segment}",
    "Total segments written",
    &[TOPIC, PARTITION],
);
/// Segment flushes to object storage, per topic and partition.
pub const SEGMENT_FLUSHES: MetricDef = MetricDef::counter(
    "streamhouse.segment.flushes",
    "streamhouse_segment_flushes_total",
    "{flush}",
    "Total segment flushes to object storage",
    &[TOPIC, PARTITION],
);
/// Object store requests, per operation.
pub const S3_REQUESTS: MetricDef = MetricDef::counter(
    "streamhouse.s3.requests",
    "streamhouse_s3_requests_total",
    "{request}",
    "Total object store requests by operation",
    &[OPERATION],
);
/// Failed object store requests, per operation and error type.
pub const S3_ERRORS: MetricDef = MetricDef::counter(
    "streamhouse.s3.errors",
    "streamhouse_s3_errors_total",
    "{error}",
    "Total object store errors by operation and type",
    &[OPERATION, ERROR_TYPE],
);
/// Object store request latency, per operation.
pub const S3_LATENCY: MetricDef = MetricDef::histogram(
    "streamhouse.s3.latency",
    "streamhouse_s3_latency_seconds",
    "s",
    "Object store request latency in seconds",
    &[OPERATION],
    S3_LATENCY_BUCKETS,
);
/// Segment cache hits.
pub const CACHE_HITS: MetricDef = MetricDef::counter(
    "streamhouse.cache.hits",
    "streamhouse_cache_hits_total",
    "{hit}",
    "Total segment cache hits",
    &[],
);
/// Segment cache misses.
pub const CACHE_MISSES: MetricDef = MetricDef::counter(
    "streamhouse.cache.misses",
    "streamhouse_cache_misses_total",
    "{miss}",
    "Total segment cache misses",
    &[],
);
/// Resident bytes held by the segment cache.
pub const CACHE_SIZE: MetricDef = MetricDef::gauge(
    "streamhouse.cache.size",
    "streamhouse_cache_size_bytes",
    "By",
    "Current segment cache size in resident bytes",
    &[],
);
/// Payload bytes acknowledged but not yet in the object store: the unflushed-bytes budget
/// in use.
pub const UNFLUSHED_BYTES: MetricDef = MetricDef::gauge(
    "streamhouse.storage.unflushed",
    "streamhouse_unflushed_bytes",
    "By",
    "Payload bytes acknowledged to producers and not yet in the object store",
    &[],
);

/// Faults found in the stored log: holes, torn or corrupt segments, topics that could not
/// be recovered.
pub const STORAGE_FAULTS: MetricDef = MetricDef::counter(
    "streamhouse.storage.faults",
    "streamhouse_storage_faults_total",
    "{fault}",
    "Faults found in stored segments by topic and kind",
    &[TOPIC, FAULT],
);
/// Partitions fenced after a permanent object store error: their produce answers 503.
pub const PARTITIONS_FAILED: MetricDef = MetricDef::gauge(
    "streamhouse.partitions.failed",
    "streamhouse_partitions_failed",
    "{partition}",
    "Partitions whose flushes failed permanently, by topic",
    &[TOPIC],
);

// System.

/// Open client connections.
pub const CONNECTIONS_ACTIVE: MetricDef = MetricDef::gauge(
    "streamhouse.connections.active",
    "streamhouse_connections_active",
    "{connection}",
    "Active connections",
    &[],
);
/// Partitions per topic. A gauge: the seed named it `_total` and dashboards use that name.
pub const PARTITIONS: MetricDef = MetricDef::gauge(
    "streamhouse.partitions",
    "streamhouse_partitions_total",
    "{partition}",
    "Total partitions by topic",
    &[TOPIC],
);
/// Topics. A gauge: the seed named it `_total` and dashboards use that name.
pub const TOPICS: MetricDef = MetricDef::gauge(
    "streamhouse.topics",
    "streamhouse_topics_total",
    "{topic}",
    "Total topics",
    &[],
);
/// Running agents.
pub const AGENTS_ACTIVE: MetricDef = MetricDef::gauge(
    "streamhouse.agents.active",
    "streamhouse_agents_active",
    "{agent}",
    "Active agents",
    &[],
);
/// Seconds since the telemetry handle was created.
pub const UPTIME: MetricDef = MetricDef::gauge(
    "streamhouse.uptime",
    "streamhouse_uptime_seconds",
    "s",
    "Server uptime in seconds",
    &[],
);

// HTTP server and telemetry self-metrics (added after the seed).

/// Duration of HTTP server requests, per method, route template and status code.
pub const HTTP_SERVER_REQUEST_DURATION: MetricDef = MetricDef::histogram(
    "http.server.request.duration",
    "http_server_request_duration_seconds",
    "s",
    "Duration of HTTP server requests",
    &[
        HTTP_REQUEST_METHOD,
        HTTP_ROUTE,
        HTTP_RESPONSE_STATUS_CODE,
        URL_SCHEME,
        HTTP_ERROR_TYPE,
    ],
    HTTP_SERVER_DURATION_BUCKETS,
);

/// HTTP server requests in flight, per method and scheme (semantic conventions: an
/// up-down counter; a gauge on `/metrics`).
pub const HTTP_SERVER_ACTIVE_REQUESTS: MetricDef = MetricDef::gauge(
    "http.server.active_requests",
    "http_server_active_requests",
    "{request}",
    "Number of active HTTP server requests",
    &[HTTP_REQUEST_METHOD, URL_SCHEME],
);
/// OTLP export attempts that failed, per signal (`metrics`, `traces`, `logs`).
pub const TELEMETRY_EXPORT_FAILURES: MetricDef = MetricDef::counter(
    "streamhouse.telemetry.export.failures",
    "streamhouse_telemetry_export_failures_total",
    "{failure}",
    "Total failed OTLP export attempts by signal",
    &[SIGNAL],
);

/// Spans dropped because the export queue was full (the collector is down or slow).
pub const TELEMETRY_SPANS_DROPPED: MetricDef = MetricDef::counter(
    "streamhouse.telemetry.spans.dropped",
    "streamhouse_telemetry_spans_dropped_total",
    "{span}",
    "Total spans dropped because the OTLP export queue was full",
    &[],
);

/// Log records dropped because the OTLP log export queue was full.
pub const TELEMETRY_LOG_RECORDS_DROPPED: MetricDef = MetricDef::counter(
    "streamhouse.telemetry.log_records.dropped",
    "streamhouse_telemetry_log_records_dropped_total",
    "{log_record}",
    "Total log records dropped because the OTLP log export queue was full",
    &[],
);

/// Series left out of rendered `/metrics` bodies, per reason: `name_conflict`,
/// `duplicate_series`, `invalid_value`, `unsupported` (see `docs/exposition.md`).
pub const TELEMETRY_EXPOSITION_DROPPED: MetricDef = MetricDef::counter(
    "streamhouse.telemetry.exposition.dropped",
    "streamhouse_telemetry_exposition_dropped_total",
    "{series}",
    "Total series left out of /metrics renders because they would break the exposition",
    &[REASON],
);

/// Scrape duration buckets, 1 ms to 30 s: a small target renders in about a millisecond, a
/// million series in seconds, and 30 s is the server's own scrape deadline.
pub const SCRAPE_DURATION_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Scrape body size buckets, 1 KiB to 256 MiB by fours: a million series are about 100 MB of
/// text and a tenth of that gzipped.
pub const SCRAPE_BODY_BUCKETS: &[f64] = &[
    1024.0,
    4096.0,
    16384.0,
    65536.0,
    262144.0,
    1048576.0,
    4194304.0,
    16777216.0,
    67108864.0,
    268435456.0,
];

/// Duration of `/metrics` scrapes served to their end: collect, render and send, until the
/// last byte is handed to the connection.
pub const TELEMETRY_SCRAPE_DURATION: MetricDef = MetricDef::histogram(
    "streamhouse.telemetry.scrape.duration",
    "streamhouse_telemetry_scrape_duration_seconds",
    "s",
    "Duration of /metrics scrapes served to their end, in seconds",
    &[],
    SCRAPE_DURATION_BUCKETS,
);

/// Body bytes of `/metrics` scrapes served to their end, as sent (after gzip when the
/// scraper accepts it): what the network and the scraper carry.
pub const TELEMETRY_SCRAPE_BODY_SIZE: MetricDef = MetricDef::histogram(
    "streamhouse.telemetry.scrape.body.size",
    "streamhouse_telemetry_scrape_body_bytes",
    "By",
    "Body bytes of /metrics scrapes served to their end, as sent (compressed when gzip was accepted)",
    &[],
    SCRAPE_BODY_BUCKETS,
);

/// `/metrics` scrapes refused with 503 because the concurrent scrape limit was reached.
pub const TELEMETRY_SCRAPES_REFUSED: MetricDef = MetricDef::counter(
    "streamhouse.telemetry.scrapes.refused",
    "streamhouse_telemetry_scrapes_refused_total",
    "{scrape}",
    "Total /metrics scrapes refused with 503 past the concurrent scrape limit",
    &[],
);

/// `/metrics` renders stopped before their end, per reason: `deadline` (the scrape timeout
/// passed) or `client_gone` (the scraper closed the connection).
pub const TELEMETRY_SCRAPES_STOPPED: MetricDef = MetricDef::counter(
    "streamhouse.telemetry.scrapes.stopped",
    "streamhouse_telemetry_scrapes_stopped_total",
    "{scrape}",
    "Total /metrics renders stopped before their end because the scrape deadline passed or the client went away",
    &[REASON],
);

// Process and runtime (issue 9). The process metrics keep the standard Prometheus client
// names, so stock dashboards work, and take the OpenTelemetry semantic-convention names
// where one exists; no convention covers the descriptor limit.

/// Resident memory of the process (Linux).
pub const PROCESS_RESIDENT_MEMORY: MetricDef = MetricDef::gauge(
    "process.memory.usage",
    "process_resident_memory_bytes",
    "By",
    "Resident memory size in bytes",
    &[],
);
/// CPU time of the process, user plus system (Linux).
pub const PROCESS_CPU: MetricDef = MetricDef::counter(
    "process.cpu.time",
    "process_cpu_seconds_total",
    "s",
    "Total user and system CPU time spent in seconds",
    &[],
);
/// Open file descriptors of the process (Linux).
pub const PROCESS_OPEN_FDS: MetricDef = MetricDef::gauge(
    "process.unix.file_descriptor.count",
    "process_open_fds",
    "{file_descriptor}",
    "Number of open file descriptors",
    &[],
);
/// The soft limit on open file descriptors (Linux).
pub const PROCESS_MAX_FDS: MetricDef = MetricDef::gauge(
    "process.unix.file_descriptor.limit",
    "process_max_fds",
    "{file_descriptor}",
    "Maximum number of open file descriptors",
    &[],
);
/// Threads of the process (Linux).
pub const PROCESS_THREADS: MetricDef = MetricDef::gauge(
    "process.thread.count",
    "process_threads",
    "{thread}",
    "Number of OS threads in the process",
    &[],
);
/// Worker threads of the registered tokio runtime.
pub const RUNTIME_WORKERS: MetricDef = MetricDef::gauge(
    "streamhouse.runtime.workers",
    "streamhouse_runtime_workers",
    "{thread}",
    "Worker threads of the tokio runtime",
    &[],
);
/// Tasks alive in the registered tokio runtime.
pub const RUNTIME_ALIVE_TASKS: MetricDef = MetricDef::gauge(
    "streamhouse.runtime.alive_tasks",
    "streamhouse_runtime_alive_tasks",
    "{task}",
    "Tasks alive in the tokio runtime",
    &[],
);
/// Tasks waiting in the registered tokio runtime's global queue.
pub const RUNTIME_GLOBAL_QUEUE_DEPTH: MetricDef = MetricDef::gauge(
    "streamhouse.runtime.global_queue_depth",
    "streamhouse_runtime_global_queue_depth",
    "{task}",
    "Tasks waiting in the tokio runtime's global queue",
    &[],
);

/// Every metric of the catalog: the seed's 22 in the seed's order, then later additions.
pub const ALL: &[MetricDef] = &[
    PRODUCER_RECORDS,
    PRODUCER_BYTES,
    PRODUCER_LATENCY,
    PRODUCER_BATCH_SIZE,
    PRODUCER_ERRORS,
    CONSUMER_RECORDS,
    CONSUMER_LAG,
    CONSUMER_REBALANCES,
    CONSUMER_ERRORS,
    SEGMENT_WRITES,
    SEGMENT_FLUSHES,
    S3_REQUESTS,
    S3_ERRORS,
    S3_LATENCY,
    CACHE_HITS,
    CACHE_MISSES,
    CACHE_SIZE,
    CONNECTIONS_ACTIVE,
    PARTITIONS,
    TOPICS,
    AGENTS_ACTIVE,
    UPTIME,
    HTTP_SERVER_REQUEST_DURATION,
    TELEMETRY_EXPORT_FAILURES,
    TELEMETRY_SPANS_DROPPED,
    TELEMETRY_EXPOSITION_DROPPED,
    UNFLUSHED_BYTES,
    PROCESS_RESIDENT_MEMORY,
    PROCESS_CPU,
    PROCESS_OPEN_FDS,
    PROCESS_MAX_FDS,
    PROCESS_THREADS,
    RUNTIME_WORKERS,
    RUNTIME_ALIVE_TASKS,
    RUNTIME_GLOBAL_QUEUE_DEPTH,
    HTTP_SERVER_ACTIVE_REQUESTS,
    TELEMETRY_LOG_RECORDS_DROPPED,
    TELEMETRY_SCRAPE_DURATION,
    TELEMETRY_SCRAPE_BODY_SIZE,
    TELEMETRY_SCRAPES_REFUSED,
    TELEMETRY_SCRAPES_STOPPED,
    STORAGE_FAULTS,
    PARTITIONS_FAILED,
];

/// The catalog entry for an OpenTelemetry instrument name.
pub fn by_otel_name(name: &str) -> Option<&'static MetricDef> {
    ALL.iter().find(|def| def.otel_name == name)
}

/// The catalog entry for an exposed (Prometheus) name.
pub fn by_prometheus_name(name: &str) -> Option<&'static MetricDef> {
    ALL.iter().find(|def| def.prometheus_name == name)
}

/// The catalog as a Markdown table, for the docs (`docs/metrics.md` is generated from it).
pub fn to_markdown() -> String {
    let mut out = String::from(
        "| exposed name | type | labels | unit | buckets | OTel instrument | description |\n\
         |---|---|---|---|---|---|---|\n",
    );
    for def in ALL {
        let buckets: Vec<String> = def.buckets.iter().map(|b| b.to_string()).collect();
        out.push_str(&format!(
            "| `{}` | {} | {} | `{}` | {} | `{}` | {} |\n",
            def.prometheus_name,
            def.kind.prometheus_type(),
            def.labels.join(", "),
            def.unit,
            buckets.join(" "),
            def.otel_name,
            def.description,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn names_are_unique_and_each_entry_present_once() {
        let otel: HashSet<_> = ALL.iter().map(|d| d.otel_name).collect();
        let prom: HashSet<_> = ALL.iter().map(|d| d.prometheus_name).collect();
        assert_eq!(otel.len(), ALL.len());
        assert_eq!(prom.len(), ALL.len());
    }

    #[test]
    fn keeps_the_seed_names() {
        let seed = [
            "streamhouse_producer_records_total",
            "streamhouse_producer_bytes_total",
            "streamhouse_producer_latency_seconds",
            "streamhouse_producer_batch_size",
            "streamhouse_producer_errors_total",
            "streamhouse_consumer_records_total",
            "streamhouse_consumer_lag",
            "streamhouse_consumer_rebalances_total",
            "streamhouse_consumer_errors_total",
            "streamhouse_segment_writes_total",
            "streamhouse_segment_flushes_total",
            "streamhouse_s3_requests_total",
            "streamhouse_s3_errors_total",
            "streamhouse_s3_latency_seconds",
            "streamhouse_cache_hits_total",
            "streamhouse_cache_misses_total",
            "streamhouse_cache_size_bytes",
            "streamhouse_connections_active",
            "streamhouse_partitions_total",
            "streamhouse_topics_total",
            "streamhouse_agents_active",
            "streamhouse_uptime_seconds",
        ];
        for name in seed {
            assert!(by_prometheus_name(name).is_some(), "{name}");
        }
        let first: Vec<_> = ALL[..seed.len()]
            .iter()
            .map(|d| d.prometheus_name)
            .collect();
        assert_eq!(first, seed);
    }

    #[test]
    fn entries_are_well_formed() {
        for def in ALL {
            // Our own metrics are namespaced; semantic-convention and standard process
            // ones keep their names.
            assert_eq!(
                def.prometheus_name.starts_with("streamhouse_"),
                def.otel_name.starts_with("streamhouse."),
                "{def:?}"
            );
            assert!(!def.description.is_empty(), "{def:?}");
            let is_hist = def.kind == MetricKind::Histogram;
            assert_eq!(is_hist, !def.buckets.is_empty(), "{def:?}");
            assert!(def.buckets.windows(2).all(|w| w[0] < w[1]), "{def:?}");
            if def.kind == MetricKind::Counter {
                assert!(def.prometheus_name.ends_with("_total"), "{def:?}");
            }
            let keys: HashSet<_> = def.labels.iter().collect();
            assert_eq!(keys.len(), def.labels.len(), "{def:?}");
        }
    }

    #[test]
    fn lookups_find_entries() {
        assert_eq!(by_otel_name("streamhouse.s3.latency"), Some(&S3_LATENCY));
        assert_eq!(
            by_prometheus_name("streamhouse_topics_total"),
            Some(&TOPICS)
        );
        assert_eq!(by_otel_name("nope"), None);
    }
}
