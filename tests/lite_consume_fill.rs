//! One consume of `streamhouse-lite` returns everything available from its offset, across
//! segments in the object store and in memory, up to `maxRecords` and the byte cap: what
//! StreamHouse's clients, reading a partition with one `maxRecords=100000` call, expect.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use object_store::memory::InMemory;
use reqwest::StatusCode;
use serde_json::{Value, json};
use streamhouse_lite::LiteConfig;
use streamhouse_lite::partition_log::{PartitionLog, ReadPlan};
use support::lite::{LiteTestServer, eventually, start, test_config};

const TOPICS: usize = 5;
const PARTITIONS: u32 = 4;
const RECORDS: usize = 25_000;
const BATCH: usize = 25;
const CLIENTS: usize = 10;
/// Every record's payload: a 34-byte value and the 66 bytes of its `traceparent` header.
const RECORD_BYTES: usize = 100;
/// A valid client context, which the server keeps as it is: a fixed size whatever the
/// server's own tracing does.
const TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
/// Four batches fill a segment exactly, so each partition's 50 batches leave 12 segments
/// in the store and the last two batches in memory, whatever the interleaving of clients.
const SEGMENT_BYTES: usize = 4 * BATCH * RECORD_BYTES;

fn topic(i: usize) -> String {
    format!("load-{i}")
}

/// A fixed-size value naming where it was sent.
fn value(topic: usize, partition: u32, batch: usize, i: usize) -> String {
    let value = format!("t{topic}p{partition}b{batch}r{i}-");
    format!("{value:x<34}")
}

/// A record of exactly [`RECORD_BYTES`] for `value`.
fn record(value: &str, partition: Option<u32>) -> Value {
    assert_eq!(
        value.len() + "traceparent".len() + TRACEPARENT.len(),
        RECORD_BYTES
    );
    let mut record = json!({ "value": value, "headers": { "traceparent": TRACEPARENT } });
    if let Some(partition) = partition {
        record["partition"] = json!(partition);
    }
    record
}

fn log(server: &LiteTestServer, topic: &str, partition: u32) -> Arc<PartitionLog> {
    let topic = server.server.broker().topics().get(topic).unwrap();
    Arc::clone(topic.partition(partition).unwrap())
}

async fn consume(client: &reqwest::Client, url: String) -> Value {
    let response = client.get(url).send().await.expect("consume");
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.expect("JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_consume_per_partition_returns_all_that_concurrent_producers_wrote() {
    let mut config = test_config();
    config.segment_max_bytes = SEGMENT_BYTES;
    let server = start(config, Arc::new(InMemory::new())).await;
    for t in 0..TOPICS {
        server.create_topic(&topic(t), PARTITIONS).await;
    }

    // Each client owns two partitions and alternates between them, so batches to one
    // partition never overlap (the segment arithmetic above holds) while all 20 partitions
    // are written at once.
    let url = server.url("/api/v1/produce/batch");
    let partitions = TOPICS * PARTITIONS as usize;
    let batches_per_partition = RECORDS / BATCH / partitions;
    let mut clients = Vec::new();
    for c in 0..CLIENTS {
        let url = url.clone();
        clients.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut written: BTreeMap<(String, u32, u64), String> = BTreeMap::new();
            for batch in 0..batches_per_partition * 2 {
                let owned = c * 2 + batch % 2;
                let (t, p) = (
                    owned / PARTITIONS as usize,
                    (owned % PARTITIONS as usize) as u32,
                );
                let values: Vec<String> = (0..BATCH).map(|i| value(t, p, batch, i)).collect();
                let records: Vec<Value> = values.iter().map(|v| record(v, Some(p))).collect();
                let response = client
                    .post(&url)
                    .json(&json!({ "topic": topic(t), "records": records }))
                    .send()
                    .await
                    .expect("produce");
                assert_eq!(response.status(), StatusCode::OK);
                let body: Value = response.json().await.expect("JSON");
                let offsets = body["offsets"].as_array().unwrap();
                assert_eq!(offsets.len(), BATCH);
                for (o, v) in offsets.iter().zip(values) {
                    assert_eq!(o["partition"], p);
                    written.insert((topic(t), p, o["offset"].as_u64().unwrap()), v);
                }
            }
            written
        }));
    }
    let mut written = BTreeMap::new();
    for client in clients {
        written.extend(client.await.expect("client task"));
    }
    assert_eq!(written.len(), RECORDS);

    // The read must cross store segments and memory: every sealed segment flushed, the
    // first record only in the store, the last only in memory.
    eventually(
        Duration::from_secs(30),
        "sealed segments flushed",
        || async {
            let all_flushed = (0..TOPICS).all(|t| {
                (0..PARTITIONS).all(|p| log(&server, &topic(t), p).unflushed_bytes() == 0)
            });
            all_flushed.then_some(())
        },
    )
    .await;
    for t in 0..TOPICS {
        for p in 0..PARTITIONS {
            let log = log(&server, &topic(t), p);
            let high_watermark = log.high_watermark();
            assert_eq!(high_watermark, (RECORDS / partitions) as u64);
            assert!(matches!(log.plan_read(0, 1), ReadPlan::Flushed { .. }));
            assert!(matches!(
                log.plan_read(high_watermark - 1, 1),
                ReadPlan::Memory(r) if r.len() == 1
            ));
        }
    }

    // One call per partition, all at once.
    let mut reads = Vec::new();
    for t in 0..TOPICS {
        for p in 0..PARTITIONS {
            let url = server.url(&format!(
                "/api/v1/consume?topic={}&partition={p}&offset=0&maxRecords=100000",
                topic(t)
            ));
            let client = server.client.clone();
            reads.push(tokio::spawn(async move {
                (topic(t), p, consume(&client, url).await)
            }));
        }
    }
    let mut total = 0;
    for read in reads {
        let (topic, partition, body) = read.await.expect("read task");
        let records = body["records"].as_array().unwrap();
        assert_eq!(records.len(), RECORDS / partitions, "{topic}/{partition}");
        assert_eq!(body["nextOffset"], records.len());
        for (i, record) in records.iter().enumerate() {
            let offset = i as u64;
            assert_eq!(
                record["offset"], offset,
                "{topic}/{partition}: contiguous from 0"
            );
            assert_eq!(record["partition"], partition);
            let expected = &written[&(topic.clone(), partition, offset)];
            assert_eq!(
                record["value"],
                expected.as_str(),
                "{topic}/{partition}@{offset}"
            );
        }
        total += records.len();
    }
    assert_eq!(total, RECORDS);
}

