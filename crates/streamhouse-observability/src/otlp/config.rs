//! OTLP push settings, built in code or read from the standard `OTEL_EXPORTER_OTLP_*`
//! variables. Push is off until an endpoint is set.

use std::fmt;
use std::time::Duration;

use opentelemetry_sdk::metrics::Temporality;

use crate::config::ConfigError;

/// Default per-export timeout (OTLP spec: 10 s).
pub const DEFAULT_EXPORT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default metric export interval (OTel spec: 60 s).
pub const DEFAULT_METRIC_EXPORT_INTERVAL: Duration = Duration::from_secs(60);
/// Default bound on spans waiting for export (OTel spec: 2048); past it, spans are dropped.
pub const DEFAULT_SPAN_QUEUE_SIZE: usize = 2048;

/// The OTLP wire protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpProtocol {
    /// OTLP over gRPC (usually port 4317).
    Grpc,
    /// OTLP protobuf over HTTP POST (usually port 4318), the spec's default.
    HttpProtobuf,
}

impl OtlpProtocol {
    fn parse(variable: &str, raw: &str) -> Result<Self, ConfigError> {
        match raw.trim() {
            "grpc" => Ok(OtlpProtocol::Grpc),
            "http/protobuf" => Ok(OtlpProtocol::HttpProtobuf),
            _ => Err(ConfigError::new(variable, raw, "grpc or http/protobuf")),
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

    const fn env_infix(self) -> &'static str {
        match self {
            Signal::Metrics => "METRICS_",
            Signal::Traces => "TRACES_",
            Signal::Logs => "LOGS_",
        }
    }
}

/// Where and how one signal is pushed.
///
/// `Debug` shows header names only: header values often carry credentials.
///
/// ```
/// use std::time::Duration;
/// use streamhouse_observability::otlp::{OtlpExporterConfig, OtlpProtocol};
///
/// let exporter = OtlpExporterConfig::new("http://127.0.0.1:4317", OtlpProtocol::Grpc)
///     .with_header("authorization", "Bearer s3cret")
///     .with_timeout(Duration::from_secs(2));
/// assert!(!format!("{exporter:?}").contains("s3cret"));
/// ```
#[derive(Clone, PartialEq)]
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
}

/// OTLP push settings. The default pushes nothing.
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
pub struct OtlpConfig {
    /// The metrics exporter; `None` pushes no metrics.
    pub metrics: Option<OtlpExporterConfig>,
    /// The span exporter; `None` pushes no spans.
    pub traces: Option<OtlpExporterConfig>,
    /// The log exporter; `None` pushes no logs. Log records are `tracing` events that pass
    /// the filter of [`logging::subscriber`](crate::logging::subscriber).
    pub logs: Option<OtlpExporterConfig>,
    /// Time between metric pushes.
    pub metric_export_interval: Duration,
    /// Temporality of pushed sums and histograms (`/metrics` is always cumulative).
    pub temporality: Temporality,
    /// Spans (and, separately, log records) waiting for export, at most; past it new ones
    /// are dropped, and dropped spans are counted.
    pub span_queue_size: usize,
    /// Time between span (and log record) batch exports.
    pub span_export_delay: Duration,
}

