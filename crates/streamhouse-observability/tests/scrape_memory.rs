//! A streamed scrape holds a small part of its body: `render_to` writes the body in chunks
//! as it goes, and once label texts are kept, an unchanged scrape builds no per-series
//! structure of ours. What remains in proportion to the series is the SDK's delta collect
//! (it reserves a data point per series of each instrument and tracks every series it
//! visits in a set), under 50 bytes a series.
//!
//! A binary of its own, so the allocator below sees only this file's test. It counts the
//! bytes live on the rendering thread (the render runs on its caller's thread).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Duration;

use streamhouse_observability::prometheus::{Format, RENDER_CHUNK_BYTES};
use streamhouse_observability::{Telemetry, TelemetryConfig};

struct CountingAllocator;

thread_local! {
    // `const` and free of destructors, so reading them never allocates.
    static LIVE: Cell<i64> = const { Cell::new(0) };
    static PEAK: Cell<i64> = const { Cell::new(0) };
}

fn note(change: i64) {
    // `try_with`: the allocator also runs while thread-locals are torn down.
    let _ = LIVE.try_with(|live| {
        live.set(live.get() + change);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(live.get())));
    });
}

// SAFETY: every call is forwarded unchanged to the system allocator.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size() as i64);
        // SAFETY: the caller's contract is passed through.
        unsafe { System.alloc(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size as i64 - layout.size() as i64);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note(-(layout.size() as i64));
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// The most bytes live on this thread during `f`, above what was live before it.
fn peak_extra(f: impl FnOnce()) -> i64 {
    let before = LIVE.get();
    PEAK.set(before);
    f();
    PEAK.get() - before
}

#[test]
fn a_streamed_scrape_holds_a_few_chunks_whatever_the_body() {
    let topics = 5_000;
    let telemetry = Telemetry::new(
        TelemetryConfig::default()
            .with_service_name("scrape-memory")
            .with_cardinality_limit(topics + 10),
    )
    .unwrap();
    let handles: Vec<_> = (0..topics)
        .map(|i| telemetry.producer().topic(&format!("topic-{i:05}")))
        .collect();
    for handle in &handles {
        handle.record_batch(10, 1_000, Duration::from_millis(3));
    }
    let reader = telemetry.prometheus().unwrap();
    // The first scrape stores the series and renders their labels once.
    let body = reader.render(Format::Text).unwrap();
    assert!(body.len() > 40 * RENDER_CHUNK_BYTES, "{}", body.len());

    for format in [Format::Text, Format::OpenMetrics] {
        let mut written = 0;
        let extra = peak_extra(|| {
            written = reader.render_to(format, &mut std::io::sink()).unwrap();
        });
        // The same series; process gauges may have moved by a digit or two.
        let whole = body.len() as u64;
        assert!(
            written.abs_diff(whole) < whole / 100,
            "{format:?}: {written}"
        );
        // 20,000 series here: a chunk, the SDK's collect (under 50 bytes a series), and
        // small per-family structures; far under the body.
        assert!(
            extra < RENDER_CHUNK_BYTES as i64 * 2 + 20_000 * 50,
            "{format:?}: {extra} bytes at the peak for a {written}-byte body"
        );
        assert!(
            extra < written as i64 / 8,
            "{format:?}: {extra} for {written}"
        );
    }

    // Kept whole, the body is the one large allocation.
    let mut whole = 0;
    let extra = peak_extra(|| whole = reader.render(Format::Text).unwrap().len());
    assert!(
        extra < whole as i64 + whole as i64 / 2,
        "{extra} bytes at the peak for a {whole}-byte body"
    );
}
