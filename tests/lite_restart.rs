//! A restart over the same local directory serves the old records and appends after them,
//! instead of overwriting their segments.

mod support;

use reqwest::StatusCode;
use serde_json::{Value, json};
use streamhouse_lite::config::StoreLocation;
use streamhouse_observability::catalog;
use support::lite::{start_from_config, test_config};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_recovers_topics_and_offsets_from_the_store() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = test_config().with_store(StoreLocation::Local(dir.path().to_owned()));

    let first = start_from_config(config.clone()).await;
    first.create_topic("kept", 2).await;
    // 25 records on partition 1: two full segments and five buffered ones.
    let records: Vec<Value> = (0..25)
        .map(|i| json!({ "value": format!("{i:0100}"), "partition": 1 }))
        .collect();
    for chunk in records.chunks(10) {
        let (status, body) = first
            .post(
                "/api/v1/produce/batch",
                &json!({ "topic": "kept", "records": chunk }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    // Shutdown seals and flushes the buffered five.
    first.shutdown().await;

    let second = start_from_config(config).await;
    let (_, topics) = second.get("/api/v1/topics").await;
    assert_eq!(topics, json!([{ "name": "kept", "partitions": 2 }]));
    let mut offset = 0;
    let mut values = Vec::new();
    while offset < 25 {
        let (status, body) = second
            .get(&format!(
                "/api/v1/consume?topic=kept&partition=1&offset={offset}&maxRecords=100"
            ))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        for record in body["records"].as_array().unwrap() {
            values.push(record["value"].as_str().unwrap().to_owned());
        }
        offset = body["nextOffset"].as_u64().unwrap();
    }
    assert_eq!(
        values,
        (0..25).map(|i| format!("{i:0100}")).collect::<Vec<_>>()
    );
    let (status, body) = second
        .post(
            "/api/v1/produce",
            &json!({ "topic": "kept", "value": "after", "partition": 1 }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({ "offset": 25, "partition": 1 }));
    let m = second.metrics().await;
    assert_eq!(m.get(&catalog::TOPICS, "", &[]), 1.0);
    assert_eq!(m.get(&catalog::PARTITIONS, "", &[("topic", "kept")]), 2.0);
}
