//! `GET /metrics`: the format follows the `Accept` header (Prometheus text 0.0.4 by default,
//! OpenMetrics 1.0 with exemplars when asked), gzip when `Accept-Encoding` allows it, and a
//! bound on concurrent scrapes past which it answers 503.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::sync::Semaphore;
use tower_http::compression::CompressionLayer;

use crate::Telemetry;
use crate::prometheus::Format;

#[derive(Clone)]
struct Scrapes {
    telemetry: Telemetry,
    permits: Arc<Semaphore>,
}

/// A router serving `GET /metrics` (other methods get 405). Merge it into your own router.
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
        .route("/metrics", get(metrics).layer(gzip))
        .with_state(state)
}

async fn metrics(State(scrapes): State<Scrapes>, headers: HeaderMap) -> Response {
    let Ok(permit) = Arc::clone(&scrapes.permits).try_acquire_owned() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "1")],
            "too many concurrent scrapes\n",
        )
            .into_response();
    };
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|value| value.to_str().ok());
    let format = Format::negotiate(accept);
    let telemetry = scrapes.telemetry;
    // A large collection takes milliseconds of CPU: keep it off the async workers.
    let rendered = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        match telemetry.prometheus() {
            None => Ok(String::new()),
            Some(reader) => reader.render(format).map_err(|e| e.to_string()),
        }
    })
    .await;
    match rendered {
        Ok(Ok(body)) => ([(header::CONTENT_TYPE, format.content_type())], body).into_response(),
        Ok(Err(error)) => (StatusCode::SERVICE_UNAVAILABLE, error).into_response(),
        Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response(),
    }
}
