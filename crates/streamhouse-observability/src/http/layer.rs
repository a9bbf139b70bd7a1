//! A tower layer for axum: one server span, one `http.server.request.duration` measurement
//! and one `http.server.active_requests` count per request, with the attributes of the
//! stable HTTP semantic conventions.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::{ConnectInfo, MatchedPath};
use http::header::{HOST, USER_AGENT};
use http::uri::Authority;
use http::{HeaderValue, Request, Response};
use opentelemetry::trace::TraceContextExt;
use tower::{Layer, Service};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::Telemetry;
use crate::metrics::{HttpOutcome, HttpServerMetrics, span_value_bytes, truncate_label_value};
use crate::propagation::Propagators;

/// Longest `Host` (or `:authority`) taken as `server.address`/`server.port`: a DNS name is at
/// most 253 bytes, plus `:` and a port. Longer ones are left out, not cut.
pub const MAX_HOST_BYTES: usize = 261;

/// The response header of W3C Trace Context Level 2.
pub const TRACERESPONSE: &str = "traceresponse";

/// Opens a server span per request, named `<method> <route template>`, with its parent
/// taken from the request by the configured propagators
/// ([`TelemetryConfig::propagators`](crate::TelemetryConfig::propagators),
/// `OTEL_PROPAGATORS`); records
/// [`HTTP_SERVER_REQUEST_DURATION`](crate::catalog::HTTP_SERVER_REQUEST_DURATION) and counts
/// [`HTTP_SERVER_ACTIVE_REQUESTS`](crate::catalog::HTTP_SERVER_ACTIVE_REQUESTS).
///
/// Add it with `Router::layer` so axum's [`MatchedPath`] is known: the route template
/// (`/topics/{topic}`), never the raw path, names spans and labels series.
///
/// Span attributes: `http.request.method` (`_OTHER` for methods outside
/// [`HttpServerConfig::known_methods`](crate::config::HttpServerConfig::known_methods), the
/// method then in `http.request.method_original`), `http.route`, `url.path`, `url.scheme`,
/// `network.protocol.version`, `server.address` and `server.port` (from the request URI's
/// authority, else `Host`; `Forwarded` and `X-Forwarded-Host` are ignored, as clients can set
/// them), `client.address` (when served with
/// `into_make_service_with_connect_info::<SocketAddr>`), `user_agent.original`,
/// `http.response.status_code` and `error.type`. Values a client picks are cut to the span
/// value bound. None is a metric label.
///
/// A request whose future is dropped before it answers (the client went away) leaves the
/// in-flight count but is not timed: it has no status to label it with.
///
/// ```
/// use axum::{Router, routing::get};
/// use streamhouse_observability::http::HttpServerLayer;
/// use streamhouse_observability::{Telemetry, TelemetryConfig};
///
/// let telemetry = Telemetry::new(TelemetryConfig::default()).unwrap();
/// let app: Router = Router::new()
///     .route("/topics/{topic}", get(|| async { "ok" }))
///     .layer(HttpServerLayer::new(&telemetry).with_traceresponse(true));
/// ```
#[derive(Debug, Clone)]
pub struct HttpServerLayer {
    metrics: HttpServerMetrics,
    propagators: Propagators,
    traceresponse: bool,
    https: bool,
}

impl HttpServerLayer {
    /// A layer recording into `telemetry`'s HTTP server metrics, with its configured
    /// propagators and `traceresponse` setting.
    pub fn new(telemetry: &Telemetry) -> Self {
        let config = telemetry.config();
        HttpServerLayer {
            metrics: telemetry.http_server().clone(),
            propagators: config.propagators.clone(),
            traceresponse: config.http_server.traceresponse,
            https: false,
        }
    }

    /// Whether responses carry a W3C Trace Context Level 2 `traceresponse` header,
    /// `00-<trace id>-<server span id>-<flags>`, so a client can find the trace of its
    /// request. Overrides `STREAMHOUSE_HTTP_TRACERESPONSE`.
    pub fn with_traceresponse(mut self, traceresponse: bool) -> Self {
        self.traceresponse = traceresponse;
        self
    }

    /// Whether the listener terminates TLS: requests whose URI names no scheme (every
    /// HTTP/1.1 request) then count as `https`.
    pub fn with_https(mut self, https: bool) -> Self {
        self.https = https;
        self
    }
}

