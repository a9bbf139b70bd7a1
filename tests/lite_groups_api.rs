//! The consumer-group REST API of `streamhouse-lite` over HTTP: list, describe, commit,
//! reset, seek and delete, with StreamHouse's field names, and their 400 and 404 answers.

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use object_store::memory::InMemory;
use reqwest::StatusCode;
use serde_json::{Value, json};
use streamhouse_observability::catalog;
use support::lite::{LiteTestServer, eventually, start, test_config};

const TOPIC: &str = "orders";

/// Produces `count` records of 200-byte values to `partition`; their offsets.
async fn produce(server: &LiteTestServer, partition: u32, count: usize) -> Vec<u64> {
    let records = (0..count)
        .map(|i| json!({ "value": format!("{i:0200}"), "partition": partition }))
        .collect();
    let body = server.produce_batch(TOPIC, records).await;
    body["offsets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["offset"].as_u64().unwrap())
        .collect()
}

/// The timestamp of the record at `offset` of `partition`.
async fn timestamp_of(server: &LiteTestServer, partition: u32, offset: u64) -> u64 {
    let (status, body) = server
        .get(&format!(
            "/api/v1/consume?topic={TOPIC}&partition={partition}&offset={offset}&maxRecords=1"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["records"][0]["timestamp"].as_u64().unwrap()
}

async fn commit(server: &LiteTestServer, group: &str, partition: u32, offset: u64) -> Value {
    let (status, body) = server
        .post(
            "/api/v1/consumer-groups/commit",
            &json!({ "groupId": group, "topic": TOPIC, "partition": partition, "offset": offset }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

fn keys(value: &Value) -> BTreeSet<&str> {
    value
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {value}"))
        .keys()
        .map(String::as_str)
        .collect()
}

fn assert_keys(value: &Value, expected: &[&str]) {
    assert_eq!(
        keys(value),
        expected.iter().copied().collect(),
        "fields of {value}"
    );
}

fn assert_error(answer: &(StatusCode, Value), status: StatusCode, code: &str) {
    assert_eq!(answer.0, status, "{}", answer.1);
    assert_eq!(answer.1["error"], code, "{}", answer.1);
    assert!(answer.1["message"].as_str().is_some_and(|m| !m.is_empty()));
}

async fn list(server: &LiteTestServer) -> Vec<Value> {
    let (status, body) = server.get("/api/v1/consumer-groups").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body.as_array().unwrap().clone()
}

async fn reset(server: &LiteTestServer, group: &str, body: Value) -> (StatusCode, Value) {
    server
        .post(&format!("/api/v1/consumer-groups/{group}/reset"), &body)
        .await
}

async fn seek(server: &LiteTestServer, group: &str, body: Value) -> (StatusCode, Value) {
    server
        .post(&format!("/api/v1/consumer-groups/{group}/seek"), &body)
        .await
}

/// `(partition, oldOffset, newOffset)` of each detail, checking every detail's fields.
fn moves(answer: &Value, count_field: &str, with_timestamp: bool) -> Vec<(u64, Value, u64)> {
    let mut fields = vec!["topic", "partition", "oldOffset", "newOffset"];
    if with_timestamp {
        fields.push("timestampFound");
    }
    assert_keys(answer, &["success", count_field, "details"]);
    assert_eq!(answer["success"], true);
    let details = answer["details"].as_array().unwrap();
    assert_eq!(answer[count_field], details.len());
    details
        .iter()
        .map(|d| {
            assert_keys(d, &fields);
            assert_eq!(d["topic"], TOPIC);
            (
                d["partition"].as_u64().unwrap(),
                d["oldOffset"].clone(),
                d["newOffset"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_lives_from_its_first_commit_to_its_delete() {
    let server = start(test_config(), Arc::new(InMemory::new())).await;
    server.create_topic(TOPIC, 2).await;
    // Partition 1 first, so all of it is older than partition 0's second half.
    produce(&server, 1, 4).await;
    let early = produce(&server, 0, 5).await;
    assert_eq!(early, [0, 1, 2, 3, 4]);
    tokio::time::sleep(Duration::from_millis(20)).await;
    produce(&server, 0, 5).await;
    // 200-byte values fill 1000-byte segments: the search by timestamp reads the store.
    eventually(Duration::from_secs(10), "segments flushed", || async {
        (server.metrics().await.sum(&catalog::SEGMENT_FLUSHES, "") >= 2.0).then_some(())
    })
    .await;
    let first = timestamp_of(&server, 0, 0).await;
    let fourth = timestamp_of(&server, 0, 4).await;
    let fifth = timestamp_of(&server, 0, 5).await;
    assert!(fifth > fourth, "{fourth} {fifth}");

    // Commit: the answer, the detail and the list.
    assert_eq!(
        commit(&server, "g1", 0, 3).await,
        json!({ "success": true })
    );
    let (status, detail) = server.get("/api/v1/consumer-groups/g1").await;
    assert_eq!(status, StatusCode::OK, "{detail}");
    assert_keys(&detail, &["groupId", "offsets", "members"]);
    assert_eq!(detail["groupId"], "g1");
    assert_eq!(detail["members"], json!({}));
    assert_eq!(
        detail["offsets"],
        json!([{
            "topic": TOPIC, "partitionId": 0, "committedOffset": 3,
            "highWatermark": 10, "lag": 7,
        }])
    );
    let groups = list(&server).await;
    assert_eq!(
        groups,
        [json!({ "groupId": "g1", "topics": [TOPIC], "totalLag": 7, "partitionCount": 1 })]
    );

    // A second partition: lag adds up.
    commit(&server, "g1", 1, 1).await;
    assert_eq!(list(&server).await[0]["totalLag"], 10);
    assert_eq!(list(&server).await[0]["partitionCount"], 2);

    // Past the high watermark: accepted, lag 0 (never negative), here and in `/lag`.
    commit(&server, "g1", 0, 50).await;
    let (_, detail) = server.get("/api/v1/consumer-groups/g1").await;
    assert_eq!(detail["offsets"][0]["committedOffset"], 50);
    assert_eq!(detail["offsets"][0]["highWatermark"], 10);
    assert_eq!(detail["offsets"][0]["lag"], 0);
    let (_, lag) = server.get("/api/v1/consumer-groups/g1/lag").await;
    assert_eq!(lag["totalLag"], 3);
    assert_eq!(list(&server).await[0]["totalLag"], 3);

    // Reset to earliest, every partition the group has offsets on.
    let (status, answer) = reset(&server, "g1", json!({ "strategy": "earliest" })).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        moves(&answer, "partitionsReset", false),
        [(0, json!(50), 0), (1, json!(1), 0)]
    );
    assert_eq!(list(&server).await[0]["totalLag"], 14);

    // Latest, one partition; specific, one topic (capped at the high watermark).
    let (_, answer) = reset(
        &server,
        "g1",
        json!({ "strategy": "latest", "topic": TOPIC, "partition": 1 }),
    )
    .await;
    assert_eq!(moves(&answer, "partitionsReset", false), [(1, json!(0), 4)]);
    let (_, answer) = reset(
        &server,
        "g1",
        json!({ "strategy": "specific", "topic": TOPIC, "offset": 6 }),
    )
    .await;
    assert_eq!(
        moves(&answer, "partitionsReset", false),
        [(0, json!(0), 6), (1, json!(4), 4)]
    );

    // By timestamp: the first record at least that late, else the high watermark.
    let (_, answer) = reset(
        &server,
        "g1",
        json!({ "strategy": "timestamp", "timestamp": fourth + 1 }),
    )
    .await;
    assert_eq!(
        moves(&answer, "partitionsReset", false),
        [(0, json!(6), 5), (1, json!(4), 4)]
    );

    // Seek: the same search, with the timestamp found.
    let (status, answer) = seek(&server, "g1", json!({ "topic": TOPIC, "timestamp": fifth })).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        moves(&answer, "partitionsUpdated", true),
        [(0, json!(5), 5), (1, json!(4), 4)]
    );
    assert_eq!(answer["details"][0]["timestampFound"], fifth);
    assert_eq!(answer["details"][1]["timestampFound"], Value::Null);
    let (_, answer) = seek(
        &server,
        "g1",
        json!({ "topic": TOPIC, "partition": 0, "timestamp": 0 }),
    )
    .await;
    assert_eq!(
        moves(&answer, "partitionsUpdated", true),
        [(0, json!(5), 0)]
    );
    assert_eq!(answer["details"][0]["timestampFound"], first);
    let (_, answer) = seek(
        &server,
        "g1",
        json!({ "topic": TOPIC, "partition": 0, "timestamp": u64::MAX / 2 }),
    )
    .await;
    assert_eq!(
        moves(&answer, "partitionsUpdated", true),
        [(0, json!(0), 10)]
    );
    assert_eq!(answer["details"][0]["timestampFound"], Value::Null);

    // Delete: gone from the detail and the list.
    let (status, answer) = server.delete("/api/v1/consumer-groups/g1").await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        answer,
        json!({ "success": true, "groupId": "g1", "partitionsDeleted": 2 })
    );
    assert_error(
        &server.get("/api/v1/consumer-groups/g1").await,
        StatusCode::NOT_FOUND,
        "group_not_found",
    );
    assert!(list(&server).await.is_empty());
    assert_error(
        &server.delete("/api/v1/consumer-groups/g1").await,
        StatusCode::NOT_FOUND,
        "group_not_found",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_list_is_sorted_and_a_group_without_offsets_goes_with_its_last_member() {
    let server = start(test_config(), Arc::new(InMemory::new())).await;
    server.create_topic(TOPIC, 2).await;
    server.create_topic("audit", 1).await;
    produce(&server, 0, 3).await;
    for group in ["b", "c", "a"] {
        commit(&server, group, 0, 1).await;
    }
    let (status, joined) = server
        .post(
            "/api/v1/consumer-groups/m/members",
            &json!({ "topic": "audit" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{joined}");
    let member = joined["memberId"].as_str().unwrap().to_owned();
    // `a` also has a member on another topic: both topics, sorted.
    let (status, body) = server
        .post(
            "/api/v1/consumer-groups/a/members",
            &json!({ "topic": "audit" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let groups = list(&server).await;
    let ids: Vec<&str> = groups
        .iter()
        .map(|g| g["groupId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["a", "b", "c", "m"]);
    for group in &groups {
        assert_keys(group, &["groupId", "topics", "totalLag", "partitionCount"]);
    }
    assert_eq!(groups[0]["topics"], json!(["audit", TOPIC]));
    assert_eq!(groups[0]["totalLag"], 2);
    assert_eq!(
        groups[3],
        json!({ "groupId": "m", "topics": ["audit"], "totalLag": 0, "partitionCount": 0 })
    );
    let (_, detail) = server.get("/api/v1/consumer-groups/m").await;
    assert_eq!(detail["offsets"], json!([]));
    assert_eq!(
        detail["members"][&member],
        json!([{ "topic": "audit", "partition": 0 }])
    );

    // The last member leaves a group that never committed: the group is gone.
    let (status, body) = server
        .delete(&format!("/api/v1/consumer-groups/m/members/{member}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let ids: Vec<String> = list(&server)
        .await
        .iter()
        .map(|g| g["groupId"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, ["a", "b", "c"]);
    assert_error(
        &server.get("/api/v1/consumer-groups/m").await,
        StatusCode::NOT_FOUND,
        "group_not_found",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_400_and_unknown_names_404() {
    let server = start(test_config(), Arc::new(InMemory::new())).await;
    server.create_topic(TOPIC, 2).await;
    produce(&server, 0, 2).await;
    commit(&server, "g", 0, 1).await;

    // Unknown groups.
    assert_error(
        &server.get("/api/v1/consumer-groups/ghost").await,
        StatusCode::NOT_FOUND,
        "group_not_found",
    );
    assert_error(
        &server.delete("/api/v1/consumer-groups/ghost").await,
        StatusCode::NOT_FOUND,
        "group_not_found",
    );
    assert_error(
        &reset(&server, "ghost", json!({ "strategy": "earliest" })).await,
        StatusCode::NOT_FOUND,
        "group_not_found",
    );
    assert_error(
        &seek(&server, "ghost", json!({ "topic": TOPIC, "timestamp": 0 })).await,
        StatusCode::NOT_FOUND,
        "group_not_found",
    );
    // A reset never creates the group it names.
    assert!(list(&server).await.iter().all(|g| g["groupId"] != "ghost"));
    let long = "x".repeat(256);
    assert_error(
        &server.get(&format!("/api/v1/consumer-groups/{long}")).await,
        StatusCode::BAD_REQUEST,
        "invalid_group_id",
    );
    assert_error(
        &reset(&server, &long, json!({ "strategy": "earliest" })).await,
        StatusCode::BAD_REQUEST,
        "invalid_group_id",
    );

    // Reset bodies.
    let bad_resets = [
        (json!({}), StatusCode::BAD_REQUEST, "missing_field"),
        (
            json!({ "strategy": "middle" }),
            StatusCode::BAD_REQUEST,
            "invalid_strategy",
        ),
        (
            json!({ "strategy": "specific" }),
            StatusCode::BAD_REQUEST,
            "missing_field",
        ),
        (
            json!({ "strategy": "timestamp" }),
            StatusCode::BAD_REQUEST,
            "missing_field",
        ),
        (
            json!({ "strategy": "earliest", "partition": 0 }),
            StatusCode::BAD_REQUEST,
            "missing_field",
        ),
        (
            json!({ "strategy": "specific", "offset": -1 }),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            json!({ "strategy": "timestamp", "timestamp": -1 }),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            json!({ "strategy": "specific", "offset": 1e30 }),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            json!({ "strategy": 7 }),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            json!({ "strategy": "earliest", "topic": "a/b" }),
            StatusCode::BAD_REQUEST,
            "invalid_topic_name",
        ),
        (
            json!({ "strategy": "earliest", "topic": "nope" }),
            StatusCode::NOT_FOUND,
            "topic_not_found",
        ),
        (
            json!({ "strategy": "earliest", "topic": TOPIC, "partition": 9 }),
            StatusCode::NOT_FOUND,
            "partition_not_found",
        ),
        (
            json!({ "strategy": "earliest", "topic": TOPIC, "partition": -1 }),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
    ];
    for (body, status, code) in bad_resets {
        let answer = reset(&server, "g", body.clone()).await;
        assert_eq!(answer.0, status, "{body}: {}", answer.1);
        assert_eq!(answer.1["error"], code, "{body}: {}", answer.1);
    }
    assert_error(
        &server
            .post_raw("/api/v1/consumer-groups/g/reset", "{not json")
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    );

    // Seek bodies.
    let bad_seeks = [
        (
            json!({ "timestamp": 0 }),
            StatusCode::BAD_REQUEST,
            "missing_field",
        ),
        (
            json!({ "topic": TOPIC }),
            StatusCode::BAD_REQUEST,
            "missing_field",
        ),
        (
            json!({ "topic": TOPIC, "timestamp": -5 }),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            json!({ "topic": "nope", "timestamp": 0 }),
            StatusCode::NOT_FOUND,
            "topic_not_found",
        ),
        (
            json!({ "topic": TOPIC, "partition": 2, "timestamp": 0 }),
            StatusCode::NOT_FOUND,
            "partition_not_found",
        ),
    ];
    for (body, status, code) in bad_seeks {
        let answer = seek(&server, "g", body.clone()).await;
        assert_eq!(answer.0, status, "{body}: {}", answer.1);
        assert_eq!(answer.1["error"], code, "{body}: {}", answer.1);
    }

    // Nothing above moved `g`'s offset.
    let (_, detail) = server.get("/api/v1/consumer-groups/g").await;
    assert_eq!(detail["offsets"][0]["committedOffset"], 1);

    // Each refusal counted once, under the labels that exist.
    let m = server.metrics().await;
    assert_eq!(
        m.consumer_errors("", "", "group_not_found"),
        3.0,
        "{}",
        m.body
    );
    assert_eq!(m.consumer_errors(TOPIC, "", "group_not_found"), 1.0);
    assert_eq!(m.consumer_errors("", "", "invalid_request"), 2.0);
    assert_eq!(m.consumer_errors("", "g", "invalid_request"), 11.0);
    assert_eq!(m.consumer_errors("(unknown)", "g", "invalid_request"), 1.0);
    assert_eq!(m.consumer_errors("(unknown)", "g", "topic_not_found"), 2.0);
    assert_eq!(m.consumer_errors(TOPIC, "g", "partition_not_found"), 2.0);
    assert_eq!(m.consumer_errors(TOPIC, "g", "invalid_request"), 3.0);
    assert!(!m.body.contains("ghost"), "{}", m.body);
}
