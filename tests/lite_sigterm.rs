//! SIGTERM, what `docker stop` and Kubernetes send, stops the main job gracefully: while four
//! clients produce, it exits 0 within its deadline, and after a restart over the same store
//! every acknowledged record is readable at its acknowledged offset with its value.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use support::process::MainJob;
use support::producers::{
    Acked, assert_every_acknowledged_record, produce_until_gone, read_partition,
};

const TOPIC: &str = "durable";
const PARTITIONS: u64 = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_four_clients_produce_loses_no_acknowledged_record() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().to_str().unwrap().to_owned();
    let env = [
        ("STREAMHOUSE_OBJECT_STORE", store.as_str()),
        ("STREAMHOUSE_LOADGEN", "off"),
    ];
    let client = support::http_client(Duration::from_secs(10));
    let mut job = MainJob::spawn(&env);
    job.wait_live(&client, Duration::from_secs(60)).await;
    let created = client
        .post(job.url("/api/v1/topics"))
        .json(&json!({ "name": TOPIC, "partitions": PARTITIONS }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);

    let acked = Acked::default();
    let clients: Vec<_> = (0..4)
        .map(|id| {
            let producing = produce_until_gone(
                client.clone(),
                job.url(""),
                TOPIC,
                PARTITIONS,
                id,
                Arc::clone(&acked),
            );
            tokio::spawn(producing)
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let status = job.terminate(Duration::from_secs(30)).await;
    assert!(status.success(), "{status}:\n{}", job.log_tail());
    for client in clients {
        client.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 40,
        "the clients produced only {}",
        acked.len()
    );

    let mut restarted = MainJob::spawn(&env);
    restarted.wait_live(&client, Duration::from_secs(60)).await;
    let mut stored = BTreeMap::new();
    for partition in 0..PARTITIONS {
        let records = read_partition(&client, &restarted.url(""), TOPIC, partition).await;
        stored.insert(partition, records);
    }
    assert_every_acknowledged_record(&acked, &stored);
}
