//! OTLP push settings built in code. Push is off until an endpoint is set; the environment
//! is read only by [`OtlpConfig::from_lookup`] (see `env.rs`), so what code sets is final.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use opentelemetry_sdk::metrics::Temporality;

use crate::config::ConfigError;

/// Default per-export timeout (OTLP spec: 10 s).
pub const DEFAULT_EXPORT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default metric export interval (OTel spec: 60 s).
pub const DEFAULT_METRIC_EXPORT_INTERVAL: Duration = Duration::from_secs(60);
/// Default bound on a whole metric, span or log batch export (OTel spec: 30 s).
pub const DEFAULT_BATCH_EXPORT_TIMEOUT: Duration = Duration::from_secs(30);
/// Default bound on spans waiting for export (OTel spec: 2048); past it, spans are dropped.
pub const DEFAULT_SPAN_QUEUE_SIZE: usize = 2048;
/// Default largest span or log batch (OTel spec: 512).
pub const DEFAULT_MAX_EXPORT_BATCH_SIZE: usize = 512;

/// The OTLP wire protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpProtocol {
    /// OTLP over gRPC (usually port 4317); needs the `otlp-grpc` feature.
    Grpc,
    /// OTLP protobuf over HTTP POST (usually port 4318), the spec's default; needs the
    /// `otlp-http` feature.
    HttpProtobuf,
}

impl OtlpProtocol {
    pub(crate) fn parse(variable: &str, raw: &str) -> Result<Self, ConfigError> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "grpc" => Ok(OtlpProtocol::Grpc),
            "http/protobuf" => Ok(OtlpProtocol::HttpProtobuf),
            _ => Err(ConfigError::new(variable, raw, "grpc or http/protobuf")),
        }
    }

    /// The spec's name of the protocol (`grpc`, `http/protobuf`).
    pub const fn as_str(self) -> &'static str {
        match self {
            OtlpProtocol::Grpc => "grpc",
            OtlpProtocol::HttpProtobuf => "http/protobuf",
        }
    }
}

/// Which signal an exporter carries; also the `signal` label of the failure counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Signal {
    /// Metrics.
    Metrics,
    /// Traces.
    Traces,
    /// Logs (`tracing` events, through `opentelemetry-appender-tracing`).
    Logs,
}

impl Signal {
    /// Every signal.
    pub const ALL: [Signal; 3] = [Signal::Metrics, Signal::Traces, Signal::Logs];

    /// The label value and the OTLP/HTTP path segment (`metrics`, `traces`, `logs`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Signal::Metrics => "metrics",
            Signal::Traces => "traces",
            Signal::Logs => "logs",
        }
    }

    pub(crate) const fn env_infix(self) -> &'static str {
        match self {
            Signal::Metrics => "METRICS_",
            Signal::Traces => "TRACES_",
            Signal::Logs => "LOGS_",
        }
    }
}

/// A PEM file and the setting that named it, so an unreadable or invalid file is reported
/// against the variable (or builder method) the user actually set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PemFile {
    /// Where the PEM data lives; read once, when [`Telemetry::new`](crate::Telemetry::new)
    /// builds the exporters.
    pub path: PathBuf,
    /// The variable or builder setting it came from, e.g. `OTEL_EXPORTER_OTLP_CERTIFICATE`.
    pub setting: String,
}

impl PemFile {
    /// A file named by `setting`.
    pub fn new(path: impl Into<PathBuf>, setting: impl Into<String>) -> Self {
        PemFile {
            path: path.into(),
            setting: setting.into(),
        }
    }
}

/// TLS of one exporter (needs the `tls` feature). By default the system's roots verify the
/// collector and no client certificate is sent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct OtlpTlsConfig {
    /// CA bundle that replaces the system roots (`OTEL_EXPORTER_OTLP_CERTIFICATE`).
    pub ca_certificate: Option<PemFile>,
    /// Client certificate chain for mutual TLS (`OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE`).
    pub client_certificate: Option<PemFile>,
    /// Private key of the client certificate (`OTEL_EXPORTER_OTLP_CLIENT_KEY`).
    pub client_key: Option<PemFile>,
}

impl OtlpTlsConfig {
    /// True when any file is set.
    pub fn is_set(&self) -> bool {
        self.ca_certificate.is_some()
            || self.client_certificate.is_some()
            || self.client_key.is_some()
    }
}

/// Where and how one signal is pushed: endpoint, protocol, headers, compression, timeout and
/// TLS, used as given (the environment is never consulted here).
///
/// `Debug` shows header names only: header values often carry credentials.
///
/// ```
/// use std::time::Duration;
/// use streamhouse_observability::otlp::{OtlpExporterConfig, OtlpProtocol};
///
/// let exporter = OtlpExporterConfig::new("https://collector:4317", OtlpProtocol::Grpc)
///     .with_header("authorization", "Bearer s3cret")
///     .with_ca_certificate("/etc/otel/ca.pem")
///     .with_client_identity("/etc/otel/client.pem", "/etc/otel/client.key")
///     .with_timeout(Duration::from_secs(2));
/// assert!(!format!("{exporter:?}").contains("s3cret"));
/// ```
#[derive(Clone, PartialEq)]
#[non_exhaustive]
pub struct OtlpExporterConfig {
    /// The full URL the exporter sends to (for HTTP, including `/v1/metrics` or `/v1/traces`).
    pub endpoint: String,
    /// Wire protocol.
    pub protocol: OtlpProtocol,
    /// Extra request headers (gRPC metadata).
    pub headers: Vec<(String, String)>,
    /// Bound on one export request.
    pub timeout: Duration,
    /// Compress requests with gzip.
    pub gzip: bool,
    /// CA and client identity for `https://` endpoints.
    pub tls: OtlpTlsConfig,
}

