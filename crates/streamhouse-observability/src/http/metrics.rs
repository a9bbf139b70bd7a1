//! `GET /metrics` in the Prometheus text format.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::Telemetry;
use crate::prometheus::text;

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
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(telemetry.clone())
}

async fn metrics(State(telemetry): State<Telemetry>) -> Response {
    // A large collection takes milliseconds of CPU: keep it off the async workers.
    let rendered = tokio::task::spawn_blocking(move || match telemetry.prometheus() {
        None => Ok(String::new()),
        Some(reader) => reader.render_text().map_err(|e| e.to_string()),
    })
    .await;
    match rendered {
        Ok(Ok(body)) => ([(header::CONTENT_TYPE, text::CONTENT_TYPE)], body).into_response(),
        Ok(Err(error)) => (StatusCode::SERVICE_UNAVAILABLE, error).into_response(),
        Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response(),
    }
}
