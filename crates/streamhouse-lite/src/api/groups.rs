//! Consumer groups: join, heartbeat, leave, commit, lag, list, describe, reset, seek, delete.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::response::Json;
use serde::Deserialize;
use serde_json::{Value, json};
use streamhouse_observability::metrics::ConsumerError;

use super::error::ApiError;
use super::parse_json;
use crate::broker::Broker;
use crate::consumer_groups::{
    GroupDetail, GroupSummary, Membership, OffsetChange, ResetStrategy, ResetTarget,
};

#[derive(Debug, Deserialize)]
struct JoinBody {
    topic: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CommitBody {
    group_id: String,
    topic: String,
    partition: i64,
    offset: i64,
    /// The committing member, whose session the commit renews.
    #[serde(default)]
    member_id: Option<String>,
}

/// `POST /consumer-groups/{group_id}/reset`. Fields are optional here so that a missing one
/// gets its own clear answer rather than serde's.
#[derive(Debug, Deserialize)]
struct ResetBody {
    strategy: Option<String>,
    topic: Option<String>,
    partition: Option<i64>,
    offset: Option<i64>,
    timestamp: Option<i64>,
}

/// `POST /consumer-groups/{group_id}/seek`.
#[derive(Debug, Deserialize)]
struct SeekBody {
    topic: Option<String>,
    partition: Option<i64>,
    timestamp: Option<i64>,
}

/// The request body parsed as `T`; an unreadable or malformed one is a 400 counted as
/// `invalid_request` under `group`.
fn parse_body<T: serde::de::DeserializeOwned>(
    broker: &Broker,
    group: &str,
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    let invalid = || broker.record_consume_error("", group, ConsumerError::InvalidRequest);
    let body = body.map_err(|e| {
        invalid();
        ApiError::new(e.status(), "invalid_request", e.body_text())
    })?;
    parse_json(&body, "invalid_request").inspect_err(|_| invalid())
}

/// `POST /consumer-groups/{group_id}/members {"topic"}`: joins; returns the member id and
/// its assigned partitions after the rebalance.
pub async fn join(
    State(broker): State<Broker>,
    Path(group): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Membership>, ApiError> {
    let request: JoinBody = parse_body(&broker, &group, body)?;
    broker.join_group(&group, &request.topic).map(Json)
}

/// `POST /consumer-groups/{group_id}/members/{member_id}/heartbeat`: renews the member's
/// session; returns its generation and assignments (which a rebalance may have changed).
pub async fn heartbeat(
    State(broker): State<Broker>,
    Path((group, member)): Path<(String, String)>,
) -> Result<Json<Membership>, ApiError> {
    broker.heartbeat(&group, &member).map(Json)
}

/// `DELETE /consumer-groups/{group_id}/members/{member_id}`: leaves; the group rebalances.
pub async fn leave(
    State(broker): State<Broker>,
    Path((group, member)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    broker.leave_group(&group, &member)?;
    Ok(Json(
        json!({ "groupId": group, "memberId": member, "left": true }),
    ))
}

/// `POST /consumer-groups/commit {"groupId","topic","partition","offset","memberId"?}`.
pub async fn commit(
    State(broker): State<Broker>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let request: CommitBody = parse_body(&broker, "", body)?;
    let (group, topic) = (&request.group_id, &request.topic);
    broker.check_consumer_names(topic, Some(group))?;
    let Ok(offset) = u64::try_from(request.offset) else {
        broker.record_consume_error(topic, group, ConsumerError::InvalidRequest);
        return Err(ApiError::bad_request(
            "invalid_request",
            format!("offset must be >= 0, got {}", request.offset),
        ));
    };
    let partition = partition_number(&broker, topic, group, request.partition)?;
    let member = request.member_id.as_deref();
    broker.commit(group, topic, partition, offset, member)?;
    Ok(Json(json!({ "success": true })))
}

/// `GET /consumer-groups/{group_id}/lag`: per-partition lag and the total.
pub async fn lag(
    State(broker): State<Broker>,
    Path(group): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let partitions = broker.lag(&group)?;
    let total: u64 = partitions.iter().map(|p| p.lag).sum();
    Ok(Json(
        json!({ "groupId": group, "partitions": partitions, "totalLag": total }),
    ))
}

/// `GET /consumer-groups`: every group with its topics, total lag and partition count, by
/// group id. Lag and partitions count committed offsets (see `/lag` for assigned partitions
/// without one).
pub async fn list(State(broker): State<Broker>) -> Json<Vec<GroupSummary>> {
    Json(broker.list_groups())
}

/// `GET /consumer-groups/{group_id}`: committed offsets with their lag, and members with
/// their assignments; 404 `group_not_found`.
pub async fn describe(
    State(broker): State<Broker>,
    Path(group): Path<String>,
) -> Result<Json<GroupDetail>, ApiError> {
    broker.describe_group(&group).map(Json)
}

/// `DELETE /consumer-groups/{group_id}`: `{"success","groupId","partitionsDeleted"}`; the
/// group, its members and offsets are gone (404 afterwards), and its series with them.
pub async fn delete(
    State(broker): State<Broker>,
    Path(group): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let deleted = broker.delete_group(&group)?;
    Ok(Json(json!({
        "success": true, "groupId": group, "partitionsDeleted": deleted,
    })))
}

/// `POST /consumer-groups/{group_id}/reset {"strategy","topic"?,"partition"?,"offset"?,
/// "timestamp"?}`: `{"success","partitionsReset","details":[{"topic","partition",
/// "oldOffset","newOffset"}]}`. `strategy` is `earliest`, `latest`, `specific` (needs
/// `offset`) or `timestamp` (needs `timestamp`, ms since the epoch); without `topic` every
/// partition the group has offsets on moves. `oldOffset` is null where none was committed.
pub async fn reset(
    State(broker): State<Broker>,
    Path(group): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let request: ResetBody = parse_body(&broker, &group, body)?;
    let topic = request.topic.as_deref();
    let topic_label = topic.unwrap_or_default();
    let invalid = |code: &'static str, message: String| {
        broker.record_consume_error(topic_label, &group, ConsumerError::InvalidRequest);
        ApiError::bad_request(code, message)
    };
    let strategy = match request.strategy.as_deref() {
        None => {
            return Err(invalid(
                "missing_field",
                "`strategy` is required".to_owned(),
            ));
        }
        Some("earliest") => ResetStrategy::Earliest,
        Some("latest") => ResetStrategy::Latest,
        Some("specific") => {
            let offset = request.offset.ok_or_else(|| {
                invalid(
                    "missing_field",
                    "strategy `specific` needs `offset`".to_owned(),
                )
            })?;
            ResetStrategy::Specific(
                non_negative("offset", offset).map_err(|m| invalid("invalid_request", m))?,
            )
        }
        Some("timestamp") => {
            let timestamp = request.timestamp.ok_or_else(|| {
                invalid(
                    "missing_field",
                    "strategy `timestamp` needs `timestamp` (ms since the epoch)".to_owned(),
                )
            })?;
            ResetStrategy::Timestamp(
                non_negative("timestamp", timestamp).map_err(|m| invalid("invalid_request", m))?,
            )
        }
        Some(other) => {
            // Echoed cut short: the body may carry megabytes.
            let shown: String = other.chars().take(32).collect();
            return Err(invalid(
                "invalid_strategy",
                format!(
                    "strategy must be `earliest`, `latest`, `specific` or `timestamp`; \
                     got {shown:?}"
                ),
            ));
        }
    };
    let partition = request
        .partition
        .map(|p| partition_number(&broker, topic_label, &group, p))
        .transpose()?;
    let target = ResetTarget { topic, partition };
    let changes = broker.reset_offsets(&group, target, strategy).await?;
    let details: Vec<Value> = changes.iter().map(|c| change_json(c, false)).collect();
    Ok(Json(json!({
        "success": true, "partitionsReset": details.len(), "details": details,
    })))
}

/// `POST /consumer-groups/{group_id}/seek {"topic","partition"?,"timestamp"}`: commits, for
/// each partition of the topic (or the one named), the first offset whose record is at
/// least `timestamp` ms since the epoch, else the high watermark.
/// `{"success","partitionsUpdated","details":[{"topic","partition","oldOffset","newOffset",
/// "timestampFound"}]}`; `timestampFound` is null where no record was that late.
pub async fn seek(
    State(broker): State<Broker>,
    Path(group): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let request: SeekBody = parse_body(&broker, &group, body)?;
    let topic_label = request.topic.as_deref().unwrap_or_default();
    let invalid = |code: &'static str, message: String| {
        broker.record_consume_error(topic_label, &group, ConsumerError::InvalidRequest);
        ApiError::bad_request(code, message)
    };
    let Some(topic) = request.topic.as_deref() else {
        return Err(invalid("missing_field", "`topic` is required".to_owned()));
    };
    let Some(timestamp) = request.timestamp else {
        return Err(invalid(
            "missing_field",
            "`timestamp` (ms since the epoch) is required".to_owned(),
        ));
    };
    let timestamp =
        non_negative("timestamp", timestamp).map_err(|m| invalid("invalid_request", m))?;
    let partition = request
        .partition
        .map(|p| partition_number(&broker, topic, &group, p))
        .transpose()?;
    let target = ResetTarget {
        topic: Some(topic),
        partition,
    };
    let changes = broker
        .reset_offsets(&group, target, ResetStrategy::Timestamp(timestamp))
        .await?;
    let details: Vec<Value> = changes.iter().map(|c| change_json(c, true)).collect();
    Ok(Json(json!({
        "success": true, "partitionsUpdated": details.len(), "details": details,
    })))
}

fn change_json(change: &OffsetChange, with_timestamp: bool) -> Value {
    let mut value = json!({
        "topic": change.topic,
        "partition": change.partition,
        "oldOffset": change.old_offset,
        "newOffset": change.new_offset,
    });
    if with_timestamp {
        value["timestampFound"] = json!(change.timestamp_found);
    }
    value
}

/// `value` as a `u64`, or the message of a 400 naming `field`.
fn non_negative(field: &str, value: i64) -> Result<u64, String> {
    u64::try_from(value).map_err(|_| format!("`{field}` must be >= 0, got {value}"))
}

/// A partition number from a body: 400 `invalid_request` when negative, 404
/// `partition_not_found` past `u32`; counted.
fn partition_number(broker: &Broker, topic: &str, group: &str, raw: i64) -> Result<u32, ApiError> {
    u32::try_from(raw).map_err(|_| {
        let message = format!("no partition {raw}");
        if raw < 0 {
            broker.record_consume_error(topic, group, ConsumerError::InvalidRequest);
            ApiError::bad_request("invalid_request", message)
        } else {
            broker.record_consume_error(topic, group, ConsumerError::PartitionNotFound);
            ApiError::not_found("partition_not_found", message)
        }
    })
}
