//! Telemetry configuration, built in code or read from the environment.
//!
//! Standard OpenTelemetry variables are honoured; our own knobs use a `STREAMHOUSE_` prefix.
//! A bad value is a [`ConfigError`] that names the variable and the value, never a panic.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `OTEL_SERVICE_NAME` | `service.name` | `streamhouse` |
//! | `OTEL_RESOURCE_ATTRIBUTES` | extra resource attributes, `k=v,k2=v2` (percent-encoded) | none |
//! | `OTEL_SDK_DISABLED` | `true` records nothing and serves an empty `/metrics` | `false` |
//! | `STREAMHOUSE_SERVICE_VERSION` | `service.version` | this crate's version |
//! | `STREAMHOUSE_INSTANCE_ID` | `service.instance.id` | a random UUID |
//! | `STREAMHOUSE_METRIC_CARDINALITY_LIMIT` | series per metric before overflow | 2000 |
//! | `STREAMHOUSE_METRIC_IDLE_TIMEOUT` | counter and histogram series unchanged this long leave (`90s`, `15m`, `2h`; see [`crate::series`]) | `off` |
//! | `STREAMHOUSE_MAX_LABEL_VALUE_BYTES` | longest label value (16 to 65536); longer ones are cut on a character boundary (see `docs/labels.md`) | 256 |
//! | `OTEL_METRICS_EXEMPLAR_FILTER` | which measurements become OpenMetrics exemplars: `always_on`, `always_off`, `trace_based` (case-insensitive; see [`ExemplarFilter`]) | `trace_based` |
//! | `STREAMHOUSE_EXEMPLARS` | `false` is an alias of `OTEL_METRICS_EXEMPLAR_FILTER=always_off`; the OTel variable wins when both are set | `true` |
//! | `OTEL_PROPAGATORS` | HTTP propagators: comma list of `tracecontext`, `baggage`, `b3`, `b3multi`, `none` (case-insensitive; see [`Propagators`]). Record headers always carry W3C trace context, whatever it says | `tracecontext,baggage` |
//! | `OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS` | comma list of HTTP methods (case-sensitive tokens, at most 64 of at most 32 bytes) that replaces the default set; other methods are labelled `_OTHER` | the 9 methods of RFC 9110 and PATCH |
//! | `STREAMHOUSE_HTTP_TRACERESPONSE` | answer HTTP requests with a W3C Trace Context Level 2 `traceresponse` header naming the server span | `false` |
//! | `STREAMHOUSE_METRICS_MAX_CONCURRENT_SCRAPES` | scrapes served at once; more get 503 | 4 |
//! | `STREAMHOUSE_PROMETHEUS_TARGET_INFO` | expose `target_info` | `true` |
//! | `STREAMHOUSE_PROMETHEUS_SCOPE_LABELS` | which series get `otel_scope_*` labels: `none`, `foreign` (every scope but `streamhouse`) or `all` | `foreign` |
//! | `STREAMHOUSE_PROMETHEUS_CREATED` | OpenMetrics `_created` samples on counters and histograms | `false` |
//! | `STREAMHOUSE_SHUTDOWN_TIMEOUT_MS` | bound on [`Telemetry::shutdown`](crate::Telemetry::shutdown) | 5000 |
//! | `OTEL_EXPORTER_PROMETHEUS_HOST` / `_PORT` | admin listener for `/metrics` and `/health*` (see [`admin`]) | `localhost` / `9464` |
//! | `STREAMHOUSE_METRICS_ADDR` | alias of the two above as `host:port`; each OTel variable wins for its part | `127.0.0.1:9464` |
//! | `STREAMHOUSE_METRICS_BEARER_TOKEN` | token the admin listener requires (secret) | none |
//! | `STREAMHOUSE_METRICS_TLS_CERT` / `_KEY` | PEM files: the admin listener serves HTTPS | none |
//! | `OTEL_EXPORTER_OTLP_ENDPOINT` | collector base URL; turns on push of metrics, traces and logs; `host:port` without a scheme only for `grpc` | off |
//! | `OTEL_EXPORTER_OTLP_{METRICS,TRACES,LOGS}_ENDPOINT` | per-signal URL, used as is | off |
//! | `OTEL_EXPORTER_OTLP[_{METRICS,TRACES,LOGS}]_PROTOCOL` | `grpc` (feature `otlp-grpc`) or `http/protobuf` (feature `otlp-http`) | `http/protobuf` |
//! | `OTEL_EXPORTER_OTLP[_{METRICS,TRACES,LOGS}]_INSECURE` | `true`: a scheme-less gRPC endpoint is `http://`, else `https://` | `false` |
//! | `OTEL_EXPORTER_OTLP[_{METRICS,TRACES,LOGS}]_CERTIFICATE` | PEM CA bundle for `https://`; replaces the system roots (feature `tls`) | system roots |
//! | `OTEL_EXPORTER_OTLP[_{METRICS,TRACES,LOGS}]_CLIENT_CERTIFICATE` / `_CLIENT_KEY` | PEM client certificate chain and key for mutual TLS (both or neither) | none |
//! | `OTEL_EXPORTER_OTLP[_{METRICS,TRACES,LOGS}]_HEADERS` | `k=v,k2=v2` request headers (secret) | none |
//! | `OTEL_EXPORTER_OTLP[_{METRICS,TRACES,LOGS}]_TIMEOUT` | per-request timeout, ms | 10000 |
//! | `OTEL_EXPORTER_OTLP[_{METRICS,TRACES,LOGS}]_COMPRESSION` | `gzip` or `none` | `none` |
//! | `OTEL_{METRICS,TRACES,LOGS}_EXPORTER` | comma list of `otlp` and `console` (stdout), or `none` alone | `otlp` |
//! | `OTEL_METRIC_EXPORT_INTERVAL` / `OTEL_METRIC_EXPORT_TIMEOUT` | metric push interval / bound on one push, ms | 60000 / 30000 |
//! | `OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE` | `cumulative`, `delta`, `lowmemory` | `cumulative` |
//! | `OTEL_BSP_SCHEDULE_DELAY` / `_EXPORT_TIMEOUT` / `_MAX_QUEUE_SIZE` / `_MAX_EXPORT_BATCH_SIZE` | span batches: delay (ms) / bound on one export (ms) / queue bound (dropped spans are counted) / batch size | 5000 / 30000 / 2048 / 512 |
//! | `OTEL_BLRP_SCHEDULE_DELAY` / `_EXPORT_TIMEOUT` / `_MAX_QUEUE_SIZE` / `_MAX_EXPORT_BATCH_SIZE` | log record batches, as above (dropped records are counted) | 1000 / 30000 / 2048 / 512 |
//! | `OTEL_TRACES_SAMPLER` / `_ARG` | `always_on`, `always_off`, `traceidratio`, `parentbased_*` / ratio | `parentbased_always_on` |
//! | `RUST_LOG` / `STREAMHOUSE_LOG_FORMAT` | log filter / `human` or `json` (see [`crate::logging`]) | `info` / `human` |

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub mod admin;

