//! The segment cache's size is what it really holds: a counting allocator (the reason this
//! test has a binary of its own) measures the heap bytes the cache keeps alive and compares
//! them with `size_bytes`, which `streamhouse_cache_size_bytes` reports.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use object_store::path::Path;
use streamhouse_lite::record::Record;
use streamhouse_lite::segment::{self, EncodedSegment};
use streamhouse_lite::segment_cache::SegmentCache;
use streamhouse_observability::{Telemetry, TelemetryConfig};

#[path = "fixtures/loadgen_record.rs"]
mod loadgen_record;
use loadgen_record::loadgen_record;

/// The system allocator, counting bytes allocated and not yet freed.
struct Counting;

static LIVE: AtomicI64 = AtomicI64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as i64, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size as i64 - layout.size() as i64, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live() -> i64 {
    LIVE.load(Ordering::Relaxed)
}

/// Segments of load-generator records.
fn encoded_segments(count: usize) -> Vec<(Path, Vec<u8>)> {
    (0..count)
        .map(|i| {
            let base = i as u64 * 1_000;
            let records: Vec<Record> = (base..base + 50 + (i as u64 % 7) * 40)
                .map(|offset| loadgen_record(1, offset))
                .collect();
            let last = records.last().expect("never empty").offset;
            (
                segment::object_path("orders", 0, 1, base, last),
                segment::encode(&records),
            )
        })
        .collect()
}

#[test]
fn reported_size_is_the_heap_it_holds_and_never_passes_the_bound() {
    let telemetry = Telemetry::new(TelemetryConfig::default()).expect("telemetry");
    let segments = encoded_segments(400);
    let encoded_total: usize = segments.iter().map(|(_, bytes)| bytes.len()).sum();
    let bound = (encoded_total / 3) as u64;
    let cache = SegmentCache::new(bound, &telemetry);

    let before = live();
    for (path, bytes) in &segments {
        let segment = Arc::new(EncodedSegment::parse(bytes).expect("segment parses"));
        cache.insert(path.clone(), segment);
        let size = cache.size_bytes();
        assert!(size <= bound, "{size} bytes reported, bound {bound}");
        let held = live() - before;
        // The allocator's figure may exceed the reported one only by the table's slack.
        assert!(
            held <= bound as i64 + (bound as i64) / 100,
            "{held} bytes live, bound {bound}"
        );
    }
    let held = live() - before;
    let size = cache.size_bytes() as i64;
    // Within 2%: the entry overhead is an estimate of the LRU node and its hash slot.
    let margin = size / 50;
    assert!(
        (held - size).abs() <= margin,
        "cache reports {size} bytes, the allocator counts {held} (margin {margin})"
    );
    assert!(cache.len() < segments.len(), "the bound forced evictions");

    // The premise of holding segments encoded: decoded, the same records cost several times
    // more, so a bound on encoded bytes over decoded records would lie by that factor.
    let (_, bytes) = &segments[0];
    let before = live();
    let decoded = segment::decode(bytes).expect("decodes");
    let decoded_bytes = live() - before + std::mem::size_of_val(&decoded) as i64;
    let encoded_bytes = SegmentCache::cost(
        &segments[0].0,
        &EncodedSegment::parse(bytes).expect("parses"),
    ) as i64;
    assert!(
        decoded_bytes > 2 * encoded_bytes,
        "decoded {decoded_bytes} bytes, encoded {encoded_bytes}"
    );
    println!(
        "decoded/encoded: {:.2} ({decoded_bytes} / {encoded_bytes} bytes)",
        decoded_bytes as f64 / encoded_bytes as f64
    );
}
