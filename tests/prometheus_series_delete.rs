//! A real Prometheus server (Debian `prometheus`) scrapes the reference server every 250 ms
//! while topic `t` is produced to at a steady rate, deleted, and created again: the scrape
//! after the delete ends the series with a staleness marker (an instant query finds nothing,
//! instead of the last sample for 5 minutes of lookback), and the series that comes back
//! from zero reads as a counter reset, so `rate()` never spikes above the produce rate.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use object_store::memory::InMemory;
use reqwest::StatusCode;
use serde_json::{Value, json};
use streamhouse_observability::catalog;
use support::lite::{LiteTestServer, eventually, start, test_config};

const TOPIC: &str = "t";
const SCRAPE: Duration = Duration::from_millis(250);
/// One record per period while producing: 40 records/s.
const PERIOD: Duration = Duration::from_millis(25);
/// `rate()`'s window; eight scrapes.
const RATE_WINDOW: &str = "2s";

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn series() -> String {
    format!(
        "{}{{topic=\"{TOPIC}\"}}",
        catalog::PRODUCER_RECORDS.prometheus_name
    )
}

/// Prometheus's HTTP API; `None` while it is not answering yet.
struct Api {
    client: reqwest::Client,
    base: String,
}

impl Api {
    async fn get(&self, path: &str, params: &[(&str, String)]) -> Option<Vec<Value>> {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .query(params)
            .send()
            .await
            .ok()?;
        let body: Value = response.json().await.ok()?;
        assert_eq!(body["status"], "success", "{path} {params:?}: {body}");
        Some(body["data"]["result"].as_array().expect("a result").clone())
    }

    /// An instant query at `time` (seconds since the epoch): each series' value.
    async fn at(&self, promql: &str, time: f64) -> Vec<f64> {
        let result = self
            .get(
                "/api/v1/query",
                &[("query", promql.to_owned()), ("time", format!("{time:.3}"))],
            )
            .await
            .expect("Prometheus answers");
        result.iter().map(|r| number(&r["value"][1])).collect()
    }

    /// The timestamp of the last scrape of the server, once Prometheus has one.
    async fn last_scrape(&self) -> Option<f64> {
        let result = self
            .get(
                "/api/v1/query",
                &[("query", "timestamp(up{job=\"lite\"})".to_owned())],
            )
            .await?;
        result.first().map(|r| number(&r["value"][1]))
    }

    /// Waits for the first scrape that started after `time`; returns its timestamp.
    /// Prometheus may move a scrape's timestamp by up to 2 ms to align it, hence a margin.
    async fn scrape_after(&self, time: f64) -> f64 {
        let after = time + 0.010;
        eventually(Duration::from_secs(30), "a scrape", || async {
            self.last_scrape().await.filter(|&t| t > after)
        })
        .await
    }
}

fn number(value: &Value) -> f64 {
    value
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not a number: {value}"))
}

/// Produces one record to `t` every [`PERIOD`] (never catching up on missed ticks, so the
/// rate never exceeds the nominal one) until stopped.
struct Producer {
    stop: Arc<AtomicBool>,
    produced: Arc<AtomicU64>,
    started: Instant,
    task: tokio::task::JoinHandle<()>,
}

impl Producer {
    fn start(server: &Arc<LiteTestServer>) -> Producer {
        let stop = Arc::new(AtomicBool::new(false));
        let produced = Arc::new(AtomicU64::new(0));
        let (server, flag, count) = (Arc::clone(server), Arc::clone(&stop), Arc::clone(&produced));
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(PERIOD);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            while !flag.load(Ordering::Acquire) {
                ticks.tick().await;
                let (status, body) = server
                    .post("/api/v1/produce", &json!({ "topic": TOPIC, "value": "v" }))
                    .await;
                assert_eq!(status, StatusCode::OK, "{body}");
                count.fetch_add(1, Ordering::Relaxed);
            }
        });
        Producer {
            stop,
            produced,
            started: Instant::now(),
            task,
        }
    }

    /// Stops; the records produced and their rate per second.
    async fn stop(self) -> (u64, f64) {
        self.stop.store(true, Ordering::Release);
        self.task.await.expect("producer task");
        let produced = self.produced.load(Ordering::Relaxed);
        (
            produced,
            produced as f64 / self.started.elapsed().as_secs_f64(),
        )
    }
}

