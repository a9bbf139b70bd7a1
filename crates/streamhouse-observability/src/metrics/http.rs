//! HTTP server metrics with the semantic-convention labels: `http.server.request.duration`
//! and `http.server.active_requests`.

use std::sync::Arc;
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::BoundUpDownCounter;

use super::bound_cache::BoundCache;
use super::instruments::{BoundHistogram, Histogram, Instruments, UpDownCounter};
use super::value_bound::truncate_label_value;
use crate::catalog::{self, label};
use crate::config::ConfigError;

/// The methods the semantic conventions list (RFC 9110 and PATCH).
pub const DEFAULT_KNOWN_METHODS: &[&str] = &[
    "CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE",
];
/// Most methods [`KnownMethods`] holds: each is a label value, so the set bounds the series.
pub const MAX_KNOWN_METHODS: usize = 64;
/// Longest method token [`KnownMethods`] accepts, in bytes.
pub const MAX_METHOD_BYTES: usize = 32;
/// The label value of every method outside the known set.
pub const OTHER_METHOD: &str = "_OTHER";

/// The HTTP methods that keep their name as a label value
/// (`OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS`); every other becomes `_OTHER`, so clients
/// cannot grow the series count by inventing methods. Case-sensitive, as methods are.
///
/// ```
/// use streamhouse_observability::metrics::KnownMethods;
///
/// let known = KnownMethods::parse("OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS", "GET,PROPFIND")
///     .unwrap();
/// assert_eq!(known.label("PROPFIND"), "PROPFIND");
/// assert_eq!(known.label("POST"), "_OTHER");
/// assert_eq!(known.label("get"), "_OTHER");
/// assert_eq!(KnownMethods::default().label("PATCH"), "PATCH");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownMethods(Arc<[Box<str>]>);

impl Default for KnownMethods {
    /// [`DEFAULT_KNOWN_METHODS`].
    fn default() -> Self {
        KnownMethods(
            DEFAULT_KNOWN_METHODS
                .iter()
                .map(|m| Box::from(*m))
                .collect(),
        )
    }
}

impl KnownMethods {
    /// Parses a comma list of method tokens (RFC 9110 `token`: letters, digits and
    /// ``!#$%&'*+-.^_`|~``), which replaces the default set. Blanks around names are ignored;
    /// repeats are dropped.
    ///
    /// # Errors
    /// A [`ConfigError`] naming `variable` for an empty member, a character outside the
    /// token set, a token longer than [`MAX_METHOD_BYTES`], or more than
    /// [`MAX_KNOWN_METHODS`] methods.
    pub fn parse(variable: &str, raw: &str) -> Result<Self, ConfigError> {
        let bad = || {
            ConfigError::new(
                variable,
                raw,
                format!(
                    "a comma list of at most {MAX_KNOWN_METHODS} HTTP method tokens of at \
                     most {MAX_METHOD_BYTES} bytes each"
                ),
            )
        };
        let mut methods: Vec<Box<str>> = Vec::new();
        for method in raw.split(',').map(str::trim) {
            if !is_method_token(method) {
                return Err(bad());
            }
            if !methods.iter().any(|m| &**m == method) {
                if methods.len() == MAX_KNOWN_METHODS {
                    return Err(bad());
                }
                methods.push(method.into());
            }
        }
        Ok(KnownMethods(methods.into()))
    }

    /// The label value of `method`: itself when known, else [`OTHER_METHOD`].
    pub fn label(&self, method: &str) -> &str {
        self.0
            .iter()
            .find(|known| &***known == method)
            .map_or(OTHER_METHOD, |known| known)
    }

    /// The known methods, in the order given.
    pub fn methods(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|m| &**m)
    }
}

/// RFC 9110 section 5.6.2 `token`, within [`MAX_METHOD_BYTES`].
fn is_method_token(method: &str) -> bool {
    (1..=MAX_METHOD_BYTES).contains(&method.len())
        && method
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// How HTTP servers record: which methods keep their name, and whether responses carry a
/// `traceresponse` header.
///
/// ```
/// use streamhouse_observability::TelemetryConfig;
/// use streamhouse_observability::config::HttpServerConfig;
///
/// let config = TelemetryConfig::default()
///     .with_http_server(HttpServerConfig::default().with_traceresponse(true));
/// assert!(config.http_server.traceresponse);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct HttpServerConfig {
    /// Methods that keep their name as a label value; the rest are `_OTHER`.
    pub known_methods: KnownMethods,
    /// Answer every request with a W3C Trace Context Level 2 `traceresponse` header naming
    /// the server span (`STREAMHOUSE_HTTP_TRACERESPONSE`); off by default, as it tells
    /// clients the trace ids of this service.
    pub traceresponse: bool,
}

impl HttpServerConfig {
    /// Sets the known methods.
    pub fn with_known_methods(mut self, known_methods: KnownMethods) -> Self {
        self.known_methods = known_methods;
        self
    }