pub use admin::{AdminConfig, BearerToken, TlsFiles};

use crate::catalog::{Catalog, CatalogError, MetricDef};
use crate::exemplars::ExemplarFilter;
pub use crate::metrics::{HttpServerConfig, KnownMethods};
use crate::otlp::OtlpConfig;
use crate::propagation::Propagators;
use crate::sampling::TraceSampler;
use crate::series::{Clock, SharedClock};

/// Default `service.name`.
pub const DEFAULT_SERVICE_NAME: &str = "streamhouse";
/// Default series limit per metric; past it, measurements land in the overflow series.
pub const DEFAULT_CARDINALITY_LIMIT: usize = 2000;
/// Largest accepted cardinality limit: the SDK reserves room for every allowed series up front,
/// per instrument (at this limit about 75 MiB resident and 2.4 GiB virtual for the catalog's
/// instruments before any series; see `docs/labels.md`).
pub const MAX_CARDINALITY_LIMIT: usize = 1_000_000;
/// Default longest label value, in bytes; longer values are cut on a character boundary.
pub const DEFAULT_MAX_LABEL_VALUE_BYTES: usize = 256;
/// Smallest accepted label value bound: shorter cuts would fold most real names together.
pub const MIN_LABEL_VALUE_BYTES: usize = 16;
/// Largest accepted label value bound: label storage is this times the cardinality limit.
pub const MAX_LABEL_VALUE_BYTES: usize = 65536;
/// Default number of scrapes `/metrics` serves at once.
pub const DEFAULT_MAX_CONCURRENT_SCRAPES: usize = 4;
/// Largest accepted number of concurrent scrapes.
pub const MAX_CONCURRENT_SCRAPES: usize = 1024;
/// Default address for `/metrics` in the examples.
pub const DEFAULT_METRICS_ADDR: &str = "127.0.0.1:9464";

/// A configuration value that could not be used.
///
/// `Display` names the variable, the value and what was expected, then the underlying cause
/// when there is one (an unreadable file, a parse error), so one log line says it all; the
/// cause is also [`source`](std::error::Error::source) for error-chain printers.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ConfigError {
    /// The variable (or builder setting) that held the value.
    pub variable: String,
    /// The value as given.
    pub value: String,
    /// What was expected instead.
    pub expected: String,
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl PartialEq for ConfigError {
    fn eq(&self, other: &Self) -> bool {
        self.variable == other.variable
            && self.value == other.value
            && self.expected == other.expected
    }
}

