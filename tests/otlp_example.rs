//! `examples/otlp_push.rs` pushes to a real collector and exits 0, also when the collector
//! is unreachable, within its demo time plus the bounded shutdown.

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use streamhouse_observability::catalog;
use support::rotel::Rotel;

fn example() -> PathBuf {
    support::process::example_binary("otlp_push")
}

fn run(endpoint: &str) -> (std::process::Output, Duration) {
    let started = Instant::now();
    let output = Command::new(example())
        .env_clear()
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        .env("OTEL_METRIC_EXPORT_INTERVAL", "200")
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .env("OTEL_EXPORTER_OTLP_TIMEOUT", "500")
        .env("STREAMHOUSE_SHUTDOWN_TIMEOUT_MS", "2000")
        .env("STREAMHOUSE_DEMO_SECONDS", "1")
        .env("STREAMHOUSE_LOG_FORMAT", "json")
        .output()
        .expect("run the example");
    (output, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_to_rotel_and_exits_zero() {
    let rotel = Rotel::start("example");
    let (output, _) = run(&rotel.http_endpoint());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    let line = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|l| l["fields"]["message"] == "processed")
        .unwrap_or_else(|| panic!("no processed line in {stdout}"));
    let trace_id = line["trace_id"].as_str().expect("trace id").to_owned();
    let names: Vec<String> = catalog::ALL
        .iter()
        .map(|def| format!("-> Name: {}\n", def.prometheus_name))
        .collect();
    let mut needles: Vec<&str> = names.iter().map(String::as_str).collect();
    needles.push(&trace_id);
    needles.push("Name           : send orders");
    // #[instrument] functions become spans.
    needles.push("Name           : produce_and_consume");
    needles.push("Name           : append_to_segment");
    rotel.wait_for(&needles, Duration::from_secs(10)).await;
}

#[test]
fn exits_zero_when_the_collector_is_unreachable() {
    let port = support::free_addr();
    let (output, took) = run(&format!("http://{port}"));
    assert!(output.status.success(), "{output:?}");
    // One second of demo, then a shutdown bounded by 2 s.
    assert!(took < Duration::from_secs(5), "took {took:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("OTLP export failed"), "{stdout}");
}