    /// Sets whether responses carry `traceresponse`.
    pub fn with_traceresponse(mut self, traceresponse: bool) -> Self {
        self.traceresponse = traceresponse;
        self
    }
}

/// How a request ended, for the `http.response.status_code` and `error.type` labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpOutcome {
    /// A response with this status; a 5xx is an error whose `error.type` is the code.
    Status(u16),
    /// No response: the service failed. The class becomes `error.type` (a fixed string,
    /// such as `_OTHER` or `timeout`, so the label stays bounded); no status code.
    Failed(&'static str),
}

/// Records HTTP server request durations and requests in flight. Usually fed by
/// [`HttpServerLayer`](crate::http::HttpServerLayer).
///
/// Methods outside [`HttpServerConfig::known_methods`] become `_OTHER`; schemes other than
/// `http` and `https` become `_OTHER`; route and method are cut to the configured label value
/// length, and label sets past the cardinality limit land in the overflow series.
/// `error.type` is present only for failures (a 5xx status or no response), so a Prometheus
/// series of a successful request has no `error_type` label.
///
/// ```
/// use std::time::Duration;
/// use streamhouse_observability::{Telemetry, TelemetryConfig};
///
/// let telemetry = Telemetry::new(TelemetryConfig::default()).unwrap();
/// telemetry
///     .http_server()
///     .record_request("GET", Some("/topics/{topic}"), 200, Duration::from_millis(3));
/// let text = telemetry.render_prometheus();
/// assert!(text.contains(r#"http_server_request_duration_seconds_count{http_request_method="GET",http_response_status_code="200",http_route="/topics/{topic}",url_scheme="http"} 1"#));
/// ```
#[derive(Debug, Clone)]
pub struct HttpServerMetrics {
    duration: Histogram,
    // Keyed by [method, status, scheme, presence, route?, error?]; see `record_request_with`.
    bound: Arc<BoundCache<BoundHistogram>>,
    active: UpDownCounter,
    // Keyed by [method, scheme].
    active_bound: Arc<BoundCache<BoundUpDownCounter<i64>>>,
    known_methods: KnownMethods,
    max_value_bytes: usize,
}

impl HttpServerMetrics {
    pub(crate) fn new(instruments: &Instruments<'_>, config: &HttpServerConfig) -> Self {
        HttpServerMetrics {
            duration: instruments.histogram(&catalog::HTTP_SERVER_REQUEST_DURATION),
            bound: instruments.cache(&[], true),
            active: instruments.up_down_counter(&catalog::HTTP_SERVER_ACTIVE_REQUESTS),
            active_bound: instruments.cache(&[], false),
            known_methods: config.known_methods.clone(),
            max_value_bytes: instruments.max_label_value_bytes,
        }
    }

    /// The label value of `method`: itself when known, else `_OTHER`.
    pub fn method_label(&self, method: &str) -> &str {
        self.known_methods.label(method)
    }

    /// Records one finished `http` request with a response. `route` is the matched route
    /// template (`/topics/{topic}`), never the raw path, so the series count stays bounded;
    /// `None` when no route matched (the attribute is then left out, as the conventions say).
    pub fn record_request(
        &self,
        method: &str,
        route: Option<&str>,
        status: u16,
        elapsed: Duration,
    ) {
        self.record_request_with(method, route, "http", HttpOutcome::Status(status), elapsed);
    }

    /// Records one finished request of any scheme and outcome. Allocation-free once the
    /// label set has been seen.
    pub fn record_request_with(
        &self,
        method: &str,
        route: Option<&str>,
        scheme: &str,
        outcome: HttpOutcome,
        elapsed: Duration,
    ) {
        let method = truncate_label_value(self.method_label(method), self.max_value_bytes);
        let route = route.map(|r| truncate_label_value(r, self.max_value_bytes));
        let scheme = scheme_label(scheme);
        let mut status_buffer = itoa::Buffer::new();
        let (status, error) = match outcome {
            HttpOutcome::Status(code) => {
                let text = status_buffer.format(code);
                (text, (code >= 500).then_some(text))
            }
            HttpOutcome::Failed(class) => ("", Some(class)),
        };
        // Which optional labels follow, so keys with a route and keys with an error type
        // never collide.
        let presence = match (route.is_some(), error.is_some()) {
            (false, false) => "",
            (true, false) => "r",
            (false, true) => "e",
            (true, true) => "re",
        };
        let mut key = [method, status, scheme, presence, "", ""];
        let mut len = 4;
        for value in [route, error].into_iter().flatten() {
            key[len] = value;
            len += 1;
        }
        self.bound.with(
            &key[..len],
            || self.bind(method, route, status, scheme, error),
            || self.duration.bind_overflow(),
            |histogram| histogram.record(elapsed.as_secs_f64()),
        );
    }

