//! A tower layer for axum: one server span and one `http.server.request.duration`
//! measurement per request.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::MatchedPath;
use http::{Request, Response};
use tower::{Layer, Service};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::Telemetry;
use crate::metrics::{HttpServerMetrics, span_value_bytes, truncate_label_value};
use crate::propagation;

/// Opens a server span per request (semantic-convention attributes, named
/// `<method> <route template>`, parent taken from `traceparent`), and records
/// [`HTTP_SERVER_REQUEST_DURATION`](crate::catalog::HTTP_SERVER_REQUEST_DURATION).
///
/// Add it with `Router::layer` so axum's [`MatchedPath`] is known: the route template
/// (`/topics/{topic}`), never the raw path, names spans and labels series.
///
/// ```
/// use axum::{Router, routing::get};
/// use streamhouse_observability::http::HttpServerLayer;
/// use streamhouse_observability::{Telemetry, TelemetryConfig};
///
/// let telemetry = Telemetry::new(TelemetryConfig::default()).unwrap();
/// let app: Router = Router::new()
///     .route("/topics/{topic}", get(|| async { "ok" }))
///     .layer(HttpServerLayer::new(&telemetry));
/// ```
#[derive(Debug, Clone)]
pub struct HttpServerLayer {
    metrics: HttpServerMetrics,
}

impl HttpServerLayer {
    /// A layer recording into `telemetry`'s HTTP server metrics.
    pub fn new(telemetry: &Telemetry) -> Self {
        HttpServerLayer {
            metrics: telemetry.http_server().clone(),
        }
    }
}

impl<S> Layer<S> for HttpServerLayer {
    type Service = HttpServerService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        HttpServerService {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// The service [`HttpServerLayer`] wraps around each route.
#[derive(Debug, Clone)]
pub struct HttpServerService<S> {
    inner: S,
    metrics: HttpServerMetrics,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for HttpServerService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let started = Instant::now();
        let method = known_method(request.method());
        let route = request
            .extensions()
            .get::<MatchedPath>()
            .map(|path| path.as_str().to_owned());
        let span = tracing::info_span!(
            "HTTP request",
            otel.name = match &route {
                Some(route) => format!("{method} {route}"),
                None => method.to_owned(),
            },
            otel.kind = "server",
            http.request.method = method,
            http.route = route.as_deref(),
            // A client picks the path: bounded like every value a client picks.
            url.path = truncate_label_value(request.uri().path(), span_value_bytes()),
            url.scheme = request.uri().scheme_str().unwrap_or("http"),
            network.protocol.version = protocol_version(request.version()),
            http.response.status_code = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
        );
        let parent = propagation::extract_http(request.headers());
        // Fails only without an OpenTelemetry layer; the span is then a plain tracing span.
        let _ = span.set_parent(parent);

        // The ready service goes into the future; a fresh clone stays for the next call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let metrics = self.metrics.clone();
        let future = span.in_scope(|| inner.call(request));
        Box::pin(
            async move {
                let result = future.await;
                // An axum service is infallible; an error from another stack counts as a 500.
                let status = result.as_ref().map_or(500, |r| r.status().as_u16());
                let span = tracing::Span::current();
                span.record("http.response.status_code", status);
                if status >= 500 {
                    span.record("otel.status_code", "ERROR");
                }
                metrics.record_request(method, route.as_deref(), status, started.elapsed());
                result
            }
            .instrument(span),
        )
    }
}

/// The method, or `_OTHER` for methods the conventions do not list, so arbitrary methods
/// cannot grow the series count.
fn known_method(method: &http::Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "CONNECT" => "CONNECT",
        "OPTIONS" => "OPTIONS",
        "TRACE" => "TRACE",
        "PATCH" => "PATCH",
        _ => "_OTHER",
    }
}

fn protocol_version(version: http::Version) -> &'static str {
    match version {
        http::Version::HTTP_09 => "0.9",
        http::Version::HTTP_10 => "1.0",
        http::Version::HTTP_2 => "2",
        http::Version::HTTP_3 => "3",
        _ => "1.1",
    }
}
