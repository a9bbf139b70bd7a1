//! A collector outage: the real collector (`rotel`) sits behind a TCP proxy that is switched
//! off for a few seconds mid-run and on again. The application records and serves
//! `/metrics` throughout, the failed exports are counted, and after recovery the collector
//! receives cumulative counters equal to everything recorded, the outage included.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use streamhouse_observability::otlp::{OtlpConfig, OtlpProtocol, Signal};
use streamhouse_observability::{Telemetry, TelemetryConfig};
use support::proxy::Proxy;
use support::rotel::Rotel;

const TOPIC: &str = "outage";
/// Bytes per record: the bytes counter is the records counter times this, so the two never
/// print the same value.
const RECORD_BYTES: u64 = 7;

/// Whether rotel printed a point of `topic` with value `value` (its detailed debug format:
/// the attributes, the timestamps, then `Value: n`).
fn printed(output: &str, topic: &str, value: u64) -> bool {
    output.split("NumberDataPoints #").any(|point| {
        point.contains(&format!("-> topic: Str({topic})\n"))
            && point.contains(&format!("\nValue: {value}\n"))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_recorded_through_a_collector_outage_arrive_after_it() {
    let rotel = Rotel::start("outage");
    let proxy = Proxy::start(rotel.http_addr).await;
    let otlp = OtlpConfig::default()
        .with_endpoint(
            &format!("http://{}", proxy.addr),
            OtlpProtocol::HttpProtobuf,
        )
        .with_metric_export_interval(Duration::from_millis(200))
        .with_metric_export_timeout(Duration::from_secs(1))
        .map_exporters(|e| e.with_timeout(Duration::from_secs(1)));
    let telemetry = Telemetry::new(
        TelemetryConfig::default()
            .with_otlp(otlp)
            .with_shutdown_timeout(Duration::from_secs(3)),
    )
    .unwrap();

    // The application: records and serves /metrics all along, each call timed.
    let recorded = Arc::new(AtomicU64::new(0));
    let app = {
        let (telemetry, recorded) = (telemetry.clone(), Arc::clone(&recorded));
        std::thread::spawn(move || {
            let mut slowest = Duration::ZERO;
            for _ in 0..300 {
                let started = Instant::now();
                telemetry
                    .producer()
                    .record_batch(TOPIC, 1, RECORD_BYTES, Duration::from_millis(2));
                recorded.fetch_add(1, Ordering::Relaxed);
                assert!(telemetry.render_prometheus().contains(TOPIC));
                slowest = slowest.max(started.elapsed());
                std::thread::sleep(Duration::from_millis(20));
            }
            slowest
        })
    };

    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = telemetry.export_failures(Signal::Metrics);
    proxy.switch_off();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let failed = telemetry.export_failures(Signal::Metrics) - before;
    proxy.switch_on();
    let slowest = tokio::task::spawn_blocking(move || app.join().unwrap())
        .await
        .unwrap();

    // Every interval of the outage failed, and none held the application.
    assert!(failed >= 3, "{failed} failed exports in 3 s at 200 ms");
    assert!(
        slowest < Duration::from_millis(500),
        "a record or scrape took {slowest:?}"
    );
    let total = recorded.load(Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let output = rotel.output();
        if printed(&output, TOPIC, total) && printed(&output, TOPIC, total * RECORD_BYTES) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "rotel never received {total} records and {} bytes for {TOPIC}",
            total * RECORD_BYTES
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    telemetry.shutdown().unwrap();
}