    fn bind(
        &self,
        method: &str,
        route: Option<&str>,
        status: &str,
        scheme: &str,
        error: Option<&str>,
    ) -> BoundHistogram {
        // Sorted by key, as the SDK stores them: error.type, http.request.method,
        // http.response.status_code, http.route, url.scheme.
        let mut attributes = Vec::with_capacity(5);
        if let Some(error) = error {
            attributes.push(KeyValue::new(label::HTTP_ERROR_TYPE, error.to_owned()));
        }
        attributes.push(KeyValue::new(label::HTTP_REQUEST_METHOD, method.to_owned()));
        if let Ok(status) = status.parse::<i64>() {
            attributes.push(KeyValue::new(label::HTTP_RESPONSE_STATUS_CODE, status));
        }
        if let Some(route) = route {
            attributes.push(KeyValue::new(label::HTTP_ROUTE, route.to_owned()));
        }
        attributes.push(KeyValue::new(label::URL_SCHEME, scheme.to_owned()));
        self.duration.bind(&attributes)
    }

    /// Counts a request in flight until the returned guard is dropped: when the request
    /// finishes, or when its future is dropped (a client that went away).
    ///
    /// ```
    /// use streamhouse_observability::{Telemetry, TelemetryConfig};
    ///
    /// let telemetry = Telemetry::new(TelemetryConfig::default()).unwrap();
    /// let guard = telemetry.http_server().start_request("GET", "https");
    /// let text = telemetry.render_prometheus();
    /// assert!(text.contains(r#"http_server_active_requests{http_request_method="GET",url_scheme="https"} 1"#));
    /// drop(guard);
    /// let text = telemetry.render_prometheus();
    /// assert!(text.contains(r#"http_server_active_requests{http_request_method="GET",url_scheme="https"} 0"#));
    /// ```
    pub fn start_request(&self, method: &str, scheme: &str) -> ActiveRequest {
        let method = truncate_label_value(self.method_label(method), self.max_value_bytes);
        let scheme = scheme_label(scheme);
        let counter = self.active_bound.with(
            &[method, scheme],
            || {
                // Sorted by key.
                self.active.bind(&[
                    KeyValue::new(label::HTTP_REQUEST_METHOD, method.to_owned()),
                    KeyValue::new(label::URL_SCHEME, scheme.to_owned()),
                ])
            },
            || self.active.bind_overflow(),
            BoundUpDownCounter::clone,
        );
        counter.add(1);
        ActiveRequest { counter }
    }
}

/// `http` or `https`; anything else is `_OTHER`, so the label stays bounded.
fn scheme_label(scheme: &str) -> &'static str {
    if scheme.eq_ignore_ascii_case("http") {
        "http"
    } else if scheme.eq_ignore_ascii_case("https") {
        "https"
    } else {
        "_OTHER"
    }
}

/// A request counted in `http.server.active_requests`; dropping it ends the count.
#[derive(Debug)]
#[must_use = "the request stops counting as active when this is dropped"]
pub struct ActiveRequest {
    counter: BoundUpDownCounter<i64>,
}

impl Drop for ActiveRequest {
    fn drop(&mut self) {
        self.counter.add(-1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VAR: &str = "OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS";

    #[test]
    fn known_methods_replace_the_default_set_case_sensitively() {
        let known = KnownMethods::parse(VAR, " GET , PROPFIND,GET").unwrap();
        assert_eq!(known.methods().collect::<Vec<_>>(), ["GET", "PROPFIND"]);
        assert_eq!(known.label("PROPFIND"), "PROPFIND");
        assert_eq!(known.label("POST"), OTHER_METHOD);
        assert_eq!(known.label("Get"), OTHER_METHOD);
        let default = KnownMethods::default();
        for method in DEFAULT_KNOWN_METHODS {
            assert_eq!(default.label(method), *method);
        }
        assert_eq!(default.label("QUERY"), OTHER_METHOD);
    }

    #[test]
    fn bad_method_lists_name_the_variable() {
        let too_long = "M".repeat(MAX_METHOD_BYTES + 1);
        let too_many: Vec<String> = (0..=MAX_KNOWN_METHODS).map(|i| format!("M{i}")).collect();
        let too_many = too_many.join(",");
        for raw in [
            "GET,,POST",
            "GET POST",
            "GÉT",
            "GET,(x)",
            &too_long,
            &too_many,
        ] {
            let err = KnownMethods::parse(VAR, raw).unwrap_err();
            assert_eq!((err.variable.as_str(), err.value.as_str()), (VAR, raw));
        }
        assert!(KnownMethods::parse(VAR, &"M".repeat(MAX_METHOD_BYTES)).is_ok());
    }

    #[test]
    fn schemes_outside_http_and_https_are_other() {
        assert_eq!(scheme_label("HTTPS"), "https");
        assert_eq!(scheme_label("http"), "http");
        assert_eq!(scheme_label("ftp"), "_OTHER");
    }
}
