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
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use serde::Serialize;
use streamhouse_observability::health::{HealthRegistration, HealthRegistry};
use streamhouse_observability::metrics::ConsumerError;
use streamhouse_observability::object_store::InstrumentedObjectStore;
use streamhouse_observability::{Telemetry, catalog};
use tokio::task::JoinHandle;

use crate::api::error::ApiError;
use crate::config::LiteConfig;
use crate::consumer_groups::{ConsumerGroups, GroupLimits};
use crate::partition_log::PartitionLog;
use crate::record::Record;
use crate::segment;
use crate::segment_cache::SegmentCache;
use crate::topics::{CreateTopicError, Topic, TopicLimits, TopicRegistry, is_valid_topic_name};
use crate::writer_pool::{Unflushed, WriterPool};
use fences::FenceChecks;

mod consume;
mod fences;
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
            config.offset_reservation,
            TopicLimits::from_config(&config),
        ));
        let pool = Arc::new(WriterPool::start(&config, Arc::clone(&store), telemetry));
        let sealer = tokio::spawn(seal_aged_segments(
            Arc::downgrade(&topics),
            Arc::downgrade(&pool),
            FenceChecks::new(health),
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
                CreateTopicError::InvalidName => ApiError::invalid_topic_name(),
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

    /// The topic named `name`, for the topic endpoints.
    ///
    /// # Errors
    /// 400 `invalid_topic_name`, 404 `topic_not_found`.
    pub fn topic(&self, name: &str) -> Result<Arc<Topic>, ApiError> {
        if !is_valid_topic_name(name) {
            return Err(ApiError::invalid_topic_name());
        }
        match self.inner.topics.get(name) {
            Some(topic) => Ok(topic),
            None => Err(ApiError::not_found(
                "topic_not_found",
                format!("topic {name:?} does not exist"),
            )),
        }
    }

    /// Deletes a topic, durably: its manifest is rewritten as a tombstone first (so a crash
    /// at any later point never brings it back, see [`crate::manifest`]), then appends stop
    /// and its unflushed records are dropped, it leaves the registry (and the `topics` /
    /// `partitions` gauges), consumer groups forget their offsets on it, its metric series
    /// and cached segments go, and its segments are deleted from the store. A request racing the delete either
    /// completes before it or answers 404.
    ///
    /// It waits for a segment put in flight (bounded by the store's own timeouts), and runs
    /// to the end even if the request is cut short. A segment that cannot be deleted now is
    /// logged and left for the next start-up's recovery, which deletes it (the tombstone says
    /// it is dead).
    ///
    /// # Errors
    /// 400 `invalid_topic_name`, 404 `topic_not_found` (also while another request deletes
    /// it), 503 `storage_failure` when the tombstone cannot be stored (nothing is deleted).
    pub async fn delete_topic(&self, name: &str) -> Result<(), ApiError> {
        let topic = self.topic(name)?;
        let incarnation = Arc::clone(topic.incarnation());
        if !incarnation.claim_delete() {
            return Err(ApiError::not_found(
                "topic_not_found",
                format!("topic {name:?} is being deleted"),
            ));
        }
        // Its own task: a request cut short (client gone, request timeout) must not stop a
        // delete halfway, with the tombstone stored and the topic still served.
        let broker = self.clone();
        tokio::spawn(async move { broker.finish_delete(topic).await })
            .await
            .unwrap_or_else(|e| {
                Err(ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    format!("deleting the topic failed: {e}"),
                ))
            })
    }

    /// [`Self::delete_topic`] once claimed: the tombstone, then everything else.
    async fn finish_delete(&self, topic: Arc<Topic>) -> Result<(), ApiError> {
        let name = topic.name.as_str();
        let incarnation = Arc::clone(topic.incarnation());
        if let Err(error) = incarnation.store_tombstone(self.inner.store.as_ref()).await {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage_failure",
                format!("storing the tombstone of topic {name:?}: {error}"),
            ));
        }
        incarnation.stop_appends();
        self.inner.topics.remove(&topic);
        let unflushed = incarnation.wait_for_flushes().await;
        self.inner.pool.budget().release(unflushed as usize);
        for group in self.inner.groups.forget_topic(name) {
            self.inner
                .telemetry
                .remove_series(catalog::label::CONSUMER_GROUP, &group);
        }
        self.inner
            .telemetry
            .remove_series(catalog::label::TOPIC, name);
        // A read loading a segment after this drops it itself (see `load_segment`).
        self.inner
            .cache
            .remove_under(&segment::incarnation_prefix(name, incarnation.id()));
        self.delete_segments(name, incarnation.id()).await;
        Ok(())
    }

    /// Deletes every segment of one incarnation of `topic`, logging what fails.
    pub(crate) async fn delete_segments(&self, topic: &str, incarnation: u64) {
        let prefix = segment::incarnation_prefix(topic, incarnation);
        let store = &self.inner.store;
        let listed: Result<Vec<_>, _> = store.list(Some(&prefix)).try_collect().await;
        let paths = match listed {
            Ok(metas) => metas.into_iter().map(|m| m.location),
            Err(error) => {
                tracing::warn!(%topic, incarnation, %error, "listing segments of a deleted topic failed; left for recovery");
                return;
            }
        };
        for path in paths {
            if let Err(error) = store.delete(&path).await {
                tracing::warn!(%path, %error, "deleting a segment of a deleted topic failed; left for recovery");
            }
        }
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
    /// stops the writer pool; returns what it could not flush, fenced partitions included.
    /// A topic left with nothing unflushed gets its offset reservations cut back to its
    /// high watermarks, so the next start hands out offsets without a gap.
    pub async fn shutdown(&self, timeout: Duration) -> Unflushed {
        self.inner.sealer.abort();
        self.inner.groups.stop_reaper();
        let deadline = tokio::time::Instant::now() + timeout;
        // Waits for queue room while the agents drain it, within the same deadline.
        let seal_all = async {
            for topic in self.inner.topics.all() {
                for log in &topic.partitions {
                    self.inner
                        .pool
                        .seal_waiting(topic.incarnation(), log, PartitionLog::seal_now)
                        .await;
                }
            }
        };
        let _ = tokio::time::timeout_at(deadline, seal_all).await;
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let mut unflushed = self.inner.pool.shutdown(left).await;
        let topics = self.inner.topics.all();
        for topic in &topics {
            for log in &topic.partitions {
                if log.failure().is_some() {
                    let held = log.held();
                    unflushed.bytes += held.bytes as u64;
                    unflushed.segments += held.segments as u64;
                }
            }
        }
        let settle = async {
            for topic in topics {
                if topic.partitions.iter().all(|log| log.held().bytes == 0) {
                    let store = self.inner.store.as_ref();
                    if let Err(error) = topic
                        .incarnation()
                        .settle_reservations(store, &topic.partitions)
                        .await
                    {
                        tracing::warn!(topic = %topic.name, %error, "cutting back the offset reservation failed; the next start skips the offsets reserved");
                    }
                }
            }
        };
        let _ = tokio::time::timeout_at(deadline, settle).await;
        unflushed
    }
}

/// Seals segments older than `max_age` (or waited for) and hands them to the pool, and
/// keeps the fenced partitions' readiness checks in step, until the topics or pool are gone.
async fn seal_aged_segments(
    topics: std::sync::Weak<TopicRegistry>,
    pool: std::sync::Weak<WriterPool>,
    fences: FenceChecks,
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
        fences.sync(&topics);
        for topic in topics.all() {
            // A topic deleted since the listing is skipped.
            let Some(alive) = topic.incarnation().appending() else {
                continue;
            };
            for log in &topic.partitions {
                pool.try_seal(&alive, log, |log| log.seal_if_due(max_age));
            }
        }
    }
}
