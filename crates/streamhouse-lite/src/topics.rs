//! The topic registry: topics, their partitions, and the `topics`/`partitions` gauges; and
//! each topic's [`Incarnation`], which orders its deletion against appends and flushes.

mod incarnation;

pub use incarnation::{Appending, Incarnation};

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use streamhouse_observability::Telemetry;
use streamhouse_observability::metrics::{GaugeRegistration, TopicProducerMetrics};

use crate::config::LiteConfig;
use crate::manifest::TopicManifest;
use crate::partition_log::PartitionLog;
use incarnation::ManifestState;

/// Longest topic name (Kafka's limit).
pub const MAX_TOPIC_NAME_LEN: usize = 249;

/// A topic: its partitions and its bound producer metrics.
#[derive(Debug)]
pub struct Topic {
    /// Name.
    pub name: String,
    /// Partition logs, indexed by partition number.
    pub partitions: Vec<Arc<PartitionLog>>,
    /// Producer metrics bound to this topic.
    pub producer: TopicProducerMetrics,
    incarnation: Arc<Incarnation>,
    next_partition: AtomicU64,
}

impl Topic {
    /// This topic's incarnation.
    pub fn incarnation(&self) -> &Arc<Incarnation> {
        &self.incarnation
    }

    /// Whether this topic was deleted (a request holding it from before answers 404).
    pub fn is_deleted(&self) -> bool {
        self.incarnation.is_deleted()
    }

    /// The partition for a record: `requested` if given, else a stable hash of the key,
    /// else round robin.
    pub fn choose_partition(&self, requested: Option<u32>, key: Option<&str>) -> u32 {
        let count = self.partitions.len() as u64;
        if let Some(p) = requested {
            return p;
        }
        match key {
            Some(key) => (fnv1a(key.as_bytes()) % count) as u32,
            None => (self.next_partition.fetch_add(1, Ordering::Relaxed) % count) as u32,
        }
    }

    /// The partitions fenced after a permanent store error, with the reason.
    pub fn failed_partitions(&self) -> impl Iterator<Item = (u32, Arc<str>)> + '_ {
        self.partitions
            .iter()
            .filter_map(|log| log.failure().map(|reason| (log.partition(), reason)))
    }

    /// The log of `partition`, if it exists.
    pub fn partition(&self, partition: u32) -> Option<&Arc<PartitionLog>> {
        self.partitions.get(partition as usize)
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Why a topic could not be created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateTopicError {
    /// A topic of that name exists.
    Exists,
    /// The name is empty, too long, `.`/`..`, or has characters outside `[A-Za-z0-9._-]`.
    InvalidName,
    /// Zero partitions, or more than the limit.
    InvalidPartitions(u32),
    /// As many topics as [`TopicLimits::max_topics`] exist.
    TooManyTopics,
    /// The new partitions would take the total past [`TopicLimits::max_total_partitions`].
    TooManyPartitions {
        /// Partitions of every topic now.
        total: u64,
    },
}

/// How many topics and partitions a registry takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicLimits {
    /// Most topics.
    pub max_topics: usize,
    /// Most partitions in one topic.
    pub max_partitions: u32,
    /// Most partitions over all topics.
    pub max_total_partitions: u64,
}

impl TopicLimits {
    /// The limits `config` sets.
    pub fn from_config(config: &LiteConfig) -> Self {
        TopicLimits {
            max_topics: config.max_topics,
            max_partitions: config.max_partitions,
            max_total_partitions: config.max_total_partitions,
        }
    }
}

/// The label value every request naming a topic that does not exist is counted under. It lies
/// outside the topic-name alphabet, so no real topic can share its series.
pub const UNKNOWN_TOPIC: &str = "(unknown)";

/// Checks a topic name: 1 to 249 characters of `[A-Za-z0-9._-]`, not `.` or `..` (the names
/// are object-store path segments).
///
/// ```
/// use streamhouse_lite::topics::is_valid_topic_name;
/// assert!(is_valid_topic_name("orders.v2_eu-west"));
/// assert!(!is_valid_topic_name("quote\"d"));
/// assert!(!is_valid_topic_name(".."));
/// ```
pub fn is_valid_topic_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_TOPIC_NAME_LEN
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

type TopicMap = Arc<RwLock<BTreeMap<String, Arc<Topic>>>>;

/// Every topic. Owns the `streamhouse_topics_total` and `streamhouse_partitions_total`
/// sources, read from the map at each scrape.
pub struct TopicRegistry {
    topics: TopicMap,
    telemetry: Telemetry,
    segment_max_bytes: usize,
    reservation: u64,
    limits: TopicLimits,
    _gauges: [GaugeRegistration; 3],
}

impl std::fmt::Debug for TopicRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TopicRegistry")
            .field("topics", &self.names())
            .finish_non_exhaustive()
    }
}

impl TopicRegistry {
    /// An empty registry, its segments sealing at `segment_max_bytes` and offsets reserved
    /// `reservation` at a time.
    pub fn new(
        telemetry: &Telemetry,
        segment_max_bytes: usize,
        reservation: u64,
        limits: TopicLimits,
    ) -> Self {
        let topics = TopicMap::default();
        let count = Arc::clone(&topics);
        let partitions = Arc::clone(&topics);
        let failed = Arc::clone(&topics);
        let system = telemetry.system();
        TopicRegistry {
            _gauges: [
                system.observe_topics(move || read(&count).len() as u64),
                system.observe_partitions(move |report| {
                    for topic in read(&partitions).values() {
                        report.partitions(&topic.name, topic.partitions.len() as u64);
                    }
                }),
                // Zero for a healthy topic, so an alert compares rather than tests absence.
                telemetry
                    .storage()
                    .observe_failed_partitions(move |report| {
                        for topic in read(&failed).values() {
                            report
                                .partitions(&topic.name, topic.failed_partitions().count() as u64);
                        }
                    }),
            ],
            topics,
            telemetry: telemetry.clone(),
            segment_max_bytes,
            reservation,
            limits,
        }
    }

