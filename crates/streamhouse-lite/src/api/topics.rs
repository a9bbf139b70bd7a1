//! `POST /topics` and `GET /topics`.

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::response::Json;
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::parse_json;
use crate::broker::Broker;

/// A topic and its partition count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicInfo {
    /// Name.
    pub name: String,
    /// Partitions.
    pub partitions: u32,
}

/// `POST /topics {"name","partitions"}`: 201, 409 if it exists, 400 for a bad name or count.
pub async fn create(
    State(broker): State<Broker>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<TopicInfo>), ApiError> {
    let body = body.map_err(|e| ApiError::new(e.status(), "invalid_request", e.body_text()))?;
    let request: TopicInfo = parse_json(&body, "invalid_request")?;
    let topic = broker.create_topic(&request.name, request.partitions)?;
    Ok((
        StatusCode::CREATED,
        Json(TopicInfo {
            name: topic.name.clone(),
            partitions: topic.partitions.len() as u32,
        }),
    ))
}

/// `GET /topics`: every topic with its partition count, by name.
pub async fn list(State(broker): State<Broker>) -> Json<Vec<TopicInfo>> {
    Json(
        broker
            .topics()
            .all()
            .iter()
            .map(|t| TopicInfo {
                name: t.name.clone(),
                partitions: t.partitions.len() as u32,
            })
            .collect(),
    )
}

/// `GET /topics/{name}`: the topic's details; 404 `topic_not_found` if absent.
pub async fn detail(State(broker): State<Broker>) -> Result<Json<TopicInfo>, ApiError> {
    let _ = broker;
    Err(ApiError::new(StatusCode::NOT_IMPLEMENTED, "not_implemented", "soon"))
}

/// `GET /topics/{name}/partitions`: one entry per partition.
pub async fn partitions(State(broker): State<Broker>) -> Result<Json<TopicInfo>, ApiError> {
    let _ = broker;
    Err(ApiError::new(StatusCode::NOT_IMPLEMENTED, "not_implemented", "soon"))
}

/// `DELETE /topics/{name}`: 204.
pub async fn delete(State(broker): State<Broker>) -> Result<StatusCode, ApiError> {
    let _ = broker;
    Err(ApiError::new(StatusCode::NOT_IMPLEMENTED, "not_implemented", "soon"))
}
