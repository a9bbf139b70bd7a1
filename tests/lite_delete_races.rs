//! Requests racing `DELETE /api/v1/topics/{name}` over HTTP: a consume (and a malformed
//! produce) answers as if before the delete or 404, never 5xx, and records no series of the
//! deleted topic; and a delete drops the topic's segments from the segment cache at once.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use object_store::memory::InMemory;
use reqwest::StatusCode;
use serde_json::{Value, json};
use streamhouse_observability::catalog;
use support::flaky_store::FlakyStore;
use support::lite::{LiteTestServer, Metrics, eventually, start, test_config};

/// Rounds of create, fill, race, delete: each race window is short, so many of them.
const ROUNDS: usize = 20;
/// Flushed segments per topic (each request of ten 100-byte values seals one).
const SEGMENTS: usize = 3;
/// Records left in memory after the flushed ones.
const IN_MEMORY: usize = 5;
/// Requests one racer makes at most, so a delete that never lands fails the test instead
/// of hanging it.
const MAX_REQUESTS: usize = 5_000;

/// A 100-byte value, distinct per index: ten of them fill a 1000-byte segment.
fn value(i: usize) -> String {
    format!("{i:0100}")
}

/// Creates `topic` with one partition holding [`SEGMENTS`] flushed segments and
/// [`IN_MEMORY`] records after them; returns when every segment is flushed (reads of them
/// then go to the cache and the store).
async fn fill(server: &LiteTestServer, topic: &str) {
    server.create_topic(topic, 1).await;
    let values: Vec<String> = (0..SEGMENTS * 10 + IN_MEMORY).map(value).collect();
    for chunk in values.chunks(10) {
        let records = chunk.iter().map(|v| json!({ "value": v })).collect();
        server.produce_batch(topic, records).await;
    }
    eventually(Duration::from_secs(10), "the segments to flush", || async {
        let m = server.metrics().await;
        (flushes(&m, topic) == SEGMENTS as f64).then_some(())
    })
    .await;
}

/// `streamhouse_segment_flushes_total` of `topic`, over its partitions.
fn flushes(m: &Metrics, topic: &str) -> f64 {
    let name = catalog::SEGMENT_FLUSHES.prometheus_name;
    m.parsed
        .samples
        .iter()
        .filter(|s| s.name == name && s.labels.get("topic").map(String::as_str) == Some(topic))
        .map(|s| s.value)
        .sum()
}

/// `DELETE`s `topic`, asserting 204 with no body.
async fn delete(server: &LiteTestServer, topic: &str) {
    let response = server
        .client
        .delete(server.url(&format!("/api/v1/topics/{topic}")))
        .send()
        .await
        .expect("request");
    let status = response.status();
    let body = response.text().await.expect("body");
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(body, "");
}

/// Every sample of the scrape labelled `topic="<topic>"`.
fn series_of(m: &Metrics, topic: &str) -> Vec<String> {
    m.parsed
        .samples
        .iter()
        .filter(|s| s.labels.get("topic").map(String::as_str) == Some(topic))
        .map(|s| format!("{}{:?}", s.name, s.labels))
        .collect()
}

/// Consumes `topic` from offset 0 until a 404 (or anything but 200), counting 200s in
/// `served`; returns every answer.
async fn consume_until_gone(
    server: &LiteTestServer,
    topic: &str,
    served: &AtomicUsize,
) -> Vec<(StatusCode, Value)> {
    let path = format!("/api/v1/consume?topic={topic}&partition=0&offset=0&maxRecords=1000");
    let mut answers = Vec::new();
    for _ in 0..MAX_REQUESTS {
        let (status, body) = server.get(&path).await;
        let done = status != StatusCode::OK;
        if !done {
            served.fetch_add(1, Ordering::SeqCst);
        }
        answers.push((status, body));
        if done {
            break;
        }
    }
    answers
}