impl<S> Layer<S> for HttpServerLayer {
    type Service = HttpServerService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        HttpServerService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`HttpServerLayer`] wraps around each route.
#[derive(Debug, Clone)]
pub struct HttpServerService<S> {
    inner: S,
    layer: HttpServerLayer,
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
        let metrics = self.layer.metrics.clone();
        let raw_method = request.method().clone();
        let method = metrics.method_label(raw_method.as_str());
        let original = (method != raw_method.as_str())
            .then(|| truncate_label_value(raw_method.as_str(), span_value_bytes()));
        let scheme = scheme(request.uri(), self.layer.https);
        // An Arc inside: no copy of the template.
        let matched = request.extensions().get::<MatchedPath>().cloned();
        let route = matched.as_ref().map(MatchedPath::as_str);
        let authority = server_authority(&request);
        let span = tracing::info_span!(
            "HTTP request",
            otel.name = match route {
                Some(route) => format!("{method} {route}"),
                None => method.to_owned(),
            },
            otel.kind = "server",
            http.request.method = method,
            http.request.method_original = original,
            http.route = route,
            // A client picks the path: bounded like every value a client picks.
            url.path = truncate_label_value(request.uri().path(), span_value_bytes()),
            url.scheme = scheme,
            network.protocol.version = protocol_version(request.version()),
            server.address = authority.as_ref().map(server_address),
            server.port = authority.as_ref().and_then(Authority::port_u16),
            client.address = client_address(&request).map(tracing::field::display),
            user_agent.original = user_agent(&request),
            http.response.status_code = tracing::field::Empty,
            error.type = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
        );
        let parent = self.layer.propagators.extract_http(request.headers());
        // Fails only without an OpenTelemetry layer; the span is then a plain tracing span.
        let _ = span.set_parent(parent);
        // Counted until the future ends or is dropped (a client that went away).
        let active = metrics.start_request(method, scheme);
        let traceresponse = self.layer.traceresponse;

        // The ready service goes into the future; a fresh clone stays for the next call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let future = span.in_scope(|| inner.call(request));
        Box::pin(
            async move {
                let _active = active;
                let mut result = future.await;
                let span = tracing::Span::current();
                let outcome = match &result {
                    Ok(response) => HttpOutcome::Status(response.status().as_u16()),
                    // An axum service is infallible; another stack's error has no response
                    // and no class we could know: the conventions' fallback value.
                    Err(_) => HttpOutcome::Failed("_OTHER"),
                };
                match outcome {
                    HttpOutcome::Status(status) => {
                        span.record("http.response.status_code", status);
                        if status >= 500 {
                            span.record("error.type", itoa::Buffer::new().format(status));
                            span.record("otel.status_code", "ERROR");
                        }
                    }
                    HttpOutcome::Failed(class) => {
                        span.record("error.type", class);
                        span.record("otel.status_code", "ERROR");
                    }
                }
                if let (true, Ok(response)) = (traceresponse, &mut result)
                    && let Some(value) = traceresponse_value(&span)
                {
                    response.headers_mut().insert(TRACERESPONSE, value);
                }
                metrics.record_request_with(
                    raw_method.as_str(),
                    matched.as_ref().map(MatchedPath::as_str),
                    scheme,
                    outcome,
                    started.elapsed(),
                );
                result
            }
            .instrument(span),
        )
    }
}

/// `url.scheme`: the request URI's (HTTP/2 `:scheme`) when it is `http` or `https`, else the
/// listener's.
fn scheme(uri: &http::Uri, https: bool) -> &'static str {
    match uri.scheme_str() {
        Some(s) if s.eq_ignore_ascii_case("https") => "https",
        Some(s) if s.eq_ignore_ascii_case("http") => "http",
        _ if https => "https",
        _ => "http",
    }
}

