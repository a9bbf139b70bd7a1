//! Consumer-group churn through the reference server under a cardinality limit of 100:
//! 2,500 groups come and go over HTTP, at most 50 alive at a time, each consuming (counted
//! under its id) and committing before `DELETE /consumer-groups/{id}`. Deleting a group
//! removes its series, so the limit is never reached (`otel_metric_overflow` never shows)
//! and `/metrics` ends up naming exactly the groups still alive.

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use object_store::memory::InMemory;
use reqwest::StatusCode;
use serde_json::{Value, json};
use streamhouse_observability::catalog::{self, label};
use streamhouse_observability::{Telemetry, TelemetryConfig};
use support::lite::{LiteTestServer, start_with_telemetry, test_config};
use tokio::sync::Semaphore;

const TOPIC: &str = "churn";
const GROUPS: usize = 2_500;
const ALIVE: usize = 50;
/// Records each group consumes (and so counts under its id).
const CONSUMED: u64 = 5;
/// Groups between two overflow checks.
const CHECK_EVERY: usize = 100;

/// Telemetry configured through the server's environment variables, as `from_env` reads
/// them (tests may not set process variables).
fn telemetry() -> Telemetry {
    let config = TelemetryConfig::from_lookup(|name| {
        (name == "STREAMHOUSE_METRIC_CARDINALITY_LIMIT").then(|| "100".to_owned())
    })
    .expect("the cardinality limit parses")
    .with_service_instance_id("test-instance");
    assert_eq!(config.cardinality_limit, 100);
    Telemetry::new(config).expect("telemetry starts")
}

fn group_id(i: usize) -> String {
    format!("churn-{i:04}")
}

fn expect_ok(answer: (StatusCode, Value), what: &str) -> Value {
    let (status, body) = answer;
    assert_eq!(status, StatusCode::OK, "{what}: {body}");
    body
}

/// One group's life up to its delete: created by a commit, consumes `CONSUMED` records under
/// its id, commits past them.
async fn live(server: &LiteTestServer, group: &str) {
    let commit =
        |offset: u64| json!({ "groupId": group, "topic": TOPIC, "partition": 0, "offset": offset });
    let path = "/api/v1/consumer-groups/commit";
    expect_ok(server.post(path, &commit(0)).await, "first commit");
    let consumed = expect_ok(
        server
            .get(&format!(
                "/api/v1/consume?topic={TOPIC}&partition=0&offset=0&maxRecords={CONSUMED}&groupId={group}"
            ))
            .await,
        "consume",
    );
    assert_eq!(
        consumed["records"].as_array().map(Vec::len),
        Some(CONSUMED as usize),
        "{consumed}"
    );
    expect_ok(server.post(path, &commit(CONSUMED)).await, "second commit");
}

/// The raw `/metrics` text (cheap enough to check every hundred groups).
async fn scrape(server: &LiteTestServer) -> String {
    let response = server
        .client
        .get(server.url("/metrics"))
        .send()
        .await
        .expect("scrape");
    assert_eq!(response.status(), StatusCode::OK);
    response.text().await.expect("body")
}

fn consumer_series(text: &str) -> usize {
    let prefix = format!("{}{{", catalog::CONSUMER_RECORDS.prometheus_name);
    text.lines().filter(|l| l.starts_with(&prefix)).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churning_groups_never_overflow_and_leave_only_the_live_series() {
    let started = Instant::now();
    let server =
        Arc::new(start_with_telemetry(test_config(), Arc::new(InMemory::new()), telemetry()).await);
    server.create_topic(TOPIC, 1).await;
    let records: Vec<Value> = (0..CONSUMED)
        .map(|i| json!({ "value": format!("record {i}") }))
        .collect();
    expect_ok(
        server
            .post(
                "/api/v1/produce/batch",
                &json!({ "topic": TOPIC, "records": records }),
            )
            .await,
        "produce",
    );

    // A group holds a permit from its first commit to its delete: never more than ALIVE
    // exist. The last ALIVE groups keep theirs and stay.
    let permits = Arc::new(Semaphore::new(ALIVE));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..GROUPS {
        let permit = Arc::clone(&permits)
            .acquire_owned()
            .await
            .expect("semaphore open");
        let shared = Arc::clone(&server);
        tasks.spawn(async move {
            let server = shared;
            let group = group_id(i);
            live(&server, &group).await;
            if i < GROUPS - ALIVE {
                let deleted = server
                    .delete(&format!("/api/v1/consumer-groups/{group}"))
                    .await;
                assert_eq!(deleted.0, StatusCode::OK, "delete {group}: {}", deleted.1);
                drop(permit);
            } else {
                permit.forget();
            }
        });
        // Reap finished tasks as we go, so a failed one fails the test now.
        while let Some(done) = tasks.try_join_next() {
            done.expect("group task");
        }
        if (i + 1) % CHECK_EVERY == 0 {
            let text = scrape(&server).await;
            assert!(
                !text.contains("otel_metric_overflow"),
                "overflow after {} groups:\n{text}",
                i + 1
            );
            assert!(
                consumer_series(&text) <= ALIVE,
                "{} consumer series after {} groups, at most {ALIVE} alive",
                consumer_series(&text),
                i + 1
            );
        }
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("group task");
    }

    let metrics = server.metrics().await;
    assert!(
        !metrics.body.contains("otel_metric_overflow"),
        "{}",
        metrics.body
    );
    let live: BTreeSet<String> = (GROUPS - ALIVE..GROUPS).map(group_id).collect();
    // Every series naming a group names a live one, and each live group has its consumer
    // series with exactly what it consumed.
    let named: BTreeSet<String> = metrics
        .parsed
        .samples
        .iter()
        .filter_map(|s| s.labels.get(label::CONSUMER_GROUP).cloned())
        .filter(|g| !g.is_empty())
        .collect();
    assert_eq!(named, live);
    assert_eq!(consumer_series(&metrics.body), ALIVE, "{}", metrics.body);
    for group in &live {
        let labels = [
            (label::TOPIC, TOPIC),
            (label::CONSUMER_GROUP, group.as_str()),
        ];
        assert_eq!(
            metrics.find(&catalog::CONSUMER_RECORDS, "", &labels),
            Some(CONSUMED as f64),
            "{group}"
        );
    }
    let (status, groups) = server.get("/api/v1/consumer-groups").await;
    assert_eq!(status, StatusCode::OK, "{groups}");
    assert_eq!(groups.as_array().map(Vec::len), Some(ALIVE), "{groups}");
    eprintln!("{GROUPS} groups churned in {:?}", started.elapsed());
}
