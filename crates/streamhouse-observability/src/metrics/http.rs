//! HTTP server metrics: `http.server.request.duration` with semantic-convention labels.

use std::time::Duration;

use super::instruments::{Histogram, Instruments};
use crate::catalog::{self, label};
use opentelemetry::KeyValue;

/// Records HTTP server request durations. Usually fed by
/// [`HttpServerLayer`](crate::http::HttpServerLayer).
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
/// assert!(text.contains(r#"http_server_request_duration_seconds_count{http_request_method="GET",http_response_status_code="200",http_route="/topics/{topic}"} 1"#));
/// ```
#[derive(Debug, Clone)]
pub struct HttpServerMetrics {
    duration: Histogram,
}

impl HttpServerMetrics {
    pub(crate) fn new(instruments: &Instruments<'_>) -> Self {
        HttpServerMetrics {
            duration: instruments.histogram(&catalog::HTTP_SERVER_REQUEST_DURATION),
        }
    }

    /// Records one finished request. `route` is the matched route template (`/topics/{topic}`),
    /// never the raw path, so the series count stays bounded; `None` when no route matched
    /// (the attribute is then left out, as the conventions say).
    pub fn record_request(
        &self,
        method: &str,
        route: Option<&str>,
        status: u16,
        elapsed: Duration,
    ) {
        let method = KeyValue::new(label::HTTP_REQUEST_METHOD, method.to_owned());
        let status = KeyValue::new(label::HTTP_RESPONSE_STATUS_CODE, i64::from(status));
        match route {
            Some(route) => self.duration.record(
                elapsed.as_secs_f64(),
                // Sorted by key, as the SDK stores them.
                &[
                    method,
                    status,
                    KeyValue::new(label::HTTP_ROUTE, route.to_owned()),
                ],
            ),
            None => self
                .duration
                .record(elapsed.as_secs_f64(), &[method, status]),
        }
    }
}
