//! `STREAMHOUSE_PRODUCE_ACK=flushed`: a produce is answered only once its records are in the
//! object store; while the store does not take them it answers 503 `request_timeout` at the
//! request deadline (retryable: delivery is at-least-once), where `memory` answers at once.

mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use object_store::{ObjectStore, ObjectStoreExt};
use reqwest::StatusCode;
use serde_json::json;
use streamhouse_lite::LiteConfig;
use streamhouse_lite::config::ProduceAck;
use support::flaky_store::FlakyStore;
use support::lite::{start, test_config};

fn config(ack: ProduceAck) -> LiteConfig {
    let mut config = test_config();
    config.produce_ack = ack;
    config.request_timeout = Duration::from_millis(800);
    config
}

/// Every stored segment's bytes, as text.
async fn stored_segments(store: &dyn ObjectStore) -> String {
    let listed: Vec<_> = store.list(None).try_collect().await.unwrap();
    let mut text = String::new();
    for meta in listed
        .iter()
        .filter(|m| m.location.as_ref().ends_with(".seg"))
    {
        let bytes = store
            .get(&meta.location)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        text.push_str(&String::from_utf8_lossy(&bytes));
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flushed_ack_means_the_record_is_in_the_store() {
    let (store, _) = FlakyStore::failing_segment_puts();
    let store = Arc::new(store);
    // Segments seal only when full or after an hour: the ack alone must get it stored.
    let server = start(config(ProduceAck::Flushed), Arc::clone(&store) as _).await;
    server.create_topic("durable", 2).await;
    for (i, partition) in [(0, 0), (1, 1), (2, 0)] {
        let value = format!("record-{i}");
        let body = json!({ "topic": "durable", "value": value, "partition": partition });
        let (status, answer) = server.post("/api/v1/produce", &body).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        // At the moment of the answer, not eventually.
        let stored = stored_segments(store.as_ref()).await;
        assert!(
            stored.contains(&value),
            "{value} not stored when acknowledged: {stored}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flushed_ack_the_store_does_not_take_times_out_with_a_retryable_503() {
    let (store, failing) = FlakyStore::failing_segment_puts();
    let store = Arc::new(store);
    failing.store(true, Ordering::SeqCst);
    let flushed = start(config(ProduceAck::Flushed), Arc::clone(&store) as _).await;
    flushed.create_topic("t", 1).await;
    let body = json!({ "topic": "t", "value": "waits" });
    let sent = Instant::now();
    let (status, answer) = flushed.post("/api/v1/produce", &body).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    assert_eq!(answer["error"], "request_timeout");
    assert!(sent.elapsed() >= Duration::from_millis(800));

    // The same outage under `memory`: answered at once.
    let (memory_store, memory_failing) = FlakyStore::failing_segment_puts();
    memory_failing.store(true, Ordering::SeqCst);
    let memory = start(config(ProduceAck::Memory), Arc::new(memory_store)).await;
    memory.create_topic("t", 1).await;
    let (status, answer) = memory.post("/api/v1/produce", &body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");

    // The store comes back: the unanswered record is stored after all, so a client that
    // retried it has it twice (at-least-once).
    failing.store(false, Ordering::SeqCst);
    support::eventually(Duration::from_secs(10), "the record stored", || async {
        stored_segments(store.as_ref())
            .await
            .contains("waits")
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_produce_waiting_on_the_store_ends_when_its_topic_is_deleted() {
    let (store, failing) = FlakyStore::failing_segment_puts();
    failing.store(true, Ordering::SeqCst);
    let mut config = config(ProduceAck::Flushed);
    // Without the deletion ending the wait, the answer would be this timeout's 503.
    config.request_timeout = Duration::from_secs(60);
    let server = start(config, Arc::new(store)).await;
    server.create_topic("doomed", 1).await;
    let body = json!({ "topic": "doomed", "value": "never stored" });
    let produce = server.post("/api/v1/produce", &body);
    let delete = async {
        // Appended (readable from memory) while its produce waits for the store.
        support::eventually(Duration::from_secs(10), "the record appended", || async {
            let (_, read) = server
                .get("/api/v1/consume?topic=doomed&partition=0&offset=0&maxRecords=1")
                .await;
            (read["records"].as_array()?.len() == 1).then_some(())
        })
        .await;
        let url = server.url("/api/v1/topics/doomed");
        server.client.delete(url).send().await.unwrap().status()
    };
    let ((status, answer), deleted) = tokio::join!(produce, delete);
    assert_eq!(deleted, StatusCode::NO_CONTENT);
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
    assert_eq!(answer["error"], "topic_not_found");
}
