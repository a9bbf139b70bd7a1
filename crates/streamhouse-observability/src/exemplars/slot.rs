//! One exemplar slot: the latest (value, trace id, span id, time), written without locks.
//!
//! A seqlock over atomics: a writer claims the slot by moving its sequence to odd, stores
//! the fields, and releases it at the next even number; a writer that finds the slot claimed
//! drops its exemplar (exemplars are samples, losing one is fine). Readers retry until they
//! see the same even sequence before and after reading.

use std::sync::atomic::{AtomicU64, Ordering, fence};

use opentelemetry::trace::{SpanId, TraceId};

/// An exemplar as read back.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Exemplar {
    /// The recorded value (a histogram observation or a counter increment).
    pub value: f64,
    /// The sampled span's trace id.
    pub trace_id: TraceId,
    /// The sampled span's id.
    pub span_id: SpanId,
    /// When it was recorded, in seconds since the Unix epoch.
    pub timestamp: f64,
}

#[derive(Debug, Default)]
pub(crate) struct Slot {
    // 0: never written; odd: being written.
    sequence: AtomicU64,
    trace_high: AtomicU64,
    trace_low: AtomicU64,
    span: AtomicU64,
    value: AtomicU64,
    // Nanoseconds since the store's time base.
    offset_nanos: AtomicU64,
}

impl Slot {
    pub(crate) fn write(&self, value: f64, trace_id: TraceId, span_id: SpanId, offset_nanos: u64) {
        let sequence = self.sequence.load(Ordering::Relaxed);
        if sequence & 1 == 1
            || self
                .sequence
                .compare_exchange(sequence, sequence + 1, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        fence(Ordering::Release);
        let trace = u128::from_be_bytes(trace_id.to_bytes());
        self.trace_high
            .store((trace >> 64) as u64, Ordering::Relaxed);
        self.trace_low.store(trace as u64, Ordering::Relaxed);
        self.span
            .store(u64::from_be_bytes(span_id.to_bytes()), Ordering::Relaxed);
        self.value.store(value.to_bits(), Ordering::Relaxed);
        self.offset_nanos.store(offset_nanos, Ordering::Relaxed);
        self.sequence.store(sequence + 2, Ordering::Release);
    }

    /// The latest exemplar, with its time as nanoseconds since the store's time base.
    pub(crate) fn read(&self) -> Option<(f64, TraceId, SpanId, u64)> {
        // A writer holds the slot for a few stores; give up after a few tries rather than spin.
        for _ in 0..64 {
            let before = self.sequence.load(Ordering::Acquire);
            if before == 0 {
                return None;
            }
            if before & 1 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let trace = (u128::from(self.trace_high.load(Ordering::Relaxed)) << 64)
                | u128::from(self.trace_low.load(Ordering::Relaxed));
            let span = self.span.load(Ordering::Relaxed);
            let value = f64::from_bits(self.value.load(Ordering::Relaxed));
            let offset = self.offset_nanos.load(Ordering::Relaxed);
            fence(Ordering::Acquire);
            if self.sequence.load(Ordering::Relaxed) == before {
                return Some((
                    value,
                    TraceId::from_bytes(trace.to_be_bytes()),
                    SpanId::from_bytes(span.to_be_bytes()),
                    offset,
                ));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn empty_until_written_then_latest_wins() {
        let slot = Slot::default();
        assert_eq!(slot.read(), None);
        let trace = TraceId::from_bytes([7; 16]);
        slot.write(1.5, trace, SpanId::from_bytes([1; 8]), 10);
        slot.write(2.5, trace, SpanId::from_bytes([2; 8]), 20);
        assert_eq!(
            slot.read(),
            Some((2.5, trace, SpanId::from_bytes([2; 8]), 20))
        );
    }

    #[test]
    fn concurrent_writers_never_produce_a_torn_exemplar() {
        let slot = Arc::new(Slot::default());
        let writers: Vec<_> = (1..=4u8)
            .map(|w| {
                let slot = Arc::clone(&slot);
                std::thread::spawn(move || {
                    for _ in 0..20_000 {
                        // Every field derives from `w`, so a mix of two writes is detectable.
                        slot.write(
                            f64::from(w),
                            TraceId::from_bytes([w; 16]),
                            SpanId::from_bytes([w; 8]),
                            u64::from(w),
                        );
                    }
                })
            })
            .collect();
        for _ in 0..20_000 {
            if let Some((value, trace, span, offset)) = slot.read() {
                let w = value as u8;
                assert_eq!(trace, TraceId::from_bytes([w; 16]));
                assert_eq!(span, SpanId::from_bytes([w; 8]));
                assert_eq!(offset, u64::from(w));
            }
        }
        writers.into_iter().for_each(|w| w.join().unwrap());
        assert!(slot.read().is_some());
    }
}
