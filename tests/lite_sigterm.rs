//! SIGTERM, what `docker stop` and Kubernetes send, stops the main job gracefully: while four
//! clients produce, it exits 0 within its deadline, and after a restart over the same store
//! every acknowledged record is readable at its acknowledged offset with its value.

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use support::process::MainJob;

const TOPIC: &str = "durable";
const PARTITIONS: u64 = 4;

/// (partition, offset) -> value of every record the server acknowledged.
type Acked = Arc<Mutex<BTreeMap<(u64, u64), String>>>;

/// Produces until the server stops answering; records what it acknowledged.
async fn produce(client: reqwest::Client, url: String, id: usize, acked: Acked) {
    for n in 0.. {
        let value = format!("client-{id}-record-{n}");
        let body = json!({ "topic": TOPIC, "value": value, "partition": id as u64 % PARTITIONS });
        let Ok(response) = client.post(&url).json(&body).send().await else {
            return;
        };
        if !response.status().is_success() {
            return;
        }
        let Ok(answer) = response.json::<Value>().await else {
            return;
        };
        let at = (
            answer["partition"].as_u64().unwrap(),
            answer["offset"].as_u64().unwrap(),
        );
        assert!(
            acked.lock().unwrap().insert(at, value).is_none(),
            "offset {at:?} given twice"
        );
    }
}

/// Every record of `partition`, by offset.
async fn read_partition(
    job: &MainJob,
    client: &reqwest::Client,
    partition: u64,
) -> BTreeMap<u64, String> {
    let mut records = BTreeMap::new();
    let mut offset = 0;
    loop {
        let url = job.url(&format!(
            "/api/v1/consume?topic={TOPIC}&partition={partition}&offset={offset}&maxRecords=1000"
        ));
        let body: Value = client.get(url).send().await.unwrap().json().await.unwrap();
        let batch = body["records"].as_array().expect("records");
        for record in batch {
            let value = record["value"].as_str().unwrap().to_owned();
            records.insert(record["offset"].as_u64().unwrap(), value);
        }
        let next = body["nextOffset"].as_u64().unwrap();
        if batch.is_empty() || next == offset {
            return records;
        }
        offset = next;
    }
}

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
            let url = job.url("/api/v1/produce");
            tokio::spawn(produce(client.clone(), url, id, Arc::clone(&acked)))
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
    for partition in 0..PARTITIONS {
        let stored = read_partition(&restarted, &client, partition).await;
        for ((_, offset), value) in acked.range((partition, 0)..(partition + 1, 0)) {
            assert_eq!(
                stored.get(offset),
                Some(value),
                "acknowledged record {partition}/{offset} after the restart"
            );
        }
    }
}