    /// Creates a topic with `partitions` empty partitions, within the [`TopicLimits`].
    ///
    /// # Errors
    /// See [`CreateTopicError`]; the checks run in its order, so an existing name is
    /// [`CreateTopicError::Exists`] even when the registry is full.
    pub fn create(&self, name: &str, partitions: u32) -> Result<Arc<Topic>, CreateTopicError> {
        let manifest = TopicManifest::new(name, partitions);
        self.insert(manifest, ManifestState::Pending, 0)
    }

    /// Serves a topic recovered from its live `manifest`, whose segments already in the
    /// store take `stored_bytes`; within the [`TopicLimits`].
    ///
    /// # Errors
    /// As [`Self::create`].
    pub fn restore(
        &self,
        manifest: TopicManifest,
        stored_bytes: u64,
    ) -> Result<Arc<Topic>, CreateTopicError> {
        self.insert(manifest, ManifestState::Stored, stored_bytes)
    }

    /// Removes `topic` if it is the one registered under its name; returns whether it was.
    pub fn remove(&self, topic: &Arc<Topic>) -> bool {
        let mut topics = self.topics.write().unwrap_or_else(|e| e.into_inner());
        match topics.get(&topic.name) {
            Some(registered) if Arc::ptr_eq(registered, topic) => {
                topics.remove(&topic.name);
                true
            }
            _ => false,
        }
    }

    fn insert(
        &self,
        manifest: TopicManifest,
        state: ManifestState,
        stored_bytes: u64,
    ) -> Result<Arc<Topic>, CreateTopicError> {
        let (name, partitions) = (manifest.name.as_str(), manifest.partitions);
        if !is_valid_topic_name(name) {
            return Err(CreateTopicError::InvalidName);
        }
        if partitions == 0 || partitions > self.limits.max_partitions {
            return Err(CreateTopicError::InvalidPartitions(partitions));
        }
        let mut topics = self.topics.write().unwrap_or_else(|e| e.into_inner());
        if topics.contains_key(name) {
            return Err(CreateTopicError::Exists);
        }
        if topics.len() >= self.limits.max_topics {
            return Err(CreateTopicError::TooManyTopics);
        }
        // At most `max_topics` topics to add up, only when creating one.
        let total: u64 = topics.values().map(|t| t.partitions.len() as u64).sum();
        if total + u64::from(partitions) > self.limits.max_total_partitions {
            return Err(CreateTopicError::TooManyPartitions { total });
        }
        let storage = self.telemetry.storage();
        let incarnation = manifest.incarnation;
        let topic = Arc::new(Topic {
            name: name.to_owned(),
            partitions: (0..partitions)
                .map(|p| {
                    Arc::new(
                        PartitionLog::new(
                            name,
                            p,
                            self.segment_max_bytes,
                            storage.partition(name, p),
                        )
                        .with_incarnation(incarnation),
                    )
                })
                .collect(),
            producer: self.telemetry.producer().topic(name),
            next_partition: AtomicU64::new(0),
            incarnation: Arc::new(Incarnation::new(
                manifest.clone(),
                state,
                stored_bytes,
                self.reservation,
            )),
        });
        topics.insert(name.to_owned(), Arc::clone(&topic));
        Ok(topic)
    }

    /// The topic named `name`.
    pub fn get(&self, name: &str) -> Option<Arc<Topic>> {
        read(&self.topics).get(name).cloned()
    }

    /// Every topic, by name.
    pub fn all(&self) -> Vec<Arc<Topic>> {
        read(&self.topics).values().cloned().collect()
    }

    /// Every topic name, sorted.
    pub fn names(&self) -> Vec<String> {
        read(&self.topics).keys().cloned().collect()
    }
}

fn read(topics: &TopicMap) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<Topic>>> {
    topics.read().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use streamhouse_observability::TelemetryConfig;

    fn registry(max_topics: usize, max_total_partitions: u64) -> TopicRegistry {
        let telemetry = Telemetry::new(TelemetryConfig::default()).unwrap();
        let limits = TopicLimits {
            max_topics,
            max_partitions: 4,
            max_total_partitions,
        };
        TopicRegistry::new(&telemetry, 1_000, 100, limits)
    }

    #[test]
    fn refuses_topics_and_partitions_past_the_limits() {
        let topics = registry(3, 5);
        topics.create("a", 2).unwrap();
        topics.create("b", 2).unwrap();
        assert_eq!(
            topics.create("c", 2).unwrap_err(),
            CreateTopicError::TooManyPartitions { total: 4 }
        );
        topics.create("c", 1).unwrap();
        assert_eq!(
            topics.create("d", 1).unwrap_err(),
            CreateTopicError::TooManyTopics
        );
        // An existing name is reported as such, full or not.
        assert_eq!(topics.create("a", 1).unwrap_err(), CreateTopicError::Exists);
        assert_eq!(
            topics.create("e", 5).unwrap_err(),
            CreateTopicError::InvalidPartitions(5)
        );
        assert_eq!(topics.names(), ["a", "b", "c"]);
    }

    #[test]
    fn names_follow_kafkas_rule() {
        let topics = registry(10, 100);
        for bad in ["", ".", "..", "a/b", "sp ace", "ü", &"x".repeat(250)] {
            assert_eq!(
                topics.create(bad, 1).unwrap_err(),
                CreateTopicError::InvalidName,
                "{bad:?}"
            );
        }
        topics.create(&"x".repeat(249), 1).unwrap();
        topics.create("a.b_c-D9", 1).unwrap();
    }
}