impl Default for OtlpConfig {
    fn default() -> Self {
        OtlpConfig {
            metrics: None,
            traces: None,
            logs: None,
            metric_export_interval: DEFAULT_METRIC_EXPORT_INTERVAL,
            temporality: Temporality::Cumulative,
            span_queue_size: DEFAULT_SPAN_QUEUE_SIZE,
            span_export_delay: Duration::from_secs(5),
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

    /// Sets the time between metric pushes.
    pub fn with_metric_export_interval(mut self, interval: Duration) -> Self {
        self.metric_export_interval = interval;
        self
    }

    /// Sets the time between span batch exports.
    pub fn with_span_export_delay(mut self, delay: Duration) -> Self {
        self.span_export_delay = delay;
        self
    }

    /// Sets the temporality of pushed metrics.
    pub fn with_temporality(mut self, temporality: Temporality) -> Self {
        self.temporality = temporality;
        self
    }

    /// Applies `f` to both exporters, if set (headers, timeout, compression).
    pub fn map_exporters(mut self, f: impl Fn(OtlpExporterConfig) -> OtlpExporterConfig) -> Self {
        self.metrics = self.metrics.map(&f);
        self.traces = self.traces.map(&f);
        self.logs = self.logs.map(&f);
        self
    }

    /// Reads the `OTEL_EXPORTER_OTLP_*`, `OTEL_METRIC_EXPORT_INTERVAL`,
    /// `OTEL_BSP_*` and `OTEL_{METRICS,TRACES,LOGS}_EXPORTER` variables through `get`, which
    /// returns `None` for unset or blank variables.
    pub(crate) fn from_lookup(get: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut config = OtlpConfig {
            metrics: exporter_from_lookup(get, Signal::Metrics)?,
            traces: exporter_from_lookup(get, Signal::Traces)?,
            logs: exporter_from_lookup(get, Signal::Logs)?,
            ..OtlpConfig::default()
        };
        if let Some(raw) = get("OTEL_METRIC_EXPORT_INTERVAL") {
            config.metric_export_interval = positive_millis("OTEL_METRIC_EXPORT_INTERVAL", &raw)?;
        }
        if let Some(raw) = get("OTEL_BSP_SCHEDULE_DELAY") {
            config.span_export_delay = positive_millis("OTEL_BSP_SCHEDULE_DELAY", &raw)?;
        }
        if let Some(raw) = get("OTEL_BSP_MAX_QUEUE_SIZE") {
            config.span_queue_size = match raw.trim().parse::<usize>() {
                Ok(n) if n > 0 => n,
                _ => {
                    return Err(ConfigError::new(
                        "OTEL_BSP_MAX_QUEUE_SIZE",
                        &raw,
                        "a positive integer",
                    ));
                }
            };
        }
        let variable = "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE";
        if let Some(raw) = get(variable) {
            config.temporality = match raw.trim().to_ascii_lowercase().as_str() {
                "cumulative" => Temporality::Cumulative,
                "delta" => Temporality::Delta,
                "lowmemory" => Temporality::LowMemory,
                _ => {
                    return Err(ConfigError::new(
                        variable,
                        &raw,
                        "cumulative, delta or lowmemory",
                    ));
                }
            };
        }
        Ok(config)
    }
}

/// The per-signal URL for a base endpoint: gRPC uses it as is, HTTP appends `/v1/<signal>`.
fn signal_url(base: &str, protocol: OtlpProtocol, signal: Signal) -> String {
    match protocol {
        OtlpProtocol::Grpc => base.to_owned(),
        OtlpProtocol::HttpProtobuf => {
            format!("{}/v1/{}", base.trim_end_matches('/'), signal.as_str())
        }
    }
}

/// One signal's exporter from the generic and per-signal variables; per-signal wins.
fn exporter_from_lookup(
    get: &dyn Fn(&str) -> Option<String>,
    signal: Signal,
) -> Result<Option<OtlpExporterConfig>, ConfigError> {
    let infix = signal.env_infix();
    let specific = |suffix: &str| format!("OTEL_EXPORTER_OTLP_{infix}{suffix}");
    // Returns the first set variable of the per-signal and generic pair, with its name.
    let either = |suffix: &str| {
        let name = specific(suffix);
        match get(&name) {
            Some(value) => Some((name, value)),
            None => {
                let name = format!("OTEL_EXPORTER_OTLP_{suffix}");
                get(&name).map(|value| (name, value))
            }
        }
    };

    let selector = format!("OTEL_{}EXPORTER", infix);
    if let Some(raw) = get(&selector) {
        match raw.trim() {
            "otlp" => {}
            "none" => return Ok(None),
            _ => return Err(ConfigError::new(&selector, &raw, "otlp or none")),
        }
    }

    let protocol = match either("PROTOCOL") {
        Some((name, raw)) => OtlpProtocol::parse(&name, &raw)?,
        None => OtlpProtocol::HttpProtobuf,
    };
    let endpoint = match get(&specific("ENDPOINT")) {
        Some(raw) => {
            validate_endpoint(&specific("ENDPOINT"), &raw)?;
            raw.trim().to_owned()
        }
        None => match get("OTEL_EXPORTER_OTLP_ENDPOINT") {
            Some(raw) => {
                validate_endpoint("OTEL_EXPORTER_OTLP_ENDPOINT", &raw)?;
                signal_url(raw.trim(), protocol, signal)
            }
            None => return Ok(None),
        },
    };
    let mut exporter = OtlpExporterConfig::new(endpoint, protocol);
    // Generic headers first, then per-signal ones, which win on a shared name.
    for name in ["OTEL_EXPORTER_OTLP_HEADERS".to_owned(), specific("HEADERS")] {
        if let Some(raw) = get(&name) {
            for (key, value) in parse_headers(&name, &raw)? {
                exporter
                    .headers
                    .retain(|(k, _)| !k.eq_ignore_ascii_case(&key));
                exporter.headers.push((key, value));
            }
        }
    }
    if let Some((name, raw)) = either("TIMEOUT") {
        exporter.timeout = positive_millis(&name, &raw)?;
    }
    if let Some((name, raw)) = either("COMPRESSION") {
        exporter.gzip = match raw.trim() {
            "gzip" => true,
            "none" => false,
            _ => return Err(ConfigError::new(&name, &raw, "gzip or none")),
        };
    }
    Ok(Some(exporter))
}

/// Accepts `http://host[:port][/path]` and `https://...`; anything else is an error now
/// rather than a silent export failure later.
fn validate_endpoint(variable: &str, raw: &str) -> Result<(), ConfigError> {
    let expected = "an http:// or https:// URL with a host, like http://127.0.0.1:4318";
    let uri: http::Uri = raw
        .trim()
        .parse()
        .map_err(|_| ConfigError::new(variable, raw, expected))?;
    let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
    let host_ok = uri.host().is_some_and(|h| !h.is_empty());
    if scheme_ok && host_ok {
        Ok(())
    } else {
        Err(ConfigError::new(variable, raw, expected))
    }
}

/// Parses `key=value,key2=value2` (values percent-decoded). The error never repeats the
/// value: headers usually hold credentials.
fn parse_headers(variable: &str, raw: &str) -> Result<Vec<(String, String)>, ConfigError> {
    let bad = || {
        ConfigError::new(
            variable,
            "<redacted>",
            "a list of name=value pairs separated by commas, names being HTTP header tokens",
        )
    };
    let mut headers = Vec::new();
    for pair in raw.split(',').filter(|p| !p.trim().is_empty()) {
        let (key, value) = pair.split_once('=').ok_or_else(bad)?;
        let key = key.trim();
        if http::HeaderName::from_bytes(key.as_bytes()).is_err() {
            return Err(bad());
        }
        let value = percent_encoding::percent_decode_str(value.trim())
            .decode_utf8()
            .map_err(|_| bad())?;
        if http::HeaderValue::from_str(&value).is_err() {
            return Err(bad());
        }
        headers.push((key.to_ascii_lowercase(), value.into_owned()));
    }
    Ok(headers)
}

fn positive_millis(variable: &str, raw: &str) -> Result<Duration, ConfigError> {
    match raw.trim().parse::<u64>() {
        Ok(ms) if ms > 0 => Ok(Duration::from_millis(ms)),
        _ => Err(ConfigError::new(
            variable,
            raw,
            "a positive whole number of milliseconds",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(vars: &[(&str, &str)]) -> Result<OtlpConfig, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        OtlpConfig::from_lookup(&|name| vars.get(name).cloned())
    }

    #[test]
    fn off_without_an_endpoint() {
        let config = from(&[("OTEL_EXPORTER_OTLP_HEADERS", "a=b")]).unwrap();
        assert_eq!(config, OtlpConfig::default());
    }

    #[test]
    fn generic_endpoint_gets_signal_paths_over_http_only() {
        let http = from(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318/")]).unwrap();
        assert_eq!(http.logs.unwrap().endpoint, "http://c:4318/v1/logs");
        assert_eq!(http.metrics.unwrap().endpoint, "http://c:4318/v1/metrics");
        assert_eq!(http.traces.unwrap().endpoint, "http://c:4318/v1/traces");
        let grpc = from(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ])
        .unwrap();
        assert_eq!(grpc.metrics.unwrap().endpoint, "http://c:4317");
    }

    #[test]
    fn per_signal_variables_win() {
        let config = from(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://t:4317"),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc"),
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "x-tenant=a,authorization=generic",
            ),
            (
                "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
                "Authorization=Bearer%20t",
            ),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "3000"),
            ("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "1500"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "250"),
            ("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "Delta"),
        ])
        .unwrap();
        let traces = config.traces.unwrap();
        assert_eq!(traces.endpoint, "http://t:4317");
        assert_eq!(traces.protocol, OtlpProtocol::Grpc);
        assert_eq!(
            traces.headers,
            vec![
                ("x-tenant".to_owned(), "a".to_owned()),
                ("authorization".to_owned(), "Bearer t".to_owned())
            ]
        );
        assert_eq!(traces.timeout, Duration::from_secs(3));
        assert!(traces.gzip);
        let metrics = config.metrics.unwrap();
        assert_eq!(metrics.protocol, OtlpProtocol::HttpProtobuf);
        assert_eq!(metrics.timeout, Duration::from_millis(1500));
        assert_eq!(config.metric_export_interval, Duration::from_millis(250));
        assert_eq!(config.temporality, Temporality::Delta);
    }

    #[test]
    fn exporter_none_turns_a_signal_off() {
        let config = from(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_TRACES_EXPORTER", "none"),
            ("OTEL_LOGS_EXPORTER", "none"),
        ])
        .unwrap();
        assert!(config.metrics.is_some());
        assert!(config.traces.is_none());
        assert!(config.logs.is_none());
    }

    #[test]
    fn bad_values_name_the_variable() {
        let cases = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "localhost:4317"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "ftp://c:21"),
            ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://bad host"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "udp"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "10s"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "zstd"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "soon"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "0"),
            ("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "both"),
            ("OTEL_TRACES_EXPORTER", "jaeger"),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "-1"),
        ];
        for (variable, value) in cases {
            let mut vars = vec![(variable, value)];
            if !variable.ends_with("ENDPOINT") {
                vars.push(("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"));
            }
            let err = from(&vars).unwrap_err();
            assert_eq!(err.variable, variable, "{value}");
            assert_eq!(err.value, value);
            assert!(err.to_string().contains(variable));
        }
    }

    #[test]
    fn bad_headers_are_named_but_never_echoed() {
        for raw in ["Authorization: Bearer s3cret", "bad name=s3cret", "=s3cret"] {
            let err = from(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
                ("OTEL_EXPORTER_OTLP_HEADERS", raw),
            ])
            .unwrap_err();
            assert_eq!(err.variable, "OTEL_EXPORTER_OTLP_HEADERS");
            assert!(!err.to_string().contains("s3cret"), "{err}");
            assert!(!format!("{err:?}").contains("s3cret"));
        }
    }
}
