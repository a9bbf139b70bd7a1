//! `POST /produce` and `POST /produce/batch`.

use std::collections::BTreeMap;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::response::Json;
use serde::Deserialize;
use serde_json::{Value, json};
use streamhouse_observability::metrics::ProducerError;

use super::error::ApiError;
use crate::broker::{Broker, ProduceRecord};

/// One record in a request.
#[derive(Debug, Deserialize)]
struct RecordBody {
    #[serde(default)]
    key: Option<String>,
    value: String,
    #[serde(default)]
    partition: Option<i64>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

impl From<RecordBody> for ProduceRecord {
    fn from(r: RecordBody) -> Self {
        ProduceRecord {
            key: r.key,
            value: r.value,
            partition: r.partition,
            headers: r.headers,
        }
    }
}

#[derive(Debug, Deserialize)]
struct SingleBody {
    topic: String,
    #[serde(flatten)]
    record: RecordBody,
}

#[derive(Debug, Deserialize)]
struct BatchBody {
    topic: String,
    records: Vec<RecordBody>,
}

/// `POST /produce {"topic","key"?,"value","partition"?,"headers"?}` -> `{"offset","partition"}`.
pub async fn single(
    State(broker): State<Broker>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let started = Instant::now();
    let request: SingleBody = parse(&broker, body)?;
    let positions = broker.produce(&request.topic, vec![request.record.into()], started)?;
    let position = positions[0];
    Ok(Json(
        json!({ "offset": position.offset, "partition": position.partition }),
    ))
}

/// `POST /produce/batch {"topic","records":[...]}` -> `{"count","offsets":[{"partition","offset"}]}`.
pub async fn batch(
    State(broker): State<Broker>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let started = Instant::now();
    let request: BatchBody = parse(&broker, body)?;
    let records = request.records.into_iter().map(Into::into).collect();
    let positions = broker.produce(&request.topic, records, started)?;
    Ok(Json(
        json!({ "count": positions.len(), "offsets": positions }),
    ))
}

/// Reads and parses a body, counting a failure under the topic it named (or `""`).
fn parse<T: serde::de::DeserializeOwned>(
    broker: &Broker,
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    let body = match body {
        Ok(body) => body,
        Err(rejection) => {
            let status = rejection.status();
            let (code, kind) = if status == StatusCode::PAYLOAD_TOO_LARGE {
                ("record_too_large", ProducerError::RecordTooLarge)
            } else {
                ("invalid_record", ProducerError::InvalidRecord)
            };
            broker.record_produce_error("", kind);
            return Err(ApiError::new(status, code, rejection.body_text()));
        }
    };
    serde_json::from_slice(&body).map_err(|e| {
        let topic = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v.get("topic").and_then(Value::as_str).map(str::to_owned))
            .unwrap_or_default();
        broker.record_produce_error(&topic, ProducerError::InvalidRecord);
        ApiError::bad_request("invalid_record", format!("malformed produce request: {e}"))
    })
}
