//! Flood: the main job, as a child process, under names a hostile client chose. 300 produce
//! requests each with valid but unknown 240-character topic names, with 64 KiB names and
//! with malformed bodies carrying such names, then 300 consumes and 300 joins with 2 KiB
//! group ids. `/metrics` must grow by less than 256 KiB and resident memory by less than
//! 64 MiB; the real topics keep their own series (no overflow series appears); and no
//! hostile name, nor any 16-character piece of one, is on `/metrics`.

mod support;

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::process::{MainJob, sample_sum};

const REQUESTS: usize = 300;
const SHORT_TOPIC: usize = 240;
const LONG_NAME: usize = 64 << 10;
const GROUP_ID: usize = 2 << 10;
/// The shortest piece of a hostile name that must not reach `/metrics`.
const PIECE: usize = 16;
const MAX_METRICS_GROWTH: usize = 256 << 10;
const MAX_RSS_GROWTH: u64 = 64 << 20;
/// Requests in flight at once.
const CONCURRENCY: usize = 8;

const REAL_TOPICS: &[(&str, u32)] = &[("orders", 2), ("payments", 1)];

/// A small xorshift generator: the names need only be distinct, not unpredictable.
struct Rng(u64);

impl Rng {
    fn char(&mut self) -> char {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ALPHABET[(self.0 % ALPHABET.len() as u64) as usize] as char
    }

    fn string(&mut self, len: usize) -> String {
        (0..len).map(|_| self.char()).collect()
    }
}

/// Hostile names: a distinct random prefix each, then a shared filler of period
/// [`Names::PERIOD`], so every 16-character piece of every name is one of a small set.
struct Names {
    rng: Rng,
    filler: String,
    issued: Vec<String>,
}

impl Names {
    const PREFIX: usize = 24;
    const PERIOD: usize = 997;

    fn new() -> Self {
        let mut rng = Rng(0x5eed_f100d);
        let period = rng.string(Self::PERIOD);
        let filler = period.repeat(LONG_NAME / Self::PERIOD + 2);
        Names {
            rng,
            filler,
            issued: Vec::new(),
        }
    }

    /// A new name of `len` characters from `[a-z0-9]`: a valid topic name when short.
    fn next(&mut self, len: usize) -> String {
        let prefix = self.rng.string(Self::PREFIX);
        let name = format!("{prefix}{}", &self.filler[..len - Self::PREFIX]);
        self.issued.push(name.clone());
        name
    }

    /// Every 16-byte piece of every issued name.
    fn pieces(&self) -> HashSet<&[u8]> {
        let mut pieces = HashSet::new();
        // Past a prefix, a piece is one of the filler's; those are added once.
        let filler = &self.filler.as_bytes()[..Self::PERIOD + PIECE];
        pieces.extend(filler.windows(PIECE));
        for name in &self.issued {
            let head = &name.as_bytes()[..Self::PREFIX + PIECE];
            pieces.extend(head.windows(PIECE));
        }
        pieces
    }
}

/// One hostile request and the statuses the issue's contract allows it.
struct Hostile {
    kind: &'static str,
    method: reqwest::Method,
    path: String,
    body: Option<Vec<u8>>,
    expected: &'static [StatusCode],
}

