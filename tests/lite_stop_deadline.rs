//! The stop deadline (`STREAMHOUSE_STOP_TIMEOUT_MS`) bounds the whole stop: with a store that
//! refuses every segment, the final flush gives up when the deadline less telemetry's share
//! has passed, and serving ends with an error counting what was not flushed (the main job
//! then exits non-zero).

mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::json;
use streamhouse_observability::{Telemetry, TelemetryConfig};
use support::flaky_store::FlakyStore;
use support::lite::{start_with_telemetry, test_config};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flush_that_cannot_finish_ends_at_the_deadline_and_counts_what_is_left() {
    let (store, failing) = FlakyStore::failing_segment_puts();
    failing.store(true, Ordering::SeqCst);
    let mut config = test_config();
    config.stop_timeout = Duration::from_millis(1_500);
    let telemetry = Telemetry::new(
        TelemetryConfig::default().with_shutdown_timeout(Duration::from_millis(500)),
    )
    .unwrap();
    let server = start_with_telemetry(config, Arc::new(store), telemetry).await;
    server.create_topic("stuck", 1).await;
    let records: Vec<_> = (0..20)
        .map(|i| json!({ "value": format!("{i:0100}") }))
        .collect();
    let (status, body) = server
        .post(
            "/api/v1/produce/batch",
            &json!({ "topic": "stuck", "records": records }),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    let started = Instant::now();
    let error = server
        .stop()
        .await
        .expect_err("records were left unflushed");
    let took = started.elapsed();
    // The flush's share: the deadline less telemetry's 500 ms.
    assert!(took >= Duration::from_millis(900), "{took:?}");
    assert!(took < Duration::from_millis(1_500), "{took:?}");
    let message = error.to_string();
    assert!(message.contains("not flushed"), "{message}");
    let bytes: u64 = message.split(' ').next().unwrap().parse().unwrap();
    assert!(bytes >= 20 * 100, "{message}");
}

#[test]
fn a_stop_deadline_within_telemetrys_share_is_refused_naming_the_variable() {
    let mut job = std::process::Command::new(support::process::main_job_binary())
        .env_clear()
        .env("STREAMHOUSE_HTTP_ADDR", support::free_addr().to_string())
        .env("STREAMHOUSE_LOADGEN", "off")
        .env("STREAMHOUSE_OBJECT_STORE", "memory")
        .env("STREAMHOUSE_SHUTDOWN_TIMEOUT_MS", "5000")
        .env("STREAMHOUSE_STOP_TIMEOUT_MS", "5000")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = job.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = job.kill();
            panic!("the main job started with a stop deadline it cannot keep");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = job.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&output.stderr);
    assert!(!status.success());
    assert!(text.contains("STREAMHOUSE_STOP_TIMEOUT_MS"), "{text}");
    assert!(
        text.contains("STREAMHOUSE_SHUTDOWN_TIMEOUT_MS (5000 ms)"),
        "{text}"
    );
}
