//! Bad input gets a 4xx with a JSON error, counts under the right error type, and leaves a
//! `/metrics` that `prometheus_client` still parses, hostile label values included.

mod support;

use std::sync::Arc;

use object_store::memory::InMemory;
use reqwest::StatusCode;
use serde_json::{Value, json};
use streamhouse_observability::catalog;
use support::lite::{LiteTestServer, start, test_config};

const HOSTILE_TOPIC: &str = "no\"such\ntopic\\";

fn assert_error(answer: &(StatusCode, Value), status: StatusCode, code: &str) {
    let (got, body) = answer;
    assert_eq!(*got, status, "{body}");
    assert_eq!(body["error"], code, "{body}");
    assert!(!body["message"].as_str().unwrap().is_empty(), "{body}");
}

async fn consume(server: &LiteTestServer, query: &str) -> (StatusCode, Value) {
    server.get(&format!("/api/v1/consume?{query}")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_with_json_and_counted() {
    let server = start(test_config(), Arc::new(InMemory::new())).await;
    server.create_topic("orders", 2).await;
    let topics = "/api/v1/topics";

    // Topics.
    let bad_name = server
        .post(topics, &json!({ "name": "quo\"te\nline", "partitions": 1 }))
        .await;
    assert_error(&bad_name, StatusCode::BAD_REQUEST, "invalid_topic_name");
    let zero = server
        .post(topics, &json!({ "name": "empty", "partitions": 0 }))
        .await;
    assert_error(&zero, StatusCode::BAD_REQUEST, "invalid_partitions");
    let negative = server
        .post(topics, &json!({ "name": "neg", "partitions": -1 }))
        .await;
    assert_error(&negative, StatusCode::BAD_REQUEST, "invalid_request");
    let exists = server
        .post(topics, &json!({ "name": "orders", "partitions": 1 }))
        .await;
    assert_error(&exists, StatusCode::CONFLICT, "topic_exists");
    assert_error(
        &server.post_raw(topics, "{").await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    );

    // Produce.
    let malformed = server
        .post_raw("/api/v1/produce", "{\"topic\": \"orders\", ")
        .await;
    assert_error(&malformed, StatusCode::BAD_REQUEST, "invalid_record");
    let wrong_type = server
        .post("/api/v1/produce", &json!({ "topic": "orders", "value": 5 }))
        .await;
    assert_error(&wrong_type, StatusCode::BAD_REQUEST, "invalid_record");
    let oversize = server
        .post(
            "/api/v1/produce",
            &json!({ "topic": "orders", "value": "x".repeat(1_025) }),
        )
        .await;
    assert_error(&oversize, StatusCode::PAYLOAD_TOO_LARGE, "record_too_large");
    let huge_body = server
        .post_raw(
            "/api/v1/produce/batch",
            format!(
                "{{\"topic\":\"orders\",\"pad\":\"{}\"}}",
                "x".repeat(70_000)
            ),
        )
        .await;
    assert_error(
        &huge_body,
        StatusCode::PAYLOAD_TOO_LARGE,
        "record_too_large",
    );
    let unknown = server
        .post(
            "/api/v1/produce",
            &json!({ "topic": HOSTILE_TOPIC, "value": "v" }),
        )
        .await;
    assert_error(&unknown, StatusCode::BAD_REQUEST, "invalid_topic_name");
    let absent = server
        .post(
            "/api/v1/produce",
            &json!({ "topic": "absent", "value": "v" }),
        )
        .await;
    assert_error(&absent, StatusCode::NOT_FOUND, "topic_not_found");
    let no_partition = server
        .post(
            "/api/v1/produce",
            &json!({ "topic": "orders", "value": "v", "partition": 7 }),
        )
        .await;
    assert_error(&no_partition, StatusCode::NOT_FOUND, "partition_not_found");
    let negative = server
        .post(
            "/api/v1/produce",
            &json!({ "topic": "orders", "value": "v", "partition": -1 }),
        )
        .await;
    assert_error(&negative, StatusCode::BAD_REQUEST, "invalid_record");
    let empty = server
        .post(
            "/api/v1/produce/batch",
            &json!({ "topic": "orders", "records": [] }),
        )
        .await;
    assert_error(&empty, StatusCode::BAD_REQUEST, "invalid_record");
    // A bad record anywhere in a batch refuses the whole batch.
    let mixed = server
        .post(
            "/api/v1/produce/batch",
            &json!({ "topic": "orders", "records": [{ "value": "ok" }, { "value": "x".repeat(2_000) }] }),
        )
        .await;
    assert_error(&mixed, StatusCode::PAYLOAD_TOO_LARGE, "record_too_large");

    // Consume.
    let base = "topic=orders&partition=0";
    assert_error(
        &consume(
            &server,
            &format!(
                "topic={}&partition=0",
                support::lite::urlencode(HOSTILE_TOPIC)
            ),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_topic_name",
    );
    assert_error(
        &consume(&server, "topic=orders&partition=9&groupId=g").await,
        StatusCode::NOT_FOUND,
        "partition_not_found",
    );
    assert_error(
        &consume(&server, &format!("{base}&offset=-1&groupId=g")).await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    );
    assert_error(
        &consume(
            &server,
            &format!("{base}&offset=99999999999999999999999&groupId=g"),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    );
    assert_error(
        &consume(&server, &format!("{base}&offset=1000&groupId=g")).await,
        StatusCode::BAD_REQUEST,
        "offset_out_of_range",
    );
    assert_error(
        &consume(&server, &format!("{base}&offset=abc&groupId=g")).await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    );
    assert_error(
        &consume(&server, &format!("{base}&maxRecords=0&groupId=g")).await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    );
    assert_error(
        &consume(&server, "partition=0").await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    );

    // Groups.
    let commit = "/api/v1/consumer-groups/commit";
    let negative = server
        .post(
            commit,
            &json!({ "groupId": "g", "topic": "orders", "partition": 0, "offset": -5 }),
        )
        .await;
    assert_error(&negative, StatusCode::BAD_REQUEST, "invalid_request");
    // Past the high watermark is accepted, as in Kafka (another group: `g` stays unknown).
    let past_end = server
        .post(
            commit,
            &json!({ "groupId": "ahead", "topic": "orders", "partition": 0, "offset": 10 }),
        )
        .await;
    assert_eq!(past_end.0, StatusCode::OK, "{}", past_end.1);
    assert_eq!(past_end.1, json!({ "success": true }));
    let huge = server
        .post(
            commit,
            &json!({ "groupId": "g", "topic": "orders", "partition": 0, "offset": 1e30 }),
        )
        .await;
    assert_error(&huge, StatusCode::BAD_REQUEST, "invalid_request");
    let no_topic = server
        .post(
            commit,
            &json!({ "groupId": "g", "topic": HOSTILE_TOPIC, "partition": 0, "offset": 0 }),
        )
        .await;
    assert_error(&no_topic, StatusCode::BAD_REQUEST, "invalid_topic_name");
    let join = server
        .post(
            "/api/v1/consumer-groups/g/members",
            &json!({ "topic": "nope" }),
        )
        .await;
    assert_error(&join, StatusCode::NOT_FOUND, "topic_not_found");
    let leave = server
        .delete("/api/v1/consumer-groups/ghost/members/m1")
        .await;
    assert_error(&leave, StatusCode::NOT_FOUND, "group_not_found");
    let lag = server.get("/api/v1/consumer-groups/ghost/lag").await;
    assert_error(&lag, StatusCode::NOT_FOUND, "group_not_found");

    // Every refusal counted exactly; names the client chose never become labels: invalid or
    // absent topics and bodies without a readable topic count under the placeholder.
    let m = server.metrics().await;
    assert_eq!(
        m.producer_errors("(unknown)", "invalid_record"),
        1.0,
        "{}",
        m.body
    );
    assert_eq!(m.producer_errors("(unknown)", "record_too_large"), 1.0);
    assert_eq!(m.producer_errors("(unknown)", "topic_not_found"), 1.0);
    assert_eq!(m.producer_errors("orders", "invalid_record"), 4.0);
    assert_eq!(m.producer_errors("orders", "record_too_large"), 2.0);
    assert_eq!(m.producer_errors("orders", "partition_not_found"), 1.0);
    assert!(!m.has_label(&catalog::PRODUCER_ERRORS, "topic", HOSTILE_TOPIC));
    assert!(!m.has_label(&catalog::PRODUCER_ERRORS, "topic", "absent"));
    assert!(!m.has_label(&catalog::PRODUCER_ERRORS, "topic", ""));
    // Consumer counts name only real topics and groups: group `g` never joined or
    // committed, and the rest fall under the placeholder.
    assert_eq!(m.consumer_errors("(unknown)", "", "invalid_request"), 2.0);
    assert_eq!(m.consumer_errors("orders", "", "partition_not_found"), 1.0);
    assert_eq!(m.consumer_errors("orders", "", "invalid_request"), 5.0);
    assert_eq!(m.consumer_errors("orders", "", "offset_out_of_range"), 1.0);
    assert_eq!(m.consumer_errors("", "", "invalid_request"), 2.0);
    assert_eq!(m.consumer_errors("(unknown)", "", "topic_not_found"), 1.0);
    assert_eq!(m.consumer_errors("", "", "group_not_found"), 2.0);
    assert!(!m.has_label(&catalog::CONSUMER_ERRORS, "consumer_group", "g"));
    // Nothing was appended.
    assert_eq!(m.sum(&catalog::PRODUCER_RECORDS, ""), 0.0);
    assert_eq!(m.get(&catalog::TOPICS, "", &[]), 1.0);
}
