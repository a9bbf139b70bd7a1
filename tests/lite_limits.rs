//! The topic and group limits, name checks and the consume caps of `streamhouse-lite`: each
//! limit answers its documented JSON error, and afterwards `/metrics` holds no name a client
//! chose, only real topics, real groups, `(unknown)` and `""`.

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use object_store::memory::InMemory;
use reqwest::StatusCode;
use serde_json::{Value, json};
use streamhouse_lite::LiteConfig;
use streamhouse_lite::topics::UNKNOWN_TOPIC;
use streamhouse_observability::catalog;
use support::lite::{LiteTestServer, Metrics, eventually, start, test_config};

const CONSUMER_METRICS: [&catalog::MetricDef; 4] = [
    &catalog::CONSUMER_RECORDS,
    &catalog::CONSUMER_LAG,
    &catalog::CONSUMER_REBALANCES,
    &catalog::CONSUMER_ERRORS,
];

fn assert_error(answer: &(StatusCode, Value), status: StatusCode, code: &str) {
    let (got, body) = answer;
    assert_eq!(*got, status, "{body}");
    assert_eq!(body["error"], code, "{body}");
    assert!(!body["message"].as_str().unwrap().is_empty(), "{body}");
}

/// Room for 64 KiB names in a JSON body.
fn config() -> LiteConfig {
    let mut config = test_config();
    config.max_body_bytes = 1 << 20;
    config
}

/// Every consumer series is labelled with one of `topics` and one of `groups`, or with
/// `""` (no label).
fn assert_labels_within(m: &Metrics, topics: &[&str], groups: &[&str]) {
    let set = |values: &[&str]| {
        let mut set: BTreeSet<String> = values.iter().map(|v| v.to_string()).collect();
        set.insert(String::new());
        set
    };
    for def in CONSUMER_METRICS {
        let seen = m.label_values(def, "topic");
        assert!(
            seen.is_subset(&set(topics)),
            "{}: {seen:?}",
            def.prometheus_name
        );
        let seen = m.label_values(def, "consumer_group");
        assert!(
            seen.is_subset(&set(groups)),
            "{}: {seen:?}",
            def.prometheus_name
        );
    }
}

/// No 16-byte window of any of `names` is on `/metrics`.
fn assert_absent(m: &Metrics, names: &[&str]) {
    for name in names {
        let window = &name.as_bytes()[..name.len().min(16)];
        let window = String::from_utf8_lossy(window);
        assert!(!m.body.contains(window.as_ref()), "{window:?} on /metrics");
    }
}

async fn create(server: &LiteTestServer, name: &str, partitions: u32) -> (StatusCode, Value) {
    server
        .post(
            "/api/v1/topics",
            &json!({ "name": name, "partitions": partitions }),
        )
        .await
}

/// `GET /consume?topic=orders&partition=0&` + `query`.
async fn read(server: &LiteTestServer, query: &str) -> (StatusCode, Value) {
    server
        .get(&format!("/api/v1/consume?topic=orders&partition=0&{query}"))
        .await
}

async fn join(server: &LiteTestServer, group: &str, topic: &str) -> (StatusCode, Value) {
    server
        .post(
            &format!(
                "/api/v1/consumer-groups/{}/members",
                support::lite::urlencode(group)
            ),
            &json!({ "topic": topic }),
        )
        .await
}

async fn commit(server: &LiteTestServer, group: &str, topic: &str) -> (StatusCode, Value) {
    server
        .post(
            "/api/v1/consumer-groups/commit",
            &json!({ "groupId": group, "topic": topic, "partition": 0, "offset": 0 }),
        )
        .await
}

