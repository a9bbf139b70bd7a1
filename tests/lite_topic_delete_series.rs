//! `DELETE /api/v1/topics/{name}` under traffic removes the topic's series from `/metrics`
//! and from the OTLP push: producer, segment, partition and consumer series of the deleted
//! topic are gone from the next scrape and from every export collected afterwards, while
//! another topic's stay; a topic created again under the name counts from zero.

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use object_store::memory::InMemory;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::number_data_point;
use reqwest::StatusCode;
use serde_json::{Value, json};
use streamhouse_lite::topics::UNKNOWN_TOPIC;
use streamhouse_observability::catalog::{self, MetricDef, label};
use streamhouse_observability::metrics::ProducerError;
use streamhouse_observability::{Telemetry, TelemetryConfig};
use support::lite::{LiteTestServer, Metrics, eventually, start_with_telemetry, test_config};
use support::otlp_receiver::{Received, Receiver, attribute};

const DOOMED: &str = "doomed";
const KEPT: &str = "kept";
/// Consumes only `doomed`: gone with it.
const READER: &str = "reader";
/// Consumes both topics: keeps its `kept` series.
const MIXED: &str = "mixed";

/// Telemetry configured through the server's environment variables (tests may not set
/// process variables): metrics pushed over OTLP/HTTP every 200 ms, no spans or logs.
fn telemetry(receiver: &Receiver) -> Telemetry {
    let endpoint = receiver.http_endpoint();
    let config = TelemetryConfig::from_lookup(|name| match name {
        "OTEL_EXPORTER_OTLP_ENDPOINT" => Some(endpoint.clone()),
        "OTEL_EXPORTER_OTLP_PROTOCOL" => Some("http/protobuf".to_owned()),
        "OTEL_METRIC_EXPORT_INTERVAL" => Some("200".to_owned()),
        "OTEL_TRACES_EXPORTER" | "OTEL_LOGS_EXPORTER" => Some("none".to_owned()),
        _ => None,
    })
    .expect("the OTLP variables parse")
    .with_service_instance_id("test-instance");
    Telemetry::new(config).expect("telemetry starts")
}

fn now_nanos() -> u64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    u64::try_from(since.as_nanos()).unwrap()
}

/// Ten 100-byte values: one request fills and seals a 1,000-byte segment.
fn batch(topic: &str, partition: u32) -> Value {
    let records: Vec<Value> = (0..10)
        .map(|i| json!({ "value": format!("{i:0100}"), "partition": partition }))
        .collect();
    json!({ "topic": topic, "records": records })
}

