//! Past the cardinality limit, a record call with a label value never seen before allocates
//! nothing: a hostile stream of fresh names costs neither memory nor allocator contention.
//!
//! A binary of its own, so the counting allocator below sees only this file's tests. It
//! counts per thread, so tests running side by side (and the SDK's threads) do not interfere.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Duration;

use opentelemetry::Context;
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId};
use streamhouse_observability::metrics::{ConsumerError, ProducerError};
use streamhouse_observability::{Telemetry, TelemetryConfig};

struct CountingAllocator;

thread_local! {
    // `const` and free of destructors, so reading them never allocates.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn note_allocation() {
    // `try_with`: the allocator also runs while thread-locals are torn down.
    let _ = COUNTING.try_with(|counting| {
        if counting.get() {
            let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        }
    });
}

// SAFETY: every call is forwarded unchanged to the system allocator.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: the caller's contract is passed through.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_allocation();
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Allocations made on this thread while `f` runs.
fn allocations_during(f: impl FnOnce()) -> u64 {
    ALLOCATIONS.with(|n| n.set(0));
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    ALLOCATIONS.with(Cell::get)
}

const LIMIT: usize = 8;
const CALLS: usize = 500;

fn names(prefix: &str, count: usize) -> Vec<String> {
    (0..count).map(|i| format!("{prefix}-{i}")).collect()
}

/// Every recorder path that takes a label value from its caller, keyed by the value.
fn record_everything(telemetry: &Telemetry, value: &str) {
    let latency = Duration::from_millis(2);
    telemetry.producer().record_batch(value, 3, 300, latency);
    telemetry
        .producer()
        .record_error(value, ProducerError::TopicNotFound);
    telemetry.consumer().record_records(value, value, 3);
    telemetry.consumer().record_rebalance(value);
    telemetry
        .consumer()
        .record_error(value, value, ConsumerError::GroupNotFound);
    telemetry.storage().record_segment_write(value, 7);
    telemetry.storage().record_segment_flush(value, 7);
    telemetry
        .http_server()
        .record_request(value, Some(value), 404, latency);
}

/// Fills every recorder's cardinality budget, then records `CALLS` fresh values.
fn allocations_past_the_limit(telemetry: &Telemetry) -> u64 {
    for name in names("real", LIMIT) {
        record_everything(telemetry, &name);
    }
    // Past the limit once before counting: whatever is set up once (the overflow handles)
    // is not a per-call cost.
    record_everything(telemetry, "first-past-the-limit");
    // Built before the window; 300 bytes each, longer than the label bound, so cutting
    // them is on the counted path too.
    let fresh: Vec<String> = (0..CALLS).map(|i| format!("{i:0>300}")).collect();
    allocations_during(|| {
        for name in &fresh {
            record_everything(telemetry, name);
        }
    })
}

fn limited(exemplars: bool) -> Telemetry {
    let config = TelemetryConfig::default()
        .with_cardinality_limit(LIMIT)
        .with_exemplars(exemplars);
    Telemetry::new(config).unwrap()
}

#[test]
fn the_counter_sees_allocations() {
    // Guards the test itself: a window that counted nothing proves nothing.
    let counted = allocations_during(|| drop(std::hint::black_box(vec![1u8; 64])));
    assert_eq!(counted, 1);
}

#[test]
fn recording_fresh_values_past_the_limit_allocates_nothing() {
    let telemetry = limited(true);
    assert_eq!(allocations_past_the_limit(&telemetry), 0);
}

#[test]
fn recording_fresh_values_past_the_limit_in_a_sampled_span_allocates_nothing() {
    // Exemplar capture is on and a sampled span is current: the overflow series must not
    // grow the exemplar store either.
    let telemetry = limited(true);
    let _sampled = Context::new()
        .with_remote_span_context(SpanContext::new(
            TraceId::from_bytes([3; 16]),
            SpanId::from_bytes([4; 8]),
            TraceFlags::SAMPLED,
            false,
            Default::default(),
        ))
        .attach();
    assert_eq!(allocations_past_the_limit(&telemetry), 0);
}

#[test]
fn recording_existing_series_allocates_nothing() {
    let telemetry = limited(false);
    let real = names("real", LIMIT);
    for name in &real {
        record_everything(&telemetry, name);
    }
    let counted = allocations_during(|| {
        for name in real.iter().cycle().take(CALLS) {
            record_everything(&telemetry, name);
        }
    });
    assert_eq!(counted, 0);
}
