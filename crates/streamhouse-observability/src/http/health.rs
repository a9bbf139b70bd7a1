//! `GET /health`, `/health/live` and `/health/ready`.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use serde_json::json;

use crate::health::HealthRegistry;

/// A router serving the health endpoints. Merge it into your own router.
///
/// - `/health`: 200 `{"status":"ok"}` while the process serves HTTP.
/// - `/health/live`: the same; for liveness probes (the process is alive, whatever its
///   dependencies do).
/// - `/health/ready`: the registered checks' results, through
///   [`HealthRegistry::cached_check`] (one run per cache period at most, whatever the probe
///   rate: 1 s unless `STREAMHOUSE_HEALTH_CACHE_MS` sets another); 200 when all pass, 503
///   with `"failing"` naming the checks that did not, otherwise. A failing check's error
///   text is logged, never answered: the body says `"fail"` and a fixed reason.
///
/// ```no_run
/// use streamhouse_observability::{health::HealthRegistry, http::health_router};
///
/// # async fn run() -> std::io::Result<()> {
/// let health = HealthRegistry::new();
/// let _store = health.register("object_store", || async { Ok(()) });
/// let app = axum::Router::new().merge(health_router(&health));
/// axum::serve(tokio::net::TcpListener::bind("127.0.0.1:8080").await?, app).await
/// # }
/// ```
pub fn health_router(registry: &HealthRegistry) -> Router {
    Router::new()
        .route("/health", get(alive))
        .route("/health/live", get(alive))
        .route("/health/ready", get(ready))
        .with_state(registry.clone())
}

async fn alive() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// What a failing check answers in place of its error text.
const FAILED: &str = "check failed; the reason is in the server log";

async fn ready(State(registry): State<HealthRegistry>) -> Response {
    let report = registry.cached_check().await;
    let checks: Vec<_> = report
        .checks
        .iter()
        .map(|c| {
            let mut entry = json!({
                "name": c.name,
                "status": if c.error.is_none() { "ok" } else { "fail" },
                "duration_ms": c.duration.as_secs_f64() * 1000.0,
            });
            if c.error.is_some() {
                entry["error"] = json!(FAILED);
            }
            entry
        })
        .collect();
    if report.is_ready() {
        (
            StatusCode::OK,
            Json(json!({ "status": "ok", "checks": checks })),
        )
            .into_response()
    } else {
        let failing: Vec<&str> = report.failing().collect();
        let body = json!({ "status": "unavailable", "failing": failing, "checks": checks });
        (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
    }
}
