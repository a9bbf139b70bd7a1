//! `GET /metrics` and `HEAD /metrics`: the scrape protocol follows the `Accept` header
//! ([`ScrapeProtocol::negotiate`]), gzip when `Accept-Encoding` allows it, and a bound on
//! concurrent scrapes past which it answers 503.

use std::convert::Infallible;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::sync::Semaphore;
use tower_http::compression::CompressionLayer;

use crate::Telemetry;
use crate::prometheus::ScrapeProtocol;

#[derive(Clone)]
struct Scrapes {
    telemetry: Telemetry,
    permits: Arc<Semaphore>,
}

/// A router serving `GET /metrics` and `HEAD /metrics` (other methods get 405). Merge it into
/// your own router.
///
/// The answer is in the protocol [`ScrapeProtocol::negotiate`] picks from the `Accept`
/// header, with that protocol's `Content-Type`. `HEAD` answers the same headers without
/// collecting. With telemetry disabled, the body is empty (text) or `# EOF\n` (OpenMetrics).
/// Past [`PrometheusConfig::max_concurrent_scrapes`](crate::config::PrometheusConfig::max_concurrent_scrapes)
/// scrapes at once, `GET` answers 503 with `Retry-After: 1`.
///
/// ```no_run
/// use streamhouse_observability::{Telemetry, TelemetryConfig, http::metrics_router};
///
/// # async fn run() -> std::io::Result<()> {
/// let telemetry = Telemetry::new(TelemetryConfig::default()).unwrap();
/// let app = axum::Router::new().merge(metrics_router(&telemetry));
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:9464").await?;
/// axum::serve(listener, app).await
/// # }
/// ```
pub fn metrics_router(telemetry: &Telemetry) -> Router {
    // `Telemetry::new` validated the limit (1 to MAX_CONCURRENT_SCRAPES), so it is neither 0,
    // which would answer every scrape 503, nor past `Semaphore::MAX_PERMITS`, where
    // `Semaphore::new` panics.
    let limit = telemetry.config().prometheus.max_concurrent_scrapes;
    let state = Scrapes {
        telemetry: telemetry.clone(),
        permits: Arc::new(Semaphore::new(limit)),
    };
    // Metrics text compresses about tenfold; only gzip, which Prometheus asks for.
    let gzip = CompressionLayer::new()
        .gzip(true)
        .no_br()
        .no_deflate()
        .no_zstd();
    Router::new()
        // Without its own HEAD handler axum would run the GET handler, collecting, and
        // drop the body.
        .route("/metrics", get(metrics).head(head).layer(gzip))
        .with_state(state)
}

/// The protocol to answer with. Several `Accept` fields are one comma-separated list
/// (RFC 9110, section 5.3); a field that is not visible ASCII is not looked at.
fn negotiate(headers: &HeaderMap) -> ScrapeProtocol {
    let fields: Vec<&str> = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .collect();
    match fields.as_slice() {
        [] => ScrapeProtocol::negotiate(None),
        [one] => ScrapeProtocol::negotiate(Some(one)),
        many => ScrapeProtocol::negotiate(Some(&many.join(","))),
    }
}

/// A 200 in `protocol`.
fn answer(protocol: ScrapeProtocol, body: impl Into<Body>) -> Response {
    (
        [
            (header::CONTENT_TYPE, protocol.content_type()),
            // The body depends on `Accept`: caches must not serve one scraper's to another.
            (header::VARY, "accept"),
        ],
        body.into(),
    )
        .into_response()
}

async fn metrics(State(scrapes): State<Scrapes>, headers: HeaderMap) -> Response {
    let protocol = negotiate(&headers);
    let format = protocol.format();
    if scrapes.telemetry.prometheus().is_none() {
        return answer(protocol, format.empty_body());
    }
    let Ok(permit) = Arc::clone(&scrapes.permits).try_acquire_owned() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "1")],
            "too many concurrent scrapes\n",
        )
            .into_response();
    };
    let telemetry = scrapes.telemetry;
    // A large collection takes milliseconds of CPU: keep it off the async workers.
    let rendered = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        match telemetry.prometheus() {
            None => Ok(format.empty_body().to_owned()),
            Some(reader) => reader.render(format).map_err(|e| e.to_string()),
        }
    })
    .await;
    match rendered {
        Ok(Ok(body)) => answer(protocol, body),
        Ok(Err(error)) => (StatusCode::SERVICE_UNAVAILABLE, error).into_response(),
        Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response(),
    }
}

async fn head(State(scrapes): State<Scrapes>, headers: HeaderMap) -> Response {
    let protocol = negotiate(&headers);
    if scrapes.telemetry.prometheus().is_none() {
        // Nothing to collect: GET's body is known, and so is its Content-Length.
        return answer(protocol, protocol.format().empty_body());
    }
    // A body of unknown length, which axum drops: an empty body would make it announce
    // `Content-Length: 0`, claiming GET's body is empty.
    let unknown_length = Body::from_stream(futures::stream::empty::<Result<Bytes, Infallible>>());
    answer(protocol, unknown_length)
}