/// Sends a malformed produce (a number as the value) to `topic` until a 404 (or anything
/// but 400); returns every answer.
async fn produce_malformed_until_gone(
    server: &LiteTestServer,
    topic: &str,
) -> Vec<(StatusCode, Value)> {
    let mut answers = Vec::new();
    for _ in 0..MAX_REQUESTS {
        let (status, body) = server
            .post("/api/v1/produce", &json!({ "topic": topic, "value": 5 }))
            .await;
        let done = status != StatusCode::BAD_REQUEST;
        answers.push((status, body));
        if done {
            break;
        }
    }
    answers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consume_racing_a_delete_answers_200_or_404_and_leaves_no_series() {
    // A 1-byte cache holds nothing: every read of a flushed segment goes to the store,
    // where the delete removes it.
    let config = test_config().with_cache_max_bytes(1);
    let server = Arc::new(
        start(
            config,
            Arc::new(FlakyStore::with_slow_segment_reads(Duration::from_millis(
                3,
            ))),
        )
        .await,
    );
    let total = SEGMENTS * 10 + IN_MEMORY;
    let (mut consume_404, mut produce_404, mut full_reads) = (0_u32, 0_u32, 0);
    for round in 0..ROUNDS {
        let topic = format!("delete-race-{round}");
        fill(&server, &topic).await;
        let served = Arc::new(AtomicUsize::new(0));
        let consumers: Vec<_> = (0..3)
            .map(|_| {
                let (server, topic, served) =
                    (Arc::clone(&server), topic.clone(), Arc::clone(&served));
                tokio::spawn(async move { consume_until_gone(&server, &topic, &served).await })
            })
            .collect();
        let producer = {
            let (server, topic) = (Arc::clone(&server), topic.clone());
            tokio::spawn(async move { produce_malformed_until_gone(&server, &topic).await })
        };
        // The delete lands after a varying number of served reads, mid-read more often
        // than not.
        let reads = round % 4 + 1;
        eventually(
            Duration::from_secs(10),
            "reads before the delete",
            || async { (served.load(Ordering::SeqCst) >= reads).then_some(()) },
        )
        .await;
        delete(&server, &topic).await;

        for consumer in consumers {
            let answers = consumer.await.unwrap();
            for (status, body) in &answers {
                match *status {
                    // Before the delete: everything, never a part cut off by it.
                    StatusCode::OK => {
                        assert_eq!(body["records"].as_array().unwrap().len(), total, "{body}");
                        assert_eq!(body["nextOffset"], total, "{body}");
                        full_reads += 1;
                    }
                    StatusCode::NOT_FOUND => {
                        assert_eq!(body["error"], "topic_not_found", "round {round}: {body}");
                        consume_404 += 1;
                    }
                    other => panic!("round {round}: consume answered {other}: {body}"),
                }
            }
            let (last, _) = answers.last().expect("at least one answer");
            assert_eq!(*last, StatusCode::NOT_FOUND, "round {round}: ends on a 404");
        }
        for (status, body) in producer.await.unwrap() {
            match status {
                StatusCode::BAD_REQUEST => assert_eq!(body["error"], "invalid_record", "{body}"),
                StatusCode::NOT_FOUND => {
                    assert_eq!(body["error"], "topic_not_found", "round {round}: {body}");
                    produce_404 += 1;
                }
                other => panic!("round {round}: produce answered {other}: {body}"),
            }
        }

        // Every racer is done: nothing recorded after the delete brought a series back.
        let m = server.metrics().await;
        let left = series_of(&m, &topic);
        assert!(left.is_empty(), "round {round}: {left:#?}");
        assert!(
            !m.body.contains(&format!("topic=\"{topic}\"")),
            "{}",
            m.body
        );
    }
    assert!(full_reads >= ROUNDS, "{full_reads} reads served");
    // Each refusal was counted once, as a topic that does not exist.
    let m = server.metrics().await;
    assert_eq!(
        m.consumer_errors("(unknown)", "", "topic_not_found"),
        f64::from(consume_404)
    );
    assert_eq!(
        m.producer_errors("(unknown)", "topic_not_found"),
        f64::from(produce_404)
    );
    assert_eq!(m.consumer_errors("(unknown)", "", "storage_failure"), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_topic_drops_its_segments_from_the_cache() {
    let server = start(test_config(), Arc::new(InMemory::new())).await;
    let cache_size = |m: &Metrics| m.get(&catalog::CACHE_SIZE, "", &[]);
    let read_all = |topic: &'static str| {
        let server = &server;
        async move {
            let path =
                format!("/api/v1/consume?topic={topic}&partition=0&offset=0&maxRecords=1000");
            let (status, body) = server.get(&path).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            let total = SEGMENTS * 10 + IN_MEMORY;
            assert_eq!(body["records"].as_array().unwrap().len(), total, "{body}");
        }
    };
    fill(&server, "cache-kept").await;
    fill(&server, "cache-deleted").await;
    assert_eq!(cache_size(&server.metrics().await), 0.0);

    read_all("cache-kept").await;
    let kept = cache_size(&server.metrics().await);
    assert!(kept > 0.0, "reading flushed segments fills the cache");
    read_all("cache-deleted").await;
    let both = cache_size(&server.metrics().await);
    assert!(both > kept, "{both} > {kept}");

    delete(&server, "cache-deleted").await;
    // At once, not at eviction: exactly what the other topic's segments hold.
    assert_eq!(cache_size(&server.metrics().await), kept);
    // The kept topic's segments are still served from the cache: a hit, no miss.
    let before = server.metrics().await;
    read_all("cache-kept").await;
    let after = server.metrics().await;
    let hits = |m: &Metrics| m.get(&catalog::CACHE_HITS, "", &[]);
    let misses = |m: &Metrics| m.get(&catalog::CACHE_MISSES, "", &[]);
    assert_eq!(hits(&after) - hits(&before), SEGMENTS as f64);
    assert_eq!(misses(&after), misses(&before));
    assert_eq!(cache_size(&after), kept);
}
