//! `kill -9` while four clients produce: no handler runs, nothing buffered is flushed. With
//! `STREAMHOUSE_PRODUCE_ACK=flushed` every acknowledged record is readable after a restart;
//! in either mode no offset acknowledged before the crash is ever handed out again (the
//! manifest's offset reservation), and a consumer steps over the offsets lost.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};
use support::process::MainJob;
use support::producers::{
    assert_every_acknowledged_record, create_topic, read_topic, start_producers,
};

const TOPIC: &str = "crash";
const PARTITIONS: u64 = 4;

/// The job's settings. Small reservations: a run crosses several, so handing offsets out
/// waits for manifest puts too.
fn env<'a>(ack: &'a str, store: &'a str) -> [(&'static str, &'a str); 5] {
    [
        ("STREAMHOUSE_OBJECT_STORE", store),
        ("STREAMHOUSE_LOADGEN", "off"),
        ("STREAMHOUSE_PRODUCE_ACK", ack),
        ("STREAMHOUSE_OFFSET_RESERVATION", "50"),
        ("STREAMHOUSE_SEGMENT_MAX_AGE_MS", "100"),
    ]
}

/// Produces for a while with `ack`, kills the job with SIGKILL, restarts it over the same
/// store; returns what was acknowledged, what the restarted job reads, and the job.
async fn produce_then_kill(
    ack: &str,
    store: &str,
    client: &reqwest::Client,
) -> (
    BTreeMap<(u64, u64), String>,
    BTreeMap<u64, BTreeMap<u64, String>>,
    MainJob,
) {
    let env = env(ack, store);
    let mut job = MainJob::spawn(&env);
    job.wait_live(client, Duration::from_secs(60)).await;
    create_topic(client, &job.url(""), TOPIC, PARTITIONS).await;
    let (acked, clients) = start_producers(client, &job.url(""), TOPIC, PARTITIONS, 4);
    // Past the first flushes and several reservations.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    job.kill();
    for client in clients {
        client.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 100,
        "the clients produced only {}",
        acked.len()
    );

    let mut restarted = MainJob::spawn(&env);
    restarted.wait_live(client, Duration::from_secs(60)).await;
    let stored = read_topic(client, &restarted.url(""), TOPIC, PARTITIONS).await;
    (acked, stored, restarted)
}

/// A new record to each partition lands above every offset acknowledged before the crash.
async fn assert_new_offsets_are_fresh(
    job: &MainJob,
    client: &reqwest::Client,
    acked: &BTreeMap<(u64, u64), String>,
) {
    for partition in 0..PARTITIONS {
        let answer: Value = client
            .post(job.url("/api/v1/produce"))
            .json(&json!({ "topic": TOPIC, "value": "after", "partition": partition }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let offset = answer["offset"].as_u64().expect("an offset");
        let highest = acked
            .range((partition, 0)..(partition + 1, 0))
            .map(|((_, o), _)| *o)
            .max()
            .expect("records were acknowledged on every partition");
        assert!(
            offset > highest,
            "partition {partition}: offset {offset} handed out again (acknowledged up to {highest})"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_with_flushed_acks_loses_no_acknowledged_record() {
    let dir = tempfile::tempdir().unwrap();
    let client = support::http_client(Duration::from_secs(10));
    let store = dir.path().to_str().unwrap();
    let (acked, stored, mut job) = produce_then_kill("flushed", store, &client).await;
    assert_every_acknowledged_record(&acked, &stored);
    assert_new_offsets_are_fresh(&job, &client, &acked).await;

    // The offsets the crash skipped are a gap between stored segments now: a later start
    // knows it from the manifest and reports no fault, and every record is still there.
    assert!(job.terminate(Duration::from_secs(30)).await.success());
    let mut again = MainJob::spawn(&env("flushed", store));
    again.wait_live(&client, Duration::from_secs(60)).await;
    let metrics = again.metrics(&client).await;
    let faults = support::process::sample_sum(&metrics, "streamhouse_storage_faults_total", &[]);
    assert_eq!(faults.unwrap_or(0.0), 0.0, "{metrics}");
    let stored = read_topic(&client, &again.url(""), TOPIC, PARTITIONS).await;
    for records in stored.values() {
        assert_eq!(records.values().filter(|v| *v == "after").count(), 1);
    }
    assert_every_acknowledged_record(&acked, &stored);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_with_memory_acks_never_hands_an_offset_out_twice() {
    let dir = tempfile::tempdir().unwrap();
    let client = support::http_client(Duration::from_secs(10));
    let store = dir.path().to_str().unwrap();
    let (acked, stored, job) = produce_then_kill("memory", store, &client).await;
    // Records in memory at the crash are lost; whatever is read is what was acknowledged
    // at that offset, never another record.
    for (partition, records) in &stored {
        for (offset, value) in records {
            assert_eq!(
                acked.get(&(*partition, *offset)),
                Some(value),
                "record {partition}/{offset} after the restart was never acknowledged there"
            );
        }
    }
    assert_new_offsets_are_fresh(&job, &client, &acked).await;
}