impl fmt::Debug for OtlpExporterConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let header_names: Vec<&str> = self.headers.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("OtlpExporterConfig")
            .field("endpoint", &self.endpoint)
            .field("protocol", &self.protocol)
            .field("header_names", &header_names)
            .field("timeout", &self.timeout)
            .field("gzip", &self.gzip)
            .field("tls", &self.tls)
            .finish()
    }
}

impl OtlpExporterConfig {
    /// An exporter to `endpoint`, used exactly as given.
    pub fn new(endpoint: impl Into<String>, protocol: OtlpProtocol) -> Self {
        OtlpExporterConfig {
            endpoint: endpoint.into(),
            protocol,
            headers: Vec::new(),
            timeout: DEFAULT_EXPORT_TIMEOUT,
            gzip: false,
            tls: OtlpTlsConfig::default(),
        }
    }

    /// Adds a request header.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the bound on one export request.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Compresses requests with gzip.
    pub fn with_gzip(mut self, gzip: bool) -> Self {
        self.gzip = gzip;
        self
    }

    /// Verifies the collector with the CA bundle at `path` (PEM) instead of the system roots.
    pub fn with_ca_certificate(mut self, path: impl Into<PathBuf>) -> Self {
        self.tls.ca_certificate = Some(PemFile::new(path, "OtlpExporterConfig::ca_certificate"));
        self
    }

    /// Presents the client certificate chain at `certificate` with the private key at `key`
    /// (both PEM) for mutual TLS.
    pub fn with_client_identity(
        mut self,
        certificate: impl Into<PathBuf>,
        key: impl Into<PathBuf>,
    ) -> Self {
        self.tls.client_certificate = Some(PemFile::new(
            certificate,
            "OtlpExporterConfig::client_certificate",
        ));
        self.tls.client_key = Some(PemFile::new(key, "OtlpExporterConfig::client_key"));
        self
    }

    /// Replaces the whole TLS setting.
    pub fn with_tls(mut self, tls: OtlpTlsConfig) -> Self {
        self.tls = tls;
        self
    }
}

/// Batching of spans or log records: bounded queue, pace, batch size and export bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct BatchConfig {
    /// Records waiting for export, at most; past it new ones are dropped and counted.
    pub queue_size: usize,
    /// Time between batch exports.
    pub schedule_delay: Duration,
    /// Largest batch; clamped to `queue_size`.
    pub max_export_batch_size: usize,
    /// Bound on one whole batch export (all attempts included).
    pub export_timeout: Duration,
}

impl BatchConfig {
    /// The specification's defaults (queue 2048, batch 512, export bound 30 s) with
    /// `schedule_delay` (the specification says 5 s for spans, 1 s for logs).
    pub const fn new(schedule_delay: Duration) -> Self {
        BatchConfig {
            queue_size: DEFAULT_SPAN_QUEUE_SIZE,
            schedule_delay,
            max_export_batch_size: DEFAULT_MAX_EXPORT_BATCH_SIZE,
            export_timeout: DEFAULT_BATCH_EXPORT_TIMEOUT,
        }
    }
}

/// OTLP push and console output settings. The default pushes nothing.
///
/// ```
/// use std::time::Duration;
/// use streamhouse_observability::otlp::{OtlpConfig, OtlpProtocol};
///
/// let otlp = OtlpConfig::default()
///     .with_endpoint("http://collector:4318", OtlpProtocol::HttpProtobuf)
///     .with_metric_export_interval(Duration::from_secs(10));
/// assert_eq!(otlp.metrics.unwrap().endpoint, "http://collector:4318/v1/metrics");
/// assert_eq!(otlp.traces.unwrap().endpoint, "http://collector:4318/v1/traces");
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct OtlpConfig {
    /// The metrics exporter; `None` pushes no metrics.
    pub metrics: Option<OtlpExporterConfig>,
    /// The span exporter; `None` pushes no spans.
    pub traces: Option<OtlpExporterConfig>,
    /// The log exporter; `None` pushes no logs. Log records are `tracing` events that pass
    /// the filter of [`logging::subscriber`](crate::logging::subscriber).
    pub logs: Option<OtlpExporterConfig>,
    /// Signals also written to stdout by `opentelemetry-stdout` (`console` exporter).
    pub console: Vec<Signal>,
    /// Time between metric pushes.
    pub metric_export_interval: Duration,
    /// Bound on one whole metric export (`OTEL_METRIC_EXPORT_TIMEOUT`).
    pub metric_export_timeout: Duration,
    /// Temporality of pushed sums and histograms (`/metrics` is always cumulative).
    pub temporality: Temporality,
    /// Spans waiting for export, at most; past it new ones are dropped and counted.
    pub span_queue_size: usize,
    /// Time between span batch exports.
    pub span_export_delay: Duration,
    /// Largest span batch (`OTEL_BSP_MAX_EXPORT_BATCH_SIZE`).
    pub span_max_export_batch_size: usize,
    /// Bound on one whole span batch export (`OTEL_BSP_EXPORT_TIMEOUT`).
    pub span_export_timeout: Duration,
    /// Batching of log records (`OTEL_BLRP_*`), separate from spans'.
    pub log_batch: BatchConfig,
}

