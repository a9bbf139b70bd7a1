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
use streamhouse_observability::metrics::{ConsumerError, HttpOutcome, ProducerError};
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
    // With a scheme and an `error.type`, and the in-flight gauge's guard.
    telemetry.http_server().record_request_with(
        value,
        Some(value),
        "https",
        HttpOutcome::Status(503),
        latency,
    );
    drop(telemetry.http_server().start_request(value, "https"));
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

#[test]
fn a_receive_span_allocates_no_more_for_a_huge_batch_than_at_its_link_bound() {
    use opentelemetry::trace::TracerProvider as _;
    use streamhouse_observability::propagation::{MAX_RECEIVE_LINKS, receive_span};
    use tracing_subscriber::layer::SubscriberExt;

    type Record = Vec<(String, Vec<u8>)>;
    // Distinct producer contexts, and as many records without one.
    let batch = |contexts: usize| -> Vec<Record> {
        (0..contexts)
            .flat_map(|i| {
                let parent = format!("00-{:032x}-{:016x}-01", i + 1, i + 1);
                [
                    vec![("traceparent".to_owned(), parent.into_bytes())],
                    vec![("key".to_owned(), b"no context".to_vec())],
                ]
            })
            .collect()
    };
    let at_bound = batch(MAX_RECEIVE_LINKS);
    let large = batch(10 * MAX_RECEIVE_LINKS);
    let huge = batch(50 * MAX_RECEIVE_LINKS);
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
    tracing::subscriber::with_default(subscriber, || {
        let count = |records: &[Record]| {
            allocations_during(|| {
                drop(receive_span(
                    "orders",
                    "g",
                    records.iter().map(Vec::as_slice),
                ))
            })
        };
        // Warm-up: whatever is set up once per thread is not a per-record cost.
        count(&at_bound);
        let bounded = count(&at_bound);
        assert!(bounded > 0, "the window counted nothing");
        // Past the bound only the count of records left out is added, once.
        let past = count(&large);
        assert!(past <= bounded + 8, "{past} vs {bounded}");
        assert_eq!(
            count(&huge),
            past,
            "no allocation per record past the bound"
        );
    });
}
