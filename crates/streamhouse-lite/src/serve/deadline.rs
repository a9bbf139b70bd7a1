//! The request timeout: a request not answered within the limit, reading its body included,
//! gets 503 `request_timeout` as JSON, so a client trickling a body cannot hold a handler.

use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};

use crate::api::error::ApiError;

/// `router` with every request bounded by `limit`. Add it inside
/// [`HttpServerLayer`](streamhouse_observability::http::HttpServerLayer) so timeouts are
/// counted.
pub fn with_request_timeout(router: Router, limit: Duration) -> Router {
    router.layer(from_fn_with_state(limit, bounded))
}

async fn bounded(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "request_timeout",
            format!("the request took longer than {} ms", limit.as_millis()),
        )
        .into_response(),
    }
}
