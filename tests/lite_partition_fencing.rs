//! A permanent store error on one partition's segment puts fences that partition only:
//! readiness names it, `streamhouse_partitions_failed` counts it, its produces answer 503
//! naming it, its bytes leave the unflushed budget, and the other partitions keep flushing.
//! Once the store takes its puts again the fence lifts and its records are stored.

mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use streamhouse_observability::catalog;
use support::flaky_store::FlakyStore;
use support::lite::{LiteTestServer, eventually, start, test_config};

/// Produces two 600-byte records to `partition`: one full segment (segments seal at 1,000).
async fn fill_segment(server: &LiteTestServer, partition: u32) -> (StatusCode, Value) {
    let records: Vec<Value> = (0..2)
        .map(|i| json!({ "value": format!("{partition}-{i}-{}", "x".repeat(600)), "partition": partition }))
        .collect();
    server
        .post(
            "/api/v1/produce/batch",
            &json!({ "topic": "t", "records": records }),
        )
        .await
}

fn flushes(m: &support::lite::Metrics, partition: &str) -> f64 {
    m.find(
        &catalog::SEGMENT_FLUSHES,
        "",
        &[("topic", "t"), ("partition", partition)],
    )
    .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_partition_is_fenced_and_the_others_keep_flushing() {
    let (store, refusing) = FlakyStore::refusing_partition(1);
    refusing.store(true, Ordering::SeqCst);
    let server = start(test_config(), Arc::new(store)).await;
    server.create_topic("t", 3).await;

    assert_eq!(fill_segment(&server, 1).await.0, StatusCode::OK);
    let body = eventually(
        Duration::from_secs(10),
        "readiness names partition 1",
        || async {
            let (status, body) = server.get("/health/ready").await;
            (status == StatusCode::SERVICE_UNAVAILABLE).then_some(body)
        },
    )
    .await;
    // The partition is named; the store's error text is logged, not answered.
    assert_eq!(body["failing"], json!(["partition t/1"]), "{body}");
    let m = server.metrics().await;
    assert_eq!(
        m.get(&catalog::PARTITIONS_FAILED, "", &[("topic", "t")]),
        1.0
    );
    // Its 1,200 bytes left the budget: the gauge counts the other partitions only.
    assert_eq!(m.get(&catalog::UNFLUSHED_BYTES, "", &[]), 0.0);

    let (status, body) = fill_segment(&server, 1).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"], "partition_failed");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("partition 1 of topic \"t\"")
    );

    // The other partitions are stored meanwhile, several segments each.
    for _ in 0..3 {
        for partition in [0, 2] {
            assert_eq!(fill_segment(&server, partition).await.0, StatusCode::OK);
        }
    }
    eventually(
        Duration::from_secs(10),
        "partitions 0 and 2 flushed",
        || async {
            let m = server.metrics().await;
            (flushes(&m, "0") == 3.0 && flushes(&m, "2") == 3.0).then_some(())
        },
    )
    .await;
    assert_eq!(flushes(&server.metrics().await, "1"), 0.0);

    // The store takes partition 1 again: the next probe lifts the fence.
    refusing.store(false, Ordering::SeqCst);
    eventually(Duration::from_secs(10), "partition 1 flushed", || async {
        let m = server.metrics().await;
        (flushes(&m, "1") == 1.0
            && m.get(&catalog::PARTITIONS_FAILED, "", &[("topic", "t")]) == 0.0)
            .then_some(())
    })
    .await;
    eventually(Duration::from_secs(5), "ready again", || async {
        (server.get("/health/ready").await.0 == StatusCode::OK).then_some(())
    })
    .await;
    assert_eq!(fill_segment(&server, 1).await.0, StatusCode::OK);
    let (status, body) = server
        .get("/api/v1/consume?topic=t&partition=1&offset=0&maxRecords=10")
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["records"].as_array().unwrap().len(), 4, "{body}");
}
