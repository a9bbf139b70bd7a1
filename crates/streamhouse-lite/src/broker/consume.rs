//! Consume: reads from memory or from flushed segments through the cache.

use std::sync::{Arc, PoisonError};

use axum::http::StatusCode;
use object_store::ObjectStoreExt;
use object_store::path::Path;
use streamhouse_observability::metrics::{ConsumerError, StorageFault};
use streamhouse_observability::propagation;
use tracing::Instrument;

use super::{Broker, ConsumeResult};
use crate::api::error::ApiError;
use crate::partition_log::{FindPlan, PartitionLog, ReadPlan};
use crate::record::Record;
use crate::segment::{self, EncodedSegment, SegmentError};
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

/// Why a flushed segment could not be had.
#[derive(Debug)]
pub(super) enum LoadError {
    /// The store failed: the segment may be intact, try again later.
    Store(object_store::Error),
    /// The segment is gone from the store: its offsets are a hole.
    Missing(object_store::Error),
    /// The bytes are not an intact segment of the offsets its path names.
    Unreadable(SegmentError),
}

impl LoadError {
    fn from_store(error: object_store::Error) -> Self {
        match error {
            object_store::Error::NotFound { .. } => LoadError::Missing(error),
            error => LoadError::Store(error),
        }
    }
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadError::Store(error) | LoadError::Missing(error) => error.fmt(f),
            LoadError::Unreadable(error) => error.fmt(f),
        }
    }
}

