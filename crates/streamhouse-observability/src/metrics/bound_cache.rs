//! Bound handles by label values, so recording with label values per call costs one hash
//! lookup of borrowed strings: no attribute copies, no SDK attribute hashing.

use std::hash::{Hash, Hasher};
use std::sync::{PoisonError, RwLock};

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

/// At most `limit` bound handles, one per label set.
#[derive(Debug)]
pub(crate) struct BoundCache<V> {
    handles: RwLock<HashMap<Values, V>>,
    limit: usize,
}

impl<V> BoundCache<V> {
    pub(crate) fn new(limit: usize) -> Self {
        BoundCache {
            handles: RwLock::new(HashMap::new()),
            limit,
        }
    }

    /// Calls `record` with the handle bound to `values`, binding it first if needed. `None`
    /// past the limit: the caller records unbound, and the SDK folds the measurement into
    /// its overflow series.
    #[inline]
    pub(crate) fn with<R>(
        &self,
        values: &[&str],
        bind: impl FnOnce() -> V,
        record: impl FnOnce(&V) -> R,
    ) -> Option<R> {
        let key = Borrowed(values);
        {
            let handles = self.handles.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(handle) = handles.get(&key) {
                return Some(record(handle));
            }
        }
        let mut handles = self.handles.write().unwrap_or_else(PoisonError::into_inner);
        if handles.len() >= self.limit && handles.get(&key).is_none() {
            return None;
        }
        let owned: Values = values.iter().map(|v| Box::from(*v)).collect();
        Some(record(handles.entry(owned).or_insert_with(bind)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn binds_once_per_label_set_up_to_the_limit() {
        let cache = BoundCache::new(2);
        let binds = Cell::new(0);
        let bind = |n: u32| {
            binds.set(binds.get() + 1);
            n
        };
        assert_eq!(cache.with(&["a", "x"], || bind(1), |v| *v), Some(1));
        assert_eq!(cache.with(&["a", "x"], || bind(9), |v| *v), Some(1));
        assert_eq!(cache.with(&["a", "y"], || bind(2), |v| *v), Some(2));
        assert_eq!(cache.with(&["b", "x"], || bind(3), |v| *v), None);
        assert_eq!(cache.with(&["a", "y"], || bind(9), |v| *v), Some(2));
        // Values that concatenate alike stay apart.
        let cache = BoundCache::new(10);
        assert_eq!(cache.with(&["ab", ""], || 1, |v| *v), Some(1));
        assert_eq!(cache.with(&["a", "b"], || 2, |v| *v), Some(2));
        assert_eq!(binds.get(), 2);
    }
}
