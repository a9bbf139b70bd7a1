//! The read cache of flushed segments, bounded by the bytes it keeps resident: segments are
//! held encoded ([`EncodedSegment`]), so the bound and `streamhouse_cache_size_bytes` count
//! what the process really holds for them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use lru::LruCache;
use object_store::path::Path;
use streamhouse_observability::Telemetry;
use streamhouse_observability::metrics::{GaugeRegistration, StorageMetrics};

use crate::segment::EncodedSegment;

/// What an entry costs besides its segment and its path's text: the LRU node (key, value, two
/// links), its hash-table slot with the table's growth slack, and the `Arc`'s two counts.
/// About 110 bytes on a 64-bit target; the allocation test in `tests/cache_memory.rs` checks
/// the total against what the allocator really handed out.
pub const ENTRY_OVERHEAD_BYTES: u64 = 128;

struct Entry {
    segment: Arc<EncodedSegment>,
    bytes: u64,
}

/// Least-recently-used segments, at most `max_bytes` of them, counting each segment's
/// [resident bytes](EncodedSegment::resident_bytes), its path and [`ENTRY_OVERHEAD_BYTES`].
/// Counts a hit or a miss on every lookup and exposes its size as
/// `streamhouse_cache_size_bytes`.
pub struct SegmentCache {
    entries: Mutex<LruCache<Path, Entry>>,
    bytes: Arc<AtomicU64>,
    max_bytes: u64,
    metrics: StorageMetrics,
    _size: GaugeRegistration,
}

impl std::fmt::Debug for SegmentCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentCache")
            .field("bytes", &self.size_bytes())
            .field("max_bytes", &self.max_bytes)
            .finish()
    }
}

impl SegmentCache {
    /// An empty cache holding at most `max_bytes`.
    pub fn new(max_bytes: u64, telemetry: &Telemetry) -> Self {
        let bytes = Arc::new(AtomicU64::new(0));
        let observed = Arc::clone(&bytes);
        SegmentCache {
            entries: Mutex::new(LruCache::unbounded()),
            _size: telemetry
                .storage()
                .observe_cache_size(move || observed.load(Ordering::Relaxed)),
            bytes,
            max_bytes,
            metrics: telemetry.storage().clone(),
        }
    }

    /// The segment at `path`, counting a hit or a miss.
    pub fn get(&self, path: &Path) -> Option<Arc<EncodedSegment>> {
        let found = self
            .entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(path)
            .map(|e| Arc::clone(&e.segment));
        match found {
            Some(_) => self.metrics.record_cache_hit(),
            None => self.metrics.record_cache_miss(),
        }
        found
    }

    /// The segment at `path`, without counting a hit or a miss: for a second look by a
    /// request whose miss is already counted.
    pub fn peek(&self, path: &Path) -> Option<Arc<EncodedSegment>> {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .peek(path)
            .map(|e| Arc::clone(&e.segment))
    }

    /// What caching `segment` under `path` costs against the bound.
    pub fn cost(path: &Path, segment: &EncodedSegment) -> u64 {
        segment.resident_bytes() + path.as_ref().len() as u64 + ENTRY_OVERHEAD_BYTES
    }

