//! `GET /consume?topic=&partition=&offset=&maxRecords=&maxBytes=&groupId=&memberId=`.

use std::collections::HashMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::Json;
use streamhouse_observability::metrics::ConsumerError;

use super::error::ApiError;
use crate::broker::{Broker, ConsumeRequest, ConsumeResult};

/// Default `maxRecords`.
pub const DEFAULT_MAX_RECORDS: usize = 100;

/// `GET /consume`: records from `offset` (default 0) and `nextOffset`. One call returns
/// everything available from `offset`, across flushed segments and memory, up to
/// `maxRecords` (default [`DEFAULT_MAX_RECORDS`], capped by the server's
/// `max_consume_records`) and `maxBytes` of keys, values and headers (default and cap: the
/// server's `max_consume_bytes`, which bounds the answer's size); the first record comes
/// back even when it alone is larger. `groupId` counts the records for the group if it exists; `memberId`
/// (with `groupId`) renews that member's session.
pub async fn consume(
    State(broker): State<Broker>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Json<ConsumeResult>, ApiError> {
    let Query(query) = query.map_err(|e| {
        broker.record_consume_error("", "", ConsumerError::InvalidRequest);
        ApiError::bad_request("invalid_request", e.body_text())
    })?;
    let topic = query.get("topic").map(String::as_str).unwrap_or_default();
    let group = query.get("groupId").map(String::as_str);
    let member = query.get("memberId").map(String::as_str);
    let invalid = |message: String| {
        broker.record_consume_error(
            topic,
            group.unwrap_or_default(),
            ConsumerError::InvalidRequest,
        );
        ApiError::bad_request("invalid_request", message)
    };
    if topic.is_empty() {
        return Err(invalid("`topic` is required".to_owned()));
    }
    broker.check_consumer_names(topic, group)?;
    if member.is_some() && group.is_none() {
        return Err(invalid("`memberId` needs `groupId`".to_owned()));
    }
    let number = |name: &str, default: Option<u64>| -> Result<u64, ApiError> {
        match (query.get(name), default) {
            (None, Some(default)) => Ok(default),
            (None, None) => Err(invalid(format!("`{name}` is required"))),
            (Some(raw), _) => raw.trim().parse::<u64>().map_err(|_| {
                invalid(format!(
                    "`{name}` must be a whole number from 0 to {}, got {raw:?}",
                    u64::MAX
                ))
            }),
        }
    };
    let partition = number("partition", None)?;
    let offset = number("offset", Some(0))?;
    let max_records = number("maxRecords", Some(DEFAULT_MAX_RECORDS as u64))?;
    let max_bytes = number("maxBytes", Some(u64::MAX))?;
    let Ok(partition) = u32::try_from(partition) else {
        broker.record_consume_error(
            topic,
            group.unwrap_or_default(),
            ConsumerError::PartitionNotFound,
        );
        return Err(ApiError::not_found(
            "partition_not_found",
            format!("no partition {partition}"),
        ));
    };
    let request = ConsumeRequest {
        max_records: usize::try_from(max_records).unwrap_or(usize::MAX),
        max_bytes: usize::try_from(max_bytes).unwrap_or(usize::MAX),
        group,
        member,
        ..ConsumeRequest::new(topic, partition, offset)
    };
    broker.consume(&request).await.map(Json)
}