/// The authority the client addressed: the URI's (HTTP/2 `:authority`, absolute-form), else
/// `Host`; `None` when absent, longer than [`MAX_HOST_BYTES`] or not a valid authority.
fn server_authority<B>(request: &Request<B>) -> Option<Authority> {
    let authority = match request.uri().authority() {
        Some(authority) => authority.clone(),
        None => {
            let host = request.headers().get(HOST)?;
            if host.len() > MAX_HOST_BYTES {
                return None;
            }
            Authority::try_from(host.as_bytes()).ok()?
        }
    };
    // `user@host` is not a Host (RFC 9110, section 7.2); a port must be a number.
    let valid = authority.as_str().len() <= MAX_HOST_BYTES
        && !authority.as_str().contains('@')
        && !authority.host().is_empty()
        // Nothing but host and port: `host:port` parses as host `host` and no port.
        && authority.as_str().len()
            == authority.host().len() + authority.port().map_or(0, |p| p.as_str().len() + 1);
    valid.then_some(authority)
}

/// The host without the brackets of an IPv6 literal (`[::1]` is `::1`).
fn server_address(authority: &Authority) -> &str {
    let host = authority.host();
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

/// The peer's IP address, when axum was given the connection's `SocketAddr`.
fn client_address<B>(request: &Request<B>) -> Option<std::net::IpAddr> {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
}

/// `User-Agent` when it is visible ASCII, cut to the span value bound.
fn user_agent<B>(request: &Request<B>) -> Option<&str> {
    let value = request.headers().get(USER_AGENT)?.to_str().ok()?;
    Some(truncate_label_value(value, span_value_bytes()))
}

/// `00-<trace id>-<span id>-<flags>` of `span`, if it has a valid OpenTelemetry context.
fn traceresponse_value(span: &tracing::Span) -> Option<HeaderValue> {
    let context = span.context();
    let span_ref = context.span();
    let span_context = span_ref.span_context();
    if !span_context.is_valid() {
        return None;
    }
    let value = format!(
        "00-{}-{}-{:02x}",
        span_context.trace_id(),
        span_context.span_id(),
        span_context.trace_flags().to_u8() & 0x01
    );
    HeaderValue::from_str(&value).ok()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn request(host: Option<&str>, uri: &str) -> Request<()> {
        let mut builder = Request::builder().uri(uri);
        if let Some(host) = host {
            builder = builder.header(HOST, host);
        }
        builder.body(()).unwrap()
    }

    #[test]
    fn server_address_comes_from_a_valid_bounded_authority() {
        let of = |host: Option<&str>, uri: &str| {
            server_authority(&request(host, uri)).map(|a| (a.host().to_owned(), a.port_u16()))
        };
        assert_eq!(
            of(Some("example.com:8443"), "/x"),
            Some(("example.com".into(), Some(8443)))
        );
        assert_eq!(of(Some("[::1]:80"), "/x"), Some(("[::1]".into(), Some(80))));
        let ipv6 = server_authority(&request(Some("[::1]"), "/x")).unwrap();
        assert_eq!(server_address(&ipv6), "::1");
        // The URI's authority (HTTP/2 :authority) wins over Host.
        assert_eq!(
            of(Some("other"), "http://h2.example:80/x"),
            Some(("h2.example".into(), Some(80)))
        );
        let long = format!("{}.com", "a".repeat(MAX_HOST_BYTES));
        for bad in ["user@host", "bad host", "host:port", long.as_str(), ""] {
            assert_eq!(of(Some(bad), "/x"), None, "{bad}");
        }
        assert_eq!(of(None, "/x"), None);
    }

    #[test]
    fn user_agent_is_cut_to_the_span_bound_and_skipped_when_not_text() {
        let long = "a".repeat(100_000);
        let with = |value: &[u8]| {
            Request::builder()
                .header(USER_AGENT, HeaderValue::from_bytes(value).unwrap())
                .body(())
                .unwrap()
        };
        let request = with(long.as_bytes());
        let cut = user_agent(&request).unwrap();
        assert_eq!(cut.len(), span_value_bytes());
        assert!(long.starts_with(cut));
        assert_eq!(user_agent(&with(b"probe\xff")), None);
        assert_eq!(user_agent(&request_without_headers()), None);
    }

    fn request_without_headers() -> Request<()> {
        Request::builder().body(()).unwrap()
    }

    #[test]
    fn scheme_is_http_or_https() {
        let uri = |s: &str| s.parse::<http::Uri>().unwrap();
        assert_eq!(scheme(&uri("/x"), false), "http");
        assert_eq!(scheme(&uri("/x"), true), "https");
        assert_eq!(scheme(&uri("https://h/x"), false), "https");
        assert_eq!(scheme(&uri("ftp://h/x"), false), "http");
    }
}
