//! Clients producing to a server until it stops answering, recording every acknowledged
//! record, and reads that check them after a restart.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

/// (partition, offset) -> value of every record the server acknowledged.
pub type Acked = Arc<Mutex<BTreeMap<(u64, u64), String>>>;

/// Produces single records of `topic` to partition `id % partitions` at `base_url` until
/// the server stops answering; records what it acknowledged, failing if an offset is
/// acknowledged twice.
pub async fn produce_until_gone(
    client: reqwest::Client,
    base_url: String,
    topic: &'static str,
    partitions: u64,
    id: usize,
    acked: Acked,
) {
    let url = format!("{base_url}/api/v1/produce");
    for n in 0.. {
        let value = format!("client-{id}-record-{n}");
        let body = json!({ "topic": topic, "value": value, "partition": id as u64 % partitions });
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

/// Creates `topic` with `partitions` partitions on the server at `base_url`.
pub async fn create_topic(client: &reqwest::Client, base_url: &str, topic: &str, partitions: u64) {
    let created = client
        .post(format!("{base_url}/api/v1/topics"))
        .json(&json!({ "name": topic, "partitions": partitions }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
}

/// Starts `clients` [`produce_until_gone`] tasks; returns what they acknowledge and the
/// tasks, which end once the server stops answering.
pub fn start_producers(
    client: &reqwest::Client,
    base_url: &str,
    topic: &'static str,
    partitions: u64,
    clients: usize,
) -> (Acked, Vec<tokio::task::JoinHandle<()>>) {
    let acked = Acked::default();
    let tasks = (0..clients)
        .map(|id| {
            let producing = produce_until_gone(
                client.clone(),
                base_url.to_owned(),
                topic,
                partitions,
                id,
                Arc::clone(&acked),
            );
            tokio::spawn(producing)
        })
        .collect();
    (acked, tasks)
}

/// Every record of every partition of `topic`, by partition and offset.
pub async fn read_topic(
    client: &reqwest::Client,
    base_url: &str,
    topic: &str,
    partitions: u64,
) -> BTreeMap<u64, BTreeMap<u64, String>> {
    let mut stored = BTreeMap::new();
    for partition in 0..partitions {
        stored.insert(
            partition,
            read_partition(client, base_url, topic, partition).await,
        );
    }
    stored
}

/// Every record of `partition` of `topic`, by offset, following `nextOffset` (across gaps)
/// until it stops moving.
pub async fn read_partition(
    client: &reqwest::Client,
    base_url: &str,
    topic: &str,
    partition: u64,
) -> BTreeMap<u64, String> {
    let mut records = BTreeMap::new();
    let mut offset = 0;
    for _ in 0..10_000 {
        let url = format!(
            "{base_url}/api/v1/consume?topic={topic}&partition={partition}&offset={offset}&maxRecords=1000"
        );
        let body: Value = client.get(url).send().await.unwrap().json().await.unwrap();
        let batch = body["records"].as_array().expect("records");
        for record in batch {
            let value = record["value"].as_str().unwrap().to_owned();
            records.insert(record["offset"].as_u64().unwrap(), value);
        }
        let next = body["nextOffset"].as_u64().unwrap();
        if next == offset {
            return records;
        }
        offset = next;
    }
    panic!("partition {partition} of {topic} never ends: at offset {offset}");
}

/// Asserts that every acknowledged record of `partitions` partitions is in `stored` at its
/// offset with its value.
pub fn assert_every_acknowledged_record(
    acked: &BTreeMap<(u64, u64), String>,
    stored: &BTreeMap<u64, BTreeMap<u64, String>>,
) {
    for ((partition, offset), value) in acked {
        assert_eq!(
            stored[partition].get(offset),
            Some(value),
            "acknowledged record {partition}/{offset} after the restart"
        );
    }
}
