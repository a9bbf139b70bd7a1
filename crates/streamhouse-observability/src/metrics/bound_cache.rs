//! Bound handles by label values, so recording with label values per call costs one hash
//! lookup of borrowed strings: no attribute copies, no SDK attribute hashing.
//!
//! Past the limit a miss costs the same lookup under the read lock and a write through one
//! overflow handle bound once: no exclusive lock, no allocation, whatever callers send.

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use hashbrown::{Equivalent, HashMap};

/// Owned label values, in the recorder's fixed order.
type Values = Box<[Box<str>]>;

/// Borrowed label values; hashes exactly like [`Values`] (a slice hashes its length, then
/// each `str`), so it looks entries up without allocating.
struct Borrowed<'a>(&'a [&'a str]);

impl Hash for Borrowed<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl Equivalent<Values> for Borrowed<'_> {
    fn equivalent(&self, key: &Values) -> bool {
        self.0.len() == key.len() && self.0.iter().zip(key.iter()).all(|(a, b)| *a == &**b)
    }
}

/// [`Entry::state`]: used since the last sweep.
const USED: u8 = 0;
/// [`Entry::state`]: not used since the last sweep.
const UNUSED: u8 = 1;
/// [`Entry::state`]: removed or idle; the handle no longer stands for its series.
const RETIRED: u8 = 2;

/// A cached handle and what its series' lifecycle needs: whether it still stands for its
/// series, and whether it recorded since the last sweep, in one byte so the hot path reads
/// one atomic.
#[derive(Debug)]
pub(crate) struct Entry<V> {
    state: AtomicU8,
    value: V,
    /// Clock reading (ns since the collector's origin) of the last sweep that found it used.
    seen: AtomicU64,
}

impl<V> Entry<V> {
    fn new(value: V) -> Self {
        Entry {
            // Binding counts as use, so a new entry survives its first sweep.
            state: AtomicU8::new(USED),
            value,
            seen: AtomicU64::new(0),
        }
    }

    /// The handle, marked used, while it still stands for its series.
    #[inline(always)]
    pub(crate) fn get(&self) -> Option<&V> {
        self.use_live().then_some(&self.value)
    }

    /// Whether the handle still stands for its series; marks it used if so. For callers
    /// that keep a clone of the handle itself, so the record need not wait for this load.
    #[inline(always)]
    pub(crate) fn use_live(&self) -> bool {
        match self.state.load(Ordering::Relaxed) {
            USED => true,
            // Written once per sweep at most, so recording threads do not contend for the
            // entry's cache line.
            UNUSED => {
                let _ =
                    self.state
                        .compare_exchange(UNUSED, USED, Ordering::Relaxed, Ordering::Relaxed);
                true
            }
            _ => false,
        }
    }

    /// The handle, whatever its state.
    pub(crate) fn value(&self) -> &V {
        &self.value
    }

    fn retire(&self) {
        self.state.store(RETIRED, Ordering::Relaxed);
    }

    /// Whether it was used since the last sweep; marks it unused for the next.
    fn take_used(&self) -> bool {
        self.state
            .compare_exchange(USED, UNUSED, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    }
}

/// What removal and idle expiry ask of every cache, whatever its handle type.
pub(crate) trait Retire: Send + Sync {
    /// Drops the entries whose label `key` is `value`; returns how many.
    fn retire(&self, key: &str, value: &str) -> usize;

    /// Drops the entries not used for longer than `timeout` (clock readings in ns);
    /// returns how many.
    fn sweep(&self, now: u64, timeout: u64) -> usize;
}

#[derive(Debug)]
struct Table<V> {
    handles: HashMap<Values, Arc<Entry<V>>>,
    overflow: Option<Arc<Entry<V>>>,
}

/// At most `limit` bound handles, one per label set, plus one overflow handle.
///
/// The limit is the view's cardinality limit, and every cached handle holds one of the
/// SDK's series for its instrument, so when this cache is full the SDK's table is full too:
/// what the overflow handle records is what the SDK would have folded into its overflow
/// series. Removal and idle expiry drop entries (see [`Retire`]), which unbinds their SDK
/// series and gives their places back.
#[derive(Debug)]
pub(crate) struct BoundCache<V> {
    table: RwLock<Table<V>>,
    limit: usize,
    /// The label key of each position of the cached values; empty when removal by label
    /// does not apply (keys not in catalog order).
    keys: &'static [&'static str],
    /// Whether idle entries are dropped: not for handles of a level (an up-down counter).
    expires: bool,
}

