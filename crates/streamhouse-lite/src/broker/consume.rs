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
use crate::partition_log::{FindPlan, PartitionLog, ReadPlan};
use crate::record::Record;
use crate::segment::{self, EncodedSegment};
use crate::topics::{Topic, UNKNOWN_TOPIC};
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
    /// `streamhouse_consumer_errors_total`. A topic deleted while it is read answers 404
    /// `topic_not_found`, counted under [`UNKNOWN_TOPIC`], whatever the read met (its
    /// segments may be gone from the store); no series of it is recorded after the delete.
    pub async fn consume(&self, request: &ConsumeRequest<'_>) -> Result<ConsumeResult, ApiError> {
        self.check_consumer_names(request.topic, request.group)?;
        let group = request.group.unwrap_or_default();
        if let Some(member) = request.member {
            self.touch_member(group, member, request.topic)?;
        }
        let found = self.inner.topics.get(request.topic);
        let (_, group) = self.consumer_labels(request.topic, group);
        let topic = found.as_ref().map_or(UNKNOWN_TOPIC, |t| t.name.as_str());
        let span = tracing::info_span!(
            "consume",
            topic = %topic,
            partition = request.partition,
            offset = request.offset,
            consumer_group = %group,
            records = tracing::field::Empty,
        );
        let result = match &found {
            Some(found) => self.read(found, request).instrument(span.clone()).await,
            None => Err(topic_not_found(request.topic)),
        };
        // Held while recording: a delete marks the topic deleted under the write side before
        // it removes the topic's series, so none is recorded again after that.
        let alive = found.as_ref().map(|t| t.incarnation().appending());
        if let Some(None) = alive {
            // Deleted while it was read (its segments may be gone from the store): as if it
            // never existed, whatever the read answered.
            let (error, kind) = topic_not_found(request.topic);
            self.record_consume_error(UNKNOWN_TOPIC, group, kind);
            return Err(error);
        }
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
        topic: &Topic,
        request: &ConsumeRequest<'_>,
    ) -> Result<Vec<Record>, (ApiError, ConsumerError)> {
        let log = partition_of(topic, request.partition)?;
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
        let segment = self
            .fetch_segment(path)
            .await
            .map_err(|e| storage_failure(path, &e))?;
        let mut records = Vec::new();
        for record in segment.records_from(offset) {
            if limit.exhausted() {
                break;
            }
            let record = record.map_err(|e| storage_failure(path, &e))?;
            if !limit.admit(&record) {
                break;
            }
            records.push(record);
        }
        Ok(records)
    }

    /// The first record of `log` whose timestamp is at least `timestamp` (milliseconds since
    /// the epoch), searched in offset order one place at a time (the memory buffers under
    /// the log's lock, flushed segments one by one through the cache, decoding a record at a
    /// time): so the search holds at most one segment, whatever the partition's size.
    /// Answers its offset and timestamp, `None` when no record below the high watermark read
    /// at the start is that late.
    ///
    /// # Errors
    /// 503 `storage_failure` when a segment cannot be read.
    pub(super) async fn find_by_timestamp(
        &self,
        log: &PartitionLog,
        timestamp: u64,
    ) -> Result<Option<(u64, u64)>, (ApiError, ConsumerError)> {
        let high_watermark = log.high_watermark();
        let mut next = 0;
        while next < high_watermark {
            match log.plan_find(next, |r| r.timestamp >= timestamp) {
                FindPlan::Found(record) => return Ok(Some((record.offset, record.timestamp))),
                FindPlan::Next { next: after } => next = after,
                FindPlan::End => break,
                FindPlan::Flushed {
                    path,
                    offset,
                    last_offset,
                } => {
                    let segment = self
                        .fetch_segment(&path)
                        .await
                        .map_err(|e| storage_failure(&path, &e))?;
                    for record in segment.records_from(offset) {
                        let record = record.map_err(|e| storage_failure(&path, &e))?;
                        if record.timestamp >= timestamp {
                            return Ok(Some((record.offset, record.timestamp)));
                        }
                    }
                    next = last_offset + 1;
                }
            }
        }
        Ok(None)
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
        // Checked after the insert: a delete marks the incarnation deleted before it empties
        // its part of the cache, so either that sweep or this check drops the entry.
        if !self.serves_segment(path) {
            self.inner.cache.remove_under(path);
        }
        Ok(segment)
    }

    /// Whether `path` is a segment of a registered, live topic incarnation (a path of
    /// another layout is given the benefit of the doubt).
    fn serves_segment(&self, path: &Path) -> bool {
        let Some(location) = segment::parse_path(path) else {
            return true;
        };
        self.inner.topics.get(&location.topic).is_some_and(|topic| {
            topic.incarnation().id() == location.incarnation && !topic.is_deleted()
        })
    }

    pub(super) fn partition_log(
        &self,
        topic_name: &str,
        partition: u32,
    ) -> Result<Arc<PartitionLog>, (ApiError, ConsumerError)> {
        match self.inner.topics.get(topic_name) {
            Some(topic) => partition_of(&topic, partition),
            None => Err(topic_not_found(topic_name)),
        }
    }
}

