//! Memory per series: records `N` consumer-group counter series and `N / 4` topics' produce
//! series (two counters, two histograms each), scrapes once, and prints the heap bytes in use
//! per series (counted by a global allocator wrapper, so freed memory the allocator keeps does
//! not blur it). Not a test: run it in release to compare
//! builds.
//!
//! ```sh
//! cargo run --release -p streamhouse-observability --example series_memory -- 100000
//! cargo run --release -p streamhouse-observability --example series_memory -- 100000 push
//! ```
//!
//! With `push`, metrics are also pushed over OTLP (to a closed port, once an hour), as a
//! deployment with a collector runs.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use streamhouse_observability::otlp::{OtlpConfig, OtlpProtocol};
use streamhouse_observability::{Telemetry, TelemetryConfig};

/// The system allocator, counting the bytes in use.
struct Counting;

static IN_USE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        IN_USE.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        IN_USE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        IN_USE.fetch_add(new_size, Ordering::Relaxed);
        IN_USE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn heap_bytes() -> usize {
    IN_USE.load(Ordering::Relaxed)
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let mut config = TelemetryConfig::default()
        .with_service_name("series-memory")
        .with_cardinality_limit(n + 1);
    if std::env::args().nth(2).as_deref() == Some("push") {
        config = config.with_otlp(
            OtlpConfig::default()
                .with_endpoint("http://127.0.0.1:9", OtlpProtocol::Grpc)
                .with_metric_export_interval(Duration::from_secs(3600)),
        );
    }
    let telemetry = Telemetry::new(config).expect("telemetry starts");
    let heap_before = heap_bytes();
    for i in 0..n {
        telemetry
            .consumer()
            .record_records("orders", &format!("group-{i}"), 1);
    }
    for i in 0..n / 4 {
        telemetry
            .producer()
            .record_batch(&format!("topic-{i}"), 1, 100, Duration::from_millis(1));
    }
    let body = telemetry.render_prometheus();
    let body_len = body.len();
    drop(body);
    let heap = heap_bytes() - heap_before;
    let series = n + n;
    println!(
        "series: {series} ({n} counters, {} topics x 4 instruments)",
        n / 4
    );
    println!("exposition: {body_len} bytes");
    println!(
        "heap in use after a scrape (exposition freed): {} bytes, {} per series",
        heap,
        heap / series
    );
}