impl<V> BoundCache<V> {
    pub(crate) fn new(limit: usize, keys: &'static [&'static str], expires: bool) -> Self {
        BoundCache {
            table: RwLock::new(Table {
                handles: HashMap::new(),
                overflow: None,
            }),
            limit,
            keys,
            expires,
        }
    }

    /// Calls `record` with the handle bound to `values`, binding it with `bind` first if
    /// there is room; past the limit, with the handle `bind_overflow` binds once.
    #[inline]
    pub(crate) fn with<R>(
        &self,
        values: &[&str],
        bind: impl FnOnce() -> V,
        bind_overflow: impl FnOnce() -> V,
        record: impl FnOnce(&V) -> R,
    ) -> R {
        {
            let table = self.table.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(entry) = table.handles.get(&Borrowed(values)) {
                return record(entry.get().unwrap_or(&entry.value));
            }
            if table.handles.len() >= self.limit
                && let Some(overflow) = &table.overflow
            {
                return record(&overflow.value);
            }
        }
        let entry = self.entry(values, bind, bind_overflow);
        record(&entry.value)
    }

    /// The entry bound to `values`, bound with `bind` if new and there is room, else the
    /// overflow entry, bound once with `bind_overflow`.
    pub(crate) fn entry(
        &self,
        values: &[&str],
        bind: impl FnOnce() -> V,
        bind_overflow: impl FnOnce() -> V,
    ) -> Arc<Entry<V>> {
        let key = Borrowed(values);
        if let Some(entry) = self
            .table
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .handles
            .get(&key)
        {
            return Arc::clone(entry);
        }
        let mut table = self.table.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = table.handles.get(&key) {
            return Arc::clone(entry);
        }
        if table.handles.len() >= self.limit {
            let overflow = table
                .overflow
                .get_or_insert_with(|| Arc::new(Entry::new(bind_overflow())));
            return Arc::clone(overflow);
        }
        let owned: Values = values.iter().map(|v| Box::from(*v)).collect();
        let entry = Arc::new(Entry::new(bind()));
        table.handles.insert(owned, Arc::clone(&entry));
        entry
    }

    /// Drops the entries `drop` picks; a handle kept outside sees its entry retired and
    /// records through the cache from then on.
    fn retire_where(&self, mut drop: impl FnMut(&Values, &Entry<V>) -> bool) -> usize {
        let mut table = self.table.write().unwrap_or_else(PoisonError::into_inner);
        let before = table.handles.len();
        table.handles.retain(|values, entry| {
            let gone = drop(values, entry);
            if gone {
                entry.retire();
            }
            !gone
        });
        let removed = before - table.handles.len();
        // Handles kept on the overflow entry may now have a place of their own.
        if removed > 0
            && let Some(overflow) = table.overflow.take()
        {
            overflow.retire();
        }
        removed
    }

    /// Label sets holding a handle of their own.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.table
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .handles
            .len()
    }
}

impl<V: Send + Sync> Retire for BoundCache<V> {
    fn retire(&self, key: &str, value: &str) -> usize {
        let Some(position) = self.keys.iter().position(|k| *k == key) else {
            return 0;
        };
        self.retire_where(|values, _| values.get(position).is_some_and(|v| &**v == value))
    }

