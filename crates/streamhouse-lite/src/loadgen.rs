//! A load generator that drives a running server over HTTP so every metric moves: it
//! creates topics, produces batches, consumes and commits with two consumer groups, makes
//! one member leave and rejoin (rebalances), replays old segments (cache misses, then hits),
//! and sends a few bad requests (error counters).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tokio::task::JoinHandle;

/// Topics the generator creates, with their partition counts.
pub const TOPICS: &[(&str, u32)] = &[("orders", 4), ("payments", 2), ("clickstream", 3)];
/// (group, topic) pairs the generator consumes with.
pub const GROUPS: &[(&str, &str)] = &[("analytics", "orders"), ("billing", "payments")];

/// Starts the generator against `base_url` (like `http://127.0.0.1:8080`); it runs until
/// the handle is aborted.
pub fn spawn(base_url: String) -> JoinHandle<()> {
    tokio::spawn(async move {
        let client = reqwest::Client::new();
        let api = format!("{base_url}/api/v1");
        for (name, partitions) in TOPICS {
            let _ = client
                .post(format!("{api}/topics"))
                .json(&json!({ "name": name, "partitions": partitions }))
                .send()
                .await;
        }
        let mut tasks = vec![tokio::spawn(produce(client.clone(), api.clone()))];
        for (group, topic) in GROUPS {
            tasks.push(tokio::spawn(consume(
                client.clone(),
                api.clone(),
                group,
                topic,
            )));
        }
        tasks.push(tokio::spawn(churn(client.clone(), api.clone())));
        tasks.push(tokio::spawn(replay(client, api)));
        // Aborting this task drops the handles, but not the tasks: abort them here.
        struct AbortAll(Vec<JoinHandle<()>>);
        impl Drop for AbortAll {
            fn drop(&mut self) {
                self.0.iter().for_each(JoinHandle::abort);
            }
        }
        let tasks = AbortAll(tasks);
        futures::future::pending::<()>().await;
        drop(tasks);
    })
}

/// A small xorshift generator: the load need not be cryptographically random.
struct Rng(u64);

impl Rng {
    fn new() -> Self {
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        Rng(seed | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

async fn produce(client: reqwest::Client, api: String) {
    let mut rng = Rng::new();
    let mut tick = tokio::time::interval(Duration::from_millis(25));
    let mut n: u64 = 0;
    for n_batches in 0u64.. {
        tick.tick().await;
        let (topic, _) = TOPICS[rng.below(TOPICS.len() as u64) as usize];
        let count = 1 + rng.below(60);
        let records: Vec<Value> = (0..count)
            .map(|i| {
                n += 1;
                json!({
                    "key": format!("customer-{}", rng.below(500)),
                    "value": format!("{{\"event\":{n},\"amount\":{}}}", rng.below(10_000) + i),
                    "headers": { "source": "loadgen" },
                })
            })
            .collect();
        let _ = client
            .post(format!("{api}/produce/batch"))
            .json(&json!({ "topic": topic, "records": records }))
            .send()
            .await;
        // Now and then (every 200th batch, the first one included) a client gets a topic
        // name wrong.
        if n_batches % 200 == 0 {
            let _ = client
                .post(format!("{api}/produce"))
                .json(&json!({ "topic": "order", "value": "typo" }))
                .send()
                .await;
        }
    }
}

async fn get_json(client: &reqwest::Client, url: &str) -> Option<Value> {
    let response = client.get(url).send().await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    response.json().await.ok()
}

async fn consume(client: reqwest::Client, api: String, group: &str, topic: &str) {
    // Each consume names the member, which keeps its session alive.
    let mut member = join(&client, &api, group, topic).await;
    let partitions = TOPICS
        .iter()
        .find(|(name, _)| *name == topic)
        .map_or(1, |(_, p)| *p);
    let mut offsets = vec![0u64; partitions as usize];
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        tick.tick().await;
        for (partition, offset) in offsets.iter_mut().enumerate() {
            let Some(id) = member.as_deref() else {
                member = join(&client, &api, group, topic).await;
                continue;
            };
            let url = format!(
                "{api}/consume?topic={topic}&partition={partition}&offset={offset}&maxRecords=200&groupId={group}&memberId={id}"
            );
            let Ok(response) = client.get(&url).send().await else {
                continue;
            };
            if response.status() == reqwest::StatusCode::NOT_FOUND {
                // The member expired (the server paused longer than its session): join again.
                member = join(&client, &api, group, topic).await;
                continue;
            }
            let Ok(body) = response.json::<Value>().await else {
                continue;
            };
            let next = body["nextOffset"].as_u64().unwrap_or(*offset);
            if next > *offset {
                *offset = next;
                let _ = client
                    .post(format!("{api}/consumer-groups/commit"))
                    .json(&json!({
                        "groupId": group, "topic": topic,
                        "partition": partition, "offset": next,
                    }))
                    .send()
                    .await;
            }
        }
    }
}

/// Joins `group` for `topic`; the member id, if the join took.
async fn join(client: &reqwest::Client, api: &str, group: &str, topic: &str) -> Option<String> {
    let response = client
        .post(format!("{api}/consumer-groups/{group}/members"))
        .json(&json!({ "topic": topic }))
        .send()
        .await
        .ok()?;
    let body: Value = response.json().await.ok()?;
    body["memberId"].as_str().map(str::to_owned)
}

/// A second analytics member that joins and leaves every few seconds.
async fn churn(client: reqwest::Client, api: String) {
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let joined = client
            .post(format!("{api}/consumer-groups/analytics/members"))
            .json(&json!({ "topic": "orders" }))
            .send()
            .await;
        let Ok(joined) = joined else { continue };
        let Ok(body) = joined.json::<Value>().await else {
            continue;
        };
        tokio::time::sleep(Duration::from_secs(2)).await;
        if let Some(member) = body["memberId"].as_str() {
            let _ = client
                .delete(format!("{api}/consumer-groups/analytics/members/{member}"))
                .send()
                .await;
        }
    }
}

/// Reads the oldest records again, cycling over the partitions: the first pass misses the
/// cache (flushed segments come from the store), later passes hit it.
async fn replay(client: reqwest::Client, api: String) {
    for round in 0u64.. {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let partition = round % 4;
        let url =
            format!("{api}/consume?topic=orders&partition={partition}&offset=0&maxRecords=50");
        let _ = get_json(&client, &url).await;
        if round % 20 == 0 {
            // A reader asking past the end.
            let url = format!(
                "{api}/consume?topic=orders&partition=0&offset={}",
                u64::MAX / 2
            );
            let _ = get_json(&client, &url).await;
        }
    }
}