/// 404 `topic_not_found`.
fn topic_not_found(name: &str) -> (ApiError, ConsumerError) {
    let error = ApiError::not_found("topic_not_found", format!("topic {name:?} does not exist"));
    (error, ConsumerError::TopicNotFound)
}

/// The log of `partition` of `topic`, or 404 `partition_not_found`.
fn partition_of(
    topic: &Topic,
    partition: u32,
) -> Result<Arc<PartitionLog>, (ApiError, ConsumerError)> {
    match topic.partition(partition) {
        Some(log) => Ok(Arc::clone(log)),
        None => Err((
            ApiError::not_found(
                "partition_not_found",
                format!(
                    "topic {:?} has {} partitions, got partition {partition}",
                    topic.name,
                    topic.partitions.len()
                ),
            ),
            ConsumerError::PartitionNotFound,
        )),
    }
}

/// 503 `storage_failure` for a segment that could not be read.
fn storage_failure(path: &Path, e: &dyn std::fmt::Display) -> (ApiError, ConsumerError) {
    let error = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "storage_failure",
        format!("reading segment {path}: {e}"),
    );
    (error, ConsumerError::StorageFailure)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LiteConfig;
    use crate::segment_cache::SegmentCache;
    use object_store::memory::InMemory;
    use streamhouse_observability::health::HealthRegistry;
    use streamhouse_observability::{Telemetry, TelemetryConfig};

    /// A one-record segment put straight into the store at `path`.
    async fn put_segment(broker: &Broker, path: &Path) {
        let record = Record {
            partition: 0,
            offset: 0,
            key: None,
            value: "v".to_owned(),
            timestamp: 0,
            headers: Default::default(),
        };
        let bytes = segment::encode(&[record]);
        broker.store().put(path, bytes.into()).await.unwrap();
    }

    #[tokio::test]
    async fn a_segment_loaded_for_a_deleted_incarnation_is_not_left_cached() {
        let telemetry = Telemetry::new(TelemetryConfig::default()).unwrap();
        let health = HealthRegistry::new();
        let broker = Broker::start(
            LiteConfig::default(),
            &telemetry,
            Arc::new(InMemory::new()),
            &health,
        );
        let live = broker.create_topic("live", 1).unwrap();
        let live_path = segment::object_path("live", live.incarnation().id(), 0, 0);
        put_segment(&broker, &live_path).await;
        broker.fetch_segment(&live_path).await.unwrap();
        assert_eq!(broker.cache().len(), 1);

        // A read that found the segment before the delete and loads it after: served, but
        // not cached, since the delete's sweep of the cache may already have run.
        let doomed = broker.create_topic("doomed", 1).unwrap();
        let doomed_path = segment::object_path("doomed", doomed.incarnation().id(), 0, 0);
        broker.delete_topic("doomed").await.unwrap();
        put_segment(&broker, &doomed_path).await;
        let loaded = broker.fetch_segment(&doomed_path).await.unwrap();
        assert_eq!(loaded.last_offset(), Some(0));
        assert_eq!(broker.cache().len(), 1);
        assert!(broker.cache().peek(&live_path).is_some());
        let live_bytes =
            SegmentCache::cost(&live_path, &broker.fetch_segment(&live_path).await.unwrap());
        assert_eq!(broker.cache().size_bytes(), live_bytes);
    }
}