async fn commit(server: &LiteTestServer, group: &str, topic: &str) {
    let (status, body) = server
        .post(
            "/api/v1/consumer-groups/commit",
            &json!({ "groupId": group, "topic": topic, "partition": 0, "offset": 0 }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn consume(server: &LiteTestServer, group: &str, topic: &str) {
    let (status, body) = server
        .get(&format!(
            "/api/v1/consume?topic={topic}&partition=0&offset=0&maxRecords=5&groupId={group}"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(!body["records"].as_array().unwrap().is_empty(), "{body}");
}

/// Every metric name carrying `topic` = `value` in a scrape.
fn scraped_with_topic(metrics: &Metrics, value: &str) -> BTreeSet<String> {
    metrics
        .parsed
        .samples
        .iter()
        .filter(|s| s.labels.get(label::TOPIC).map(String::as_str) == Some(value))
        .map(|s| s.name.clone())
        .collect()
}

/// Asserts the scrape has every kind of series labelled `topic` = `value` that a produced,
/// flushed and consumed topic has.
fn expect_topic_series(metrics: &Metrics, value: &str) {
    let names = scraped_with_topic(metrics, value);
    for def in [
        &catalog::PRODUCER_RECORDS,
        &catalog::SEGMENT_WRITES,
        &catalog::SEGMENT_FLUSHES,
        &catalog::PARTITIONS,
        &catalog::CONSUMER_RECORDS,
        &catalog::CONSUMER_LAG,
    ] {
        assert!(
            names.contains(def.prometheus_name),
            "no {} series for topic {value:?}: {names:?}",
            def.prometheus_name
        );
    }
}

/// A data point's attributes, collection time and value (histograms: their count).
struct Point {
    metric: String,
    attributes: Vec<KeyValue>,
    time: u64,
    value: f64,
}

fn points(request: &ExportMetricsServiceRequest) -> Vec<Point> {
    let mut out = Vec::new();
    for metric in request
        .resource_metrics
        .iter()
        .flat_map(|rm| &rm.scope_metrics)
        .flat_map(|sm| &sm.metrics)
    {
        let mut push = |attributes: &[KeyValue], time: u64, value: f64| {
            out.push(Point {
                metric: metric.name.clone(),
                attributes: attributes.to_vec(),
                time,
                value,
            });
        };
        let number = |v: &Option<number_data_point::Value>| match v {
            Some(number_data_point::Value::AsInt(i)) => *i as f64,
            Some(number_data_point::Value::AsDouble(d)) => *d,
            None => f64::NAN,
        };
        match &metric.data {
            Some(Data::Sum(sum)) => sum
                .data_points
                .iter()
                .for_each(|p| push(&p.attributes, p.time_unix_nano, number(&p.value))),
            Some(Data::Gauge(gauge)) => gauge
                .data_points
                .iter()
                .for_each(|p| push(&p.attributes, p.time_unix_nano, number(&p.value))),
            Some(Data::Histogram(h)) => h
                .data_points
                .iter()
                .for_each(|p| push(&p.attributes, p.time_unix_nano, p.count as f64)),
            Some(Data::ExponentialHistogram(h)) => h
                .data_points
                .iter()
                .for_each(|p| push(&p.attributes, p.time_unix_nano, p.count as f64)),
            Some(Data::Summary(s)) => s
                .data_points
                .iter()
                .for_each(|p| push(&p.attributes, p.time_unix_nano, p.count as f64)),
            None => {}
        }
    }
    out
}

/// The exports every data point of which was collected after `after` (ns since the epoch).
fn exports_after(received: &Received, after: u64) -> Vec<Vec<Point>> {
    received
        .metrics
        .iter()
        .map(points)
        .filter(|p| !p.is_empty() && p.iter().all(|p| p.time > after))
        .collect()
}

/// The metric names in `export` with attribute `topic` = `value`.
fn pushed_with_topic(export: &[Point], value: &str) -> BTreeSet<String> {
    export
        .iter()
        .filter(|p| attribute(&p.attributes, label::TOPIC).as_deref() == Some(value))
        .map(|p| p.metric.clone())
        .collect()
}

/// Produces to both topics until told to stop; `doomed` may answer 404 (counted), `kept`
/// must take every request.
struct Traffic {
    stop: Arc<AtomicBool>,
    doomed_missing: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Traffic {
    fn start(server: &Arc<LiteTestServer>) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let doomed_missing = Arc::new(AtomicU64::new(0));
        let (server, flag, missing) = (
            Arc::clone(server),
            Arc::clone(&stop),
            Arc::clone(&doomed_missing),
        );
        let task = tokio::spawn(async move {
            let mut round = 0u32;
            while !flag.load(Ordering::Acquire) {
                let (status, body) = server
                    .post("/api/v1/produce/batch", &batch(DOOMED, round % 2))
                    .await;
                match status {
                    StatusCode::OK => {}
                    StatusCode::NOT_FOUND => {
                        assert_eq!(body["error"], "topic_not_found", "{body}");
                        missing.fetch_add(1, Ordering::Relaxed);
                    }
                    other => panic!("produce to {DOOMED}: {other} {body}"),
                }
                let (status, body) = server.post("/api/v1/produce/batch", &batch(KEPT, 0)).await;
                assert_eq!(status, StatusCode::OK, "produce to {KEPT}: {body}");
                round += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
        Traffic {
            stop,
            doomed_missing,
            task,
        }
    }

    /// Stops producing; how many `doomed` requests answered 404.
    async fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Release);
        self.task.await.expect("producer task");
        self.doomed_missing.load(Ordering::Relaxed)
    }
}

fn get(metrics: &Metrics, def: &MetricDef, topic: &str) -> Option<f64> {
    metrics.find(def, "", &[(label::TOPIC, topic)])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_topic_under_traffic_removes_its_series_from_scrape_and_push() {
    let receiver = Receiver::start().await;
    let server = Arc::new(
        start_with_telemetry(
            test_config(),
            Arc::new(InMemory::new()),
            telemetry(&receiver),
        )
        .await,
    );
    server.create_topic(DOOMED, 2).await;
    server.create_topic(KEPT, 1).await;
    let traffic = Traffic::start(&server);

    for (group, topics) in [(READER, &[DOOMED][..]), (MIXED, &[DOOMED, KEPT][..])] {
        for topic in topics {
            commit(&server, group, topic).await;
        }
    }
    // Consumed only once segments were flushed, so every kind of series exists.
    eventually(Duration::from_secs(20), "both topics' series", || async {
        let m = server.metrics().await;
        let flushed =
            |t| scraped_with_topic(&m, t).contains(catalog::SEGMENT_FLUSHES.prometheus_name);
        (flushed(DOOMED) && flushed(KEPT)).then_some(())
    })
    .await;
    for (group, topics) in [(READER, &[DOOMED][..]), (MIXED, &[DOOMED, KEPT][..])] {
        for topic in topics {
            consume(&server, group, topic).await;
        }
    }
    let before = server.metrics().await;
    expect_topic_series(&before, DOOMED);
    expect_topic_series(&before, KEPT);
    let pushed_doomed = receiver
        .wait_until(Duration::from_secs(10), |r| {
            r.metrics
                .iter()
                .any(|m| !pushed_with_topic(&points(m), DOOMED).is_empty())
        })
        .await;
    assert!(pushed_doomed, "no export carried topic {DOOMED:?}");

    let response = server
        .client
        .delete(server.url(&format!("/api/v1/topics/{DOOMED}")))
        .send()
        .await
        .expect("delete");
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let deleted_at = now_nanos();

    // The next scrape: nothing of `doomed` in any metric, `kept` all there.
    let after = server.metrics().await;
    assert_eq!(
        scraped_with_topic(&after, DOOMED),
        BTreeSet::new(),
        "series of the deleted topic remain:\n{}",
        after.body
    );
    expect_topic_series(&after, KEPT);
    let mixed_kept = [(label::TOPIC, KEPT), (label::CONSUMER_GROUP, MIXED)];
    assert!(
        after
            .find(&catalog::CONSUMER_RECORDS, "", &mixed_kept)
            .is_some_and(|v| v > 0.0),
        "{MIXED} keeps its {KEPT} series:\n{}",
        after.body
    );
    assert!(
        !after.has_label(&catalog::CONSUMER_RECORDS, label::CONSUMER_GROUP, READER),
        "{READER} consumed only {DOOMED}:\n{}",
        after.body
    );

    // Exports collected after the delete: no data point of `doomed`, `kept` in each.
    let two_exports = receiver
        .wait_until(Duration::from_secs(10), |r| {
            exports_after(r, deleted_at).len() >= 2
        })
        .await;
    assert!(two_exports, "fewer than 2 exports after the delete");
    receiver.with(|r| {
        for export in exports_after(r, deleted_at) {
            let doomed = pushed_with_topic(&export, DOOMED);
            assert!(doomed.is_empty(), "pushed after the delete: {doomed:?}");
            let kept = pushed_with_topic(&export, KEPT);
            assert!(
                kept.contains(catalog::PRODUCER_RECORDS.prometheus_name),
                "{kept:?}"
            );
        }
    });

    let missing = traffic.stop().await;
    assert!(
        missing > 0,
        "no produce to {DOOMED} answered 404 after the delete"
    );
    let errors = server.metrics().await;
    assert!(
        errors.producer_errors(UNKNOWN_TOPIC, ProducerError::TopicNotFound.as_str())
            >= missing as f64,
        "404s are counted under {UNKNOWN_TOPIC:?}:\n{}",
        errors.body
    );
    assert_eq!(scraped_with_topic(&errors, DOOMED), BTreeSet::new());

    // Created again, the topic counts from zero: exactly what is produced now.
    server.create_topic(DOOMED, 2).await;
    const AGAIN: usize = 7;
    let records: Vec<Value> = (0..AGAIN)
        .map(|i| json!({ "value": i.to_string() }))
        .collect();
    let (status, body) = server
        .post(
            "/api/v1/produce/batch",
            &json!({ "topic": DOOMED, "records": records }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let recreated_at = now_nanos();
    let again = server.metrics().await;
    assert_eq!(
        get(&again, &catalog::PRODUCER_RECORDS, DOOMED),
        Some(AGAIN as f64),
        "{}",
        again.body
    );
    // And so does the push.
    let pushed = receiver
        .wait_until(Duration::from_secs(10), |r| {
            !exports_after(r, recreated_at).is_empty()
        })
        .await;
    assert!(pushed, "no export after the topic came back");
    receiver.with(|r| {
        let export = exports_after(r, recreated_at).remove(0);
        let records: Vec<f64> = export
            .iter()
            .filter(|p| p.metric == catalog::PRODUCER_RECORDS.prometheus_name)
            .filter(|p| attribute(&p.attributes, label::TOPIC).as_deref() == Some(DOOMED))
            .map(|p| p.value)
            .collect();
        assert_eq!(records, [AGAIN as f64]);
    });
}
