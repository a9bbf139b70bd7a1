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
use crate::segment::EncodedSegment;
use crate::trace_context;

/// A consume request, as the API parsed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumeRequest<'a> {
    /// Topic name.
    pub topic: &'a str,
    /// Partition.
    pub partition: u32,
    /// First offset wanted.
    pub offset: u64,
    /// Most records wanted; the server caps it at `max_consume_records`.
    pub max_records: usize,
    /// Most record bytes (keys, values, header names and values) wanted; the server caps it
    /// at `max_consume_bytes`. The first record is returned even when it alone is larger,
    /// so a reader always makes progress.
    pub max_bytes: usize,
    /// The reader's group, if it names one; counted under it only if the group exists.
    pub group: Option<&'a str>,
    /// The reader's member id in `group`: the read renews its session.
    pub member: Option<&'a str>,
}

impl<'a> ConsumeRequest<'a> {
    /// From `offset` of `topic`/`partition`, as much as the server allows, with no group.
    pub fn new(topic: &'a str, partition: u32, offset: u64) -> Self {
        ConsumeRequest {
            topic,
            partition,
            offset,
            max_records: usize::MAX,
            max_bytes: usize::MAX,
            group: None,
            member: None,
        }
    }
}

/// What one consume may still return.
#[derive(Debug)]
struct ReadLimit {
    records: usize,
    bytes: usize,
    taken: usize,
    full: bool,
}

impl ReadLimit {
    fn new(records: usize, bytes: usize) -> Self {
        ReadLimit {
            records,
            bytes,
            taken: 0,
            full: false,
        }
    }

    /// Whether `record` fits; the first always does. Spends what it takes.
    fn admit(&mut self, record: &Record) -> bool {
        if self.exhausted() {
            return false;
        }
        let bytes = record.payload_bytes();
        if self.taken > 0 && bytes > self.bytes {
            self.full = true;
            return false;
        }
        self.bytes = self.bytes.saturating_sub(bytes);
        self.records -= 1;
        self.taken += 1;
        true
    }

    fn exhausted(&self) -> bool {
        self.records == 0 || self.full
    }
}

impl Broker {
    /// Reads records of a partition from `request.offset`, across segments, until
    /// `max_records` or `max_bytes` (each capped by the server) or the high watermark;
    /// counts them under the group if it exists (see [`Broker::consumer_labels`]).
    ///
    /// # Errors
    /// 400 `invalid_topic_name` / `invalid_group_id` / `offset_out_of_range` /
    /// `invalid_request`, 404 `topic_not_found` / `partition_not_found` / `group_not_found`
    /// / `member_not_found`, 503 `storage_failure`; each counted in
    /// `streamhouse_consumer_errors_total`.
    pub async fn consume(&self, request: &ConsumeRequest<'_>) -> Result<ConsumeResult, ApiError> {
        self.check_consumer_names(request.topic, request.group)?;
        let group = request.group.unwrap_or_default();
        if let Some(member) = request.member {
            self.touch_member(group, member, request.topic)?;
        }
        let (topic, group) = self.consumer_labels(request.topic, group);
        let span = tracing::info_span!(
            "consume",
            topic = %topic,
            partition = request.partition,
            offset = request.offset,
            consumer_group = %group,
            records = tracing::field::Empty,
        );
        let result = self.read(request).instrument(span.clone()).await;
        match result {
            Ok(records) => {
                span.record("records", records.len());
                // A receive span linked to each record's producer span, under this one.
                span.in_scope(|| {
                    let headers = records
                        .iter()
                        .map(|r| trace_context::RecordHeaders(&r.headers));
                    propagation::receive_span_with(topic, group, headers)
                });
                let next_offset = records.last().map_or(request.offset, |r| r.offset + 1);
                self.inner
                    .telemetry
                    .consumer()
                    .record_records(topic, group, records.len() as u64);
                Ok(ConsumeResult {
                    records,
                    next_offset,
                })
            }
            Err((error, kind)) => {
                self.record_consume_error(topic, group, kind);
                Err(error)
            }
        }
    }

    async fn read(
        &self,
        request: &ConsumeRequest<'_>,
    ) -> Result<Vec<Record>, (ApiError, ConsumerError)> {
        let log = self.partition_log(request.topic, request.partition)?;
        let config = &self.inner.config;
        let max_records = request.max_records.min(config.max_consume_records);
        let max_bytes = request.max_bytes.min(config.max_consume_bytes);
        if max_records == 0 || max_bytes == 0 {
            let error = ApiError::bad_request(
                "invalid_request",
                "maxRecords and maxBytes must be at least 1",
            );
            return Err((error, ConsumerError::InvalidRequest));
        }
        let high_watermark = log.high_watermark();
        let offset = request.offset;
        if offset > high_watermark {
            let error = ApiError::bad_request(
                "offset_out_of_range",
                format!("offset {offset} is past the high watermark {high_watermark}"),
            );
            return Err((error, ConsumerError::OffsetOutOfRange));
        }
        let mut limit = ReadLimit::new(max_records, max_bytes);
        let mut records = Vec::new();
        let mut next = offset;
        // One place (active buffer, an unflushed or a flushed segment) per turn.
        while next < high_watermark && !limit.exhausted() {
            let taken = match log.plan_read_while(next, limit.records, |r| limit.admit(r)) {
                ReadPlan::Memory(taken) => taken,
                ReadPlan::Flushed { path, offset, .. } => {
                    self.read_flushed(&path, offset, &mut limit).await?
                }
            };
            let Some(last) = taken.last() else {
                break;
            };
            next = last.offset + 1;
            records.extend(taken);
        }
        Ok(records)
    }

    /// Records of the flushed segment at `path` from `offset` that `limit` admits, decoded
    /// one at a time so no more than one past the limit is ever decoded.
    async fn read_flushed(
        &self,
        path: &Path,
        offset: u64,
        limit: &mut ReadLimit,
    ) -> Result<Vec<Record>, (ApiError, ConsumerError)> {
        let storage_failure = |e: &dyn std::fmt::Display| {
            let error = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage_failure",
                format!("reading segment {path}: {e}"),
            );
            (error, ConsumerError::StorageFailure)
        };
        let segment = self
            .fetch_segment(path)
            .await
            .map_err(|e| storage_failure(&e))?;
        let mut records = Vec::new();
        for record in segment.records_from(offset) {
            if limit.exhausted() {
                break;
            }
            let record = record.map_err(|e| storage_failure(&e))?;
            if !limit.admit(&record) {
                break;
            }
            records.push(record);
        }
        Ok(records)
    }

    /// A flushed segment, from the cache or else the store (then cached). Readers missing
    /// the same segment at once wait for one `get` instead of each making their own.
    pub(super) async fn fetch_segment(
        &self,
        path: &Path,
    ) -> Result<Arc<EncodedSegment>, object_store::Error> {
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

    async fn load_segment(&self, path: &Path) -> Result<Arc<EncodedSegment>, object_store::Error> {
        let bytes = self.inner.store.get(path).await?.bytes().await?;
        let segment = EncodedSegment::parse(&bytes).map_err(|e| object_store::Error::Generic {
            store: "segment",
            source: Box::new(e),
        })?;
        let segment = Arc::new(segment);
        self.inner.cache.insert(path.clone(), Arc::clone(&segment));
        Ok(segment)
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
