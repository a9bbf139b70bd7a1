//! `POST /produce` and `POST /produce/batch`.
//!
//! | status | `error` | when | counted under |
//! |---|---|---|---|
//! | 400 | `invalid_topic_name` | `topic` is not 1 to 249 characters of `[A-Za-z0-9._-]` | `(unknown)` |
//! | 404 | `topic_not_found` | no such topic, or it is deleted while the request runs | `(unknown)` |
//! | 400 | `invalid_record` | malformed body, record or partition | the topic, else `(unknown)` |
//! | 404 | `partition_not_found` | no such partition | the topic |
//! | 413 | `record_too_large` | body, key, value or headers past their limit | the topic, else `(unknown)` |
//! | 413 | `too_many_records` | more than `STREAMHOUSE_MAX_BATCH_RECORDS` records | the topic, else `(unknown)` |
//! | 503 | `backpressure` | `STREAMHOUSE_MAX_UNFLUSHED_BYTES` wait for the store; `Retry-After: 1` | the topic |
//!
//! A record's own headers may use `STREAMHOUSE_MAX_RECORD_HEADER_BYTES` less 588 bytes, and
//! [`LiteConfig::max_headers`](crate::LiteConfig::max_headers) less 2, kept for `traceparent`
//! and `tracestate`; 8199 bytes and one header more when `STREAMHOUSE_RECORD_BAGGAGE` is on.
//! A valid `traceparent` of the client's own is kept; a malformed one is replaced by the
//! server's.

mod body;

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use serde_json::{Value, json};
use streamhouse_observability::metrics::ProducerError;

use super::error::ApiError;
use crate::broker::{Broker, ProduceRecord};
use crate::record::limits::RecordLimits;
use crate::topics::Topic;
use body::{Shape, TopicField};

/// Seconds a client told to back off waits before retrying.
const RETRY_AFTER_SECONDS: &str = "1";

/// A refused produce: the JSON [`ApiError`], with `Retry-After` on a 503.
#[derive(Debug)]
pub struct ProduceError(pub ApiError);

impl From<ApiError> for ProduceError {
    fn from(error: ApiError) -> Self {
        ProduceError(error)
    }
}

impl IntoResponse for ProduceError {
    fn into_response(self) -> Response {
        let unavailable = self.0.status == StatusCode::SERVICE_UNAVAILABLE;
        let mut response = self.0.into_response();
        if unavailable {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECONDS));
        }
        response
    }
}

/// `POST /produce {"topic","key"?,"value","partition"?,"headers"?}` -> `{"offset","partition"}`.
pub async fn single(
    State(broker): State<Broker>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ProduceError> {
    let started = Instant::now();
    let (topic, records) = read(&broker, body, Shape::Single)?;
    let positions = broker.produce_to(&topic, records, started).await?;
    let position = positions[0];
    Ok(Json(
        json!({ "offset": position.offset, "partition": position.partition }),
    ))
}

/// `POST /produce/batch {"topic","records":[...]}` -> `{"count","offsets":[{"partition","offset"}]}`.
pub async fn batch(
    State(broker): State<Broker>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ProduceError> {
    let started = Instant::now();
    let (topic, records) = read(&broker, body, Shape::Batch)?;
    let positions = broker.produce_to(&topic, records, started).await?;
    Ok(Json(
        json!({ "count": positions.len(), "offsets": positions }),
    ))
}

/// Reads and parses a body in one pass, answering and counting a refusal under the topic
/// when it exists (and is not deleted meanwhile), else under the placeholder.
fn read(
    broker: &Broker,
    body: Result<Bytes, BytesRejection>,
    shape: Shape,
) -> Result<(Arc<Topic>, Vec<ProduceRecord>), ApiError> {
    let body = body.map_err(|rejection| {
        let status = rejection.status();
        let (code, kind) = if status == StatusCode::PAYLOAD_TOO_LARGE {
            ("record_too_large", ProducerError::RecordTooLarge)
        } else {
            ("invalid_record", ProducerError::InvalidRecord)
        };
        broker.record_unknown_topic_error(kind);
        ApiError::new(status, code, rejection.body_text())
    })?;
    let config = broker.config();
    let limits = RecordLimits::new(config);
    let exists = |name: &str| broker.topics().get(name).is_some();
    let parsed = body::parse(&body, shape, &limits, config.max_batch_records, &exists);
    // The topic answers first: an invalid or absent one whatever else is wrong.
    let topic = match parsed.topic {
        TopicField::Invalid => return Err(broker.reject_invalid_produce_topic()),
        TopicField::Named(name) => broker.produce_topic(&name)?,
        TopicField::Missing => {
            let (error, kind) = parsed.records.err().unwrap_or_else(|| {
                let error = ApiError::bad_request("invalid_record", "no topic");
                (error, ProducerError::InvalidRecord)
            });
            broker.record_unknown_topic_error(kind);
            return Err(error);
        }
    };
    match parsed.records {
        Ok(records) => Ok((topic, records)),
        Err((error, kind)) => Err(refuse(broker, &topic, error, kind)),
    }
}

/// Counts a body refused for `kind` under `topic`, answering `error`; or, when the topic
/// was deleted since it was looked up, 404 `topic_not_found` under the placeholder (the
/// topic answers first, and an absent one is never a label).
fn refuse(broker: &Broker, topic: &Topic, error: ApiError, kind: ProducerError) -> ApiError {
    // Held while recording, as `produce_to` does: a delete removes the topic's series only
    // after it has marked the topic deleted, so none comes back.
    let Some(_alive) = topic.incarnation().appending() else {
        broker.record_unknown_topic_error(ProducerError::TopicNotFound);
        return ApiError::not_found(
            "topic_not_found",
            format!("topic {:?} does not exist", topic.name),
        );
    };
    topic.producer.record_error(kind);
    error
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LiteConfig;
    use object_store::memory::InMemory;
    use streamhouse_observability::health::HealthRegistry;
    use streamhouse_observability::{Telemetry, TelemetryConfig};

    #[tokio::test]
    async fn a_refusal_for_a_topic_deleted_meanwhile_is_a_404_under_the_placeholder() {
        let telemetry = Telemetry::new(TelemetryConfig::default()).unwrap();
        let health = HealthRegistry::new();
        let store = Arc::new(InMemory::new());
        let broker = Broker::start(LiteConfig::default(), &telemetry, store, &health);
        let topic = broker.create_topic("doomed", 1).unwrap();
        let invalid = || ApiError::bad_request("invalid_record", "bad");
        let answer = refuse(&broker, &topic, invalid(), ProducerError::InvalidRecord);
        assert_eq!(answer.status, StatusCode::BAD_REQUEST);
        assert!(telemetry.render_prometheus().contains("topic=\"doomed\""));

        // Looked up before the delete, refused after it.
        broker.delete_topic("doomed").await.unwrap();
        let answer = refuse(&broker, &topic, invalid(), ProducerError::InvalidRecord);
        assert_eq!(answer.status, StatusCode::NOT_FOUND);
        assert_eq!(answer.code, "topic_not_found");
        let text = telemetry.render_prometheus();
        assert!(!text.contains("topic=\"doomed\""), "{text}");
        assert!(
            text.lines().any(
                |line| line.starts_with("streamhouse_producer_errors_total{")
                    && line.contains("topic=\"(unknown)\"")
                    && line.contains("error_type=\"topic_not_found\"")
                    && line.ends_with(" 1")
            ),
            "{text}"
        );
    }
}
