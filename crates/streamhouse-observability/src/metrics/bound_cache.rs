//! Bound handles by label values, so recording with label values per call costs one hash
//! lookup of borrowed strings: no attribute copies, no SDK attribute hashing.
//!
//! Past the limit a miss costs the same lookup under the read lock and a write through one
//! overflow handle bound once: no exclusive lock, no allocation, whatever callers send.

use std::hash::{Hash, Hasher};
use std::sync::{OnceLock, PoisonError, RwLock};

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

/// At most `limit` bound handles, one per label set, plus one overflow handle.
///
/// The limit is the view's cardinality limit, and every cached handle holds one of the
/// SDK's series for its instrument, so when this cache is full the SDK's table is full too:
/// what the overflow handle records is what the SDK would have folded into its overflow
/// series.
#[derive(Debug)]
pub(crate) struct BoundCache<V> {
    handles: RwLock<HashMap<Values, V>>,
    overflow: OnceLock<V>,
    limit: usize,
}

impl<V> BoundCache<V> {
    pub(crate) fn new(limit: usize) -> Self {
        BoundCache {
            handles: RwLock::new(HashMap::new()),
            overflow: OnceLock::new(),
            limit,
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
        let key = Borrowed(values);
        {
            let handles = self.handles.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(handle) = handles.get(&key) {
                return record(handle);
            }
            if handles.len() >= self.limit {
                drop(handles);
                return record(self.overflow.get_or_init(bind_overflow));
            }
        }
        let mut handles = self.handles.write().unwrap_or_else(PoisonError::into_inner);
        // Another thread may have filled the last places since the read.
        if handles.len() >= self.limit && handles.get(&key).is_none() {
            drop(handles);
            return record(self.overflow.get_or_init(bind_overflow));
        }
        let owned: Values = values.iter().map(|v| Box::from(*v)).collect();
        record(handles.entry(owned).or_insert_with(bind))
    }

    /// Label sets holding a handle of their own.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.handles
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn binds_once_per_label_set_up_to_the_limit_then_overflows() {
        let cache = BoundCache::new(2);
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
        let cache = BoundCache::new(10);
        assert_eq!(cache.with(&["ab", ""], || 1, || 0, read), 1);
        assert_eq!(cache.with(&["a", "b"], || 2, || 0, read), 2);
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn never_grows_past_the_limit_under_concurrent_newcomers() {
        let cache = BoundCache::new(16);
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
}