impl Default for OtlpConfig {
    fn default() -> Self {
        OtlpConfig {
            metrics: None,
            traces: None,
            logs: None,
            console: Vec::new(),
            metric_export_interval: DEFAULT_METRIC_EXPORT_INTERVAL,
            metric_export_timeout: DEFAULT_BATCH_EXPORT_TIMEOUT,
            temporality: Temporality::Cumulative,
            span_queue_size: DEFAULT_SPAN_QUEUE_SIZE,
            span_export_delay: Duration::from_secs(5),
            span_max_export_batch_size: DEFAULT_MAX_EXPORT_BATCH_SIZE,
            span_export_timeout: DEFAULT_BATCH_EXPORT_TIMEOUT,
            log_batch: BatchConfig::new(Duration::from_secs(1)),
        }
    }
}

impl OtlpConfig {
    /// Pushes metrics, traces and logs to the collector at `base`. For HTTP the signal
    /// paths (`/v1/metrics`, ...) are appended, as the spec does for
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub fn with_endpoint(mut self, base: &str, protocol: OtlpProtocol) -> Self {
        let exporter = |signal| {
            Some(OtlpExporterConfig::new(
                signal_url(base, protocol, signal),
                protocol,
            ))
        };
        self.metrics = exporter(Signal::Metrics);
        self.traces = exporter(Signal::Traces);
        self.logs = exporter(Signal::Logs);
        self
    }

    /// The exporter of `signal`, if set.
    pub fn exporter(&self, signal: Signal) -> Option<&OtlpExporterConfig> {
        match signal {
            Signal::Metrics => self.metrics.as_ref(),
            Signal::Traces => self.traces.as_ref(),
            Signal::Logs => self.logs.as_ref(),
        }
    }

    /// Also writes `signal` to stdout (the `console` exporter).
    pub fn with_console(mut self, signal: Signal) -> Self {
        if !self.console.contains(&signal) {
            self.console.push(signal);
        }
        self
    }

    /// Sets the time between metric pushes.
    pub fn with_metric_export_interval(mut self, interval: Duration) -> Self {
        self.metric_export_interval = interval;
        self
    }

    /// Sets the bound on one whole metric export.
    pub fn with_metric_export_timeout(mut self, timeout: Duration) -> Self {
        self.metric_export_timeout = timeout;
        self
    }

    /// Sets the time between span batch exports.
    pub fn with_span_export_delay(mut self, delay: Duration) -> Self {
        self.span_export_delay = delay;
        self
    }

    /// Sets the bound on spans waiting for export.
    pub fn with_span_queue_size(mut self, size: usize) -> Self {
        self.span_queue_size = size;
        self
    }

    /// Sets the batching of log records.
    pub fn with_log_batch(mut self, batch: BatchConfig) -> Self {
        self.log_batch = batch;
        self
    }

    /// Sets the temporality of pushed metrics.
    pub fn with_temporality(mut self, temporality: Temporality) -> Self {
        self.temporality = temporality;
        self
    }

    /// Applies `f` to every exporter that is set (headers, timeout, compression, TLS).
    pub fn map_exporters(mut self, f: impl Fn(OtlpExporterConfig) -> OtlpExporterConfig) -> Self {
        self.metrics = self.metrics.map(&f);
        self.traces = self.traces.map(&f);
        self.logs = self.logs.map(&f);
        self
    }

    /// The span batching as one [`BatchConfig`].
    #[cfg_attr(
        not(any(feature = "otlp-grpc", feature = "otlp-http")),
        allow(dead_code)
    )]
    pub(crate) fn span_batch(&self) -> BatchConfig {
        BatchConfig {
            queue_size: self.span_queue_size,
            schedule_delay: self.span_export_delay,
            max_export_batch_size: self.span_max_export_batch_size,
            export_timeout: self.span_export_timeout,
        }
    }
}

/// The per-signal URL for a base endpoint: gRPC uses it as is, HTTP appends `/v1/<signal>`.
pub(crate) fn signal_url(base: &str, protocol: OtlpProtocol, signal: Signal) -> String {
    match protocol {
        OtlpProtocol::Grpc => base.to_owned(),
        OtlpProtocol::HttpProtobuf => {
            format!("{}/v1/{}", base.trim_end_matches('/'), signal.as_str())
        }
    }
}