/// Topic `capped`: 55 records of exactly [`RECORD_BYTES`], ten to a 1000-byte segment;
/// waits until the five full segments are in the store (the last five stay in memory).
async fn fill_capped(config: LiteConfig) -> LiteTestServer {
    let server = start(config, Arc::new(InMemory::new())).await;
    server.create_topic("capped", 1).await;
    for batch in 0..11 {
        let records: Vec<Value> = (0..5)
            .map(|i| record(&value(0, 0, batch, i), None))
            .collect();
        let (status, body) = server
            .post(
                "/api/v1/produce/batch",
                &json!({ "topic": "capped", "records": records }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    eventually(Duration::from_secs(10), "segments flushed", || async {
        let log = log(&server, "capped", 0);
        matches!(log.plan_read(49, 1), ReadPlan::Flushed { .. }).then_some(())
    })
    .await;
    server
}

async fn offsets(server: &LiteTestServer, query: &str) -> Vec<u64> {
    let (status, body) = server
        .get(&format!("/api/v1/consume?topic=capped&partition=0&{query}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{query}: {body}");
    let offsets: Vec<u64> = body["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["offset"].as_u64().unwrap())
        .collect();
    let next = offsets.last().map_or(0, |o| o + 1);
    assert_eq!(body["nextOffset"], next, "{query}");
    offsets
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_records_and_the_byte_cap_stop_a_fill() {
    let mut config = test_config();
    config.max_consume_bytes = 25 * RECORD_BYTES;
    let server = fill_capped(config).await;

    // The server's byte cap: 25 records, across three store segments.
    assert_eq!(
        offsets(&server, "maxRecords=100000").await,
        (0..25).collect::<Vec<_>>()
    );
    assert_eq!(
        offsets(&server, "offset=33&maxRecords=100000").await,
        (33..55).collect::<Vec<_>>(),
        "to the end: store then memory"
    );
    // The reader's own caps.
    assert_eq!(
        offsets(&server, "offset=8&maxRecords=7").await,
        (8..15).collect::<Vec<_>>()
    );
    let bytes = 12 * RECORD_BYTES;
    assert_eq!(
        offsets(
            &server,
            &format!("offset=5&maxRecords=100000&maxBytes={bytes}")
        )
        .await,
        (5..17).collect::<Vec<_>>()
    );
    assert_eq!(
        offsets(
            &server,
            &format!("maxRecords=100000&maxBytes={}", bytes - 1)
        )
        .await,
        (0..11).collect::<Vec<_>>()
    );
    assert_eq!(
        offsets(&server, "offset=20&maxRecords=100000&maxBytes=1").await,
        [20],
        "the first record even when alone too big"
    );
    drop(server);

    // The server's record cap holds whatever the reader asks.
    let mut config = test_config();
    config.max_consume_records = 30;
    let server = fill_capped(config).await;
    assert_eq!(
        offsets(&server, "offset=4&maxRecords=100000").await,
        (4..34).collect::<Vec<_>>()
    );
}
