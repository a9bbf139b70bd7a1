//! The read cache of flushed segments, bounded by their encoded size in bytes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use lru::LruCache;
use object_store::path::Path;
use streamhouse_observability::Telemetry;
use streamhouse_observability::metrics::{GaugeRegistration, StorageMetrics};

use crate::record::Record;

struct Entry {
    records: Arc<Vec<Record>>,
    bytes: u64,
}

/// Least-recently-used segments, at most `max_bytes` of them (by encoded size). Counts a hit
/// or a miss on every lookup and exposes its size as `streamhouse_cache_size_bytes`.
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

    /// The records of the segment at `path`, counting a hit or a miss.
    pub fn get(&self, path: &Path) -> Option<Arc<Vec<Record>>> {
        let found = self
            .entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(path)
            .map(|e| Arc::clone(&e.records));
        match found {
            Some(_) => self.metrics.record_cache_hit(),
            None => self.metrics.record_cache_miss(),
        }
        found
    }

    /// The records of the segment at `path`, without counting a hit or a miss: for a
    /// second look by a request whose miss is already counted.
    pub fn peek(&self, path: &Path) -> Option<Arc<Vec<Record>>> {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .peek(path)
            .map(|e| Arc::clone(&e.records))
    }

    /// Caches a segment of `bytes` encoded bytes, evicting the least recently used ones to
    /// stay within the bound. A segment larger than the bound is not cached.
    pub fn insert(&self, path: Path, records: Arc<Vec<Record>>, bytes: u64) {
        if bytes > self.max_bytes {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let mut total = self.bytes.load(Ordering::Relaxed);
        if let Some(old) = entries.put(path, Entry { records, bytes }) {
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

    /// Bytes held now.
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
    use streamhouse_observability::{TelemetryConfig, catalog};

    #[test]
    fn evicts_least_recently_used_to_stay_within_bytes() {
        let telemetry = Telemetry::new(TelemetryConfig::default()).unwrap();
        let cache = SegmentCache::new(100, &telemetry);
        let records = Arc::new(Vec::new());
        cache.insert(Path::from("a"), Arc::clone(&records), 60);
        cache.insert(Path::from("b"), Arc::clone(&records), 30);
        assert!(cache.get(&Path::from("a")).is_some()); // a is now the most recent
        cache.insert(Path::from("c"), Arc::clone(&records), 30);
        assert!(cache.get(&Path::from("b")).is_none());
        assert_eq!(cache.size_bytes(), 90);
        cache.insert(Path::from("huge"), records, 101);
        assert_eq!(cache.len(), 2);
        let text = telemetry.render_prometheus();
        let line =
            |def: &catalog::MetricDef, value: u64| format!("{} {value}\n", def.prometheus_name);
        assert!(text.contains(&line(&catalog::CACHE_SIZE, 90)), "{text}");
        assert!(text.contains(&line(&catalog::CACHE_HITS, 1)), "{text}");
        assert!(text.contains(&line(&catalog::CACHE_MISSES, 1)), "{text}");
    }
}
