//! The topic endpoints of REST API v1 over HTTP: `GET /topics/{name}`,
//! `GET /topics/{name}/partitions` and `DELETE /topics/{name}`, their exact shapes and
//! errors, and a delete that leaves nothing behind for a topic created again under its name.

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::TryStreamExt;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};
use reqwest::StatusCode;
use serde_json::{Value, json};
use streamhouse_observability::catalog;
use support::flaky_store::FlakyStore;
use support::lite::{LiteTestServer, eventually, start, test_config};

/// A 100-byte value, distinct per index: ten of them fill a 1000-byte segment.
fn value(i: usize) -> String {
    format!("{i:0100}")
}

fn keys(object: &Value) -> BTreeSet<&str> {
    object
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {object}"))
        .keys()
        .map(String::as_str)
        .collect()
}

/// Produces `values` in requests of ten: ten 100-byte values fill and seal a segment.
async fn produce(server: &LiteTestServer, topic: &str, partition: u32, values: &[String]) {
    for chunk in values.chunks(10) {
        let records = chunk
            .iter()
            .map(|v| json!({ "value": v, "partition": partition }))
            .collect();
        server.produce_batch(topic, records).await;
    }
}

/// Every value of `topic`/`partition` from offset 0.
async fn consume_all(server: &LiteTestServer, topic: &str, partition: u32) -> Vec<String> {
    let (status, body) = server
        .get(&format!(
            "/api/v1/consume?topic={topic}&partition={partition}&offset=0&maxRecords=10000"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["value"].as_str().unwrap().to_owned())
        .collect()
}

/// `DELETE`, returning the status and the raw body (a 204 has none).
async fn delete(server: &LiteTestServer, topic: &str) -> (StatusCode, String) {
    let response = server
        .client
        .delete(server.url(&format!("/api/v1/topics/{topic}")))
        .send()
        .await
        .expect("request");
    let status = response.status();
    (status, response.text().await.expect("body"))
}

async fn stored_paths(store: &dyn ObjectStore) -> Vec<String> {
    let metas: Vec<ObjectMeta> = store.list(None).try_collect().await.unwrap();
    metas.into_iter().map(|m| m.location.to_string()).collect()
}

async fn stored_manifest(store: &dyn ObjectStore, topic: &str) -> Value {
    let path = Path::from(format!("topics/{topic}/manifest.json"));
    let bytes = store.get(&path).await.unwrap().bytes().await.unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_detail_and_partitions_have_the_v1_shapes() {
    let store = Arc::new(InMemory::new());
    let server = start(test_config(), Arc::clone(&store) as _).await;
    server.create_topic("orders", 3).await;

    let (status, detail) = server.get("/api/v1/topics/orders").await;
    assert_eq!(status, StatusCode::OK, "{detail}");
    assert_eq!(
        keys(&detail),
        BTreeSet::from([
            "name",
            "partitions",
            "replication_factor",
            "created_at",
            "message_count",
            "size_bytes"
        ])
    );
    assert_eq!(detail["name"], "orders");
    assert_eq!(detail["partitions"], 3);
    assert_eq!(detail["replication_factor"], 1);
    assert_eq!(detail["message_count"], 0);
    assert_eq!(detail["size_bytes"], 0);
    // RFC 3339 in UTC with milliseconds: 2025-01-31T12:00:00.000Z.
    let created_at = detail["created_at"].as_str().unwrap();
    let bytes = created_at.as_bytes();
    assert_eq!(created_at.len(), 24, "{created_at}");
    assert_eq!(
        (
            bytes[4], bytes[7], bytes[10], bytes[13], bytes[16], bytes[19], bytes[23]
        ),
        (b'-', b'-', b'T', b':', b':', b'.', b'Z'),
        "{created_at}"
    );
    assert!(
        created_at[..4].parse::<u32>().unwrap() >= 2025,
        "{created_at}"
    );

    // Ten 100-byte records fill and flush one segment on each of partitions 0 and 2.
    for partition in [0, 2] {
        let values: Vec<String> = (0..10).map(value).collect();
        produce(&server, "orders", partition, &values).await;
    }
    eventually(Duration::from_secs(10), "2 flushes", || async {
        let m = server.metrics().await;
        (m.sum(&catalog::SEGMENT_FLUSHES, "") == 2.0).then_some(())
    })
    .await;
    // Every record is in the store: the size is exactly its segments' bytes.
    let metas: Vec<ObjectMeta> = store.list(None).try_collect().await.unwrap();
    let segment_bytes: u64 = metas
        .iter()
        .filter(|m| m.location.as_ref().ends_with(".seg"))
        .map(|m| m.size)
        .sum();
    assert!(segment_bytes > 2_000, "{segment_bytes}");
    let (_, detail) = server.get("/api/v1/topics/orders").await;
    assert_eq!(detail["message_count"], 20);
    assert_eq!(detail["size_bytes"], segment_bytes);
    assert_eq!(detail["created_at"], created_at, "the creation time stays");
    // One more record, in memory: counted too.
    produce(&server, "orders", 1, &["x".to_owned()]).await;
    let (_, detail) = server.get("/api/v1/topics/orders").await;
    assert_eq!(detail["message_count"], 21);
    assert!(detail["size_bytes"].as_u64().unwrap() > segment_bytes);

    // The manifest in the store is where the details come from.
    let manifest = stored_manifest(store.as_ref(), "orders").await;
    assert_eq!(manifest["created_at"], created_at);
    assert_eq!(manifest["partitions"], 3);
    assert_eq!(manifest["replication_factor"], 1);
    assert_eq!(manifest["leader_agent_id"], "lite-0");
    assert!(manifest.get("deleted_at").is_none(), "{manifest}");

    let (status, partitions) = server.get("/api/v1/topics/orders/partitions").await;
    assert_eq!(status, StatusCode::OK, "{partitions}");
    let partitions = partitions.as_array().unwrap();
    assert_eq!(partitions.len(), 3);
    for (id, partition) in partitions.iter().enumerate() {
        assert_eq!(
            keys(partition),
            BTreeSet::from([
                "topic",
                "partition_id",
                "leader_agent_id",
                "high_watermark",
                "low_watermark"
            ])
        );
        assert_eq!(partition["topic"], "orders");
        assert_eq!(partition["partition_id"], id);
        assert_eq!(partition["leader_agent_id"], "lite-0");
        assert_eq!(partition["low_watermark"], 0);
    }
    let watermarks: Vec<u64> = partitions
        .iter()
        .map(|p| p["high_watermark"].as_u64().unwrap())
        .collect();
    assert_eq!(watermarks, [10, 1, 10]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absent_and_invalid_names_answer_json_errors() {
    let server = start(test_config(), Arc::new(InMemory::new())).await;
    for path in ["/api/v1/topics/nope", "/api/v1/topics/nope/partitions"] {
        let (status, body) = server.get(path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
        assert_eq!(body["error"], "topic_not_found", "{path}: {body}");
        assert!(body["message"].is_string(), "{body}");
    }
    let (status, body) = server.delete("/api/v1/topics/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"], "topic_not_found");

    let long = "x".repeat(250);
    for name in ["bad%20name", "a%2Fb", "caf%C3%A9", long.as_str()] {
        for path in [
            format!("/api/v1/topics/{name}"),
            format!("/api/v1/topics/{name}/partitions"),
        ] {
            let (status, body) = server.get(&path).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
            assert_eq!(body["error"], "invalid_topic_name", "{path}: {body}");
        }
        let (status, body) = server.delete(&format!("/api/v1/topics/{name}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name}: {body}");
        assert_eq!(body["error"], "invalid_topic_name", "{name}: {body}");
    }
    // The longest valid name is a name like any other.
    let longest = "x".repeat(249);
    let (status, body) = server.get(&format!("/api/v1/topics/{longest}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_deleted_and_created_again_starts_from_offset_zero() {
    let store = Arc::new(InMemory::new());
    let server = start(test_config(), Arc::clone(&store) as _).await;
    server.create_topic("t", 2).await;
    server.create_topic("other", 1).await;
    // One flushed segment and five records in memory on partition 0, two on partition 1.
    let old: Vec<String> = (0..15).map(|i| format!("old-{}", value(i))).collect();
    produce(&server, "t", 0, &old).await;
    produce(&server, "t", 1, &old[..2]).await;
    eventually(Duration::from_secs(10), "a flush", || async {
        let m = server.metrics().await;
        (m.sum(&catalog::SEGMENT_FLUSHES, "") == 1.0).then_some(())
    })
    .await;
    let before = server.metrics().await;
    assert_eq!(before.get(&catalog::TOPICS, "", &[]), 2.0);
    assert_eq!(before.get(&catalog::PARTITIONS, "", &[("topic", "t")]), 2.0);

    let (status, body) = delete(&server, "t").await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(body, "");

    let (_, topics) = server.get("/api/v1/topics").await;
    assert_eq!(topics, json!([{ "name": "other", "partitions": 1 }]));
    for path in ["/api/v1/topics/t", "/api/v1/topics/t/partitions"] {
        let (status, body) = server.get(path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        assert_eq!(body["error"], "topic_not_found");
    }
    let (status, body) = delete(&server, "t").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = server
        .post("/api/v1/produce", &json!({ "topic": "t", "value": "late" }))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"], "topic_not_found");
    let (status, body) = server
        .get("/api/v1/consume?topic=t&partition=0&offset=0")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"], "topic_not_found");

    // The gauges follow the registry.
    let m = server.metrics().await;
    assert_eq!(m.get(&catalog::TOPICS, "", &[]), 1.0);
    assert_eq!(m.find(&catalog::PARTITIONS, "", &[("topic", "t")]), None);
    assert_eq!(m.get(&catalog::PARTITIONS, "", &[("topic", "other")]), 1.0);
    // The records that were only in memory left the unflushed budget with it.
    assert_eq!(server.server.broker().writer_pool().unflushed_bytes(), 0);
    // In the store: the tombstone, and no segment.
    let paths = stored_paths(store.as_ref()).await;
    assert_eq!(paths, ["topics/t/manifest.json"], "{paths:?}");
    assert!(stored_manifest(store.as_ref(), "t").await["deleted_at"].is_string());

    server.create_topic("t", 1).await;
    let (_, detail) = server.get("/api/v1/topics/t").await;
    assert_eq!(
        (
            detail["partitions"].clone(),
            detail["message_count"].clone()
        ),
        (json!(1), json!(0))
    );
    let (status, body) = server
        .post("/api/v1/produce", &json!({ "topic": "t", "value": "new" }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({ "offset": 0, "partition": 0 }));
    assert_eq!(consume_all(&server, "t", 0).await, ["new"]);
    let (status, body) = server
        .get("/api/v1/consume?topic=t&partition=1&offset=0")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"], "partition_not_found");
    let m = server.metrics().await;
    assert_eq!(m.get(&catalog::TOPICS, "", &[]), 2.0);
    assert_eq!(m.get(&catalog::PARTITIONS, "", &[("topic", "t")]), 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_racing_a_delete_answers_ok_or_404_and_leaves_nothing_behind() {
    let store = Arc::new(InMemory::new());
    let server = Arc::new(start(test_config(), Arc::clone(&store) as _).await);
    server.create_topic("race", 2).await;
    let producers: Vec<_> = (0..4)
        .map(|p| {
            let server = Arc::clone(&server);
            tokio::spawn(async move {
                let mut answers = Vec::new();
                for i in 0..400 {
                    let records: Vec<Value> = (0..5)
                        .map(|j| json!({ "value": value(p * 10_000 + i * 5 + j) }))
                        .collect();
                    let (status, body) = server
                        .post(
                            "/api/v1/produce/batch",
                            &json!({ "topic": "race", "records": records }),
                        )
                        .await;
                    let stop = status == StatusCode::NOT_FOUND;
                    answers.push((status, body));
                    if stop {
                        break;
                    }
                }
                answers
            })
        })
        .collect();
    // Let some segments seal and flush first.
    eventually(Duration::from_secs(10), "a flush", || async {
        let m = server.metrics().await;
        (m.sum(&catalog::SEGMENT_FLUSHES, "") >= 1.0).then_some(())
    })
    .await;
    let (status, body) = delete(&server, "race").await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");

    let mut refused = 0.0;
    for producer in producers {
        for (status, body) in producer.await.unwrap() {
            match status {
                StatusCode::OK => {}
                StatusCode::NOT_FOUND => {
                    assert_eq!(body["error"], "topic_not_found", "{body}");
                    refused += 1.0;
                }
                other => panic!("{other}: {body}"),
            }
        }
    }
    assert!(refused >= 1.0, "every producer ends on a 404");
    let pool = server.server.broker().writer_pool();
    eventually(Duration::from_secs(10), "the queue to drain", || async {
        (pool.pending() == 0).then_some(())
    })
    .await;
    assert_eq!(pool.unflushed_bytes(), 0);
    let paths = stored_paths(store.as_ref()).await;
    assert_eq!(paths, ["topics/race/manifest.json"], "{paths:?}");
    // Counted as a topic that does not exist, never under the deleted name.
    let m = server.metrics().await;
    assert_eq!(m.producer_errors("(unknown)", "topic_not_found"), refused);
    assert_eq!(m.producer_errors("race", "topic_not_found"), 0.0);

    // Created again: nothing of the old incarnation shows.
    server.create_topic("race", 2).await;
    let (_, detail) = server.get("/api/v1/topics/race").await;
    assert_eq!(detail["message_count"], 0);
    assert_eq!(detail["size_bytes"], 0);
    let values: Vec<String> = (0..10).map(|i| format!("new-{i}")).collect();
    produce(&server, "race", 0, &values).await;
    assert_eq!(consume_all(&server, "race", 0).await, values);
    assert!(consume_all(&server, "race", 1).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segments_queued_for_a_deleted_topic_are_never_stored() {
    let (store, failing) = FlakyStore::failing_segment_puts();
    let store = Arc::new(store);
    let server = start(test_config(), Arc::clone(&store) as _).await;
    server.create_topic("q", 1).await;
    failing.store(true, Ordering::SeqCst);
    // Three full segments, queued and retried while their puts fail.
    for batch in 0..3 {
        let values: Vec<String> = (0..10).map(|i| value(batch * 10 + i)).collect();
        produce(&server, "q", 0, &values).await;
    }
    eventually(Duration::from_secs(10), "failed segment puts", || async {
        let m = server.metrics().await;
        (m.sum(&catalog::S3_ERRORS, "") >= 3.0).then_some(())
    })
    .await;
    let pool = server.server.broker().writer_pool();
    assert!(pool.unflushed_bytes() > 0);

    let (status, body) = delete(&server, "q").await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    // The store takes segments again, but these are gone.
    failing.store(false, Ordering::SeqCst);
    eventually(Duration::from_secs(10), "the retries to stop", || async {
        (pool.pending() == 0).then_some(())
    })
    .await;
    assert_eq!(pool.unflushed_bytes(), 0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let paths = stored_paths(store.as_ref()).await;
    assert_eq!(paths, ["topics/q/manifest.json"], "{paths:?}");
    let m = server.metrics().await;
    assert_eq!(m.sum(&catalog::SEGMENT_FLUSHES, ""), 0.0);
    // Failures putting segments nobody wants do not keep the pool unready.
    eventually(Duration::from_secs(5), "ready again", || async {
        (server.get("/health/ready").await.0 == StatusCode::OK).then_some(())
    })
    .await;
}
