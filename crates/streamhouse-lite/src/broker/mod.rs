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
//! | `consumer_rebalances` | every join, leave and session expiry ([`crate::consumer_groups`]) |
//! | `segment_writes` | a segment sealed ([`crate::partition_log`]) |
//! | `segment_flushes` | a segment stored ([`crate::writer_pool`]) |
//! | `s3_requests/errors/latency` | every object store call (`InstrumentedObjectStore`) |
//! | `cache_hits/misses/size` | [`crate::segment_cache`] |
//! | `topics_total`, `partitions_total` | [`crate::topics`] |
//! | `agents_active`, `unflushed_bytes` | [`crate::writer_pool`] |
//! | `connections_active` | [`crate::connections`] |

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use object_store::ObjectStore;
use object_store::path::Path;
use serde::Serialize;
use streamhouse_observability::Telemetry;
use streamhouse_observability::health::{HealthRegistration, HealthRegistry};
use streamhouse_observability::metrics::ConsumerError;
use streamhouse_observability::object_store::InstrumentedObjectStore;
use tokio::task::JoinHandle;

use crate::api::error::ApiError;
use crate::config::LiteConfig;
use crate::consumer_groups::{ConsumerGroups, GroupLimits};
use crate::partition_log::PartitionLog;
use crate::record::Record;
use crate::segment_cache::SegmentCache;
use crate::topics::{CreateTopicError, Topic, TopicLimits, TopicRegistry};
use crate::writer_pool::WriterPool;

mod consume;
mod groups;
mod produce;
mod recovery;

pub use consume::ConsumeRequest;
pub use groups::{MAX_GROUP_ID_LEN, is_valid_group_id};

/// The record header carrying W3C trace context from producer to consumer.
pub const TRACEPARENT_HEADER: &str = "traceparent";

/// A record as a producer sends it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProduceRecord {
    /// Key; also picks the partition when none is given.
    pub key: Option<String>,
    /// Value.
    pub value: String,
    /// Partition; `None` lets the broker choose.
    pub partition: Option<i64>,
    /// Headers, stored as given, plus trace context (see `RecordContext::apply`).
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
            TopicLimits::from_config(&config),
        ));
        let pool = Arc::new(WriterPool::start(&config, Arc::clone(&store), telemetry));
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
                groups: ConsumerGroups::new(
                    Arc::clone(&topics),
                    telemetry,
                    GroupLimits::from_config(&config),
                ),
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
    /// 409 `topic_exists`, `too_many_topics` or `too_many_partitions`; 400 for a bad name or
    /// partition count.
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
                    // Not echoed: the name may be megabytes.
                    format!(
                        "a topic name must be 1 to {} characters of [A-Za-z0-9._-]",
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
                CreateTopicError::TooManyTopics => ApiError::new(
                    StatusCode::CONFLICT,
                    "too_many_topics",
                    format!(
                        "{} topics exist, the most allowed",
                        self.inner.config.max_topics
                    ),
                ),
                CreateTopicError::TooManyPartitions { total } => ApiError::new(
                    StatusCode::CONFLICT,
                    "too_many_partitions",
                    format!(
                        "{total} partitions exist; {partitions} more would pass the limit of {}",
                        self.inner.config.max_total_partitions
                    ),
                ),
            })
    }

    /// Counts a failed consumer request under [`Self::consumer_labels`]: never a topic or
    /// group that does not exist.
    pub fn record_consume_error(&self, topic: &str, group: &str, error: ConsumerError) {
        let (topic, group) = self.consumer_labels(topic, group);
        self.inner
            .telemetry
            .consumer()
            .record_error(topic, group, error);
    }

    /// Seals every non-empty segment, flushes what the store takes within `timeout`, and
    /// stops the writer pool.
    pub async fn shutdown(&self, timeout: Duration) {
        self.inner.sealer.abort();
        self.inner.groups.stop_reaper();
        let deadline = tokio::time::Instant::now() + timeout;
        // Waits for queue room while the agents drain it, within the same deadline.
        let seal_all = async {
            for topic in self.inner.topics.all() {
                for log in &topic.partitions {
                    self.inner
                        .pool
                        .seal_waiting(log, PartitionLog::seal_now)
                        .await;
                }
            }
        };
        let _ = tokio::time::timeout_at(deadline, seal_all).await;
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        self.inner.pool.shutdown(left).await;
    }
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
                pool.try_seal(log, |log| log.seal_if_due(max_age));
            }
        }
    }
}
