//! `GET /consume?topic=&partition=&offset=&maxRecords=&groupId=`.

use std::collections::HashMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::Json;
use streamhouse_observability::metrics::ConsumerError;

use super::error::ApiError;
use crate::broker::{Broker, ConsumeResult};

/// Default `maxRecords`.
pub const DEFAULT_MAX_RECORDS: usize = 100;

/// `GET /consume`: records from `offset` (default 0), at most `maxRecords`, and `nextOffset`.
pub async fn consume(
    State(broker): State<Broker>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Json<ConsumeResult>, ApiError> {
    let Query(query) = query.map_err(|e| {
        broker.record_consume_error("", "", ConsumerError::InvalidRequest);
        ApiError::bad_request("invalid_request", e.body_text())
    })?;
    let topic = query.get("topic").map(String::as_str).unwrap_or_default();
    let group = query.get("groupId").map(String::as_str).unwrap_or_default();
    let invalid = |message: String| {
        broker.record_consume_error(topic, group, ConsumerError::InvalidRequest);
        ApiError::bad_request("invalid_request", message)
    };
    if topic.is_empty() {
        return Err(invalid("`topic` is required".to_owned()));
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
    let Ok(partition) = u32::try_from(partition) else {
        broker.record_consume_error(topic, group, ConsumerError::PartitionNotFound);
        return Err(ApiError::not_found(
            "partition_not_found",
            format!("no partition {partition}"),
        ));
    };
    let max_records = usize::try_from(max_records).unwrap_or(usize::MAX);
    broker
        .consume(topic, partition, offset, max_records, group)
        .await
        .map(Json)
}