fn hostile_requests(names: &mut Names) -> Vec<Hostile> {
    let mut requests = Vec::new();
    let post = |kind, path: &str, body: Vec<u8>, expected| Hostile {
        kind,
        method: reqwest::Method::POST,
        path: path.to_owned(),
        body: Some(body),
        expected,
    };
    let json_body = |value: Value| serde_json::to_vec(&value).expect("json");
    for _ in 0..REQUESTS {
        let body = json_body(json!({ "topic": names.next(SHORT_TOPIC), "value": "x" }));
        requests.push(post(
            "unknown 240-character topic",
            "/api/v1/produce",
            body,
            &[StatusCode::NOT_FOUND],
        ));
    }
    for _ in 0..REQUESTS {
        let body = json_body(json!({ "topic": names.next(LONG_NAME), "value": "x" }));
        requests.push(post(
            "64 KiB topic",
            "/api/v1/produce",
            body,
            &[StatusCode::BAD_REQUEST],
        ));
    }
    for i in 0..REQUESTS {
        let name = names.next(if i % 2 == 0 { LONG_NAME } else { SHORT_TOPIC });
        let (path, body) = match i % 3 {
            0 => (
                "/api/v1/produce",
                format!(r#"{{"topic":"{name}","value":"x""#),
            ),
            1 => (
                "/api/v1/produce/batch",
                format!(r#"{{"topic":"{name}","records":"not a list"}}"#),
            ),
            _ => (
                "/api/v1/produce/batch",
                format!(r#"{{"topic":"{name}","records":[{{"value":1}}]}}"#),
            ),
        };
        // 400 for the body, or 404 when the server reads the topic first and knows it not.
        requests.push(post(
            "malformed produce body",
            path,
            body.into_bytes(),
            &[StatusCode::BAD_REQUEST, StatusCode::NOT_FOUND],
        ));
    }
    for _ in 0..REQUESTS {
        let group = names.next(GROUP_ID);
        requests.push(Hostile {
            kind: "consume with a 2 KiB group id",
            method: reqwest::Method::GET,
            path: format!("/api/v1/consume?topic=orders&partition=0&offset=0&groupId={group}"),
            body: None,
            expected: &[StatusCode::BAD_REQUEST],
        });
    }
    for _ in 0..REQUESTS {
        let group = names.next(GROUP_ID);
        requests.push(post(
            "join with a 2 KiB group id",
            &format!("/api/v1/consumer-groups/{group}/members"),
            json_body(json!({ "topic": "orders" })),
            &[StatusCode::BAD_REQUEST],
        ));
    }
    requests
}

/// Sends `request`; the status and whether the body is a JSON error.
async fn send(client: &reqwest::Client, job: &MainJob, request: &Hostile) -> (StatusCode, bool) {
    let mut builder = client.request(request.method.clone(), job.url(&request.path));
    if let Some(body) = &request.body {
        builder = builder
            .header("content-type", "application/json")
            .body(body.clone());
    }
    let response = builder.send().await.expect("hostile request answered");
    let status = response.status();
    let body: Option<Value> = response
        .bytes()
        .await
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let json_error = body.is_some_and(|b| b["error"].is_string() && b["message"].is_string());
    (status, json_error)
}

async fn produce_real(client: &reqwest::Client, job: &MainJob, topic: &str, records: usize) {
    let records: Vec<Value> = (0..records)
        .map(|i| json!({ "key": format!("k{i}"), "value": format!("v{i}") }))
        .collect();
    let response = client
        .post(job.url("/api/v1/produce/batch"))
        .json(&json!({ "topic": topic, "records": records }))
        .send()
        .await
        .expect("produce");
    assert!(response.status().is_success(), "produce to {topic}");
}

fn produced(metrics: &str, topic: &str) -> f64 {
    sample_sum(
        metrics,
        "streamhouse_producer_records_total",
        &[("topic", topic)],
    )
    .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_names_leave_metrics_and_memory_bounded() {
    let mut job = MainJob::spawn(&[
        ("STREAMHOUSE_LOADGEN", "off"),
        ("STREAMHOUSE_OBJECT_STORE", "memory"),
    ]);
    let client = support::http_client(Duration::from_secs(20));
    job.wait_live(&client, Duration::from_secs(30)).await;

    // Real traffic first, so its series exist before the flood.
    for (topic, partitions) in REAL_TOPICS {
        let created = client
            .post(job.url("/api/v1/topics"))
            .json(&json!({ "name": topic, "partitions": partitions }))
            .send()
            .await
            .expect("create topic");
        assert_eq!(created.status(), StatusCode::CREATED, "create {topic}");
        produce_real(&client, &job, topic, 20).await;
    }
    let joined = client
        .post(job.url("/api/v1/consumer-groups/analytics/members"))
        .json(&json!({ "topic": "orders" }))
        .send()
        .await
        .expect("join");
    assert!(joined.status().is_success(), "join analytics");
    let consumed = client
        .get(job.url(
            "/api/v1/consume?topic=orders&partition=0&offset=0&maxRecords=100&groupId=analytics",
        ))
        .send()
        .await
        .expect("consume");
    assert!(consumed.status().is_success(), "consume orders");

    let metrics_before = job.metrics(&client).await;
    let rss_before = job.rss_bytes();

    let mut names = Names::new();
    let requests = hostile_requests(&mut names);
    let answers: Vec<(StatusCode, bool)> = futures::stream::iter(&requests)
        .map(|request| send(&client, &job, request))
        .buffered(CONCURRENCY)
        .collect()
        .await;

    const AFTER: usize = 7;
    for (topic, _) in REAL_TOPICS {
        produce_real(&client, &job, topic, AFTER).await;
    }
    let metrics_after = job.metrics(&client).await;
    let rss_after = job.rss_bytes();

    println!(
        "/metrics {} -> {} bytes; RSS {:.1} -> {:.1} MiB",
        metrics_before.len(),
        metrics_after.len(),
        rss_before as f64 / 1_048_576.0,
        rss_after as f64 / 1_048_576.0
    );
    // Every broken promise at once, so one run tells all that is wrong.
    let mut failures = Vec::new();
    let mut wrong: BTreeMap<(&str, StatusCode, bool), usize> = BTreeMap::new();
    for (request, (status, json_error)) in requests.iter().zip(&answers) {
        if !request.expected.contains(status) || !json_error {
            *wrong
                .entry((request.kind, *status, *json_error))
                .or_default() += 1;
        }
    }
    for ((kind, status, json_error), count) in &wrong {
        let expected = requests
            .iter()
            .find(|r| r.kind == *kind)
            .map_or(&[][..], |r| r.expected);
        failures.push(format!(
            "{count} × {kind}: answered {status} (JSON error body: {json_error}), expected {expected:?}"
        ));
    }
    let growth = metrics_after.len().saturating_sub(metrics_before.len());
    if growth >= MAX_METRICS_GROWTH {
        failures.push(format!(
            "/metrics grew by {growth} bytes ({} -> {}), limit {MAX_METRICS_GROWTH}",
            metrics_before.len(),
            metrics_after.len()
        ));
    }
    let rss_growth = rss_after.saturating_sub(rss_before);
    if rss_growth >= MAX_RSS_GROWTH {
        failures.push(format!(
            "resident memory grew by {} MiB ({} -> {} MiB), limit {} MiB",
            rss_growth >> 20,
            rss_before >> 20,
            rss_after >> 20,
            MAX_RSS_GROWTH >> 20
        ));
    }
    for (topic, _) in REAL_TOPICS {
        let counted = produced(&metrics_after, topic) - produced(&metrics_before, topic);
        if counted != AFTER as f64 {
            failures.push(format!(
                "topic {topic}: {counted} records counted in its own series after the flood, produced {AFTER}"
            ));
        }
    }
    if let Some(line) = metrics_after
        .lines()
        .find(|l| l.contains("otel_metric_overflow"))
    {
        failures.push(format!("an overflow series appeared: {line}"));
    }
    let pieces = names.pieces();
    let leaked: Vec<&str> = metrics_after
        .lines()
        .filter(|line| line.as_bytes().windows(PIECE).any(|w| pieces.contains(w)))
        .collect();
    if !leaked.is_empty() {
        let shown: Vec<String> = leaked
            .iter()
            .take(5)
            .map(|l| l.chars().take(160).collect())
            .collect();
        failures.push(format!(
            "{} /metrics lines carry a piece of a hostile name, such as:\n    {}",
            leaked.len(),
            shown.join("\n    ")
        ));
    }
    assert!(
        failures.is_empty(),
        "{} of the flood's promises broken:\n  {}\nserver log:\n{}",
        failures.len(),
        failures.join("\n  "),
        job.log_tail()
    );
}
