//! The topic registry: topics, their partitions, and the `topics`/`partitions` gauges; and
//! each topic's [`Incarnation`], which orders its deletion against appends and flushes.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard};

use object_store::ObjectStore;
use streamhouse_observability::Telemetry;
use streamhouse_observability::metrics::{GaugeRegistration, TopicProducerMetrics};

use crate::config::LiteConfig;
use crate::manifest::{MAX_SKIPPED_RANGES, SkippedOffsets, TopicManifest};
use crate::partition_log::PartitionLog;

/// Longest topic name (Kafka's limit).
pub const MAX_TOPIC_NAME_LEN: usize = 249;

/// Whether an incarnation's manifest is in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ManifestState {
    /// Not yet: stored before the first segment.
    Pending,
    /// Stored, live.
    Stored,
    /// Rewritten as a tombstone: nothing of this incarnation is stored any more.
    Tombstoned,
}

/// One incarnation of a topic: its manifest, and what orders its deletion against appends
/// and flushes.
///
/// - Appends (and seals) run under [`Incarnation::appending`]; [`Incarnation::stop_appends`]
///   waits for them, so no record is appended, and no byte reserved, once it returns.
/// - Each flush attempt runs under [`Incarnation::flushing`];
///   [`Incarnation::wait_for_flushes`] waits for the attempt in flight, after which no
///   segment of this incarnation is ever put again (queued ones are dropped).
/// - The manifest is stored before the first segment ([`Incarnation::ensure_stored`]) and
///   never again after the tombstone ([`Incarnation::store_tombstone`]).
/// - Offsets are handed out below [`Incarnation::reserved`] only, which the manifest holds
///   ([`Incarnation::extend_reservations`]).
#[derive(Debug)]
pub struct Incarnation {
    manifest: TopicManifest,
    deleting: AtomicBool,
    deleted: AtomicBool,
    appends: RwLock<()>,
    flushes: tokio::sync::RwLock<()>,
    stored: tokio::sync::Mutex<ManifestState>,
    /// Payload bytes appended and not yet in the store (reserved in the writer pool budget).
    memory_bytes: AtomicU64,
    /// Encoded bytes of the segments in the store.
    stored_bytes: AtomicU64,
    /// Per partition, the offset reservation of the manifest (stored, or stored with it
    /// before the first segment: offsets of a topic never stored do not outlive a restart).
    reserved: Vec<AtomicU64>,
    /// Offsets reserved ahead at a time.
    reservation: u64,
    /// A background extension of the reservations is under way.
    extending: AtomicBool,
    /// Offsets restarts skipped, kept in the manifest.
    skipped: std::sync::Mutex<Vec<SkippedOffsets>>,
}

/// Held while appending to or sealing an incarnation's partitions: it is not deleted
/// meanwhile.
#[derive(Debug)]
pub struct Appending<'a> {
    incarnation: &'a Arc<Incarnation>,
    _guard: RwLockReadGuard<'a, ()>,
}

impl Appending<'_> {
    /// The incarnation appended to.
    pub fn incarnation(&self) -> &Arc<Incarnation> {
        self.incarnation
    }
}

impl Incarnation {
    fn new(
        manifest: TopicManifest,
        state: ManifestState,
        stored_bytes: u64,
        reservation: u64,
    ) -> Self {
        // A new topic starts with one reservation; a recovered one with what its manifest
        // says, raised to each partition's next offset by recovery.
        let initial = if state == ManifestState::Pending {
            reservation
        } else {
            0
        };
        let reserved = (0..manifest.partitions as usize)
            .map(|p| {
                let stored = manifest.reserved_offsets.get(p).copied().unwrap_or(0);
                AtomicU64::new(stored.max(initial))
            })
            .collect();
        Incarnation {
            skipped: std::sync::Mutex::new(manifest.skipped_offsets.clone()),
            reserved,
            reservation,
            extending: AtomicBool::new(false),
            manifest,
            deleting: AtomicBool::new(false),
            deleted: AtomicBool::new(false),
            appends: RwLock::new(()),
            flushes: tokio::sync::RwLock::new(()),
            stored: tokio::sync::Mutex::new(state),
            memory_bytes: AtomicU64::new(0),
            stored_bytes: AtomicU64::new(stored_bytes),
        }
    }

    /// The incarnation id: part of every segment path.
    pub fn id(&self) -> u64 {
        self.manifest.incarnation
    }

    /// The manifest of this incarnation, as stored while it is live.
    pub fn manifest(&self) -> &TopicManifest {
        &self.manifest
    }

