//! `POST /topics`, `GET /topics`, `GET /topics/{name}`, `GET /topics/{name}/partitions` and
//! `DELETE /topics/{name}`.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
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

/// `GET /topics/{name}`: a topic's details, from its manifest and its partitions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicDetail {
    /// Name.
    pub name: String,
    /// Partitions.
    pub partitions: u32,
    /// Copies of each partition: always 1 (see [`crate::manifest::REPLICATION_FACTOR`]).
    pub replication_factor: u32,
    /// When this incarnation of the topic was created: RFC 3339, UTC, milliseconds (a topic
    /// deleted and created again has the second creation's time).
    pub created_at: String,
    /// Records held: high watermark minus low watermark, summed over the partitions.
    pub message_count: u64,
    /// Best effort: payload bytes (keys, values, headers, trace context included) appended
    /// and not yet flushed, plus the encoded bytes of the topic's segments in the store.
    pub size_bytes: u64,
}

/// One entry of `GET /topics/{name}/partitions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionInfo {
    /// Topic name.
    pub topic: String,
    /// Partition number.
    pub partition_id: u32,
    /// The agent leading the partition: always [`crate::manifest::LEADER_AGENT_ID`].
    pub leader_agent_id: String,
    /// The offset the next record gets.
    pub high_watermark: u64,
    /// The first offset still held: always 0, as this server keeps every record (no
    /// retention).
    pub low_watermark: u64,
}

/// The low watermark of every partition: nothing is ever removed from a live topic.
const LOW_WATERMARK: u64 = 0;

/// `GET /topics/{name}`: the topic's details; 400 `invalid_topic_name`, 404
/// `topic_not_found`.
pub async fn detail(
    State(broker): State<Broker>,
    Path(name): Path<String>,
) -> Result<Json<TopicDetail>, ApiError> {
    let topic = broker.topic(&name)?;
    let manifest = topic.incarnation().manifest();
    Ok(Json(TopicDetail {
        name: topic.name.clone(),
        partitions: manifest.partitions,
        replication_factor: manifest.replication_factor,
        created_at: manifest.created_at.clone(),
        message_count: topic
            .partitions
            .iter()
            .map(|log| log.high_watermark() - LOW_WATERMARK)
            .sum(),
        size_bytes: topic.incarnation().size_bytes(),
    }))
}

/// `GET /topics/{name}/partitions`: one entry per partition, by number; 400
/// `invalid_topic_name`, 404 `topic_not_found`.
pub async fn partitions(
    State(broker): State<Broker>,
    Path(name): Path<String>,
) -> Result<Json<Vec<PartitionInfo>>, ApiError> {
    let topic = broker.topic(&name)?;
    let leader = &topic.incarnation().manifest().leader_agent_id;
    Ok(Json(
        topic
            .partitions
            .iter()
            .map(|log| PartitionInfo {
                topic: topic.name.clone(),
                partition_id: log.partition(),
                leader_agent_id: leader.clone(),
                high_watermark: log.high_watermark(),
                low_watermark: LOW_WATERMARK,
            })
            .collect(),
    ))
}

/// `DELETE /topics/{name}`: 204 once the topic is gone (see [`Broker::delete_topic`]); 400
/// `invalid_topic_name`, 404 `topic_not_found`, 503 `storage_failure`.
pub async fn delete(
    State(broker): State<Broker>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    broker.delete_topic(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}
