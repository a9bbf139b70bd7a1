//! Produce: validation, trace context, the unflushed budget, appends, and the producer
//! metrics.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::http::StatusCode;
use streamhouse_observability::metrics::ProducerError;
use streamhouse_observability::propagation;

use super::{Broker, ProduceRecord, RecordPosition};
use crate::api::error::ApiError;
use crate::partition_log::PartitionLog;
use crate::record::limits::{RecordLimits, RecordRejection};
use crate::record::{NewRecord, payload_bytes};
use crate::topics::{Appending, Topic, UNKNOWN_TOPIC, is_valid_topic_name};
use crate::trace_context::RecordContext;

/// The code of the 503 answered while the unflushed budget is spent.
const BACKPRESSURE: &str = "backpressure";

type Refusal = (ApiError, ProducerError);

impl Broker {
    /// Appends `records` to the topic named `topic_name`, all or none, and records the
    /// request's records, bytes, batch size and latency since `started`. Acknowledged
    /// records are in memory at once and in the object store once their segment is flushed.
    ///
    /// # Errors
    /// 400 `invalid_topic_name` and 404 `topic_not_found` (counted under
    /// [`UNKNOWN_TOPIC`]; also when the topic is deleted while the request runs); 400 `invalid_record`, 404 `partition_not_found`, 413
    /// `record_too_large` / `too_many_records`, 503 `backpressure` while too many bytes
    /// wait for the object store (counted under the topic).
    pub fn produce(
        &self,
        topic_name: &str,
        records: Vec<ProduceRecord>,
        started: Instant,
    ) -> Result<Vec<RecordPosition>, ApiError> {
        let topic = self.produce_topic(topic_name)?;
        self.produce_to(&topic, records, started)
    }

    /// The topic a produce names.
    ///
    /// # Errors
    /// 400 `invalid_topic_name` or 404 `topic_not_found`, counted under [`UNKNOWN_TOPIC`].
    pub fn produce_topic(&self, name: &str) -> Result<Arc<Topic>, ApiError> {
        if !is_valid_topic_name(name) {
            return Err(self.reject_invalid_produce_topic());
        }
        match self.inner.topics.get(name) {
            Some(topic) => Ok(topic),
            None => {
                self.record_unknown_topic_error(ProducerError::TopicNotFound);
                Err(ApiError::not_found(
                    "topic_not_found",
                    format!("topic {name:?} does not exist"),
                ))
            }
        }
    }

    /// Answers a produce naming a topic that is not a valid name (400 `invalid_topic_name`,
    /// counted as `invalid_record` under [`UNKNOWN_TOPIC`]). The name is not echoed: it may
    /// be megabytes.
    pub fn reject_invalid_produce_topic(&self) -> ApiError {
        self.record_unknown_topic_error(ProducerError::InvalidRecord);
        ApiError::invalid_topic_name()
    }

    /// Counts a produce that failed before it named an existing topic (an unreadable body,
    /// a missing, invalid or absent topic) under [`UNKNOWN_TOPIC`], with a send span of that
    /// name: a name the client chose never becomes a label or a span name.
    pub fn record_unknown_topic_error(&self, error: ProducerError) {
        let _span = propagation::send_span(UNKNOWN_TOPIC).entered();
        self.inner
            .telemetry
            .producer()
            .record_error(UNKNOWN_TOPIC, error);
    }

    /// [`Self::produce`] to a topic already found.
    pub(crate) fn produce_to(
        &self,
        topic: &Topic,
        records: Vec<ProduceRecord>,
        started: Instant,
    ) -> Result<Vec<RecordPosition>, ApiError> {
        // Held until the metrics are recorded, so a delete (which removes the topic's
        // series after taking it) never sees them come back.
        let Some(alive) = topic.incarnation().appending() else {
            // Deleted since it was looked up: as if it never existed.
            self.record_unknown_topic_error(ProducerError::TopicNotFound);
            return Err(ApiError::not_found(
                "topic_not_found",
                format!("topic {:?} does not exist", topic.name),
            ));
        };
        let span = propagation::send_span(&topic.name);
        let _entered = span.enter();
        match self.append(topic, &alive, records) {
            Ok((positions, bytes)) => {
                let count = positions.len() as u64;
                topic
                    .producer
                    .record_batch(count, bytes as u64, started.elapsed());
                Ok(positions)
            }
            Err((error, kind)) => {
                topic.producer.record_error(kind);
                Err(error)
            }
        }
    }