impl Eq for ConfigError {}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid value {:?} for {}: expected {}",
            self.value, self.variable, self.expected
        )?;
        match &self.source {
            Some(source) => write!(f, " ({source})"),
            None => Ok(()),
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl ConfigError {
    /// An error about `value` of `variable` (a variable or a builder setting), which should
    /// have been `expected`.
    ///
    /// ```
    /// use streamhouse_observability::config::ConfigError;
    ///
    /// let err = ConfigError::new("STREAMHOUSE_WIDGETS", "many", "a whole number");
    /// assert_eq!(
    ///     err.to_string(),
    ///     r#"invalid value "many" for STREAMHOUSE_WIDGETS: expected a whole number"#
    /// );
    /// ```
    pub fn new(variable: &str, value: &str, expected: impl Into<String>) -> Self {
        ConfigError {
            variable: variable.to_owned(),
            value: value.to_owned(),
            expected: expected.into(),
            source: None,
        }
    }

    /// The same error, caused by `source`.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Arc::new(source));
        self
    }
}

/// Which series carry the instrumentation scope as labels (`otel_scope_name`,
/// `otel_scope_version`, `otel_scope_schema_url`, `otel_scope_<attribute>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ScopeLabels {
    /// No series.
    None,
    /// Every scope's but StreamHouse's own ([`SCOPE_NAME`](crate::SCOPE_NAME)): the
    /// catalog's series stay exactly as the seed lists them, while a third-party library's
    /// say where they come from (the OpenTelemetry specification's default).
    #[default]
    Foreign,
    /// Every series.
    All,
}

impl ScopeLabels {
    fn parse(variable: &str, raw: &str) -> Result<Self, ConfigError> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "none" | "false" => Ok(ScopeLabels::None),
            "foreign" => Ok(ScopeLabels::Foreign),
            "all" | "true" => Ok(ScopeLabels::All),
            _ => Err(ConfigError::new(variable, raw, "none, foreign or all")),
        }
    }
}

/// How the Prometheus bridge renders `/metrics`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PrometheusConfig {
    /// Expose the resource as `target_info` (OpenMetrics: the info family `target`).
    pub target_info: bool,
    /// Which series carry scope labels.
    pub scope_labels: ScopeLabels,
    /// Add OpenMetrics `_created` samples (start time) to counters and histograms.
    pub created_samples: bool,
    /// Scrapes served at once (1 to [`MAX_CONCURRENT_SCRAPES`]); past it `/metrics`
    /// answers 503.
    pub max_concurrent_scrapes: usize,
}

impl Default for PrometheusConfig {
    fn default() -> Self {
        PrometheusConfig {
            target_info: true,
            scope_labels: ScopeLabels::default(),
            created_samples: false,
            max_concurrent_scrapes: DEFAULT_MAX_CONCURRENT_SCRAPES,
        }
    }
}

impl PrometheusConfig {
    /// Sets whether `target_info` is exposed.
    pub fn with_target_info(mut self, target_info: bool) -> Self {
        self.target_info = target_info;
        self
    }

    /// Sets which series carry scope labels.
    pub fn with_scope_labels(mut self, scope_labels: ScopeLabels) -> Self {
        self.scope_labels = scope_labels;
        self
    }

    /// Sets whether OpenMetrics carries `_created` samples.
    pub fn with_created_samples(mut self, created_samples: bool) -> Self {
        self.created_samples = created_samples;
        self
    }

    /// Sets the number of scrapes served at once.
    pub fn with_max_concurrent_scrapes(mut self, max: usize) -> Self {
        self.max_concurrent_scrapes = max;
        self
    }

    /// Checks the values set in code as [`TelemetryConfig::from_env`] checks the environment.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the setting, for example a `max_concurrent_scrapes` of 0
    /// (every scrape would get 503) or above [`MAX_CONCURRENT_SCRAPES`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=MAX_CONCURRENT_SCRAPES).contains(&self.max_concurrent_scrapes) {
            return Err(ConfigError::new(
                "PrometheusConfig::max_concurrent_scrapes",
                &self.max_concurrent_scrapes.to_string(),
                format!("an integer from 1 to {MAX_CONCURRENT_SCRAPES}"),
            ));
        }
        Ok(())
    }
}

