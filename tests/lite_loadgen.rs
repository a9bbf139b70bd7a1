//! The main job's load generator makes every catalog metric move within seconds, except the
//! failure counters: `streamhouse_s3_errors_total`, which only a failing store may move (see
//! `lite_failures`), telemetry's own export failures and dropped spans (see
//! `otlp_failures`), and the runtime's global queue depth, which stays at zero unless the
//! workers fall behind (see `process_metrics`).

mod support;

use std::sync::Arc;
use std::time::Duration;

use object_store::memory::InMemory;
use streamhouse_lite::loadgen;
use streamhouse_observability::catalog::{self, MetricKind};
use support::lite::{eventually, start, test_config};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_moves_under_the_load_generator() {
    let config = test_config()
        .with_segment_max_bytes(64 << 10)
        .with_segment_max_age(Duration::from_millis(200));
    let server = start(config, Arc::new(InMemory::new())).await;
    let generator = loadgen::spawn(format!("http://{}", server.addr));

    let still = |m: &support::lite::Metrics| -> Vec<&'static str> {
        catalog::ALL
            .iter()
            .filter(|def| {
                ![
                    &catalog::S3_ERRORS,
                    &catalog::TELEMETRY_EXPORT_FAILURES,
                    &catalog::TELEMETRY_SPANS_DROPPED,
                    &catalog::TELEMETRY_EXPOSITION_DROPPED,
                    &catalog::TELEMETRY_SCRAPES_REFUSED,
                    &catalog::TELEMETRY_SCRAPES_STOPPED,
                    &catalog::RUNTIME_GLOBAL_QUEUE_DEPTH,
                    &catalog::TELEMETRY_LOG_RECORDS_DROPPED,
                    // Only a damaged store has faults.
                    &catalog::STORAGE_FAULTS,
                    // Zero while the store takes every put (checked below).
                    &catalog::PARTITIONS_FAILED,
                    // A level: between requests nothing is in flight.
                    &catalog::HTTP_SERVER_ACTIVE_REQUESTS,
                ]
                .contains(def)
            })
            .filter(|def| {
                let suffix = if def.kind == MetricKind::Histogram {
                    "_count"
                } else {
                    ""
                };
                m.sum(def, suffix) <= 0.0
            })
            .map(|def| def.prometheus_name)
            .collect()
    };
    let m = eventually(Duration::from_secs(20), "every metric to move", || async {
        let m = server.metrics().await;
        still(&m).is_empty().then_some(m)
    })
    .await;
    generator.abort();
    // The main job's own exposition never leaves a series out.
    assert_eq!(m.sum(&catalog::TELEMETRY_EXPOSITION_DROPPED, ""), 0.0);
    // Two groups consume: both have lag series and consumed records.
    for group in ["analytics", "billing"] {
        assert!(
            m.has_label(&catalog::CONSUMER_LAG, "consumer_group", group),
            "{group}"
        );
        assert!(
            m.has_label(&catalog::CONSUMER_RECORDS, "consumer_group", group),
            "{group}"
        );
    }
    assert_eq!(
        m.get(&catalog::TOPICS, "", &[]),
        loadgen::TOPICS.len() as f64
    );
    for (topic, _) in loadgen::TOPICS {
        let failed = m.find(&catalog::PARTITIONS_FAILED, "", &[("topic", topic)]);
        assert_eq!(failed, Some(0.0), "{topic}");
    }
}