/// Waits until Prometheus holds at least `samples` samples of the series from after `since`.
async fn samples_since(api: &Api, since: f64, samples: usize) {
    eventually(Duration::from_secs(30), "samples in Prometheus", || async {
        let now = now_secs();
        let lookback = format!(
            "count_over_time({}[{}ms])",
            series(),
            ((now - since) * 1000.0).max(1.0) as u64
        );
        let counts = api.at(&lookback, now).await;
        counts
            .first()
            .is_some_and(|&c| c >= samples as f64)
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_sees_a_deleted_topic_end_and_return_without_a_rate_spike() {
    let server = Arc::new(start(test_config(), Arc::new(InMemory::new())).await);
    let interval = format!("{}ms", SCRAPE.as_millis());
    let prometheus = support::Prometheus::start(&format!(
        "global:\n  scrape_interval: {interval}\n  scrape_timeout: {interval}\n\
         scrape_configs:\n\
         - job_name: lite\n  static_configs:\n  - targets: ['{}']\n",
        server.addr
    ));
    let api = Api {
        client: support::http_client(Duration::from_secs(10)),
        base: prometheus.url(),
    };
    eventually(Duration::from_secs(60), "Prometheus scraping", || async {
        api.last_scrape().await
    })
    .await;

    let run_start = now_secs();
    server.create_topic(TOPIC, 1).await;
    let producer = Producer::start(&server);
    // Enough samples for `rate()` to have a full window of steady production.
    samples_since(&api, now_secs(), 12).await;
    let (first_count, first_rate) = producer.stop().await;
    // Prometheus holds the final count before the topic goes.
    api.scrape_after(now_secs()).await;

    let before_delete = now_secs();
    let deleted = server
        .client
        .delete(server.url(&format!("/api/v1/topics/{TOPIC}")))
        .send()
        .await
        .expect("delete");
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let deleted_at = now_secs();
    let first_scrape = api.scrape_after(deleted_at).await;

    // (a) The series was there just before the delete, and the first scrape after it ends
    // the series: nothing at that scrape's time, though the last sample is 250 ms old.
    assert_eq!(
        api.at(&series(), before_delete).await,
        [first_count as f64],
        "the series before the delete"
    );
    assert_eq!(
        api.at("up{job=\"lite\"}", first_scrape).await,
        [1.0],
        "that scrape succeeded"
    );
    assert_eq!(
        api.at(&series(), first_scrape).await,
        Vec::<f64>::new(),
        "a staleness marker at the first scrape after the delete"
    );
    // A few scrapes later, still nothing.
    let gap_end = api
        .scrape_after(first_scrape + 3.0 * SCRAPE.as_secs_f64())
        .await;
    assert_eq!(api.at(&series(), gap_end).await, Vec::<f64>::new());

    server.create_topic(TOPIC, 1).await;
    let recreated_at = now_secs();
    let producer = Producer::start(&server);
    samples_since(&api, recreated_at, 12).await;
    let (second_count, second_rate) = producer.stop().await;
    let stopped_at = now_secs();
    let last_scrape = api.scrape_after(stopped_at).await;
    // It came back from zero: exactly what was produced since.
    assert_eq!(
        api.at(&series(), last_scrape).await,
        [second_count as f64],
        "the series after it came back"
    );

    // (b) No spike anywhere in the run: the rate stays within 3x the measured produce rate.
    let rate = format!("rate({}[{RATE_WINDOW}])", series());
    let result = api
        .get(
            "/api/v1/query_range",
            &[
                ("query", rate.clone()),
                ("start", format!("{run_start:.3}")),
                ("end", format!("{last_scrape:.3}")),
                ("step", format!("{:.3}", SCRAPE.as_secs_f64())),
            ],
        )
        .await
        .expect("Prometheus answers");
    let points: Vec<(f64, f64)> = result
        .iter()
        .flat_map(|r| r["values"].as_array().expect("values"))
        .map(|p| (p[0].as_f64().expect("a time"), number(&p[1])))
        .collect();
    assert!(
        points.iter().any(|&(t, _)| t < deleted_at)
            && points.iter().any(|&(t, _)| t > recreated_at),
        "rates before the delete and after the return: {points:?}"
    );
    let bound = 3.0 * first_rate.max(second_rate);
    let (at, max) = points
        .iter()
        .copied()
        .fold((0.0, 0.0), |best, p| if p.1 > best.1 { p } else { best });
    eprintln!("max rate {max:.1}/s, bound {bound:.1}/s");
    assert!(
        max > 0.0 && max < bound,
        "max {rate} = {max} at {at:.3} (delete at {deleted_at:.3}, back at {recreated_at:.3}); \
         bound {bound} from {first_count} and {second_count} records at {first_rate:.1}/s \
         and {second_rate:.1}/s"
    );
}
