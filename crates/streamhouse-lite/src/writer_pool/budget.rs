//! The global budget of payload bytes appended but not yet in the object store.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Payload bytes waiting for a flush over all partitions, against one bound. Bytes are
/// reserved before an append and released when the writer pool has stored their segment;
/// a segment's payload is exactly the sum of its records' reservations, so nothing drifts.
#[derive(Debug)]
pub struct UnflushedBudget {
    used: AtomicUsize,
    max: usize,
}

/// Refused: the budget has no room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverBudget {
    /// Bytes waiting when refused.
    pub used: usize,
    /// The bound.
    pub max: usize,
}

impl UnflushedBudget {
    /// An empty budget of `max` bytes.
    pub fn new(max: usize) -> Self {
        UnflushedBudget {
            used: AtomicUsize::new(0),
            max,
        }
    }

    /// Reserves `bytes` if they fit. A request larger than the whole budget is let through
    /// when nothing else waits, so the bound is passed by at most one request, never stuck.
    ///
    /// # Errors
    /// [`OverBudget`] when they do not fit.
    pub fn try_reserve(&self, bytes: usize) -> Result<(), OverBudget> {
        let mut used = self.used.load(Ordering::Acquire);
        loop {
            if used != 0 && used.saturating_add(bytes) > self.max {
                return Err(OverBudget {
                    used,
                    max: self.max,
                });
            }
            match self.used.compare_exchange_weak(
                used,
                used + bytes,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Ok(()),
                Err(now) => used = now,
            }
        }
    }

    /// Returns `bytes` reserved earlier.
    pub fn release(&self, bytes: usize) {
        let before = self.used.fetch_sub(bytes, Ordering::AcqRel);
        debug_assert!(
            before >= bytes,
            "released {bytes} of {before} reserved bytes"
        );
    }

    /// Reserves `bytes` past the bound if need be: bytes already in memory rejoining the
    /// budget (a fenced partition's, once the store takes its puts again).
    pub fn force_reserve(&self, bytes: usize) {
        self.used.fetch_add(bytes, Ordering::AcqRel);
    }

    /// Bytes reserved now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }

    /// The bound.
    pub fn max(&self) -> usize {
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserves_up_to_the_bound_and_releases_exactly() {
        let budget = UnflushedBudget::new(100);
        budget.try_reserve(60).unwrap();
        budget.try_reserve(40).unwrap();
        assert_eq!(
            budget.try_reserve(1),
            Err(OverBudget {
                used: 100,
                max: 100
            })
        );
        budget.release(40);
        assert_eq!(budget.try_reserve(41).unwrap_err().used, 60);
        budget.release(60);
        assert_eq!(budget.used(), 0);
        // Alone, a request larger than the budget passes; it then blocks the rest.
        budget.try_reserve(150).unwrap();
        assert!(budget.try_reserve(1).is_err());
        budget.release(150);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn concurrent_reservations_never_pass_the_bound() {
        let budget = std::sync::Arc::new(UnflushedBudget::new(1_000));
        let granted: usize = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..4)
                .map(|_| {
                    let budget = &budget;
                    scope.spawn(move || (0..500).filter(|_| budget.try_reserve(3).is_ok()).count())
                })
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).sum()
        });
        assert_eq!(granted, 333);
        assert_eq!(budget.used(), 999);
    }
}