    fn append(
        &self,
        topic: &Topic,
        alive: &Appending<'_>,
        records: Vec<ProduceRecord>,
    ) -> Result<(Vec<RecordPosition>, usize), Refusal> {
        let config = &self.inner.config;
        if records.is_empty() {
            let error = ApiError::bad_request("invalid_record", "no records");
            return Err((error, ProducerError::InvalidRecord));
        }
        if records.len() > config.max_batch_records {
            let max = config.max_batch_records;
            return Err(RecordRejection::TooManyRecords { max }.into_error(max));
        }
        let limits = RecordLimits::new(config);
        let context = RecordContext::of_span(&tracing::Span::current(), config.record_baggage);
        // Validate everything first, so a bad record leaves the log untouched.
        let mut by_partition: BTreeMap<u32, Vec<(usize, NewRecord)>> = BTreeMap::new();
        let mut client_bytes = 0;
        let mut stored_bytes = 0;
        let count = records.len();
        for (index, record) in records.into_iter().enumerate() {
            let partition = validate(topic, &limits, &record, index)?;
            let partition = topic.choose_partition(partition, record.key.as_deref());
            client_bytes += payload_bytes(record.key.as_deref(), &record.value, &record.headers);
            let mut headers = record.headers;
            context.apply(&mut headers);
            stored_bytes += payload_bytes(record.key.as_deref(), &record.value, &headers);
            by_partition.entry(partition).or_default().push((
                index,
                NewRecord {
                    key: record.key,
                    value: record.value,
                    headers,
                },
            ));
        }
        // Reserved for the whole request at once, so no partition can refuse midway.
        let budget = self.inner.pool.budget();
        budget.try_reserve(stored_bytes).map_err(|over| {
            let error = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                BACKPRESSURE,
                format!(
                    "{} payload bytes wait for the object store, the most is {} \
                     (STREAMHOUSE_MAX_UNFLUSHED_BYTES); retry later",
                    over.used, over.max
                ),
            );
            (error, ProducerError::StorageFailure)
        })?;
        alive.incarnation().appended(stored_bytes);
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let mut positions = vec![
            RecordPosition {
                partition: 0,
                offset: 0
            };
            count
        ];
        for (partition, entries) in by_partition {
            let log = &topic.partitions[partition as usize];
            let (indexes, new): (Vec<usize>, Vec<NewRecord>) = entries.into_iter().unzip();
            let (first, full) = log.append(new, timestamp);
            for (i, index) in indexes.into_iter().enumerate() {
                positions[index] = RecordPosition {
                    partition,
                    offset: first + i as u64,
                };
            }
            if full {
                self.inner
                    .pool
                    .try_seal(alive, log, PartitionLog::seal_if_full);
            }
        }
        Ok((positions, client_bytes))
    }
}

/// Checks one record's sizes and partition; returns the partition it asked for.
fn validate(
    topic: &Topic,
    limits: &RecordLimits,
    record: &ProduceRecord,
    index: usize,
) -> Result<Option<u32>, Refusal> {
    limits
        .check(record.key.as_deref(), &record.value, &record.headers)
        .map_err(|rejection| rejection.into_error(index))?;
    match record.partition {
        None => Ok(None),
        Some(p) if p < 0 => Err(RecordRejection::NegativePartition(p).into_error(index)),
        Some(p) if p >= topic.partitions.len() as i64 => Err((
            ApiError::not_found(
                "partition_not_found",
                format!(
                    "record {index}: topic {:?} has {} partitions, got partition {p}",
                    topic.name,
                    topic.partitions.len()
                ),
            ),
            ProducerError::PartitionNotFound,
        )),
        Some(p) => Ok(Some(p as u32)),
    }
}
