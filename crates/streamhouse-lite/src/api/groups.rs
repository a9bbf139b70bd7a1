//! Consumer groups: join, heartbeat, leave, commit, lag, describe.

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
use crate::consumer_groups::Membership;

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

fn body_or_error(
    broker: &Broker,
    group: &str,
    body: Result<Bytes, BytesRejection>,
) -> Result<Bytes, ApiError> {
    body.map_err(|e| {
        broker.record_consume_error("", group, ConsumerError::InvalidRequest);
        ApiError::new(e.status(), "invalid_request", e.body_text())
    })
}

/// `POST /consumer-groups/{group_id}/members {"topic"}`: joins; returns the member id and
/// its assigned partitions after the rebalance.
pub async fn join(
    State(broker): State<Broker>,
    Path(group): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Membership>, ApiError> {
    let body = body_or_error(&broker, &group, body)?;
    let request: JoinBody = parse_json(&body, "invalid_request")
        .inspect_err(|_| broker.record_consume_error("", &group, ConsumerError::InvalidRequest))?;
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
    let body = body_or_error(&broker, "", body)?;
    let request: CommitBody = parse_json(&body, "invalid_request")
        .inspect_err(|_| broker.record_consume_error("", "", ConsumerError::InvalidRequest))?;
    let (group, topic) = (&request.group_id, &request.topic);
    broker.check_consumer_names(topic, Some(group))?;
    let Ok(offset) = u64::try_from(request.offset) else {
        broker.record_consume_error(topic, group, ConsumerError::InvalidRequest);
        return Err(ApiError::bad_request(
            "invalid_request",
            format!("offset must be >= 0, got {}", request.offset),
        ));
    };
    let Ok(partition) = u32::try_from(request.partition) else {
        let kind = if request.partition < 0 {
            ConsumerError::InvalidRequest
        } else {
            ConsumerError::PartitionNotFound
        };
        broker.record_consume_error(topic, group, kind);
        let message = format!("no partition {}", request.partition);
        return Err(if request.partition < 0 {
            ApiError::bad_request("invalid_request", message)
        } else {
            ApiError::not_found("partition_not_found", message)
        });
    };
    let member = request.member_id.as_deref();
    broker.commit(group, topic, partition, offset, member)?;
    Ok(Json(json!({
        "groupId": group, "topic": topic, "partition": partition, "offset": offset,
    })))
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

/// `GET /consumer-groups/{group_id}`: members and their assignments.
pub async fn describe(
    State(broker): State<Broker>,
    Path(group): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let members = broker.groups().members(&group).map_err(|_| {
        ApiError::not_found("group_not_found", format!("group {group:?} does not exist"))
    })?;
    Ok(Json(json!({ "groupId": group, "members": members })))
}
