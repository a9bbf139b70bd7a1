//! Consume: reads from memory or from flushed segments through the cache.

use std::sync::{Arc, PoisonError};

use axum::http::StatusCode;
use object_store::ObjectStoreExt;
use object_store::path::Path;
use streamhouse_observability::metrics::ConsumerError;
use streamhouse_observability::propagation;
use tracing::Instrument;

use super::{Broker, ConsumeResult};
use crate::api::error::ApiError;
use crate::partition_log::{PartitionLog, ReadPlan};
use crate::record::Record;
use crate::segment;
use crate::trace_context;

impl Broker {
    /// Reads at most `max_records` records of a partition from `offset`, counting them for
    /// `group` (`""` when the reader names no group).
    ///
    /// # Errors
    /// 404 `topic_not_found` / `partition_not_found`, 400 `offset_out_of_range` /
    /// `invalid_request`, 503 `storage_failure`; each counted in
    /// `streamhouse_consumer_errors_total`.
    pub async fn consume(
        &self,
        topic_name: &str,
        partition: u32,
        offset: u64,
        max_records: usize,
        group: &str,
    ) -> Result<ConsumeResult, ApiError> {
        let span = tracing::info_span!(
            "consume",
            topic = %topic_name,
            partition,
            offset,
            consumer_group = %group,
            records = tracing::field::Empty,
        );
        let result = self
            .read(topic_name, partition, offset, max_records)
            .instrument(span.clone())
            .await;
        match result {
            Ok(records) => {
                span.record("records", records.len());
                // A receive span linked to each record's producer span, under this one.
                span.in_scope(|| {
                    let carriers: Vec<_> = records
                        .iter()
                        .map(|r| trace_context::carrier(&r.headers))
                        .collect();
                    propagation::receive_span(topic_name, group, carriers.iter().map(Vec::as_slice))
                });
                let next_offset = records.last().map_or(offset, |r| r.offset + 1);
                self.inner.telemetry.consumer().record_records(
                    topic_name,
                    group,
                    records.len() as u64,
                );
                Ok(ConsumeResult {
                    records,
                    next_offset,
                })
            }
            Err((error, kind)) => {
                self.record_consume_error(topic_name, group, kind);
                Err(error)
            }
        }
    }

    async fn read(
        &self,
        topic_name: &str,
        partition: u32,
        offset: u64,
        max_records: usize,
    ) -> Result<Vec<Record>, (ApiError, ConsumerError)> {
        let log = self.partition_log(topic_name, partition)?;
        let max = max_records.min(self.inner.config.max_consume_records);
        if max == 0 {
            let error = ApiError::bad_request("invalid_request", "maxRecords must be at least 1");
            return Err((error, ConsumerError::InvalidRequest));
        }
        let high_watermark = log.high_watermark();
        if offset > high_watermark {
            let error = ApiError::bad_request(
                "offset_out_of_range",
                format!("offset {offset} is past the high watermark {high_watermark}"),
            );
            return Err((error, ConsumerError::OffsetOutOfRange));
        }
        if offset == high_watermark {
            return Ok(Vec::new());
        }
        match log.plan_read(offset, max) {
            ReadPlan::Memory(records) => Ok(records),
            ReadPlan::Flushed { path, offset, max } => {
                let records = self.fetch_segment(&path).await.map_err(|e| {
                    let error = ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "storage_failure",
                        format!("reading segment {path}: {e}"),
                    );
                    (error, ConsumerError::StorageFailure)
                })?;
                Ok(records
                    .iter()
                    .filter(|r| r.offset >= offset)
                    .take(max)
                    .cloned()
                    .collect())
            }
        }
    }

    /// A flushed segment's records, from the cache or else the store (then cached). Readers
    /// missing the same segment at once wait for one `get` instead of each making their own.
    pub(super) async fn fetch_segment(
        &self,
        path: &Path,
    ) -> Result<Arc<Vec<Record>>, object_store::Error> {
        if let Some(records) = self.inner.cache.get(path) {
            return Ok(records);
        }
        let gate = Arc::clone(
            self.inner
                .loading
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(path.clone())
                .or_default(),
        );
        let loaded = {
            let _turn = gate.lock().await;
            match self.inner.cache.peek(path) {
                Some(records) => Ok(records),
                None => self.load_segment(path).await,
            }
        };
        let mut loading = self
            .inner
            .loading
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // The map's and ours: nobody else waits on this gate, so it can go.
        if Arc::strong_count(&gate) <= 2 {
            loading.remove(path);
        }
        loaded
    }

    async fn load_segment(&self, path: &Path) -> Result<Arc<Vec<Record>>, object_store::Error> {
        let bytes = self.inner.store.get(path).await?.bytes().await?;
        let records = segment::decode(&bytes).map_err(|e| object_store::Error::Generic {
            store: "segment",
            source: Box::new(e),
        })?;
        let records = Arc::new(records);
        self.inner
            .cache
            .insert(path.clone(), Arc::clone(&records), bytes.len() as u64);
        Ok(records)
    }

    pub(super) fn partition_log(
        &self,
        topic_name: &str,
        partition: u32,
    ) -> Result<Arc<PartitionLog>, (ApiError, ConsumerError)> {
        let Some(topic) = self.inner.topics.get(topic_name) else {
            let error = ApiError::not_found(
                "topic_not_found",
                format!("topic {topic_name:?} does not exist"),
            );
            return Err((error, ConsumerError::TopicNotFound));
        };
        match topic.partition(partition) {
            Some(log) => Ok(Arc::clone(log)),
            None => Err((
                ApiError::not_found(
                    "partition_not_found",
                    format!(
                        "topic {topic_name:?} has {} partitions, got partition {partition}",
                        topic.partitions.len()
                    ),
                ),
                ConsumerError::PartitionNotFound,
            )),
        }
    }
}
