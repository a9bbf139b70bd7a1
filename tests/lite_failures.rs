//! Object store failures injected under the instrumentation: errors are counted with their
//! type, readiness turns 503 and back to 200, and no acknowledged record is lost.

mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use streamhouse_observability::catalog;
use support::flaky_store::FlakyStore;
use support::lite::{eventually, start, test_config};

fn value(i: usize) -> String {
    format!("{i:0100}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_outage_is_counted_reported_and_loses_nothing() {
    let (store, failing) = FlakyStore::new(false);
    let server = start(test_config(), Arc::new(store)).await;
    server.create_topic("events", 1).await;
    assert_eq!(server.get("/health/ready").await.0, StatusCode::OK);

    failing.store(true, Ordering::SeqCst);
    // Three full segments, acknowledged while the store is down.
    for batch in 0..3 {
        let records: Vec<Value> = (0..10)
            .map(|i| json!({ "value": value(batch * 10 + i) }))
            .collect();
        let (status, body) = server
            .post(
                "/api/v1/produce/batch",
                &json!({ "topic": "events", "records": records }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    let put_timeout = [("operation", "put"), ("error_type", "timeout")];
    eventually(
        Duration::from_secs(10),
        "failed puts counted as timeouts",
        || async {
            let m = server.metrics().await;
            (m.get(&catalog::S3_ERRORS, "", &put_timeout) >= 3.0).then_some(())
        },
    )
    .await;
    // Readiness answers from a cache for up to a second.
    let body = eventually(Duration::from_secs(5), "readiness to fail", || async {
        let (status, body) = server.get("/health/ready").await;
        (status == StatusCode::SERVICE_UNAVAILABLE).then_some(body)
    })
    .await;
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["failing"], json!(["object_store", "writer_pool"]));
    let m = server.metrics().await;
    assert!(
        m.get(
            &catalog::S3_ERRORS,
            "",
            &[("operation", "list"), ("error_type", "timeout")]
        ) >= 1.0
    );
    assert_eq!(m.sum(&catalog::SEGMENT_FLUSHES, ""), 0.0);
    assert_eq!(
        m.get(
            &catalog::SEGMENT_WRITES,
            "",
            &[("topic", "events"), ("partition", "0")]
        ),
        3.0
    );

    // Everything acknowledged is readable from memory meanwhile.
    let (status, body) = server
        .get("/api/v1/consume?topic=events&partition=0&offset=25&maxRecords=100")
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["records"][0]["value"], value(25));

    // Recovery: the agents' retries flush all three segments and readiness returns.
    failing.store(false, Ordering::SeqCst);
    let m = eventually(
        Duration::from_secs(10),
        "3 flushes after recovery",
        || async {
            let m = server.metrics().await;
            (m.sum(&catalog::SEGMENT_FLUSHES, "") == 3.0).then_some(m)
        },
    )
    .await;
    // Every put either failed (counted by type), flushed a segment, or stored the topic's
    // manifest (once, before its first segment).
    assert_eq!(
        m.get(&catalog::S3_REQUESTS, "", &[("operation", "put")]),
        m.get(&catalog::S3_ERRORS, "", &put_timeout) + 3.0 + 1.0
    );
    eventually(Duration::from_secs(10), "ready again", || async {
        (server.get("/health/ready").await.0 == StatusCode::OK).then_some(())
    })
    .await;

    // No acknowledged record lost: all thirty read back, now from the store.
    let mut offset = 0;
    let mut values = Vec::new();
    while offset < 30 {
        let (status, body) = server
            .get(&format!(
                "/api/v1/consume?topic=events&partition=0&offset={offset}&maxRecords=100"
            ))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        for record in body["records"].as_array().unwrap() {
            values.push(record["value"].as_str().unwrap().to_owned());
        }
        offset = body["nextOffset"].as_u64().unwrap();
    }
    assert_eq!(values, (0..30).map(value).collect::<Vec<_>>());
    let m = server.metrics().await;
    assert_eq!(
        m.get(&catalog::S3_REQUESTS, "", &[("operation", "get")]),
        3.0
    );
    assert_eq!(m.get(&catalog::CACHE_MISSES, "", &[]), 3.0);

    // A segment read failing in the store is a consumer storage_failure, answered 503.
    server.create_topic("cold", 1).await;
    let records: Vec<Value> = (0..10).map(|i| json!({ "value": value(i) })).collect();
    server
        .post(
            "/api/v1/produce/batch",
            &json!({ "topic": "cold", "records": records }),
        )
        .await;
    eventually(Duration::from_secs(10), "cold segment flushed", || async {
        let m = server.metrics().await;
        (m.get(
            &catalog::SEGMENT_FLUSHES,
            "",
            &[("topic", "cold"), ("partition", "0")],
        ) == 1.0)
            .then_some(())
    })
    .await;
    failing.store(true, Ordering::SeqCst);
    let (status, body) = server
        .get("/api/v1/consume?topic=cold&partition=0&offset=0")
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"], "storage_failure");
    let m = server.metrics().await;
    let labels = [("topic", "cold"), ("error_type", "storage_failure")];
    assert_eq!(m.get(&catalog::CONSUMER_ERRORS, "", &labels), 1.0);
    assert_eq!(
        m.get(
            &catalog::S3_ERRORS,
            "",
            &[("operation", "get"), ("error_type", "timeout")]
        ),
        1.0
    );
}
