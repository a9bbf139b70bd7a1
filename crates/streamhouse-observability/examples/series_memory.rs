//! Resident memory per series: records `N` consumer-group counter series and `N / 4` topics'
//! produce series (two counters, two histograms each), scrapes once, and prints the growth of
//! resident memory per series. Not a test: run it in release to compare builds.
//!
//! ```sh
//! cargo run --release -p streamhouse-observability --example series_memory -- 100000
//! ```

use std::time::Duration;

use streamhouse_observability::{Telemetry, TelemetryConfig};

/// Resident memory in KiB, from `/proc/self/status` (Linux).
fn resident_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let telemetry = Telemetry::new(
        TelemetryConfig::default()
            .with_service_name("series-memory")
            .with_cardinality_limit(n + 1),
    )
    .expect("telemetry starts");
    let before = resident_kib();
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
    let recorded = resident_kib();
    let body = telemetry.render_prometheus();
    let scraped = resident_kib();
    let series = n + n;
    println!(
        "series: {series} ({n} counters, {} topics x 4 instruments)",
        n / 4
    );
    println!("exposition: {} bytes", body.len());
    println!(
        "resident growth: recorded {} KiB, after a scrape {} KiB",
        recorded - before,
        scraped - before
    );
    println!(
        "bytes per series after a scrape: {}",
        (scraped - before) * 1024 / series as u64
    );
}
