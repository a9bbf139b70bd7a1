//! Produce under hostile input: the batch limit is enforced while parsing, names the client
//! chose never become labels, and the global unflushed budget answers 503 with
//! `Retry-After` until the store catches up, without losing or miscounting a byte.

mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use object_store::memory::InMemory;
use reqwest::StatusCode;
use serde_json::{Value, json};
use streamhouse_lite::LiteConfig;
use streamhouse_observability::catalog;
use support::flaky_store::FlakyStore;
use support::lite::{LiteTestServer, eventually, start, test_config};

const UNKNOWN: &str = "(unknown)";

fn assert_error(answer: &(StatusCode, Value), status: StatusCode, code: &str) {
    let (got, body) = answer;
    assert_eq!(*got, status, "{body}");
    assert_eq!(body["error"], code, "{body}");
    assert!(!body["message"].as_str().unwrap().is_empty(), "{body}");
}

fn records(n: usize) -> String {
    (0..n)
        .map(|i| format!(r#"{{"value":"v{i}"}}"#))
        .collect::<Vec<_>>()
        .join(",")
}

fn high_watermark(server: &LiteTestServer, topic: &str) -> u64 {
    let topic = server.server.broker().topics().get(topic).expect("topic");
    topic.partitions.iter().map(|p| p.high_watermark()).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_batch_limit_is_enforced_while_parsing() {
    let mut config = test_config();
    config.max_batch_records = 5;
    let server = start(config, Arc::new(InMemory::new())).await;
    server.create_topic("orders", 1).await;
    let batch = "/api/v1/produce/batch";

    let over = server
        .post_raw(
            batch,
            format!(r#"{{"topic":"orders","records":[{}]}}"#, records(6)),
        )
        .await;
    assert_error(&over, StatusCode::PAYLOAD_TOO_LARGE, "too_many_records");
    // Record 6 is not even JSON: the answer shows parsing stopped before it.
    let stopped = server
        .post_raw(
            batch,
            format!(
                r#"{{"topic":"orders","records":[{},{{"value": nope"#,
                records(5)
            ),
        )
        .await;
    assert_error(&stopped, StatusCode::PAYLOAD_TOO_LARGE, "too_many_records");
    // Within the limit the same broken record is reached and refused for what it is.
    let reached = server
        .post_raw(
            batch,
            format!(
                r#"{{"topic":"orders","records":[{},{{"value": nope"#,
                records(4)
            ),
        )
        .await;
    assert_error(&reached, StatusCode::BAD_REQUEST, "invalid_record");
    assert_eq!(high_watermark(&server, "orders"), 0, "nothing appended");

    // `topic` after `records` is read too, and at the limit the batch goes through.
    let (status, body) = server
        .post_raw(
            batch,
            format!(r#"{{"records":[{}],"topic":"orders"}}"#, records(5)),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["count"], 5);
    let late_topic = server
        .post_raw(
            batch,
            format!(r#"{{"records":[{}],"topic":"orders"}}"#, records(6)),
        )
        .await;
    assert_error(
        &late_topic,
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_many_records",
    );
    assert_eq!(high_watermark(&server, "orders"), 5);

    let m = server.metrics().await;
    assert_eq!(
        m.producer_errors("orders", "record_too_large"),
        3.0,
        "{}",
        m.body
    );
    assert_eq!(m.producer_errors("orders", "invalid_record"), 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_the_client_chose_are_never_labels() {
    let mut config = test_config();
    config.max_body_bytes = 1 << 20;
    let server = start(config, Arc::new(InMemory::new())).await;
    server.create_topic("orders", 1).await;
    let unknown = format!("u{}", "n".repeat(239));
    let huge = format!("h{}", "g".repeat(64 << 10));

    let single = "/api/v1/produce";
    let batch = "/api/v1/produce/batch";
    let absent = server
        .post(single, &json!({ "topic": unknown, "value": "v" }))
        .await;
    assert_error(&absent, StatusCode::NOT_FOUND, "topic_not_found");
    let absent_batch = server
        .post(
            batch,
            &json!({ "topic": unknown, "records": [{ "value": "v" }] }),
        )
        .await;
    assert_error(&absent_batch, StatusCode::NOT_FOUND, "topic_not_found");
    let invalid = server
        .post(single, &json!({ "topic": huge, "value": "v" }))
        .await;
    assert_error(&invalid, StatusCode::BAD_REQUEST, "invalid_topic_name");
    let invalid_batch = server
        .post(
            batch,
            &json!({ "topic": huge, "records": [{ "value": "v" }] }),
        )
        .await;
    assert_error(
        &invalid_batch,
        StatusCode::BAD_REQUEST,
        "invalid_topic_name",
    );
    // Malformed bodies: the topic answers first when it was read; a body that breaks off
    // before its topic is malformed, and counted under the placeholder all the same.
    for (body, status, code) in [
        (
            format!(r#"{{"topic":"{huge}","records":[{{"#),
            StatusCode::BAD_REQUEST,
            "invalid_topic_name",
        ),
        (
            format!(r#"{{"topic":"{unknown}","value": 5}}"#),
            StatusCode::NOT_FOUND,
            "topic_not_found",
        ),
        (
            format!(r#"{{"records":[{{"value": 5}}],"topic":"{huge}"}}"#),
            StatusCode::BAD_REQUEST,
            "invalid_record",
        ),
        (
            format!(r#"{{"records":[{{"value":"v"}}],"topic":"{huge}"#),
            StatusCode::BAD_REQUEST,
            "invalid_record",
        ),
    ] {
        let answer = server.post_raw(batch, body).await;
        assert_error(&answer, status, code);
    }
    assert_eq!(high_watermark(&server, "orders"), 0);

    let m = server.metrics().await;
    assert_eq!(
        m.producer_errors(UNKNOWN, "topic_not_found"),
        3.0,
        "{}",
        m.body
    );
    assert_eq!(
        m.producer_errors(UNKNOWN, "invalid_record"),
        5.0,
        "{}",
        m.body
    );
    assert!(
        !m.body.contains(&unknown[..64]),
        "an unknown name became a label"
    );
    assert!(
        !m.body.contains(&huge[..64]),
        "an invalid name became a label"
    );
    // No series under any other topic than the placeholder.
    assert_eq!(
        m.sum(&catalog::PRODUCER_ERRORS, ""),
        m.producer_errors(UNKNOWN, "topic_not_found")
            + m.producer_errors(UNKNOWN, "invalid_record")
    );
}

fn budget_config() -> LiteConfig {
    let mut config = test_config();
    // Two segments' worth over all partitions, one queued segment: the queue fills first,
    // then the budget, while the store refuses puts.
    config.max_unflushed_bytes = 3_000;
    config.writer_queue_segments = 1;
    config.writer_agents = 1;
    config.segment_max_age = Duration::from_millis(100);
    config
}

async fn produce_batch(server: &LiteTestServer, topic: &str, from: usize) -> reqwest::Response {
    let records: Vec<Value> = (from..from + 5)
        .map(|i| json!({ "value": format!("{i:0100}") }))
        .collect();
    server
        .client
        .post(server.url("/api/v1/produce/batch"))
        .json(&json!({ "topic": topic, "records": records }))
        .send()
        .await
        .expect("request")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_unflushed_budget_produce_backs_off_until_the_store_recovers() {
    // While the store is down every put fails (the writer pool retries it).
    let (store, closed) = FlakyStore::new(true);
    let server = start(budget_config(), Arc::new(store)).await;
    server.create_topic("events", 2).await;
    server.create_topic("audit", 1).await;
    let pool = server.server.broker().writer_pool();

    // About 500 payload bytes a request, spread over topics and partitions: the budget is
    // global, so it trips although no partition alone holds 3000 bytes.
    let mut acknowledged = 0;
    let refused = loop {
        let topic = if acknowledged % 2 == 0 {
            "events"
        } else {
            "audit"
        };
        let response = produce_batch(&server, topic, acknowledged * 5).await;
        if response.status() != StatusCode::OK {
            break response;
        }
        acknowledged += 1;
        assert!(acknowledged <= 6, "the budget never pushed back");
    };
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(refused.headers()["retry-after"], "1");
    let body: Value = refused.json().await.expect("JSON error");
    assert_eq!(body["error"], "backpressure", "{body}");
    // Untraced requests: payload is the values alone, 500 bytes a request.
    assert_eq!(pool.unflushed_bytes(), acknowledged * 500);
    assert!(
        pool.pending() <= 2,
        "one queued, one being retried: {}",
        pool.pending()
    );

    closed.store(false, Ordering::SeqCst);
    eventually(
        Duration::from_secs(10),
        "produce accepted again",
        || async {
            (produce_batch(&server, "events", 1_000).await.status() == StatusCode::OK).then_some(())
        },
    )
    .await;
    acknowledged += 1;
    eventually(Duration::from_secs(10), "every byte flushed", || async {
        (pool.unflushed_bytes() == 0 && pool.pending() == 0).then_some(())
    })
    .await;

    // Nothing acknowledged was lost, and the refusals were counted under the real topics.
    let stored = high_watermark(&server, "events") + high_watermark(&server, "audit");
    assert_eq!(stored, acknowledged as u64 * 5);
    let m = server.metrics().await;
    assert_eq!(
        m.sum(&catalog::SEGMENT_WRITES, ""),
        m.sum(&catalog::SEGMENT_FLUSHES, "")
    );
    let backpressure = m.producer_errors("events", "storage_failure")
        + m.producer_errors("audit", "storage_failure");
    assert!(backpressure >= 1.0, "{}", m.body);
    assert_eq!(m.sum(&catalog::PRODUCER_ERRORS, ""), backpressure);
}