/// Everything [`Telemetry`](crate::Telemetry) needs to start.
///
/// ```
/// use streamhouse_observability::TelemetryConfig;
///
/// let config = TelemetryConfig::default()
///     .with_service_name("streamhouse-agent")
///     .with_resource_attribute("deployment.environment.name", "staging")
///     .with_cardinality_limit(500);
/// assert_eq!(config.service_name, "streamhouse-agent");
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TelemetryConfig {
    /// `service.name`.
    pub service_name: String,
    /// `service.version`.
    pub service_version: String,
    /// `service.instance.id`; generated when `None`.
    pub service_instance_id: Option<String>,
    /// Further resource attributes, in the order given.
    pub resource_attributes: Vec<(String, String)>,
    /// When true, nothing is recorded or exported.
    pub disabled: bool,
    /// Series per metric before measurements land in the `otel_metric_overflow` series.
    pub cardinality_limit: usize,
    /// Counter and histogram series unchanged for this long leave (see
    /// [`series`](crate::series)); `None`, the default, keeps them.
    pub metric_idle_timeout: Option<Duration>,
    /// Where idle expiry reads the time.
    pub clock: SharedClock,
    /// Longest label value in bytes ([`MIN_LABEL_VALUE_BYTES`] to [`MAX_LABEL_VALUE_BYTES`]);
    /// every value a caller passes to a recorder is cut to it on a character boundary. A value
    /// set here out of range is clamped.
    pub max_label_value_bytes: usize,
    /// Which measurements become OpenMetrics exemplars (trace and span ids of sampled
    /// spans by default).
    pub exemplar_filter: ExemplarFilter,
    /// The propagators HTTP extraction and injection use (`OTEL_PROPAGATORS`). Record
    /// headers always carry W3C trace context, whatever this says.
    pub propagators: Propagators,
    /// HTTP server recording: known methods, `traceresponse`.
    pub http_server: HttpServerConfig,
    /// Prometheus rendering options.
    pub prometheus: PrometheusConfig,
    /// Upper bound on [`Telemetry::shutdown`](crate::Telemetry::shutdown).
    pub shutdown_timeout: Duration,
    /// The admin listener's address (`/metrics`, `/health*`).
    pub metrics_addr: SocketAddr,
    /// The admin listener's token and TLS, and whether its address was configured.
    pub admin: AdminConfig,
    /// OTLP push; off by default.
    pub otlp: OtlpConfig,
    /// Which spans are recorded.
    pub sampler: TraceSampler,
    /// The metrics whose names and buckets views pin: the built-in catalog plus what
    /// components register with [`TelemetryConfig::with_metrics`].
    pub catalog: Catalog,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            service_name: DEFAULT_SERVICE_NAME.to_owned(),
            service_version: env!("CARGO_PKG_VERSION").to_owned(),
            service_instance_id: None,
            resource_attributes: Vec::new(),
            disabled: false,
            cardinality_limit: DEFAULT_CARDINALITY_LIMIT,
            metric_idle_timeout: None,
            clock: SharedClock::default(),
            max_label_value_bytes: DEFAULT_MAX_LABEL_VALUE_BYTES,
            exemplar_filter: ExemplarFilter::default(),
            propagators: Propagators::default(),
            http_server: HttpServerConfig::default(),
            prometheus: PrometheusConfig::default(),
            shutdown_timeout: Duration::from_secs(5),
            metrics_addr: DEFAULT_METRICS_ADDR
                .parse()
                .expect("default address parses"),
            admin: AdminConfig::default(),
            otlp: OtlpConfig::default(),
            sampler: TraceSampler::default(),
            catalog: Catalog::streamhouse(),
        }
    }
}

