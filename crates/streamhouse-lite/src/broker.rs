//! The broker: the operations the HTTP API (and the benchmark) call, and where every
//! metric of the catalog is recorded.
//!
//! | metric | recorded by |
//! |---|---|
//! | `producer_records/bytes/latency/batch_size` | [`Broker::produce`], once per request |
//! | `producer_errors{error_type}` | [`Broker::produce`] and the produce handlers (malformed bodies) |
//! | `consumer_records{topic,consumer_group}` | [`Broker::consume`] |
//! | `consumer_errors{error_type}` | consume and group operations that fail |
//! | `consumer_lag` | a source per consumer group ([`crate::consumer_groups`]) |
//! | `consumer_rebalances` | every join and leave ([`crate::consumer_groups`]) |
//! | `segment_writes` | a segment sealed ([`crate::partition_log`]) |
//! | `segment_flushes` | a segment stored ([`crate::writer_pool`]) |
//! | `s3_requests/errors/latency` | every object store call (`InstrumentedObjectStore`) |
//! | `cache_hits/misses/size` | [`crate::segment_cache`] |
//! | `topics_total`, `partitions_total` | [`crate::topics`] |
//! | `agents_active` | [`crate::writer_pool`] |
//! | `connections_active` | [`crate::connections`] |

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::http::StatusCode;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use serde::Serialize;
use streamhouse_observability::Telemetry;
use streamhouse_observability::health::{HealthRegistration, HealthRegistry};
use streamhouse_observability::metrics::{ConsumerError, ProducerError};
use streamhouse_observability::object_store::InstrumentedObjectStore;
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::api::error::ApiError;
use crate::config::LiteConfig;
use crate::consumer_groups::{ConsumerGroups, GroupError, Membership, PartitionLag};
use crate::partition_log::ReadPlan;
use crate::record::{NewRecord, Record, payload_bytes};
use crate::segment;
use crate::segment_cache::SegmentCache;
use crate::topics::{CreateTopicError, Topic, TopicRegistry};
use crate::writer_pool::{RetryPolicy, WriterPool};

/// The record header carrying W3C trace context from producer to consumer.
pub const TRACEPARENT_HEADER: &str = "traceparent";

/// Longest consumer group id, in bytes.
pub const MAX_GROUP_ID_LEN: usize = 255;

/// A record as a producer sends it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProduceRecord {
    /// Key; also picks the partition when none is given.
    pub key: Option<String>,
    /// Value.
    pub value: String,
    /// Partition; `None` lets the broker choose.
    pub partition: Option<i64>,
    /// Headers, stored as given.
    pub headers: BTreeMap<String, String>,
}

/// Where a produced record landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RecordPosition {
    /// Partition.
    pub partition: u32,
    /// Offset.
    pub offset: u64,
}

/// What a consume returns.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsumeResult {
    /// Records from the requested offset, in order.
    pub records: Vec<Record>,
    /// The offset to ask for next.
    pub next_offset: u64,
}

struct Inner {
    config: LiteConfig,
    telemetry: Telemetry,
    topics: Arc<TopicRegistry>,
    groups: ConsumerGroups,
    cache: SegmentCache,
    /// One gate per segment being loaded from the store.
    loading: Mutex<HashMap<Path, Arc<tokio::sync::Mutex<()>>>>,
    store: Arc<dyn ObjectStore>,
    pool: Arc<WriterPool>,
    sealer: JoinHandle<()>,
    _health: Vec<HealthRegistration>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.sealer.abort();
    }
}

/// The broker. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct Broker {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("topics", &self.inner.topics)
            .field("pool", &self.inner.pool)
            .finish_non_exhaustive()
    }
}

