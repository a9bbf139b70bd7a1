//! REST API v1: the subset of StreamHouse's `/api/v1` this server speaks, same shapes.
//!
//! | method | path | handler |
//! |---|---|---|
//! | `POST`/`GET` | `/topics` | [`topics`] |
//! | `POST` | `/produce`, `/produce/batch` | [`produce`] |
//! | `GET` | `/consume` | [`consume`] |
//! | `POST`/`DELETE` | `/consumer-groups/{group_id}/members[/{member_id}]` | [`groups`] |
//! | `POST` | `/consumer-groups/{group_id}/members/{member_id}/heartbeat` | [`groups`] |
//! | `POST` | `/consumer-groups/commit` | [`groups`] |
//! | `GET` | `/consumer-groups/{group_id}/lag` | [`groups`] |
//! | `GET` | `/consumer-groups` | [`groups::list`] |
//! | `GET`/`DELETE` | `/consumer-groups/{group_id}` | [`groups::describe`], [`groups::delete`] |
//! | `POST` | `/consumer-groups/{group_id}/reset`, `/consumer-groups/{group_id}/seek` | [`groups::reset`], [`groups::seek`] |
//!
//! Every error is JSON: [`error::ApiError`], also an unknown path (404 `not_found`), a wrong
//! method (405 `method_not_allowed`, with `Allow`) and axum's own rejections such as a bad
//! path parameter (400 `invalid_request`); see [`plain_errors`].

pub mod consume;
pub mod error;
pub mod groups;
pub mod plain_errors;
pub mod produce;
pub mod topics;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post};
use serde::de::DeserializeOwned;

use crate::broker::Broker;
use error::ApiError;

/// The `/api/v1` routes, nested under `/api/v1`.
pub fn router(broker: Broker) -> Router {
    let limit = broker.config().max_body_bytes;
    let v1 = Router::new()
        .route("/topics", post(topics::create).get(topics::list))
        .route("/topics/{name}", get(topics::detail).delete(topics::delete))
        .route("/topics/{name}/partitions", get(topics::partitions))
        .route("/produce", post(produce::single))
        .route("/produce/batch", post(produce::batch))
        .route("/consume", get(consume::consume))
        .route("/consumer-groups", get(groups::list))
        .route("/consumer-groups/commit", post(groups::commit))
        .route("/consumer-groups/{group_id}/members", post(groups::join))
        .route(
            "/consumer-groups/{group_id}/members/{member_id}",
            delete(groups::leave),
        )
        .route(
            "/consumer-groups/{group_id}/members/{member_id}/heartbeat",
            post(groups::heartbeat),
        )
        .route("/consumer-groups/{group_id}/lag", get(groups::lag))
        .route("/consumer-groups/{group_id}/reset", post(groups::reset))
        .route("/consumer-groups/{group_id}/seek", post(groups::seek))
        .route(
            "/consumer-groups/{group_id}",
            get(groups::describe).delete(groups::delete),
        )
        .layer(DefaultBodyLimit::max(limit))
        .with_state(broker);
    plain_errors::answer_as_json(Router::new().nest("/api/v1", v1))
}

/// Parses a JSON body, answering 400 with serde's reason when it is not `T`.
pub(crate) fn parse_json<T: DeserializeOwned>(
    body: &[u8],
    code: &'static str,
) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(code, format!("malformed JSON body: {e}")))
}