impl TelemetryConfig {
    /// Reads the configuration from the process environment.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first variable whose value cannot be used.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup` (a variable name to its value), so tests and
    /// embedders need not touch the process environment.
    ///
    /// ```
    /// use streamhouse_observability::TelemetryConfig;
    ///
    /// let err = TelemetryConfig::from_lookup(|name| {
    ///     (name == "OTEL_SDK_DISABLED").then(|| "maybe".to_owned())
    /// })
    /// .unwrap_err();
    /// assert_eq!(err.variable, "OTEL_SDK_DISABLED");
    /// assert_eq!(err.value, "maybe");
    /// ```
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut config = TelemetryConfig::default();
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());

        if let Some(raw) = get("OTEL_RESOURCE_ATTRIBUTES") {
            for (key, value) in parse_resource_attributes("OTEL_RESOURCE_ATTRIBUTES", &raw)? {
                match key.as_str() {
                    "service.name" => config.service_name = value,
                    "service.version" => config.service_version = value,
                    "service.instance.id" => config.service_instance_id = Some(value),
                    _ => config.resource_attributes.push((key, value)),
                }
            }
        }
        // The spec gives OTEL_SERVICE_NAME precedence over OTEL_RESOURCE_ATTRIBUTES.
        if let Some(name) = get("OTEL_SERVICE_NAME") {
            config.service_name = name;
        }
        if let Some(version) = get("STREAMHOUSE_SERVICE_VERSION") {
            config.service_version = version;
        }
        if let Some(id) = get("STREAMHOUSE_INSTANCE_ID") {
            config.service_instance_id = Some(id);
        }
        if let Some(raw) = get("OTEL_SDK_DISABLED") {
            config.disabled = parse_bool("OTEL_SDK_DISABLED", &raw)?;
        }
        if let Some(raw) = get("STREAMHOUSE_METRIC_CARDINALITY_LIMIT") {
            config.cardinality_limit = parse_limit(
                "STREAMHOUSE_METRIC_CARDINALITY_LIMIT",
                &raw,
                MAX_CARDINALITY_LIMIT,
            )?;
        }
        if let Some(raw) = get("STREAMHOUSE_METRIC_IDLE_TIMEOUT") {
            config.metric_idle_timeout =
                parse_idle_timeout("STREAMHOUSE_METRIC_IDLE_TIMEOUT", &raw)?;
        }
        if let Some(raw) = get("STREAMHOUSE_MAX_LABEL_VALUE_BYTES") {
            config.max_label_value_bytes = parse_in_range(
                "STREAMHOUSE_MAX_LABEL_VALUE_BYTES",
                &raw,
                MIN_LABEL_VALUE_BYTES,
                MAX_LABEL_VALUE_BYTES,
            )?;
        }
        if let Some(raw) = get("STREAMHOUSE_EXEMPLARS")
            && !parse_bool("STREAMHOUSE_EXEMPLARS", &raw)?
        {
            config.exemplar_filter = ExemplarFilter::AlwaysOff;
        }
        // Read second: the specification's variable wins over our older alias.
        if let Some(raw) = get("OTEL_METRICS_EXEMPLAR_FILTER") {
            config.exemplar_filter = ExemplarFilter::parse("OTEL_METRICS_EXEMPLAR_FILTER", &raw)?;
        }
        if let Some(raw) = get("OTEL_PROPAGATORS") {
            config.propagators = Propagators::parse("OTEL_PROPAGATORS", &raw)?;
        }
        if let Some(raw) = get("OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS") {
            config.http_server.known_methods =
                KnownMethods::parse("OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS", &raw)?;
        }
        if let Some(raw) = get("STREAMHOUSE_HTTP_TRACERESPONSE") {
            config.http_server.traceresponse = parse_bool("STREAMHOUSE_HTTP_TRACERESPONSE", &raw)?;
        }
        if let Some(raw) = get("STREAMHOUSE_METRICS_MAX_CONCURRENT_SCRAPES") {
            config.prometheus.max_concurrent_scrapes = parse_limit(
                "STREAMHOUSE_METRICS_MAX_CONCURRENT_SCRAPES",
                &raw,
                MAX_CONCURRENT_SCRAPES,
            )?;
        }
        if let Some(raw) = get("STREAMHOUSE_PROMETHEUS_TARGET_INFO") {
            config.prometheus.target_info = parse_bool("STREAMHOUSE_PROMETHEUS_TARGET_INFO", &raw)?;
        }
        if let Some(raw) = get("STREAMHOUSE_PROMETHEUS_SCOPE_LABELS") {
            config.prometheus.scope_labels =
                ScopeLabels::parse("STREAMHOUSE_PROMETHEUS_SCOPE_LABELS", &raw)?;
        }
        if let Some(raw) = get("STREAMHOUSE_PROMETHEUS_CREATED") {
            config.prometheus.created_samples = parse_bool("STREAMHOUSE_PROMETHEUS_CREATED", &raw)?;
        }
        if let Some(raw) = get("STREAMHOUSE_SHUTDOWN_TIMEOUT_MS") {
            config.shutdown_timeout = parse_millis("STREAMHOUSE_SHUTDOWN_TIMEOUT_MS", &raw)?;
        }
        (config.admin, config.metrics_addr) = AdminConfig::from_lookup(&get, config.metrics_addr)?;
        config.otlp = OtlpConfig::from_lookup(&get)?;
        config.sampler = TraceSampler::from_lookup(&get)?;
        Ok(config)
    }

    /// Sets OTLP push.
    ///
    /// ```
    /// use streamhouse_observability::TelemetryConfig;
    /// use streamhouse_observability::otlp::{OtlpConfig, OtlpProtocol};
    ///
    /// let config = TelemetryConfig::default().with_otlp(
    ///     OtlpConfig::default().with_endpoint("http://127.0.0.1:4317", OtlpProtocol::Grpc),
    /// );
    /// assert!(config.otlp.metrics.is_some());
    /// ```
    pub fn with_otlp(mut self, otlp: OtlpConfig) -> Self {
        self.otlp = otlp;
        self
    }

    /// Registers a component's own catalog entries, so every reader exposes them under their
    /// pinned names and buckets (see [`Catalog`] for an example).
    ///
    /// # Errors
    /// The first entry [`Catalog::register`] refuses.
    pub fn with_metrics(mut self, metrics: &[MetricDef]) -> Result<Self, CatalogError> {
        for def in metrics {
            self.catalog.register(*def)?;
        }
        Ok(self)
    }

    /// Sets the trace sampler.
    pub fn with_sampler(mut self, sampler: TraceSampler) -> Self {
        self.sampler = sampler;
        self
    }

    /// Sets `service.name`.
    pub fn with_service_name(mut self, name: impl Into<String>) -> Self {
        self.service_name = name.into();
        self
    }

    /// Sets `service.version`.
    pub fn with_service_version(mut self, version: impl Into<String>) -> Self {
        self.service_version = version.into();
        self
    }

    /// Sets `service.instance.id` instead of generating one.
    pub fn with_service_instance_id(mut self, id: impl Into<String>) -> Self {
        self.service_instance_id = Some(id.into());
        self
    }

    /// Adds a resource attribute.
    pub fn with_resource_attribute(
        mut self,
        key: impl Into<String>,
        value: impl Into<String>,
    ) -> Self {
        self.resource_attributes.push((key.into(), value.into()));
        self
    }

    /// Turns all recording off (`OTEL_SDK_DISABLED=true`).
    pub fn with_disabled(mut self, disabled: bool) -> Self {
        self.disabled = disabled;
        self
    }

    /// Sets how long a counter or histogram series may go unchanged before it leaves;
    /// `None` keeps every series.
    pub fn with_metric_idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.metric_idle_timeout = timeout;
        self
    }

    /// Sets the clock idle expiry reads, such as a [`ManualClock`](crate::series::ManualClock)
    /// in tests.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = SharedClock(clock);
        self
    }

    /// Sets the series limit per metric, clamped to 1..=[`MAX_CARDINALITY_LIMIT`].
    pub fn with_cardinality_limit(mut self, limit: usize) -> Self {
        self.cardinality_limit = limit.clamp(1, MAX_CARDINALITY_LIMIT);
        self
    }

    /// Sets the longest label value in bytes, clamped to
    /// [`MIN_LABEL_VALUE_BYTES`]..=[`MAX_LABEL_VALUE_BYTES`].
    pub fn with_max_label_value_bytes(mut self, bytes: usize) -> Self {
        self.max_label_value_bytes = bytes.clamp(MIN_LABEL_VALUE_BYTES, MAX_LABEL_VALUE_BYTES);
        self
    }

    /// Turns exemplar capture off (`false`: [`ExemplarFilter::AlwaysOff`]) or back to the
    /// default (`true`: [`ExemplarFilter::TraceBased`]).
    pub fn with_exemplars(mut self, exemplars: bool) -> Self {
        self.exemplar_filter = match exemplars {
            true => ExemplarFilter::TraceBased,
            false => ExemplarFilter::AlwaysOff,
        };
        self
    }

    /// Sets which measurements become exemplars.
    pub fn with_exemplar_filter(mut self, filter: ExemplarFilter) -> Self {
        self.exemplar_filter = filter;
        self
    }

    /// Sets the HTTP propagators (what `OTEL_PROPAGATORS` sets).
    ///
    /// ```
    /// use streamhouse_observability::TelemetryConfig;
    /// use streamhouse_observability::propagation::{PropagatorKind, Propagators};
    ///
    /// let config = TelemetryConfig::default()
    ///     .with_propagators(Propagators::new([PropagatorKind::B3, PropagatorKind::TraceContext]));
    /// assert_eq!(config.propagators.kinds()[0], PropagatorKind::B3);
    /// ```
    pub fn with_propagators(mut self, propagators: Propagators) -> Self {
        self.propagators = propagators;
        self
    }

    /// Sets HTTP server recording (known methods, `traceresponse`).
    pub fn with_http_server(mut self, http_server: HttpServerConfig) -> Self {
        self.http_server = http_server;
        self
    }

    /// Sets the Prometheus rendering options.
    pub fn with_prometheus(mut self, prometheus: PrometheusConfig) -> Self {
        self.prometheus = prometheus;
        self
    }

    /// Sets the admin listener's token and TLS.
    pub fn with_admin(mut self, admin: AdminConfig) -> Self {
        self.admin = admin;
        self
    }

    /// Sets the admin listener's address (`/metrics`, `/health*`), as
    /// `OTEL_EXPORTER_PROMETHEUS_HOST`/`_PORT` do: the address counts as configured, so an
    /// application with a public port of its own serves them there only.
    ///
    /// ```
    /// use streamhouse_observability::TelemetryConfig;
    ///
    /// let config = TelemetryConfig::default().with_metrics_addr("0.0.0.0:9500".parse().unwrap());
    /// assert_eq!(config.metrics_addr.port(), 9500);
    /// assert!(config.admin.is_separate());
    /// ```
    pub fn with_metrics_addr(mut self, addr: SocketAddr) -> Self {
        self.metrics_addr = addr;
        self.admin.addr_configured = true;
        self
    }

    /// Sets the bound on shutdown.
    pub fn with_shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }
}

