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
//!
//! With `seed` (or `seed-no-exemplars`), the seed shape alone instead: `N / 4` topics'
//! produce handles, bound, recorded once and scraped, with the heap each stage adds per
//! series (the bound handles and the SDK's state, the store and kept label texts, the
//! handles the caller keeps):
//!
//! ```sh
//! cargo run --release -p streamhouse-observability --example series_memory -- 100000 seed
//! ```

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
    match std::env::args().nth(2).as_deref() {
        Some("seed") => return seed_stages(n, true),
        Some("seed-no-exemplars") => return seed_stages(n, false),
        _ => {}
    }
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

/// The seed shape's `n` series, with the heap each stage adds per series.
fn seed_stages(n: usize, exemplars: bool) {
    let topics = n / 4;
    let telemetry = Telemetry::new(
        TelemetryConfig::default()
            .with_service_name("series-memory")
            .with_cardinality_limit(topics + 10)
            .with_exemplars(exemplars),
    )
    .expect("telemetry starts");
    drop(telemetry.render_prometheus());
    let names: Vec<String> = (0..topics).map(|i| format!("topic-{i:06}")).collect();
    let mut last = heap_bytes();
    let mut stage = |name: &str| {
        let now = heap_bytes();
        println!(
            "{name:<40} {:>8.1} bytes per series",
            (now as f64 - last as f64) / n as f64
        );
        last = now;
    };
    let handles: Vec<_> = names
        .iter()
        .map(|t| telemetry.producer().topic(t))
        .collect();
    stage("bind (SDK state, handle cache, exemplars)");
    for handle in &handles {
        handle.record_batch(10, 1_000, Duration::from_millis(3));
    }
    stage("record");
    drop(telemetry.render_prometheus());
    stage("first scrape (store, kept label texts)");
    drop(telemetry.render_prometheus());
    stage("second scrape");
    drop(handles);
    stage("drop the caller's handles");
}
