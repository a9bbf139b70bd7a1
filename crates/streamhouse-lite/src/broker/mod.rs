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
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use object_store::ObjectStore;
use object_store::path::Path;
use serde::Serialize;
use streamhouse_observability::Telemetry;
use streamhouse_observability::health::{HealthRegistration, HealthRegistry};
use streamhouse_observability::metrics::{ConsumerError, ProducerError};
use streamhouse_observability::object_store::InstrumentedObjectStore;
use tokio::task::JoinHandle;

use crate::api::error::ApiError;
use crate::config::LiteConfig;
use crate::consumer_groups::ConsumerGroups;
use crate::record::Record;
use crate::segment_cache::SegmentCache;
use crate::topics::{CreateTopicError, Topic, TopicRegistry};
use crate::writer_pool::{RetryPolicy, WriterPool};

mod consume;
mod groups;
mod produce;
mod recovery;

pub use groups::MAX_GROUP_ID_LEN;

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
    /// Headers, stored as given; the broker adds `traceparent` when the record has none.
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