fn parse_bool(variable: &str, raw: &str) -> Result<bool, ConfigError> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(ConfigError::new(variable, raw, "true or false")),
    }
}

fn parse_limit(variable: &str, raw: &str, max: usize) -> Result<usize, ConfigError> {
    parse_in_range(variable, raw, 1, max)
}

fn parse_in_range(variable: &str, raw: &str, min: usize, max: usize) -> Result<usize, ConfigError> {
    match raw.trim().parse::<usize>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(ConfigError::new(
            variable,
            raw,
            format!("an integer from {min} to {max}"),
        )),
    }
}

/// The longest idle timeout: past it, expiry is as good as off.
const MAX_IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 24 * 3600);

/// `off` (or `0`), or a whole number with a unit: `500ms`, `90s`, `15m`, `2h`.
fn parse_idle_timeout(variable: &str, raw: &str) -> Result<Option<Duration>, ConfigError> {
    let text = raw.trim().to_ascii_lowercase();
    if text == "off" || text == "0" {
        return Ok(None);
    }
    let bad = || {
        ConfigError::new(
            variable,
            raw,
            "off, or a whole number with a unit (ms, s, m or h) up to 30 days",
        )
    };
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| bad())?;
    let unit_ms: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return Err(bad()),
    };
    match number.checked_mul(unit_ms).map(Duration::from_millis) {
        Some(timeout) if !timeout.is_zero() && timeout <= MAX_IDLE_TIMEOUT => Ok(Some(timeout)),
        _ => Err(bad()),
    }
}

