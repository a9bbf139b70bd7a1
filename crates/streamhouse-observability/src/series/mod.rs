//! Series lifecycle: removal by label and idle expiry, for scrape and push alike.
//!
//! OpenTelemetry has no way to remove a series, and in cumulative mode the SDK keeps every
//! series it ever saw. So the SDK is asked for *deltas* of counters, histograms and up-down
//! counters, and the cumulative totals live in our own store, one per meter
//! provider, which `/metrics` renders and the OTLP push encodes. The SDK forgets a delta
//! series once it was neither updated nor bound since the last collection, so a series we
//! drop from the store and whose bound handles we drop is gone everywhere: its SDK memory,
//! its cardinality slot, its exemplars.
//!
//! - **Removal** ([`Telemetry::remove_series`](crate::Telemetry::remove_series)) retires
//!   the cached handles carrying the label pair, folds in what was recorded before, and
//!   drops the pair's series from the store. A series that comes back starts from zero with
//!   a new start time (a counter reset, which `rate()` handles).
//! - **Idle expiry** (`STREAMHOUSE_METRIC_IDLE_TIMEOUT`, off by default) drops, at each
//!   collection, counter and histogram series no collection saw change for longer than the
//!   timeout, and the cached handles unused for as long. Gauges and up-down counters are
//!   levels their owners keep, and never expire.
//! - **Handles kept by callers** (`ProducerMetrics::topic` and the like) check at each
//!   record whether their series was retired; a retired one records through the cache,
//!   which binds the series anew (from zero). Until dropped, such a handle still pins its
//!   old SDK series, which exports nothing.
//! - A record racing with a removal of its series may be dropped with it.

pub(crate) mod collector;
pub(crate) mod store;

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::time::{Duration, Instant};

use crate::metrics::bound_cache::Retire;

/// Where idle expiry reads the time. The default is the system's monotonic clock; tests
/// inject a [`ManualClock`].
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current instant.
    fn now(&self) -> Instant;
}

/// The system's monotonic clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// A clock that moves only when told: for testing idle expiry without waiting.
///
/// ```
/// use std::time::Duration;
/// use streamhouse_observability::series::{Clock, ManualClock};
///
/// let clock = ManualClock::new();
/// let before = clock.now();
/// clock.advance(Duration::from_secs(60));
/// assert_eq!(clock.now() - before, Duration::from_secs(60));
/// ```
#[derive(Debug)]
pub struct ManualClock {
    origin: Instant,
    offset_nanos: AtomicU64,
}

impl ManualClock {
    /// A clock standing at the current instant.
    pub fn new() -> Self {
        ManualClock {
            origin: Instant::now(),
            offset_nanos: AtomicU64::new(0),
        }
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let nanos = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.offset_nanos.fetch_add(nanos, Ordering::Relaxed);
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        ManualClock::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.origin + Duration::from_nanos(self.offset_nanos.load(Ordering::Relaxed))
    }
}

/// A clock as configuration holds it; two are equal when they are the same clock.
#[derive(Debug, Clone)]
pub struct SharedClock(pub Arc<dyn Clock>);

impl Default for SharedClock {
    /// The system clock, one instance for all, so default configurations compare equal.
    fn default() -> Self {
        static SYSTEM: OnceLock<Arc<dyn Clock>> = OnceLock::new();
        SharedClock(Arc::clone(SYSTEM.get_or_init(|| Arc::new(SystemClock))))
    }
}

impl PartialEq for SharedClock {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// Every bound-handle cache of one telemetry instance, for removal and idle expiry.
#[derive(Default)]
pub(crate) struct Caches(Mutex<Vec<Weak<dyn Retire>>>);

impl fmt::Debug for Caches {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Caches").finish_non_exhaustive()
    }
}

impl Caches {
    pub(crate) fn register(&self, cache: Arc<dyn Retire>) {
        let mut caches = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        caches.retain(|c| c.strong_count() > 0);
        caches.push(Arc::downgrade(&cache));
    }

    fn each(&self, mut f: impl FnMut(&dyn Retire) -> usize) -> usize {
        let caches: Vec<Arc<dyn Retire>> = self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        caches.iter().map(|c| f(c.as_ref())).sum()
    }

    /// Retires the handles carrying `key` = `value`; returns how many.
    pub(crate) fn retire(&self, key: &str, value: &str) -> usize {
        self.each(|c| c.retire(key, value))
    }

    /// Retires the handles unused for longer than `timeout`; returns how many.
    pub(crate) fn sweep(&self, now: u64, timeout: u64) -> usize {
        self.each(|c| c.sweep(now, timeout))
    }
}