    fn sweep(&self, now: u64, timeout: u64) -> usize {
        if !self.expires {
            return 0;
        }
        self.retire_where(|_, entry| {
            if entry.take_used() {
                entry.seen.store(now, Ordering::Relaxed);
                return false;
            }
            now.saturating_sub(entry.seen.load(Ordering::Relaxed)) > timeout
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn binds_once_per_label_set_up_to_the_limit_then_overflows() {
        let cache = BoundCache::new(2, &["k", "l"], true);
        let binds = Cell::new(0);
        let bind = |n: u32| {
            binds.set(binds.get() + 1);
            n
        };
        let read = |v: &u32| *v;
        assert_eq!(cache.with(&["a", "x"], || bind(1), || bind(0), read), 1);
        assert_eq!(cache.with(&["a", "x"], || bind(9), || bind(0), read), 1);
        assert_eq!(cache.with(&["a", "y"], || bind(2), || bind(0), read), 2);
        assert_eq!(cache.with(&["b", "x"], || bind(9), || bind(100), read), 100);
        // The overflow handle is bound once, then shared by every later newcomer.
        assert_eq!(cache.with(&["b", "y"], || bind(9), || bind(200), read), 100);
        assert_eq!(cache.with(&["a", "y"], || bind(9), || bind(9), read), 2);
        assert_eq!(binds.get(), 3);
        assert_eq!(cache.len(), 2);
        // Values that concatenate alike stay apart.
        let cache = BoundCache::new(10, &[], true);
        assert_eq!(cache.with(&["ab", ""], || 1, || 0, read), 1);
        assert_eq!(cache.with(&["a", "b"], || 2, || 0, read), 2);
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn never_grows_past_the_limit_under_concurrent_newcomers() {
        let cache = BoundCache::new(16, &[], true);
        std::thread::scope(|scope| {
            for thread in 0..4 {
                let cache = &cache;
                scope.spawn(move || {
                    for i in 0..200 {
                        let value = format!("{thread}-{i}");
                        cache.with(&[&value], || i, || u32::MAX, |_| ());
                    }
                });
            }
        });
        assert_eq!(cache.len(), 16);
    }

    #[test]
    fn retiring_a_label_value_frees_its_places_and_retires_kept_handles() {
        let cache = BoundCache::new(2, &["topic", "group"], true);
        let kept = cache.entry(&["orders", "a"], || 1, || 0);
        cache.with(&["payments", "a"], || 2, || 0, |_| ());
        // Full: a newcomer gets the overflow entry, which a removal retires too.
        let overflowed = cache.entry(&["audit", "a"], || 3, || 100);
        assert_eq!(overflowed.get(), Some(&100));
        assert_eq!(cache.retire("group", "orders"), 0, "no such pair");
        assert_eq!(cache.retire("topic", "orders"), 1);
        assert_eq!(kept.get(), None);
        assert_eq!(overflowed.get(), None);
        assert_eq!(cache.len(), 1);
        // The freed place binds the next newcomer afresh.
        assert_eq!(cache.with(&["orders", "a"], || 4, || 0, |v| *v), 4);
        assert_eq!(cache.with(&["audit", "a"], || 9, || 0, |v| *v), 0);
        // Keys not in catalog order: removal by label does not apply.
        let unkeyed = BoundCache::new(2, &[], true);
        unkeyed.with(&["orders"], || 1, || 0, |_| ());
        assert_eq!(unkeyed.retire("topic", "orders"), 0);
    }

    #[test]
    fn a_sweep_retires_what_was_not_used_for_longer_than_the_timeout() {
        let cache = BoundCache::new(10, &["topic"], true);
        let quiet = cache.entry(&["quiet"], || 1, || 0);
        cache.with(&["busy"], || 2, || 0, |_| ());
        // First sweep: both were just bound, so both count as used.
        assert_eq!(cache.sweep(0, 60), 0);
        cache.with(&["busy"], || 0, || 0, |_| ());
        assert_eq!(cache.sweep(50, 60), 0);
        cache.with(&["busy"], || 0, || 0, |_| ());
        assert_eq!(cache.sweep(61, 60), 1, "quiet, last seen at 0");
        assert_eq!(quiet.get(), None);
        assert_eq!(cache.len(), 1);
        // A cache of levels never expires.
        let levels = BoundCache::new(10, &[], false);
        levels.with(&["GET"], || 1, || 0, |_| ());
        assert_eq!(levels.sweep(0, 1), 0);
        assert_eq!(levels.sweep(1_000, 1), 0);
    }
}