impl Broker {
    /// Starts a broker over `store` (wrapped here in an `InstrumentedObjectStore`), with its
    /// writer pool and segment sealer on the current Tokio runtime, and registers the
    /// `object_store` and `writer_pool` readiness checks in `health`.
    pub fn start(
        config: LiteConfig,
        telemetry: &Telemetry,
        store: Arc<dyn ObjectStore>,
        health: &HealthRegistry,
    ) -> Self {
        let store: Arc<dyn ObjectStore> = Arc::new(InstrumentedObjectStore::new(store, telemetry));
        let topics = Arc::new(TopicRegistry::new(
            telemetry,
            config.segment_max_bytes,
            config.max_partitions,
        ));
        let retry = RetryPolicy {
            initial: config.flush_retry_initial,
            max: config.flush_retry_max,
        };
        let pool = Arc::new(WriterPool::start(
            config.writer_agents,
            Arc::clone(&store),
            retry,
            telemetry,
        ));
        let sealer = tokio::spawn(seal_aged_segments(
            Arc::downgrade(&topics),
            Arc::downgrade(&pool),
            config.segment_max_age,
        ));
        let probe = Arc::clone(&store);
        let pool_probe = Arc::downgrade(&pool);
        let checks = vec![
            health.register("object_store", move || {
                let store = Arc::clone(&probe);
                async move {
                    store
                        .list_with_delimiter(Some(&Path::from("topics")))
                        .await
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                }
            }),
            health.register("writer_pool", move || {
                let pool = pool_probe.upgrade();
                async move {
                    match pool {
                        Some(pool) => pool.health(),
                        None => Err("stopped".to_owned()),
                    }
                }
            }),
        ];
        Broker {
            inner: Arc::new(Inner {
                groups: ConsumerGroups::new(Arc::clone(&topics), telemetry),
                cache: SegmentCache::new(config.cache_max_bytes, telemetry),
                loading: Mutex::default(),
                config,
                telemetry: telemetry.clone(),
                topics,
                store,
                pool,
                sealer,
                _health: checks,
            }),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &LiteConfig {
        &self.inner.config
    }

    /// The telemetry handle.
    pub fn telemetry(&self) -> &Telemetry {
        &self.inner.telemetry
    }

    /// The topic registry.
    pub fn topics(&self) -> &TopicRegistry {
        &self.inner.topics
    }

    /// The consumer groups.
    pub fn groups(&self) -> &ConsumerGroups {
        &self.inner.groups
    }

    /// The segment cache.
    pub fn cache(&self) -> &SegmentCache {
        &self.inner.cache
    }

    /// The writer pool.
    pub fn writer_pool(&self) -> &WriterPool {
        &self.inner.pool
    }

    /// The instrumented object store segments go to.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.inner.store
    }

    /// Creates a topic.
    ///
    /// # Errors
    /// 409 when it exists, 400 for a bad name or partition count.
    pub fn create_topic(&self, name: &str, partitions: u32) -> Result<Arc<Topic>, ApiError> {
        self.inner
            .topics
            .create(name, partitions)
            .map_err(|e| match e {
                CreateTopicError::Exists => ApiError::new(
                    StatusCode::CONFLICT,
                    "topic_exists",
                    format!("topic {name:?} already exists"),
                ),
                CreateTopicError::InvalidName => ApiError::bad_request(
                    "invalid_topic_name",
                    format!(
                        "topic name {name:?} must be 1 to {} characters of [A-Za-z0-9._-]",
                        crate::topics::MAX_TOPIC_NAME_LEN
                    ),
                ),
                CreateTopicError::InvalidPartitions(n) => ApiError::bad_request(
                    "invalid_partitions",
                    format!(
                        "partitions must be between 1 and {}, got {n}",
                        self.inner.config.max_partitions
                    ),
                ),
            })
    }

    /// Counts a produce request that failed before it reached the broker (a malformed or
    /// oversize body). `topic` is the one the body named, or `""` when it named none.
    pub fn record_produce_error(&self, topic: &str, error: ProducerError) {
        self.inner.telemetry.producer().record_error(topic, error);
    }

    /// Counts a consumer request that failed before it reached the broker.
    pub fn record_consume_error(&self, topic: &str, group: &str, error: ConsumerError) {
        self.inner
            .telemetry
            .consumer()
            .record_error(topic, group, error);
    }

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
        let span = tracing::info_span!("produce", topic = %topic_name, records = records.len());
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
            // INTEGRATION POINT (issue 3, propagation): when the record carries no
            // `traceparent`, inject the current span's context here with the SDK's
            // record-header propagator, so consumers can link to this produce span.
            by_partition.entry(partition).or_default().push((
                index,
                NewRecord {
                    key: record.key,
                    value: record.value,
                    headers: record.headers,
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
                // INTEGRATION POINT (issue 3, propagation): extract each record's
                // `traceparent` header and link this consume span to the producer's span.
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
    async fn fetch_segment(&self, path: &Path) -> Result<Arc<Vec<Record>>, object_store::Error> {
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

    fn partition_log(
        &self,
        topic_name: &str,
        partition: u32,
    ) -> Result<Arc<crate::partition_log::PartitionLog>, (ApiError, ConsumerError)> {
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

    /// Adds a member to `group` subscribed to `topic`; the group rebalances.
    ///
    /// # Errors
    /// 400 for a bad group id, 404 `topic_not_found`.
    pub fn join_group(&self, group: &str, topic: &str) -> Result<Membership, ApiError> {
        check_group_id(group).inspect_err(|_| {
            self.record_consume_error(topic, group, ConsumerError::InvalidRequest)
        })?;
        if self.inner.topics.get(topic).is_none() {
            self.record_consume_error(topic, group, ConsumerError::TopicNotFound);
            return Err(ApiError::not_found(
                "topic_not_found",
                format!("topic {topic:?} does not exist"),
            ));
        }
        Ok(self.inner.groups.join(group, topic))
    }

    /// Removes a member from `group`; the group rebalances, and goes away if it has no
    /// members and no commits left.
    ///
    /// # Errors
    /// 404 `group_not_found` for an unknown group or member.
    pub fn leave_group(&self, group: &str, member: &str) -> Result<(), ApiError> {
        self.inner.groups.leave(group, member).map_err(|e| {
            self.record_consume_error("", group, ConsumerError::GroupNotFound);
            let what = match e {
                GroupError::GroupNotFound => format!("group {group:?} does not exist"),
                GroupError::MemberNotFound => {
                    format!("group {group:?} has no member {member:?}")
                }
            };
            ApiError::not_found("group_not_found", what)
        })
    }

    /// Commits `offset` (the next offset to read) for a partition.
    ///
    /// # Errors
    /// 400 for a bad group id or an offset past the high watermark, 404 for an unknown
    /// topic or partition.
    pub fn commit(
        &self,
        group: &str,
        topic: &str,
        partition: u32,
        offset: u64,
    ) -> Result<(), ApiError> {
        let fail = |(error, kind): (ApiError, ConsumerError)| {
            self.record_consume_error(topic, group, kind);
            error
        };
        check_group_id(group)
            .map_err(|e| (e, ConsumerError::InvalidRequest))
            .map_err(fail)?;
        let log = self.partition_log(topic, partition).map_err(fail)?;
        let high_watermark = log.high_watermark();
        if offset > high_watermark {
            return Err(fail((
                ApiError::bad_request(
                    "offset_out_of_range",
                    format!("offset {offset} is past the high watermark {high_watermark}"),
                ),
                ConsumerError::OffsetOutOfRange,
            )));
        }
        self.inner.groups.commit(group, topic, partition, offset);
        Ok(())
    }

    /// Per-partition lag of `group`.
    ///
    /// # Errors
    /// 404 `group_not_found`.
    pub fn lag(&self, group: &str) -> Result<Vec<PartitionLag>, ApiError> {
        self.inner.groups.lag(group).map_err(|_| {
            self.record_consume_error("", group, ConsumerError::GroupNotFound);
            ApiError::not_found("group_not_found", format!("group {group:?} does not exist"))
        })
    }

    /// Rebuilds topics and segment indexes from the segments already in the store, so a
    /// restart over the same directory or bucket serves the old records and appends after
    /// them. A topic comes back with as many partitions as it has flushed ones (the highest
    /// partition number seen, plus one); records that were never flushed are gone (there is
    /// no write-ahead log). Reads the last segment of each partition to learn its end.
    ///
    /// # Errors
    /// Listing the store or reading a last segment failed.
    pub async fn recover(&self) -> Result<Vec<String>, object_store::Error> {
        use futures::TryStreamExt;
        let metas: Vec<_> = self
            .inner
            .store
            .list(Some(&Path::from("topics")))
            .try_collect()
            .await?;
        // topic -> partition -> base offsets
        let mut found: BTreeMap<String, BTreeMap<u32, Vec<u64>>> = BTreeMap::new();
        for meta in metas {
            if let Some((topic, partition, base)) = segment::parse_path(&meta.location) {
                found
                    .entry(topic)
                    .or_default()
                    .entry(partition)
                    .or_default()
                    .push(base);
            }
        }
        let mut recovered = Vec::new();
        for (name, partitions) in found {
            let count = partitions.keys().max().map_or(1, |p| p + 1);
            let Ok(topic) = self.inner.topics.create(&name, count) else {
                continue;
            };
            for (partition, mut bases) in partitions {
                bases.sort_unstable();
                let last_base = *bases.last().expect("at least one segment");
                let last_path = segment::object_path(&name, partition, last_base);
                let last_records = self.fetch_segment(&last_path).await?;
                let last_offset = last_records.last().map_or(last_base, |r| r.offset);
                let segments: Vec<(u64, u64)> = bases
                    .windows(2)
                    .map(|w| (w[0], w[1] - 1))
                    .chain(std::iter::once((last_base, last_offset)))
                    .collect();
                topic.partitions[partition as usize].restore(&segments);
            }
            recovered.push(name);
        }
        Ok(recovered)
    }

    /// Seals every non-empty segment, flushes what the store takes within `timeout`, and
    /// stops the writer pool.
    pub async fn shutdown(&self, timeout: Duration) {
        self.inner.sealer.abort();
        for topic in self.inner.topics.all() {
            for log in &topic.partitions {
                if let Some(sealed) = log.seal_now() {
                    self.inner.pool.submit(Arc::clone(log), sealed);
                }
            }
        }
        self.inner.pool.shutdown(timeout).await;
    }
}

fn check_group_id(group: &str) -> Result<(), ApiError> {
    if group.is_empty() || group.len() > MAX_GROUP_ID_LEN {
        return Err(ApiError::bad_request(
            "invalid_request",
            format!("group id must be 1 to {MAX_GROUP_ID_LEN} bytes"),
        ));
    }
    Ok(())
}

/// Seals segments older than `max_age` and hands them to the pool, until either is gone.
async fn seal_aged_segments(
    topics: std::sync::Weak<TopicRegistry>,
    pool: std::sync::Weak<WriterPool>,
    max_age: Duration,
) {
    let tick = (max_age / 4).clamp(Duration::from_millis(5), Duration::from_millis(500));
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let (Some(topics), Some(pool)) = (topics.upgrade(), pool.upgrade()) else {
            return;
        };
        for topic in topics.all() {
            for log in &topic.partitions {
                if let Some(sealed) = log.seal_if_older(max_age) {
                    pool.submit(Arc::clone(log), sealed);
                }
            }
        }
    }
}