impl Broker {
    /// Reads records of a partition from `request.offset`, across segments, until
    /// `max_records` or `max_bytes` (each capped by the server) or the high watermark;
    /// counts them under the group if it exists (see [`Broker::consumer_labels`]). Offsets
    /// no segment holds (holes: a segment lost, torn or corrupt, or offsets a crash left
    /// unused) are stepped over, so `next_offset` is past the request's offset whenever that
    /// is below the high watermark. A segment found torn or corrupt (or gone) when read is
    /// logged and counted in `streamhouse_storage_faults_total` once, then read as a hole.
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
            Ok((records, next_offset)) => {
                span.record("records", records.len());
                // A receive span linked to each record's producer span, under this one.
                span.in_scope(|| {
                    let headers = records
                        .iter()
                        .map(|r| trace_context::RecordHeaders(&r.headers));
                    propagation::receive_span_with(topic, group, headers)
                });
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

    /// The records read and the offset to read next.
    async fn read(
        &self,
        topic: &Topic,
        request: &ConsumeRequest<'_>,
    ) -> Result<(Vec<Record>, u64), (ApiError, ConsumerError)> {
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
                ReadPlan::Hole { next: after } => {
                    next = after;
                    continue;
                }
                ReadPlan::Flushed { path, offset, .. } => {
                    match self.read_flushed(&log, &path, offset, &mut limit).await? {
                        Some(taken) => taken,
                        // Now a hole: the next turn steps over it.
                        None => continue,
                    }
                }
            };
            let Some(last) = taken.last() else {
                break;
            };
            next = last.offset + 1;
            records.extend(taken);
        }
        Ok((records, next))
    }

    /// Records of the flushed segment at `path` from `offset` that `limit` admits, decoded
    /// one at a time so no more than one past the limit is ever decoded; `None` when the
    /// segment turned out unservable (reported, and a hole in `log` from now on).
    async fn read_flushed(
        &self,
        log: &PartitionLog,
        path: &Path,
        offset: u64,
        limit: &mut ReadLimit,
    ) -> Result<Option<Vec<Record>>, (ApiError, ConsumerError)> {
        let Some(segment) = self.segment_for_read(log, path).await? else {
            return Ok(None);
        };
        let mut records = Vec::new();
        for record in segment.records_from(offset) {
            if limit.exhausted() {
                break;
            }
            let record = match record {
                Ok(record) => record,
                Err(error) => {
                    self.segment_unservable(log, path, &LoadError::Unreadable(bad_record(&error)));
                    return Ok(None);
                }
            };
            if !limit.admit(&record) {
                break;
            }
            records.push(record);
        }
        Ok(Some(records))
    }

    /// The flushed segment at `path` of `log`; `None` when it is gone, torn or corrupt
    /// (then reported, and a hole in `log` from now on).
    ///
    /// # Errors
    /// 503 `storage_failure` when the store fails.
    async fn segment_for_read(
        &self,
        log: &PartitionLog,
        path: &Path,
    ) -> Result<Option<Arc<EncodedSegment>>, (ApiError, ConsumerError)> {
        match self.fetch_segment(path).await {
            Ok(segment) => Ok(Some(segment)),
            Err(LoadError::Store(error)) => Err(storage_failure(path, &error)),
            Err(error) => {
                self.segment_unservable(log, path, &error);
                Ok(None)
            }
        }
    }

    /// Makes the segment at `path` a hole in `log`; the first reader to do so logs and counts
    /// it, unless its topic incarnation is deleted meanwhile (no series of it is recorded
    /// after the delete; its segments are being removed anyway).
    fn segment_unservable(&self, log: &PartitionLog, path: &Path, error: &LoadError) {
        if !log.mark_unreadable(path) {
            return;
        }
        let Some(location) = segment::parse_path(path) else {
            return;
        };
        let Some(topic) = self.inner.topics.get(&location.topic) else {
            return;
        };
        if topic.incarnation().id() != location.incarnation {
            return;
        }
        // Held while recording: a delete removes the topic's series after taking it.
        let Some(_live) = topic.incarnation().appending() else {
            return;
        };
        let fault = match error {
            LoadError::Unreadable(error) => error.fault(),
            LoadError::Missing(_) | LoadError::Store(_) => StorageFault::Hole,
        };
        tracing::error!(
            topic = %location.topic,
            partition = location.partition,
            base_offset = location.base_offset,
            last_offset = location.last_offset,
            %path,
            %error,
            fault = fault.as_str(),
            "segment not served: its offsets are skipped as a hole from now on"
        );
        self.inner
            .telemetry
            .storage()
            .record_fault(&location.topic, fault);
    }

    /// The first record of `log` whose timestamp is at least `timestamp` (milliseconds since
    /// the epoch), searched in offset order one place at a time (the memory buffers under
    /// the log's lock, flushed segments one by one through the cache, decoding a record at a
    /// time): so the search holds at most one segment, whatever the partition's size.
    /// Answers its offset and timestamp, `None` when no record below the high watermark read
    /// at the start is that late. Steps over holes as [`Broker::consume`] does.
    ///
    /// # Errors
    /// 503 `storage_failure` when the store fails.
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
                    // Unservable: now a hole, which the next step goes past.
                    let Some(segment) = self.segment_for_read(log, &path).await? else {
                        continue;
                    };
                    let mut unservable = None;
                    for record in segment.records_from(offset) {
                        match record {
                            Ok(record) if record.timestamp >= timestamp => {
                                return Ok(Some((record.offset, record.timestamp)));
                            }
                            Ok(_) => {}
                            Err(error) => {
                                unservable = Some(bad_record(&error));
                                break;
                            }
                        }
                    }
                    match unservable {
                        Some(error) => {
                            self.segment_unservable(log, &path, &LoadError::Unreadable(error))
                        }
                        None => next = last_offset + 1,
                    }
                }
            }
        }
        Ok(None)
    }

    /// A flushed segment, from the cache or else the store (then cached). Readers missing
    /// the same segment at once wait for one `get` instead of each making their own.
    ///
    /// # Errors
    /// See [`LoadError`].
    pub(super) async fn fetch_segment(
        &self,
        path: &Path,
    ) -> Result<Arc<EncodedSegment>, LoadError> {
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

    /// Gets and checks the segment at `path` (trailer, checksum, and the offsets its path
    /// names), then caches it.
    async fn load_segment(&self, path: &Path) -> Result<Arc<EncodedSegment>, LoadError> {
        let read = async { self.inner.store.get(path).await?.bytes().await };
        let bytes = read.await.map_err(LoadError::from_store)?;
        let segment = EncodedSegment::parse(&bytes).map_err(LoadError::Unreadable)?;
        if let Some(location) = segment::parse_path(path) {
            super::recovery::check_offsets(&segment, &location).map_err(LoadError::Unreadable)?;
        }
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

/// A record line that does not decode, although its segment's checksum matched (only a bug
/// writes one).
fn bad_record(error: &serde_json::Error) -> SegmentError {
    SegmentError::Corrupt(format!("a record does not decode: {error}"))
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
        let live_path = segment::object_path("live", live.incarnation().id(), 0, 0, 0);
        put_segment(&broker, &live_path).await;
        broker.fetch_segment(&live_path).await.unwrap();
        assert_eq!(broker.cache().len(), 1);

        // A read that found the segment before the delete and loads it after: served, but
        // not cached, since the delete's sweep of the cache may already have run.
        let doomed = broker.create_topic("doomed", 1).unwrap();
        let doomed_path = segment::object_path("doomed", doomed.incarnation().id(), 0, 0, 0);
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
