//! Produce: validation, partition choice, appends, and the producer metrics.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::http::StatusCode;
use streamhouse_observability::metrics::ProducerError;
use streamhouse_observability::propagation;

use super::{Broker, ProduceRecord, RecordPosition};
use crate::api::error::ApiError;
use crate::record::{NewRecord, payload_bytes};
use crate::topics::Topic;
use crate::trace_context;

impl Broker {
    /// Appends `records` to `topic`, all or none (unless a partition refuses for
    /// backpressure midway), and records the request's records, bytes, batch size and
    /// latency since `started`. Acknowledged records are in memory at once and in the object
    /// store once their segment is flushed.
    ///
    /// # Errors
    /// 404 `topic_not_found` / `partition_not_found`, 400 `invalid_record`, 413
    /// `record_too_large`, 503 `storage_failure`; each counted in
    /// `streamhouse_producer_errors_total`.
    pub fn produce(
        &self,
        topic_name: &str,
        records: Vec<ProduceRecord>,
        started: Instant,
    ) -> Result<Vec<RecordPosition>, ApiError> {
        let span = propagation::send_span(topic_name);
        let _entered = span.enter();
        let Some(topic) = self.inner.topics.get(topic_name) else {
            self.record_produce_error(topic_name, ProducerError::TopicNotFound);
            return Err(ApiError::not_found(
                "topic_not_found",
                format!("topic {topic_name:?} does not exist"),
            ));
        };
        match self.append(&topic, records) {
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
        records: Vec<ProduceRecord>,
    ) -> Result<(Vec<RecordPosition>, usize), (ApiError, ProducerError)> {
        let config = &self.inner.config;
        if records.is_empty() {
            let error = ApiError::bad_request("invalid_record", "no records");
            return Err((error, ProducerError::InvalidRecord));
        }
        if records.len() > config.max_batch_records {
            let error = ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "record_too_large",
                format!("at most {} records per request", config.max_batch_records),
            );
            return Err((error, ProducerError::RecordTooLarge));
        }
        // Validate everything first, so a bad record leaves the log untouched.
        let mut by_partition: BTreeMap<u32, Vec<(usize, NewRecord)>> = BTreeMap::new();
        let mut bytes = 0;
        let count = records.len();
        for (index, record) in records.into_iter().enumerate() {
            let partition = self.validate(topic, &record, index)?;
            let partition = topic.choose_partition(partition, record.key.as_deref());
            bytes += payload_bytes(record.key.as_deref(), &record.value, &record.headers);
            let mut headers = record.headers;
            trace_context::inject(&tracing::Span::current(), &mut headers);
            by_partition.entry(partition).or_default().push((
                index,
                NewRecord {
                    key: record.key,
                    value: record.value,
                    headers,
                },
            ));
        }
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
            let (first, sealed) = log
                .append(new, timestamp, config.max_unflushed_bytes)
                .map_err(|b| {
                    let error = ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "storage_failure",
                        format!(
                            "partition {partition}: {} bytes wait for the object store",
                            b.unflushed_bytes
                        ),
                    );
                    (error, ProducerError::StorageFailure)
                })?;
            for (i, index) in indexes.into_iter().enumerate() {
                positions[index] = RecordPosition {
                    partition,
                    offset: first + i as u64,
                };
            }
            if let Some(sealed) = sealed {
                self.inner.pool.submit(Arc::clone(log), sealed);
            }
        }
        Ok((positions, bytes))
    }

    fn validate(
        &self,
        topic: &Topic,
        record: &ProduceRecord,
        index: usize,
    ) -> Result<Option<u32>, (ApiError, ProducerError)> {
        let config = &self.inner.config;
        let too_large = |what: &str, len: usize, max: usize| {
            let error = ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "record_too_large",
                format!("record {index}: {what} is {len} bytes, the limit is {max}"),
            );
            (error, ProducerError::RecordTooLarge)
        };
        if record.value.len() > config.max_value_bytes {
            return Err(too_large(
                "value",
                record.value.len(),
                config.max_value_bytes,
            ));
        }
        if let Some(key) = &record.key
            && key.len() > config.max_key_bytes
        {
            return Err(too_large("key", key.len(), config.max_key_bytes));
        }
        if record.headers.len() > config.max_headers {
            let error = ApiError::bad_request(
                "invalid_record",
                format!("record {index}: at most {} headers", config.max_headers),
            );
            return Err((error, ProducerError::InvalidRecord));
        }
        let header_bytes: usize = record.headers.iter().map(|(k, v)| k.len() + v.len()).sum();
        if header_bytes > config.max_key_bytes {
            return Err(too_large("headers", header_bytes, config.max_key_bytes));
        }
        match record.partition {
            None => Ok(None),
            Some(p) if p < 0 => Err((
                ApiError::bad_request(
                    "invalid_record",
                    format!("record {index}: partition must be >= 0, got {p}"),
                ),
                ProducerError::InvalidRecord,
            )),
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
}
