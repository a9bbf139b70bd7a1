//! Produce: validation, trace context, the unflushed budget, offset reservations, appends,
//! flushed acknowledgements, and the producer metrics.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::http::StatusCode;
use streamhouse_observability::metrics::ProducerError;
use streamhouse_observability::propagation;
use tracing::Instrument;

use super::{Broker, ProduceRecord, RecordPosition};
use crate::api::error::ApiError;
use crate::config::ProduceAck;
use crate::partition_log::{AppendRefused, PartitionLog};
use crate::record::limits::{RecordLimits, RecordRejection};
use crate::record::{NewRecord, payload_bytes};
use crate::topics::{Topic, UNKNOWN_TOPIC, is_valid_topic_name};
use crate::trace_context::RecordContext;

/// The code of the 503 answered while the unflushed budget is spent.
const BACKPRESSURE: &str = "backpressure";

type Refusal = (ApiError, ProducerError);

impl Broker {
    /// Appends `records` to the topic named `topic_name` and records the request's records,
    /// bytes, batch size and latency since `started`. Answers once the records are in
    /// memory, or with [`ProduceAck::Flushed`] once they are in the object store. Every
    /// record is checked before any is appended, so a bad one leaves the log untouched.
    ///
    /// # Errors
    /// 400 `invalid_topic_name` and 404 `topic_not_found` (counted under
    /// [`UNKNOWN_TOPIC`]; also when the topic is deleted while the request runs); 400
    /// `invalid_record`, 404 `partition_not_found`, 413 `record_too_large` /
    /// `too_many_records`; 503 `backpressure` while too many bytes wait for the object
    /// store, `partition_failed` for a partition fenced after a permanent store error, and
    /// `storage_failure` when the offset reservation cannot be stored (counted under the
    /// topic). After a 503 some records may be stored: retrying is at-least-once.
    pub async fn produce(
        &self,
        topic_name: &str,
        records: Vec<ProduceRecord>,
        started: Instant,
    ) -> Result<Vec<RecordPosition>, ApiError> {
        let topic = self.produce_topic(topic_name)?;
        self.produce_to(&topic, records, started).await
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
                Err(topic_not_found(name))
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
    pub(crate) async fn produce_to(
        &self,
        topic: &Arc<Topic>,
        records: Vec<ProduceRecord>,
        started: Instant,
    ) -> Result<Vec<RecordPosition>, ApiError> {
        let span = propagation::send_span(&topic.name);
        let outcome = async {
            let batch = self.prepare(topic, records)?;
            let client_bytes = batch.client_bytes;
            let positions = self.append(topic, batch).await?;
            if self.inner.config.produce_ack == ProduceAck::Flushed {
                self.wait_stored(topic, &positions).await?;
            }
            Ok((positions, client_bytes))
        }
        .instrument(span.clone())
        .await;
        let _entered = span.enter();
        // Held while recording, so a delete (which removes the topic's series after taking
        // it) never sees them come back.
        let Some(_alive) = topic.incarnation().appending() else {
            // Deleted since it was looked up: as if it never existed.
            self.record_unknown_topic_error(ProducerError::TopicNotFound);
            return Err(topic_not_found(&topic.name));
        };
        match outcome {
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

    /// Checks every record and groups them by partition, refusing a fenced partition.
    fn prepare(&self, topic: &Topic, records: Vec<ProduceRecord>) -> Result<Batch, Refusal> {
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
        let mut batch = Batch {
            count: records.len(),
            ..Batch::default()
        };
        for (index, record) in records.into_iter().enumerate() {
            let partition = validate(topic, &limits, &record, index)?;
            let partition = topic.choose_partition(partition, record.key.as_deref());
            batch.client_bytes +=
                payload_bytes(record.key.as_deref(), &record.value, &record.headers);
            let mut headers = record.headers;
            context.apply(&mut headers);
            let bytes = payload_bytes(record.key.as_deref(), &record.value, &headers);
            let part = batch.partitions.entry(partition).or_default();
            part.bytes += bytes;
            part.records.push((
                index,
                NewRecord {
                    key: record.key,
                    value: record.value,
                    headers,
                },
            ));
        }
        for &partition in batch.partitions.keys() {
            if let Some(reason) = topic.partitions[partition as usize].failure() {
                return Err(partition_failed(topic, partition, &reason));
            }
        }
        Ok(batch)
    }

    /// Appends a checked batch, partition by partition, waiting for the offset reservation
    /// where it runs short; returns each record's position, in request order.
    async fn append(
        &self,
        topic: &Arc<Topic>,
        batch: Batch,
    ) -> Result<Vec<RecordPosition>, Refusal> {
        let stored_bytes: usize = batch.partitions.values().map(|p| p.bytes).sum();
        // Reserved for the whole request at once, so no partition is refused for want of
        // budget once another has taken its records.
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
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let mut positions = vec![
            RecordPosition {
                partition: 0,
                offset: 0
            };
            batch.count
        ];
        let mut unappended = stored_bytes;
        for (partition, part) in batch.partitions {
            let (indexes, records): (Vec<usize>, Vec<NewRecord>) = part.records.into_iter().unzip();
            let appended = self
                .append_partition(topic, partition, records, part.bytes, timestamp)
                .await;
            let first = match appended {
                Ok(first) => first,
                Err(refusal) => {
                    budget.release(unappended);
                    return Err(refusal);
                }
            };
            unappended -= part.bytes;
            for (i, index) in indexes.into_iter().enumerate() {
                positions[index] = RecordPosition {
                    partition,
                    offset: first + i as u64,
                };
            }
        }
        Ok(positions)
    }

    /// Appends one partition's records (their `bytes` already reserved in the budget);
    /// returns the first offset.
    async fn append_partition(
        &self,
        topic: &Arc<Topic>,
        partition: u32,
        mut records: Vec<NewRecord>,
        bytes: usize,
        timestamp: u64,
    ) -> Result<u64, Refusal> {
        let incarnation = topic.incarnation();
        let log = &topic.partitions[partition as usize];
        loop {
            let appended = {
                let Some(alive) = incarnation.appending() else {
                    return Err((topic_not_found(&topic.name), ProducerError::TopicNotFound));
                };
                let reserved = incarnation.reserved(partition);
                log.append(records, timestamp, reserved)
                    .map(|(first, full)| {
                        incarnation.appended(bytes);
                        if full {
                            self.inner
                                .pool
                                .try_seal(&alive, log, PartitionLog::seal_if_full);
                        }
                        first
                    })
            };
            match appended {
                Ok(first) => {
                    if incarnation.reservation_low(partition, log.high_watermark()) {
                        self.extend_reservations_in_background(topic, partition);
                    }
                    return Ok(first);
                }
                Err((AppendRefused::Failed(reason), _)) => {
                    return Err(partition_failed(topic, partition, &reason));
                }
                Err((AppendRefused::NoOffsets, back)) => {
                    let needed = back.len() as u64;
                    records = back;
                    self.extend_reservations(topic, partition, needed).await?;
                }
            }
        }
    }

    /// Stores a longer offset reservation for the topic's partitions now.
    async fn extend_reservations(
        &self,
        topic: &Topic,
        partition: u32,
        needed: u64,
    ) -> Result<(), Refusal> {
        let store = self.inner.store.as_ref();
        match topic
            .incarnation()
            .extend_reservations(store, &topic.partitions, partition, needed)
            .await
        {
            Ok(true) => Ok(()),
            Ok(false) => Err((topic_not_found(&topic.name), ProducerError::TopicNotFound)),
            Err(error) => Err((
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "storage_failure",
                    format!(
                        "storing the offset reservation of topic {:?} failed: {error}; retry later",
                        topic.name
                    ),
                ),
                ProducerError::StorageFailure,
            )),
        }
    }

    /// Extends the reservation before a produce has to wait for it; one extension at a
    /// time per topic.
    fn extend_reservations_in_background(&self, topic: &Arc<Topic>, partition: u32) {
        if !topic.incarnation().claim_extension() {
            return;
        }
        let (broker, topic) = (self.clone(), Arc::clone(topic));
        tokio::spawn(async move {
            if let Err((error, _)) = broker.extend_reservations(&topic, partition, 0).await {
                tracing::warn!(topic = %topic.name, %error, "extending the offset reservation failed; a produce will try again");
            }
            topic.incarnation().end_extension();
        });
    }

    /// Waits until every record of `positions` is in the store (flushed acknowledgements):
    /// seals each partition's active segment, or leaves it to the agent flushing it.
    async fn wait_stored(
        &self,
        topic: &Topic,
        positions: &[RecordPosition],
    ) -> Result<(), Refusal> {
        let mut last: BTreeMap<u32, u64> = BTreeMap::new();
        for position in positions {
            let entry = last.entry(position.partition).or_default();
            *entry = (*entry).max(position.offset);
        }
        {
            let Some(alive) = topic.incarnation().appending() else {
                return Err((topic_not_found(&topic.name), ProducerError::TopicNotFound));
            };
            for &partition in last.keys() {
                let log = &topic.partitions[partition as usize];
                self.inner.pool.request_flush(&alive, log);
            }
        }
        for (partition, offset) in last {
            let log = &topic.partitions[partition as usize];
            let deleted = topic.incarnation().deleted();
            tokio::select! {
                stored = log.stored(offset) => {
                    stored.map_err(|reason| partition_failed(topic, partition, &reason))?;
                }
                () = deleted => {
                    return Err((topic_not_found(&topic.name), ProducerError::TopicNotFound));
                }
            }
        }
        Ok(())
    }
}

/// A produce's records, checked and grouped by partition.
#[derive(Default)]
struct Batch {
    count: usize,
    client_bytes: usize,
    partitions: BTreeMap<u32, PartitionBatch>,
}

/// One partition's records with their indexes in the request, and their stored bytes.
#[derive(Default)]
struct PartitionBatch {
    records: Vec<(usize, NewRecord)>,
    bytes: usize,
}

fn topic_not_found(name: &str) -> ApiError {
    ApiError::not_found("topic_not_found", format!("topic {name:?} does not exist"))
}

/// 503 `partition_failed`, naming the partition and why it is fenced.
fn partition_failed(topic: &Topic, partition: u32, reason: &str) -> Refusal {
    let error = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "partition_failed",
        format!(
            "partition {partition} of topic {:?} is fenced after a permanent object store \
             error ({reason}); it is retried in the background",
            topic.name
        ),
    );
    (error, ProducerError::StorageFailure)
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
