//! HTTP server metrics: `http.server.request.duration` with semantic-convention labels.

use std::sync::Arc;
use std::time::Duration;

use opentelemetry::KeyValue;

use super::bound_cache::BoundCache;
use super::instruments::{BoundHistogram, Histogram, Instruments};
use super::value_bound::truncate_label_value;
use crate::catalog::{self, label};

/// Records HTTP server request durations. Usually fed by
/// [`HttpServerLayer`](crate::http::HttpServerLayer).
///
/// Method and route are cut to the configured label value length, and label sets past the
/// cardinality limit land in the overflow series.
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
    // Keyed by [method, status] without a route, [method, status, route] with one.
    bound: Arc<BoundCache<BoundHistogram>>,
    max_value_bytes: usize,
}

impl HttpServerMetrics {
    pub(crate) fn new(instruments: &Instruments<'_>) -> Self {
        HttpServerMetrics {
            duration: instruments.histogram(&catalog::HTTP_SERVER_REQUEST_DURATION),
            bound: instruments.cache(),
            max_value_bytes: instruments.max_label_value_bytes,
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
        let method = truncate_label_value(method, self.max_value_bytes);
        let route = route.map(|r| truncate_label_value(r, self.max_value_bytes));
        let mut status_buffer = itoa::Buffer::new();
        let status_text = status_buffer.format(status);
        let with_route;
        let values: &[&str] = match route {
            Some(route) => {
                with_route = [method, status_text, route];
                &with_route
            }
            None => &[method, status_text],
        };
        self.bound.with(
            values,
            || self.bind(method, route, status),
            || self.duration.bind_overflow(),
            |histogram| histogram.record(elapsed.as_secs_f64()),
        );
    }

    fn bind(&self, method: &str, route: Option<&str>, status: u16) -> BoundHistogram {
        let method = KeyValue::new(label::HTTP_REQUEST_METHOD, method.to_owned());
        let status = KeyValue::new(label::HTTP_RESPONSE_STATUS_CODE, i64::from(status));
        match route {
            // Sorted by key, as the SDK stores them.
            Some(route) => self.duration.bind(&[
                method,
                status,
                KeyValue::new(label::HTTP_ROUTE, route.to_owned()),
            ]),
            None => self.duration.bind(&[method, status]),
        }
    }
}
