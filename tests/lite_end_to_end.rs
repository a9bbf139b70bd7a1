//! `streamhouse-lite` over HTTP: produce, consume, commit, groups, and the exact metric
//! deltas each step must cause, read from `/metrics` with Python `prometheus_client`.

mod support;

use std::sync::Arc;
use std::time::Duration;

use object_store::memory::InMemory;
use reqwest::StatusCode;
use serde_json::{Value, json};
use streamhouse_observability::catalog;
use support::lite::{LiteTestServer, eventually, start, test_config};

const TOPIC: &str = "orders";
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// A 100-byte value, distinct per index: ten of them fill a 1000-byte segment.
fn value(i: usize) -> String {
    format!("{i:0100}")
}

async fn consume(server: &LiteTestServer, partition: u32, offset: u64, group: &str) -> Value {
    let (status, body) = server
        .get(&format!(
            "/api/v1/consume?topic={TOPIC}&partition={partition}&offset={offset}&maxRecords=1000&groupId={group}"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_consume_commit_and_groups_move_every_metric_exactly() {
    let server = start(test_config(), Arc::new(InMemory::new())).await;
    server.create_topic(TOPIC, 2).await;
    let before = server.metrics().await;
    let t = [("topic", TOPIC)];

    // Five batches of ten 100-byte records: each batch fills and seals one segment.
    let mut expected = Vec::new();
    for batch in 0..5 {
        let records: Vec<Value> = (0..10)
            .map(|i| {
                let v = value(batch * 10 + i);
                expected.push(v.clone());
                json!({ "value": v, "partition": 0 })
            })
            .collect();
        let (status, body) = server
            .post(
                "/api/v1/produce/batch",
                &json!({ "topic": TOPIC, "records": records }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["count"], 10);
        assert_eq!(
            body["offsets"][0],
            json!({ "partition": 0, "offset": batch * 10 })
        );
        assert_eq!(
            body["offsets"][9],
            json!({ "partition": 0, "offset": batch * 10 + 9 })
        );
    }
    // One record with a key and a trace context, to partition 1; it stays in memory.
    let (status, body) = server
        .post(
            "/api/v1/produce",
            &json!({ "topic": TOPIC, "key": "k1", "value": "hello", "partition": 1,
                     "headers": { "traceparent": TRACEPARENT } }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({ "offset": 0, "partition": 1 }));

    // Five segments sealed, flushed, and put: exactly one put per flush.
    let after = eventually(Duration::from_secs(10), "5 flushes", || async {
        let m = server.metrics().await;
        (m.get(
            &catalog::SEGMENT_FLUSHES,
            "",
            &[("topic", TOPIC), ("partition", "0")],
        ) == 5.0)
            .then_some(m)
    })
    .await;
    let delta = |def, suffix: &str, labels: &[(&str, &str)]| {
        after.get(def, suffix, labels) - before.get(def, suffix, labels)
    };
    assert_eq!(delta(&catalog::PRODUCER_RECORDS, "", &t), 51.0);
    assert_eq!(
        delta(&catalog::PRODUCER_BYTES, "", &t),
        5_000.0 + 2.0 + 5.0 + 11.0 + 55.0
    );
    assert_eq!(delta(&catalog::PRODUCER_BATCH_SIZE, "_count", &t), 6.0);
    assert_eq!(delta(&catalog::PRODUCER_BATCH_SIZE, "_sum", &t), 51.0);
    assert_eq!(
        delta(
            &catalog::PRODUCER_BATCH_SIZE,
            "_bucket",
            &[t[0], ("le", "1.0")]
        ),
        1.0
    );
    assert_eq!(
        delta(
            &catalog::PRODUCER_BATCH_SIZE,
            "_bucket",
            &[t[0], ("le", "10.0")]
        ),
        6.0
    );
    assert_eq!(delta(&catalog::PRODUCER_LATENCY, "_count", &t), 6.0);
    let p0 = [("topic", TOPIC), ("partition", "0")];
    let p1 = [("topic", TOPIC), ("partition", "1")];
    assert_eq!(delta(&catalog::SEGMENT_WRITES, "", &p0), 5.0);
    assert_eq!(delta(&catalog::SEGMENT_WRITES, "", &p1), 0.0);
    assert_eq!(delta(&catalog::SEGMENT_FLUSHES, "", &p1), 0.0);
    // One put per flush, and one for the topic's manifest before its first segment.
    let put = [("operation", "put")];
    assert_eq!(delta(&catalog::S3_REQUESTS, "", &put), 6.0);
    assert_eq!(delta(&catalog::S3_LATENCY, "_count", &put), 6.0);
    assert_eq!(
        after.sum(&catalog::SEGMENT_FLUSHES, "") + 1.0,
        after.get(&catalog::S3_REQUESTS, "", &put)
    );
    assert_eq!(after.sum(&catalog::S3_ERRORS, ""), 0.0);
    assert_eq!(after.get(&catalog::TOPICS, "", &[]), 1.0);
    assert_eq!(after.get(&catalog::PARTITIONS, "", &t), 2.0);
    assert_eq!(after.get(&catalog::AGENTS_ACTIVE, "", &[]), 2.0);
    assert!(after.get(&catalog::CONNECTIONS_ACTIVE, "", &[]) >= 1.0);
    assert!(after.get(&catalog::UPTIME, "", &[]) > 0.0);

    // Records count under a group only once it exists (joined or committed): g1 commits.
    let (status, body) = server
        .post(
            "/api/v1/consumer-groups/commit",
            &json!({ "groupId": "g1", "topic": TOPIC, "partition": 0, "offset": 0 }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Consume partition 0 from the start: each flushed segment is a cache miss and a get.
    let mut offset = 0;
    let mut values = Vec::new();
    let mut reads = 0;
    while offset < 50 {
        let body = consume(&server, 0, offset, "g1").await;
        let records = body["records"].as_array().unwrap();
        assert!(!records.is_empty());
        for (i, record) in records.iter().enumerate() {
            assert_eq!(record["offset"], offset + i as u64);
            assert_eq!(record["partition"], 0);
            values.push(record["value"].as_str().unwrap().to_owned());
        }
        offset = body["nextOffset"].as_u64().unwrap();
        reads += 1;
    }
    assert_eq!(values, expected);
    assert_eq!(reads, 1, "one read spans the five flushed segments");
    let m = server.metrics().await;
    let g1 = [("topic", TOPIC), ("consumer_group", "g1")];
    assert_eq!(m.get(&catalog::CONSUMER_RECORDS, "", &g1), 50.0);
    assert_eq!(m.get(&catalog::CACHE_MISSES, "", &[]), 5.0);
    assert_eq!(m.get(&catalog::CACHE_HITS, "", &[]), 0.0);
    assert_eq!(
        m.get(&catalog::S3_REQUESTS, "", &[("operation", "get")]),
        5.0
    );
    let cached = m.get(&catalog::CACHE_SIZE, "", &[]);
    assert!(
        cached > 5_000.0,
        "five encoded segments cached, got {cached}"
    );

    // Re-reading flushed segments is a cache hit each, not another get.
    let body = consume(&server, 0, 3, "g1").await;
    assert_eq!(body["records"][0]["value"], value(3));
    assert_eq!(body["nextOffset"], 50);
    let m = server.metrics().await;
    assert_eq!(m.get(&catalog::CACHE_HITS, "", &[]), 5.0);
    assert_eq!(m.get(&catalog::CACHE_MISSES, "", &[]), 5.0);
    assert_eq!(
        m.get(&catalog::S3_REQUESTS, "", &[("operation", "get")]),
        5.0
    );
    assert_eq!(m.get(&catalog::CONSUMER_RECORDS, "", &g1), 97.0);

    // Partition 1 from memory, headers intact.
    let body = consume(&server, 1, 0, "g1").await;
    let record = &body["records"][0];
    assert_eq!(record["key"], "k1");
    assert_eq!(record["value"], "hello");
    assert_eq!(record["headers"]["traceparent"], TRACEPARENT);
    assert!(record["timestamp"].as_u64().unwrap() > 1_600_000_000_000);
    assert_eq!(body["nextOffset"], 1);
    // At the high watermark: nothing, and the same offset again.
    let body = consume(&server, 1, 1, "g1").await;
    assert_eq!(body, json!({ "records": [], "nextOffset": 1 }));

    // Join: one rebalance, both partitions assigned, lag = high watermark - committed.
    let (status, joined) = server
        .post(
            "/api/v1/consumer-groups/g1/members",
            &json!({ "topic": TOPIC }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{joined}");
    assert_eq!(
        joined["assignments"],
        json!([{ "topic": TOPIC, "partition": 0 }, { "topic": TOPIC, "partition": 1 }])
    );
    let member_a = joined["memberId"].as_str().unwrap().to_owned();
    let lag = |m: &support::lite::Metrics, p: &str, g: &str| {
        m.find(
            &catalog::CONSUMER_LAG,
            "",
            &[("topic", TOPIC), ("partition", p), ("consumer_group", g)],
        )
    };
    let m = server.metrics().await;
    assert_eq!(
        m.get(
            &catalog::CONSUMER_REBALANCES,
            "",
            &[("consumer_group", "g1")]
        ),
        1.0
    );
    assert_eq!(lag(&m, "0", "g1"), Some(50.0));
    assert_eq!(lag(&m, "1", "g1"), Some(1.0));
    let (_, body) = server.get("/api/v1/consumer-groups/g1/lag").await;
    assert_eq!(body["totalLag"], 51);

    // Commit: lag drops by exactly what was committed.
    let (status, body) = server
        .post(
            "/api/v1/consumer-groups/commit",
            &json!({ "groupId": "g1", "topic": TOPIC, "partition": 0, "offset": 50 }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let m = server.metrics().await;
    assert_eq!(lag(&m, "0", "g1"), Some(0.0));
    assert_eq!(lag(&m, "1", "g1"), Some(1.0));
    let (_, body) = server.get("/api/v1/consumer-groups/g1/lag").await;
    assert_eq!(body["totalLag"], 1);
    assert_eq!(body["partitions"][0]["committedOffset"], 50);
    assert_eq!(body["partitions"][0]["highWatermark"], 50);

    // A second member splits the partitions; leaving hands them back. Each is a rebalance.
    let (_, joined) = server
        .post(
            "/api/v1/consumer-groups/g1/members",
            &json!({ "topic": TOPIC }),
        )
        .await;
    assert_eq!(joined["assignments"].as_array().unwrap().len(), 1);
    let member_b = joined["memberId"].as_str().unwrap().to_owned();
    // Between them, the two members hold each partition exactly once.
    let (status, described) = server.get("/api/v1/consumer-groups/g1").await;
    assert_eq!(status, StatusCode::OK, "{described}");
    let members = described["members"].as_object().unwrap();
    assert_eq!(members.len(), 2);
    let mut held: Vec<u64> = members
        .values()
        .flat_map(|a| {
            a.as_array()
                .unwrap()
                .iter()
                .map(|tp| tp["partition"].as_u64().unwrap())
        })
        .collect();
    held.sort_unstable();
    assert_eq!(held, [0, 1]);
    assert_eq!(members[&member_b], joined["assignments"]);
    let (status, _) = server
        .delete(&format!("/api/v1/consumer-groups/g1/members/{member_b}"))
        .await;
    assert_eq!(status, StatusCode::OK);
    let m = server.metrics().await;
    assert_eq!(
        m.get(
            &catalog::CONSUMER_REBALANCES,
            "",
            &[("consumer_group", "g1")]
        ),
        3.0
    );

    // The last member leaves; the group keeps its commits, so it and its lag stay.
    let (status, _) = server
        .delete(&format!("/api/v1/consumer-groups/g1/members/{member_a}"))
        .await;
    assert_eq!(status, StatusCode::OK);
    let m = server.metrics().await;
    assert_eq!(
        m.get(
            &catalog::CONSUMER_REBALANCES,
            "",
            &[("consumer_group", "g1")]
        ),
        4.0
    );
    assert_eq!(lag(&m, "0", "g1"), Some(0.0));
    assert_eq!(
        lag(&m, "1", "g1"),
        None,
        "partition 1 is neither assigned nor committed"
    );

    // A group without commits disappears when its last member leaves, and so does its lag.
    let (_, joined) = server
        .post(
            "/api/v1/consumer-groups/g2/members",
            &json!({ "topic": TOPIC }),
        )
        .await;
    let member = joined["memberId"].as_str().unwrap().to_owned();
    let m = server.metrics().await;
    assert_eq!(lag(&m, "0", "g2"), Some(50.0));
    assert_eq!(lag(&m, "1", "g2"), Some(1.0));
    server
        .delete(&format!("/api/v1/consumer-groups/g2/members/{member}"))
        .await;
    let m = server.metrics().await;
    assert!(
        !m.has_label(&catalog::CONSUMER_LAG, "consumer_group", "g2"),
        "{}",
        m.body
    );
    // The last member left a group with no offsets: the group is gone, and so are all of
    // its series (its two rebalances included), which frees their places under the limit.
    assert!(!m.body.contains(r#"consumer_group="g2""#), "{}", m.body);
    let (status, body) = server.get("/api/v1/consumer-groups/g2/lag").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    // Topics list and readiness.
    let (_, topics) = server.get("/api/v1/topics").await;
    assert_eq!(topics, json!([{ "name": TOPIC, "partitions": 2 }]));
    let (status, ready) = server.get("/health/ready").await;
    assert_eq!(status, StatusCode::OK, "{ready}");
    let names: Vec<&str> = ready["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["object_store", "writer_pool"]);
    assert_eq!(
        server.get("/health").await,
        (StatusCode::OK, json!({ "status": "ok" }))
    );
    assert_eq!(server.get("/health/live").await.0, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_on_one_segment_make_one_get() {
    let server = start(test_config(), Arc::new(InMemory::new())).await;
    server.create_topic("hot", 1).await;
    let records: Vec<Value> = (0..10).map(|i| json!({ "value": value(i) })).collect();
    server
        .post(
            "/api/v1/produce/batch",
            &json!({ "topic": "hot", "records": records }),
        )
        .await;
    eventually(Duration::from_secs(10), "the segment flushed", || async {
        let m = server.metrics().await;
        (m.sum(&catalog::SEGMENT_FLUSHES, "") == 1.0).then_some(())
    })
    .await;
    let before = server.metrics().await;
    let readers = (0..8).map(|i| {
        let url = server.url(&format!("/api/v1/consume?topic=hot&partition=0&offset={i}"));
        let client = server.client.clone();
        tokio::spawn(async move {
            let body: Value = client.get(url).send().await.unwrap().json().await.unwrap();
            body["records"][0]["value"].as_str().unwrap().to_owned()
        })
    });
    let values = futures::future::join_all(readers).await;
    for (i, value_read) in values.into_iter().enumerate() {
        assert_eq!(value_read.unwrap(), value(i));
    }
    let after = server.metrics().await;
    let delta =
        |def, labels: &[(&str, &str)]| after.get(def, "", labels) - before.get(def, "", labels);
    assert_eq!(delta(&catalog::S3_REQUESTS, &[("operation", "get")]), 1.0);
    assert_eq!(
        delta(&catalog::CACHE_HITS, &[]) + delta(&catalog::CACHE_MISSES, &[]),
        8.0
    );
    assert!(delta(&catalog::CACHE_MISSES, &[]) >= 1.0);
}