async fn produce(server: &LiteTestServer, topic: &str, values: impl Iterator<Item = String>) {
    let records: Vec<Value> = values
        .map(|v| json!({ "value": v, "partition": 0 }))
        .collect();
    let (status, body) = server
        .post(
            "/api/v1/produce/batch",
            &json!({ "topic": topic, "records": records }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_limits_answer_409_and_refused_names_are_never_labels() {
    let mut config = config();
    config.max_topics = 3;
    config.max_partitions = 4;
    config.max_total_partitions = 5;
    let server = start(config, Arc::new(InMemory::new())).await;
    server.create_topic("a", 2).await;
    server.create_topic("b", 2).await;
    let over_total = create(&server, "refused-by-total", 2).await;
    assert_error(&over_total, StatusCode::CONFLICT, "too_many_partitions");
    server.create_topic("c", 1).await;
    let over_count = create(&server, "refused-by-count", 1).await;
    assert_error(&over_count, StatusCode::CONFLICT, "too_many_topics");
    let too_wide = create(&server, "refused-by-width", 5).await;
    assert_error(&too_wide, StatusCode::BAD_REQUEST, "invalid_partitions");
    assert_error(
        &create(&server, "a", 1).await,
        StatusCode::CONFLICT,
        "topic_exists",
    );

    // The refused topics do not exist: naming them counts under the placeholder.
    let read = server
        .get("/api/v1/consume?topic=refused-by-count&partition=0")
        .await;
    assert_error(&read, StatusCode::NOT_FOUND, "topic_not_found");
    let joined = join(&server, "g", "refused-by-total").await;
    assert_error(&joined, StatusCode::NOT_FOUND, "topic_not_found");

    let (_, topics) = server.get("/api/v1/topics").await;
    let names: Vec<&str> = topics
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a", "b", "c"]);
    let m = server.metrics().await;
    assert_eq!(m.get(&catalog::TOPICS, "", &[]), 3.0);
    assert_eq!(m.sum(&catalog::PARTITIONS, ""), 5.0);
    assert_eq!(m.consumer_errors(UNKNOWN_TOPIC, "", "topic_not_found"), 2.0);
    assert!(!m.body.contains("refused-by"), "{}", m.body);
    assert_labels_within(&m, &["a", "b", "c", UNKNOWN_TOPIC], &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_limits_answer_409_and_refused_groups_are_never_labels() {
    let mut config = config();
    config.max_groups = 2;
    config.max_group_members = 2;
    let server = start(config, Arc::new(InMemory::new())).await;
    server.create_topic("orders", 2).await;

    let (status, body) = join(&server, "g-one", "orders").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = join(&server, "g-two", "orders").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let two = body["memberId"].as_str().unwrap().to_owned();
    let refused = join(&server, "refused-group-joined", "orders").await;
    assert_error(&refused, StatusCode::CONFLICT, "too_many_groups");
    let refused = commit(&server, "refused-group-committed", "orders").await;
    assert_error(&refused, StatusCode::CONFLICT, "too_many_groups");
    let (status, body) = join(&server, "g-one", "orders").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let full = join(&server, "g-one", "orders").await;
    assert_error(&full, StatusCode::CONFLICT, "too_many_members");

    let m = server.metrics().await;
    assert_eq!(m.consumer_errors("orders", "", "limit_exceeded"), 2.0);
    assert_eq!(m.consumer_errors("orders", "g-one", "limit_exceeded"), 1.0);
    assert!(!m.body.contains("refused-group"), "{}", m.body);
    assert_labels_within(&m, &["orders"], &["g-one", "g-two"]);

    // A group that goes away frees its place.
    let (status, body) = server
        .delete(&format!("/api/v1/consumer-groups/g-two/members/{two}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = join(&server, "g-three", "orders").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, body) = server.get("/api/v1/consumer-groups/g-two").await;
    assert_eq!(body["error"], "group_not_found", "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_topic_names_and_group_ids_get_400_and_are_never_labels() {
    let server = start(config(), Arc::new(InMemory::new())).await;
    server.create_topic("orders", 1).await;
    let long_topic = "t".repeat(250);
    let huge_topic = "h".repeat(64 << 10);
    let bad_topics = [long_topic.as_str(), "a/b", "..", huge_topic.as_str()];
    for name in bad_topics {
        let created = server
            .post("/api/v1/topics", &json!({ "name": name, "partitions": 1 }))
            .await;
        assert_error(&created, StatusCode::BAD_REQUEST, "invalid_topic_name");
        let joined = join(&server, "valid-group", name).await;
        assert_error(&joined, StatusCode::BAD_REQUEST, "invalid_topic_name");
        assert_error(
            &commit(&server, "valid-group", name).await,
            StatusCode::BAD_REQUEST,
            "invalid_topic_name",
        );
    }
    // 64 KiB does not fit in a request line; the others are read from the query.
    for name in &bad_topics[..3] {
        let read = server
            .get(&format!(
                "/api/v1/consume?topic={}&partition=0",
                support::lite::urlencode(name)
            ))
            .await;
        assert_error(&read, StatusCode::BAD_REQUEST, "invalid_topic_name");
    }

    let long_group = "g".repeat(256);
    let huge_group = "ü".repeat(1024);
    let bad_groups = ["", long_group.as_str(), huge_group.as_str()];
    for group in bad_groups {
        let read = server
            .get(&format!(
                "/api/v1/consume?topic=orders&partition=0&groupId={}",
                support::lite::urlencode(group)
            ))
            .await;
        assert_error(&read, StatusCode::BAD_REQUEST, "invalid_group_id");
        assert_error(
            &commit(&server, group, "orders").await,
            StatusCode::BAD_REQUEST,
            "invalid_group_id",
        );
    }
    // An empty id does not match these routes at all.
    for group in &bad_groups[1..] {
        let joined = join(&server, group, "orders").await;
        assert_error(&joined, StatusCode::BAD_REQUEST, "invalid_group_id");
        let beat = server
            .post_raw(
                &format!(
                    "/api/v1/consumer-groups/{}/members/m/heartbeat",
                    support::lite::urlencode(group)
                ),
                "",
            )
            .await;
        assert_error(&beat, StatusCode::BAD_REQUEST, "invalid_group_id");
    }

    let m = server.metrics().await;
    // Counted, but only under the placeholder and the real topic: 4 names x (join, commit)
    // and 3 consumes; 3 consumes, 3 commits and 2 joins with bad groups; 2 heartbeats.
    assert_eq!(
        m.consumer_errors(UNKNOWN_TOPIC, "", "invalid_request"),
        11.0
    );
    assert_eq!(m.consumer_errors("orders", "", "invalid_request"), 8.0);
    assert_eq!(m.consumer_errors("", "", "invalid_request"), 2.0);
    assert_absent(&m, &[&long_topic, &huge_topic, &long_group, &huge_group]);
    assert_labels_within(&m, &["orders", UNKNOWN_TOPIC], &[]);
    assert_eq!(m.get(&catalog::TOPICS, "", &[]), 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consume_naming_an_unknown_group_records_nothing_under_it() {
    let server = start(config(), Arc::new(InMemory::new())).await;
    server.create_topic("orders", 1).await;
    produce(&server, "orders", (0..3).map(|i| format!("v{i}"))).await;

    let (status, body) = read(&server, "groupId=ghost-group-never-joined").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["records"].as_array().unwrap().len(), 3);
    let (status, body) = join(&server, "real-group", "orders").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let member = body["memberId"].as_str().unwrap().to_owned();
    let (status, body) = read(
        &server,
        &format!("groupId=real-group&memberId={member}&offset=1"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["records"].as_array().unwrap().len(), 2);
    let gone = read(&server, "groupId=real-group&memberId=not-a-member").await;
    assert_error(&gone, StatusCode::NOT_FOUND, "member_not_found");
    let ghost = read(&server, "groupId=ghost-group-with-member&memberId=m").await;
    assert_error(&ghost, StatusCode::NOT_FOUND, "group_not_found");
    let lonely = read(&server, "memberId=m").await;
    assert_error(&lonely, StatusCode::BAD_REQUEST, "invalid_request");

    let m = server.metrics().await;
    let records = |group: &str| {
        m.get(
            &catalog::CONSUMER_RECORDS,
            "",
            &[("topic", "orders"), ("consumer_group", group)],
        )
    };
    assert_eq!(records(""), 3.0, "{}", m.body);
    assert_eq!(records("real-group"), 2.0);
    assert_eq!(
        m.consumer_errors("orders", "real-group", "group_not_found"),
        1.0
    );
    assert_eq!(m.consumer_errors("orders", "", "group_not_found"), 1.0);
    assert_eq!(m.consumer_errors("orders", "", "invalid_request"), 1.0);
    assert!(!m.body.contains("ghost-group"), "{}", m.body);
    assert_labels_within(&m, &["orders"], &["real-group"]);
}

/// Payload bytes of a served record: key, value, header names and values.
fn payload_bytes(record: &Value) -> usize {
    let headers = record["headers"].as_object().unwrap();
    record["key"].as_str().map_or(0, str::len)
        + record["value"].as_str().unwrap().len()
        + headers
            .iter()
            .map(|(k, v)| k.len() + v.as_str().unwrap().len())
            .sum::<usize>()
}

/// Topic `orders`: three batches of ten 100-byte records, each filling and sealing a
/// 1000-byte segment, then five records left in the active buffer.
async fn fill(server: &LiteTestServer) {
    server.create_topic("orders", 1).await;
    for batch in 0..4 {
        let count = if batch < 3 { 10 } else { 5 };
        let values = (0..count).map(|i| format!("{:0100}", batch * 10 + i));
        produce(server, "orders", values).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_bytes_caps_a_read_that_spans_segments() {
    let mut config = config();
    let first_twenty = |records: &[Value]| records[..20].iter().map(payload_bytes).sum();
    let server = start(config.clone(), Arc::new(InMemory::new())).await;
    fill(&server).await;
    eventually(Duration::from_secs(10), "3 segments flushed", || async {
        (server.metrics().await.sum(&catalog::SEGMENT_FLUSHES, "") == 3.0).then_some(())
    })
    .await;

    let (status, all) = read(&server, "maxRecords=1000").await;
    assert_eq!(status, StatusCode::OK, "{all}");
    let records = all["records"].as_array().unwrap().clone();
    let offsets: Vec<u64> = records
        .iter()
        .map(|r| r["offset"].as_u64().unwrap())
        .collect();
    assert_eq!(
        offsets,
        (0..35).collect::<Vec<_>>(),
        "one read, every segment"
    );
    assert_eq!(all["nextOffset"], 35);

    let sizes: Vec<usize> = records.iter().map(payload_bytes).collect();
    let twelve: usize = sizes[..12].iter().sum();
    for (max_bytes, expected) in [(twelve, 12), (twelve - 1, 11), (1, 1)] {
        let query = format!("maxRecords=1000&maxBytes={max_bytes}");
        let (status, body) = read(&server, &query).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            body["records"].as_array().unwrap().len(),
            expected,
            "{max_bytes}"
        );
        assert_eq!(body["nextOffset"], expected);
    }
    let (status, body) = read(&server, "maxRecords=1000&offset=5&maxBytes=1").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["records"][0]["offset"], 5,
        "at least one record, whatever its size"
    );
    for bad in ["maxBytes=0", "maxBytes=lots", "maxBytes=-1"] {
        assert_error(
            &read(&server, bad).await,
            StatusCode::BAD_REQUEST,
            "invalid_request",
        );
    }
    drop(server);

    // The server's own cap holds whatever the reader asks.
    config.max_consume_bytes = first_twenty(&records);
    let server = start(config, Arc::new(InMemory::new())).await;
    fill(&server).await;
    for query in ["", "&maxBytes=18446744073709551615"] {
        let (status, body) = server
            .get(&format!(
                "/api/v1/consume?topic=orders&partition=0&maxRecords=1000{query}"
            ))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["records"].as_array().unwrap().len(), 20, "{query}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_records_100000_returns_100000_small_records() {
    let mut config = config();
    config.segment_max_bytes = 1 << 20;
    let server = start(config, Arc::new(InMemory::new())).await;
    server.create_topic("small", 1).await;
    for batch in 0..10 {
        produce(
            &server,
            "small",
            (0..10_000).map(|i| format!("{}", batch * 10_000 + i)),
        )
        .await;
    }
    let (status, body) = server
        .get("/api/v1/consume?topic=small&partition=0&maxRecords=100000")
        .await;
    assert_eq!(status, StatusCode::OK);
    let records = body["records"].as_array().unwrap();
    assert_eq!(records.len(), 100_000);
    assert_eq!(body["nextOffset"], 100_000);
    for (i, record) in records.iter().enumerate() {
        assert_eq!(record["offset"], i as u64);
        assert_eq!(record["value"], i.to_string());
    }
}