fn parse_millis(variable: &str, raw: &str) -> Result<Duration, ConfigError> {
    raw.trim()
        .parse::<u64>()
        .map(Duration::from_millis)
        .map_err(|_| ConfigError::new(variable, raw, "a whole number of milliseconds"))
}

/// Parses the W3C-baggage-like list of `OTEL_RESOURCE_ATTRIBUTES`.
fn parse_resource_attributes(
    variable: &str,
    raw: &str,
) -> Result<Vec<(String, String)>, ConfigError> {
    let mut attributes = Vec::new();
    for pair in raw.split(',').filter(|p| !p.trim().is_empty()) {
        let bad = || {
            ConfigError::new(
                variable,
                raw,
                "a list of key=value pairs separated by commas",
            )
        };
        let (key, value) = pair.split_once('=').ok_or_else(bad)?;
        let key = key.trim();
        if key.is_empty() {
            return Err(bad());
        }
        let value = percent_encoding::percent_decode_str(value.trim())
            .decode_utf8()
            .map_err(|_| ConfigError::new(variable, raw, "percent-encoded UTF-8 values"))?;
        attributes.push((key.to_owned(), value.into_owned()));
    }
    Ok(attributes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(vars: &[(&str, &str)]) -> Result<TelemetryConfig, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        TelemetryConfig::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn empty_environment_gives_defaults() {
        assert_eq!(from(&[]).unwrap(), TelemetryConfig::default());
    }

    #[test]
    fn reads_standard_and_own_variables() {
        let config = from(&[
            ("OTEL_SERVICE_NAME", "agent"),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "service.name=ignored,region=eu%2Dwest,team=data",
            ),
            ("OTEL_SDK_DISABLED", "TRUE"),
            ("STREAMHOUSE_INSTANCE_ID", "i-1"),
            ("STREAMHOUSE_METRIC_CARDINALITY_LIMIT", "10"),
            ("STREAMHOUSE_MAX_LABEL_VALUE_BYTES", "1024"),
            ("STREAMHOUSE_PROMETHEUS_TARGET_INFO", "false"),
            ("STREAMHOUSE_PROMETHEUS_SCOPE_LABELS", "ALL"),
            ("STREAMHOUSE_PROMETHEUS_CREATED", "true"),
            ("STREAMHOUSE_EXEMPLARS", "false"),
            ("STREAMHOUSE_METRICS_MAX_CONCURRENT_SCRAPES", "2"),
            ("STREAMHOUSE_SHUTDOWN_TIMEOUT_MS", "250"),
            ("STREAMHOUSE_METRICS_ADDR", "0.0.0.0:9000"),
        ])
        .unwrap();
        assert_eq!(config.service_name, "agent");
        assert_eq!(
            config.resource_attributes,
            vec![
                ("region".to_owned(), "eu-west".to_owned()),
                ("team".to_owned(), "data".to_owned())
            ]
        );
        assert!(config.disabled);
        assert_eq!(config.service_instance_id.as_deref(), Some("i-1"));
        assert_eq!(config.cardinality_limit, 10);
        assert_eq!(config.max_label_value_bytes, 1024);
        assert!(!config.prometheus.target_info);
        assert_eq!(config.prometheus.scope_labels, ScopeLabels::All);
        assert!(config.prometheus.created_samples);
        assert_eq!(config.exemplar_filter, ExemplarFilter::AlwaysOff);
        assert_eq!(config.prometheus.max_concurrent_scrapes, 2);
        assert_eq!(config.shutdown_timeout, Duration::from_millis(250));
        assert_eq!(config.metrics_addr, "0.0.0.0:9000".parse().unwrap());
    }

    #[test]
    fn bad_values_name_the_variable_and_value() {
        let cases = [
            ("OTEL_SDK_DISABLED", "yes"),
            ("OTEL_RESOURCE_ATTRIBUTES", "novalue"),
            ("OTEL_RESOURCE_ATTRIBUTES", "=v"),
            ("STREAMHOUSE_METRIC_CARDINALITY_LIMIT", "0"),
            ("STREAMHOUSE_METRIC_CARDINALITY_LIMIT", "-3"),
            (
                "STREAMHOUSE_METRIC_CARDINALITY_LIMIT",
                "18446744073709551614",
            ),
            ("STREAMHOUSE_MAX_LABEL_VALUE_BYTES", "15"),
            ("STREAMHOUSE_MAX_LABEL_VALUE_BYTES", "65537"),
            ("STREAMHOUSE_MAX_LABEL_VALUE_BYTES", "big"),
            ("STREAMHOUSE_PROMETHEUS_TARGET_INFO", "1"),
            ("STREAMHOUSE_EXEMPLARS", "on"),
            ("OTEL_METRICS_EXEMPLAR_FILTER", "sampled"),
            ("OTEL_PROPAGATORS", "tracecontext,jaeger"),
            ("OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS", "GET,PO ST"),
            ("STREAMHOUSE_HTTP_TRACERESPONSE", "on"),
            ("STREAMHOUSE_PROMETHEUS_SCOPE_LABELS", "some"),
            ("STREAMHOUSE_PROMETHEUS_CREATED", "yes"),
            ("STREAMHOUSE_METRICS_MAX_CONCURRENT_SCRAPES", "0"),
            ("STREAMHOUSE_SHUTDOWN_TIMEOUT_MS", "5s"),
            ("STREAMHOUSE_METRICS_ADDR", "localhost"),
        ];
        for (variable, value) in cases {
            let err = from(&[(variable, value)]).unwrap_err();
            assert_eq!(err.variable, variable);
            assert_eq!(err.value, value);
            let message = err.to_string();
            assert!(
                message.contains(variable) && message.contains(value),
                "{message}"
            );
        }
    }

    #[test]
    fn http_propagation_and_exemplar_variables() {
        use crate::propagation::PropagatorKind;

        let config = from(&[
            ("OTEL_PROPAGATORS", "B3Multi,TraceContext"),
            ("OTEL_METRICS_EXEMPLAR_FILTER", "ALWAYS_ON"),
            ("OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS", "GET,PROPFIND"),
            ("STREAMHOUSE_HTTP_TRACERESPONSE", "true"),
        ])
        .unwrap();
        assert_eq!(
            config.propagators.kinds(),
            [PropagatorKind::B3Multi, PropagatorKind::TraceContext]
        );
        assert_eq!(config.exemplar_filter, ExemplarFilter::AlwaysOn);
        let known: Vec<&str> = config.http_server.known_methods.methods().collect();
        assert_eq!(known, ["GET", "PROPFIND"]);
        assert!(config.http_server.traceresponse);

        assert_eq!(
            from(&[("OTEL_PROPAGATORS", "none")]).unwrap().propagators,
            Propagators::none()
        );
        // The specification's variable wins over our alias, whichever way it points.
        let both = |alias, filter| {
            from(&[
                ("STREAMHOUSE_EXEMPLARS", alias),
                ("OTEL_METRICS_EXEMPLAR_FILTER", filter),
            ])
            .unwrap()
            .exemplar_filter
        };
        assert_eq!(both("false", "trace_based"), ExemplarFilter::TraceBased);
        assert_eq!(both("true", "always_off"), ExemplarFilter::AlwaysOff);
        let alias_only = from(&[("STREAMHOUSE_EXEMPLARS", "true")]).unwrap();
        assert_eq!(alias_only.exemplar_filter, ExemplarFilter::TraceBased);
    }
}
