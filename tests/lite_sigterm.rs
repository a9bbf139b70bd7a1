//! SIGTERM, what `docker stop` and Kubernetes send, stops the main job gracefully: while four
//! clients produce, it exits 0 within its deadline, and after a restart over the same store
//! every acknowledged record is readable at its acknowledged offset with its value.

mod support;

use std::time::Duration;

use support::process::MainJob;
use support::producers::{
    assert_every_acknowledged_record, create_topic, read_topic, start_producers,
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
    create_topic(&client, &job.url(""), TOPIC, PARTITIONS).await;
    let (acked, clients) = start_producers(&client, &job.url(""), TOPIC, PARTITIONS, 4);
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
    let stored = read_topic(&client, &restarted.url(""), TOPIC, PARTITIONS).await;
    assert_every_acknowledged_record(&acked, &stored);
}