    /// Whether the incarnation is deleted: nothing more is appended or flushed.
    pub fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::Acquire)
    }

    /// A guard to append under; `None` once deleted.
    pub fn appending(self: &Arc<Self>) -> Option<Appending<'_>> {
        let guard = self.appends.read().unwrap_or_else(PoisonError::into_inner);
        (!self.is_deleted()).then_some(Appending {
            incarnation: self,
            _guard: guard,
        })
    }

    /// Counts `bytes` appended (payload, as reserved in the budget).
    pub fn appended(&self, bytes: usize) {
        self.memory_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// A guard to put a segment under; `None` once deleted (the segment is dropped).
    pub async fn flushing(&self) -> Option<tokio::sync::RwLockReadGuard<'_, ()>> {
        let guard = self.flushes.read().await;
        (!self.is_deleted()).then_some(guard)
    }

    /// Offsets of `partition` below this are reserved in the manifest: only they may be
    /// handed out.
    pub fn reserved(&self, partition: u32) -> u64 {
        self.reserved
            .get(partition as usize)
            .map_or(0, |r| r.load(Ordering::Acquire))
    }

    /// Raises `partition`'s reservation to at least `offset` (recovery: the partition's next
    /// offset, everything below is spent).
    pub fn reserve_through(&self, partition: u32, offset: u64) {
        if let Some(reserved) = self.reserved.get(partition as usize) {
            reserved.fetch_max(offset, Ordering::AcqRel);
        }
    }

    /// Whether `partition`, next handing out `next`, has less than half a reservation left:
    /// time to extend in the background, before a produce has to wait for it.
    pub fn reservation_low(&self, partition: u32, next: u64) -> bool {
        self.reserved(partition).saturating_sub(next) < self.reservation / 2
    }

    /// Claims the background extension; `false` if one is under way.
    pub fn claim_extension(&self) -> bool {
        !self.extending.swap(true, Ordering::AcqRel)
    }

    /// Gives back the claim of [`Self::claim_extension`].
    pub fn end_extension(&self) {
        self.extending.store(false, Ordering::Release);
    }

    /// Whether a restart already skipped `first..=last` of `partition`.
    pub fn was_skipped(&self, partition: u32, first: u64, last: u64) -> bool {
        self.skipped
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .any(|s| s.partition == partition && s.first <= first && last <= s.last)
    }

    /// Records that a restart skipped `first..=last` of `partition` (stored with the next
    /// manifest write).
    pub fn skipped(&self, partition: u32, first: u64, last: u64) {
        let mut skipped = self.skipped.lock().unwrap_or_else(PoisonError::into_inner);
        skipped.push(SkippedOffsets {
            partition,
            first,
            last,
        });
        let excess = skipped.len().saturating_sub(MAX_SKIPPED_RANGES);
        skipped.drain(..excess);
    }

    /// The manifest as stored now: with the reservations.
    fn current_manifest(&self) -> TopicManifest {
        self.manifest_reserving(
            self.reserved
                .iter()
                .map(|r| r.load(Ordering::Acquire))
                .collect(),
        )
    }

    /// The manifest with `reserved` offsets and the skipped ranges.
    fn manifest_reserving(&self, reserved: Vec<u64>) -> TopicManifest {
        TopicManifest {
            reserved_offsets: reserved,
            skipped_offsets: self
                .skipped
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
            ..self.manifest.clone()
        }
    }

    /// Rewrites the manifest with a reservation of [`LiteConfig::offset_reservation`] more
    /// offsets past the high watermark for every partition of `logs` short of half of one,
    /// and at least `needed` past it for `partition`; then hands them out. Concurrent calls
    /// share one put. `Ok(false)` once the topic is deleted.
    ///
    /// # Errors
    /// The store's: nothing more is handed out.
    pub async fn extend_reservations(
        &self,
        store: &dyn ObjectStore,
        logs: &[Arc<PartitionLog>],
        partition: u32,
        needed: u64,
    ) -> Result<bool, object_store::Error> {
        let mut state = self.stored.lock().await;
        if *state == ManifestState::Tombstoned {
            return Ok(false);
        }
        let targets: Vec<u64> = logs
            .iter()
            .zip(&self.reserved)
            .map(|(log, reserved)| {
                let next = log.high_watermark();
                let have = reserved.load(Ordering::Acquire);
                let want = if log.partition() == partition {
                    needed.max(self.reservation / 2)
                } else {
                    self.reservation / 2
                };
                if have.saturating_sub(next) >= want {
                    have
                } else {
                    have.max(next + want.max(self.reservation))
                }
            })
            .collect();
        let unchanged = targets
            .iter()
            .zip(&self.reserved)
            .all(|(t, r)| *t == r.load(Ordering::Acquire));
        if unchanged && *state == ManifestState::Stored {
            return Ok(true);
        }
        self.manifest_reserving(targets.clone())
            .store(store)
            .await?;
        *state = ManifestState::Stored;
        for (reserved, target) in self.reserved.iter().zip(targets) {
            reserved.fetch_max(target, Ordering::AcqRel);
        }
        Ok(true)
    }

    /// Rewrites a stored manifest with each partition's reservation cut back to its high
    /// watermark (at a clean stop, everything flushed and appends over), so the next start
    /// continues each partition without a gap.
    ///
    /// # Errors
    /// The store's: the next start skips what stays reserved.
    pub async fn settle_reservations(
        &self,
        store: &dyn ObjectStore,
        logs: &[Arc<PartitionLog>],
    ) -> Result<(), object_store::Error> {
        let state = self.stored.lock().await;
        if *state != ManifestState::Stored {
            return Ok(());
        }
        // Cut under the append lock: an append racing the stop either lands below the cut
        // or finds no offsets left and waits for an extension (behind this put).
        let settled: Vec<u64> = {
            let _appends = self.appends.write().unwrap_or_else(PoisonError::into_inner);
            logs.iter()
                .zip(&self.reserved)
                .map(|(log, reserved)| {
                    let next = log.high_watermark();
                    reserved.store(next, Ordering::Release);
                    next
                })
                .collect()
        };
        self.manifest_reserving(settled).store(store).await
    }

    /// Stores the manifest unless it is already stored; `Ok(false)` once the tombstone is
    /// (the segment must be dropped). Called under [`Self::flushing`] before each put.
    ///
    /// # Errors
    /// The store's.
    pub async fn ensure_stored(
        &self,
        store: &dyn ObjectStore,
    ) -> Result<bool, object_store::Error> {
        let mut state = self.stored.lock().await;
        match *state {
            ManifestState::Stored => Ok(true),
            ManifestState::Tombstoned => Ok(false),
            ManifestState::Pending => {
                self.current_manifest().store(store).await?;
                *state = ManifestState::Stored;
                Ok(true)
            }
        }
    }

    /// Stops counting `bytes` in memory: they belong to a fenced partition and left the
    /// unflushed budget ([`Self::unfenced`] counts them again).
    pub fn fenced(&self, bytes: usize) {
        self.memory_bytes.fetch_sub(bytes as u64, Ordering::Relaxed);
    }

    /// Counts a fenced partition's `bytes` in memory again.
    pub fn unfenced(&self, bytes: usize) {
        self.appended(bytes);
    }

    /// Counts a segment stored: `payload` bytes left memory, `encoded` bytes are stored.
    pub fn flushed(&self, payload: usize, encoded: usize) {
        self.memory_bytes
            .fetch_sub(payload as u64, Ordering::Relaxed);
        self.stored_bytes
            .fetch_add(encoded as u64, Ordering::Relaxed);
    }

    /// Payload bytes in memory plus encoded bytes in the store: what the topic holds.
    pub fn size_bytes(&self) -> u64 {
        self.memory_bytes.load(Ordering::Relaxed) + self.stored_bytes.load(Ordering::Relaxed)
    }

    /// Claims the deletion of this incarnation; `false` if another request has.
    pub fn claim_delete(&self) -> bool {
        !self.deleting.swap(true, Ordering::AcqRel)
    }

    /// Stores the tombstone (step one of a delete, after [`Self::claim_delete`]). On error
    /// the claim is given back and the live manifest is stored again before the next
    /// segment, in case the failed put took effect.
    ///
    /// # Errors
    /// The store's.
    pub async fn store_tombstone(
        &self,
        store: &dyn ObjectStore,
    ) -> Result<(), object_store::Error> {
        let mut state = self.stored.lock().await;
        match self.current_manifest().tombstone().store(store).await {
            Ok(()) => {
                *state = ManifestState::Tombstoned;
                Ok(())
            }
            Err(error) => {
                *state = ManifestState::Pending;
                self.deleting.store(false, Ordering::Release);
                Err(error)
            }
        }
    }

    /// Marks the incarnation deleted once the appends in progress are done: no record is
    /// appended after this returns.
    pub fn stop_appends(&self) {
        let _all = self.appends.write().unwrap_or_else(PoisonError::into_inner);
        self.deleted.store(true, Ordering::Release);
    }

    /// Holds off every flush attempt while the guard lives (tests pin an agent with it).
    #[cfg(test)]
    pub(crate) async fn block_flushes(&self) -> tokio::sync::RwLockWriteGuard<'_, ()> {
        self.flushes.write().await
    }

    /// Waits for the flush attempt in progress (after [`Self::stop_appends`]); returns the
    /// payload bytes that will never be flushed, for the caller to release from the budget.
    pub async fn wait_for_flushes(&self) -> u64 {
        let _all = self.flushes.write().await;
        self.memory_bytes.swap(0, Ordering::AcqRel)
    }
}

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
