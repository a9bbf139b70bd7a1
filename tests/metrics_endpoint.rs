//! `/metrics` over HTTP: content type, method handling, and the seed's contract (every name,
//! its type, its exact buckets).

mod support;

use streamhouse_observability::http::metrics_router;

/// The seed document's table. Spelled here on purpose: this test guards the catalog against
/// a rename that dashboards and alerts would not survive.
const SEED_CONTRACT: &[(&str, &str, &[f64])] = &[
    ("streamhouse_producer_records_total", "counter", &[]),
    ("streamhouse_producer_bytes_total", "counter", &[]),
    (
        "streamhouse_producer_latency_seconds",
        "histogram",
        &[
            0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
        ],
    ),
    (
        "streamhouse_producer_batch_size",
        "histogram",
        &[1.0, 10.0, 50.0, 100.0, 500.0, 1000.0, 5000.0, 10000.0],
    ),
    ("streamhouse_producer_errors_total", "counter", &[]),
    ("streamhouse_consumer_records_total", "counter", &[]),
    ("streamhouse_consumer_lag", "gauge", &[]),
    ("streamhouse_consumer_rebalances_total", "counter", &[]),
    ("streamhouse_consumer_errors_total", "counter", &[]),
    ("streamhouse_segment_writes_total", "counter", &[]),
    ("streamhouse_segment_flushes_total", "counter", &[]),
    ("streamhouse_s3_requests_total", "counter", &[]),
    ("streamhouse_s3_errors_total", "counter", &[]),
    (
        "streamhouse_s3_latency_seconds",
        "histogram",
        &[0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0],
    ),
    ("streamhouse_cache_hits_total", "counter", &[]),
    ("streamhouse_cache_misses_total", "counter", &[]),
    ("streamhouse_cache_size_bytes", "gauge", &[]),
    ("streamhouse_connections_active", "gauge", &[]),
    ("streamhouse_partitions_total", "gauge", &[]),
    ("streamhouse_topics_total", "gauge", &[]),
    ("streamhouse_agents_active", "gauge", &[]),
    ("streamhouse_uptime_seconds", "gauge", &[]),
];

#[tokio::test]
async fn serves_every_seed_metric_with_its_type_and_buckets() {
    let telemetry = support::telemetry();
    let _recorded = support::record_every_metric(&telemetry);
    let addr = support::serve(metrics_router(&telemetry)).await;

    let response = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let body = response.text().await.unwrap();

    assert_eq!(SEED_CONTRACT.len(), 22);
    for (name, kind, buckets) in SEED_CONTRACT {
        assert!(
            body.contains(&format!("\n# TYPE {name} {kind}\n")),
            "missing # TYPE {name} {kind}"
        );
        assert!(
            body.contains(&format!("\n# HELP {name} ")),
            "missing # HELP {name}"
        );
        if *kind == "histogram" {
            let line = format!("{name}_bucket{{topic=\"orders\",");
            let operation_line = format!("{name}_bucket{{operation=\"put\",");
            let prefix = if body.contains(&line) {
                line
            } else {
                operation_line
            };
            let bounds: Vec<f64> = body
                .lines()
                .filter(|l| l.starts_with(&prefix))
                .map(|l| {
                    let le = l.split("le=\"").nth(1).unwrap().split('"').next().unwrap();
                    le.parse::<f64>().unwrap()
                })
                .collect();
            let mut want = buckets.to_vec();
            want.push(f64::INFINITY);
            assert_eq!(bounds, want, "{name} buckets");
        }
    }
}

#[tokio::test]
async fn other_methods_get_405() {
    let telemetry = support::telemetry();
    let addr = support::serve(metrics_router(&telemetry)).await;
    let client = reqwest::Client::new();
    for method in [
        reqwest::Method::POST,
        reqwest::Method::PUT,
        reqwest::Method::DELETE,
    ] {
        let response = client
            .request(method.clone(), format!("http://{addr}/metrics"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 405, "{method}");
    }
}

#[tokio::test]
async fn disabled_telemetry_serves_an_empty_exposition() {
    let telemetry = streamhouse_observability::Telemetry::new(
        streamhouse_observability::TelemetryConfig::default().with_disabled(true),
    )
    .unwrap();
    telemetry
        .producer()
        .record_batch("orders", 1, 1, std::time::Duration::from_millis(1));
    let addr = support::serve(metrics_router(&telemetry)).await;
    let response = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "");
}
