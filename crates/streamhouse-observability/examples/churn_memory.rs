//! Shows that series removal keeps memory flat under consumer-group churn: 20,000 groups
//! (or the count given as the first argument) come and go, at most 50 alive at a time. Each
//! one records through `consumer().record_records`, the state is rendered as a scrape would,
//! and the oldest group's series are removed with `Telemetry::remove_series`. Resident memory
//! (the SDK's own `process_resident_memory_bytes`, Linux) is printed every 2,000 groups: without removal
//! every group would keep its series (and hit the cardinality limit), with it the figure
//! levels off after warm-up. Exits non-zero if a render ever overflows or the live groups'
//! series do not match the groups alive.
//!
//! ```text
//! scripts/churn-memory            # or: cargo run --release -p streamhouse-observability --example churn_memory -- 20000
//! ```

use std::collections::VecDeque;

use streamhouse_observability::catalog::label;
use streamhouse_observability::{Telemetry, TelemetryConfig};

/// Groups alive at once.
const ALIVE: usize = 50;
/// Groups between two memory readings.
const REPORT_EVERY: usize = 2_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let groups: usize = match std::env::args().nth(1) {
        Some(raw) => raw.parse()?,
        None => 20_000,
    };
    let telemetry = Telemetry::new(TelemetryConfig::default())?;
    let consumer = telemetry.consumer();
    let mut alive = VecDeque::with_capacity(ALIVE + 1);
    let baseline = resident_kib(&telemetry.render_prometheus())?;
    println!("{:>8} {:>12} {:>12}", "groups", "resident KiB", "series");
    println!("{:>8} {baseline:>12} {:>12}", 0, 0);
    for i in 0..groups {
        let group = format!("group-{i}");
        consumer.record_records("orders", &group, (i % 100 + 1) as u64);
        alive.push_back(group);
        if alive.len() > ALIVE {
            let gone = alive.pop_front().expect("more than ALIVE groups");
            telemetry.remove_series(label::CONSUMER_GROUP, &gone);
        }
        let text = telemetry.render_prometheus();
        if text.contains("otel_metric_overflow") {
            return Err(format!("overflow after {} groups", i + 1).into());
        }
        if (i + 1) % REPORT_EVERY == 0 || i + 1 == groups {
            let series = text
                .lines()
                .filter(|l| l.starts_with("streamhouse_consumer_records_total{"))
                .count();
            if series != alive.len() {
                return Err(format!("{series} consumer series for {} groups", alive.len()).into());
            }
            println!("{:>8} {:>12} {series:>12}", i + 1, resident_kib(&text)?);
        }
    }
    telemetry.shutdown()?;
    Ok(())
}

/// Resident memory in KiB, as the SDK's own `process_resident_memory_bytes` reports it in
/// `text`.
fn resident_kib(text: &str) -> Result<u64, Box<dyn std::error::Error>> {
    let bytes: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("process_resident_memory_bytes "))
        .ok_or("no process_resident_memory_bytes in the exposition")?
        .parse()?;
    Ok(bytes as u64 / 1024)
}