    /// Caches a segment, evicting the least recently used ones to stay within the bound. A
    /// segment costing more than the whole bound is not cached.
    pub fn insert(&self, path: Path, segment: Arc<EncodedSegment>) {
        let bytes = Self::cost(&path, &segment);
        if bytes > self.max_bytes {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let mut total = self.bytes.load(Ordering::Relaxed);
        if let Some(old) = entries.put(path, Entry { segment, bytes }) {
            total -= old.bytes;
        }
        total += bytes;
        while total > self.max_bytes {
            match entries.pop_lru() {
                Some((_, evicted)) => total -= evicted.bytes,
                None => break,
            }
        }
        self.bytes.store(total, Ordering::Relaxed);
    }

    /// Drops every segment at or under `prefix` (a topic incarnation's, once it is deleted,
    /// so its bytes leave the bound and the size gauge at once rather than at eviction);
    /// returns how many went. Not counted as hits or misses.
    pub fn remove_under(&self, prefix: &Path) -> usize {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let doomed: Vec<Path> = entries
            .iter()
            .filter(|(path, _)| path.prefix_matches(prefix))
            .map(|(path, _)| path.clone())
            .collect();
        let mut total = self.bytes.load(Ordering::Relaxed);
        for path in &doomed {
            if let Some(entry) = entries.pop(path) {
                total -= entry.bytes;
            }
        }
        self.bytes.store(total, Ordering::Relaxed);
        doomed.len()
    }

    /// Resident bytes held now.
    pub fn size_bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Segments held now.
    pub fn len(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Record;
    use crate::segment::encode;
    use streamhouse_observability::{TelemetryConfig, catalog};

    fn segment(records: u64) -> Arc<EncodedSegment> {
        let records: Vec<Record> = (0..records)
            .map(|offset| Record {
                partition: 0,
                offset,
                key: None,
                value: "v".repeat(10),
                timestamp: 0,
                headers: Default::default(),
            })
            .collect();
        Arc::new(EncodedSegment::parse(&encode(&records)).unwrap())
    }

    #[test]
    fn evicts_least_recently_used_to_stay_within_bytes() {
        let telemetry = Telemetry::new(TelemetryConfig::default()).unwrap();
        let (a, b, c) = (Path::from("a"), Path::from("b"), Path::from("c"));
        let (big, small) = (segment(6), segment(3));
        let cost = |path: &Path, s: &Arc<EncodedSegment>| SegmentCache::cost(path, s);
        // Room for `a` and `b`, or for `a` and `c`, never for all three.
        let bound = cost(&a, &big) + cost(&b, &small) + cost(&c, &small) - 1;
        let cache = SegmentCache::new(bound, &telemetry);
        cache.insert(a.clone(), Arc::clone(&big));
        cache.insert(b.clone(), Arc::clone(&small));
        assert!(cache.get(&a).is_some()); // a is now the most recent
        cache.insert(c.clone(), Arc::clone(&small));
        assert!(cache.get(&b).is_none());
        let held = cost(&a, &big) + cost(&c, &small);
        assert_eq!(cache.size_bytes(), held);
        cache.insert(Path::from("huge"), segment(bound));
        assert_eq!(cache.len(), 2);
        let text = telemetry.render_prometheus();
        let line =
            |def: &catalog::MetricDef, value: u64| format!("{} {value}\n", def.prometheus_name);
        assert!(text.contains(&line(&catalog::CACHE_SIZE, held)), "{text}");
        assert!(text.contains(&line(&catalog::CACHE_HITS, 1)), "{text}");
        assert!(text.contains(&line(&catalog::CACHE_MISSES, 1)), "{text}");
    }

    #[test]
    fn removing_a_prefix_drops_only_what_lies_under_it() {
        let telemetry = Telemetry::new(TelemetryConfig::default()).unwrap();
        let cache = SegmentCache::new(1 << 20, &telemetry);
        let gone = [
            Path::from("topics/t/01/0/a.seg"),
            Path::from("topics/t/01/1/b.seg"),
        ];
        // A sibling whose name merely starts with the prefix's last part stays.
        let kept = Path::from("topics/t/012/0/a.seg");
        let small = segment(3);
        for path in gone.iter().chain([&kept]) {
            cache.insert(path.clone(), Arc::clone(&small));
        }
        assert_eq!(cache.remove_under(&Path::from("topics/t/01")), 2);
        assert_eq!(cache.len(), 1);
        assert!(cache.peek(&kept).is_some());
        let held = SegmentCache::cost(&kept, &small);
        assert_eq!(cache.size_bytes(), held);
        let text = telemetry.render_prometheus();
        let line = format!("{} {held}\n", catalog::CACHE_SIZE.prometheus_name);
        assert!(text.contains(&line), "{text}");
        // Nothing left under it: a second call is a no-op.
        assert_eq!(cache.remove_under(&Path::from("topics/t/01")), 0);
        assert_eq!(cache.size_bytes(), held);
    }

    #[test]
    fn replacing_a_segment_counts_only_the_new_one() {
        let telemetry = Telemetry::new(TelemetryConfig::default()).unwrap();
        let cache = SegmentCache::new(1 << 20, &telemetry);
        let path = Path::from("a");
        cache.insert(path.clone(), segment(50));
        let small = segment(2);
        cache.insert(path.clone(), Arc::clone(&small));
        assert_eq!(cache.size_bytes(), SegmentCache::cost(&path, &small));
    }
}
