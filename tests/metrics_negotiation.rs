//! `/metrics` over HTTP: format negotiation, gzip, and the bound on concurrent scrapes.

mod support;

use std::io::Read;
use std::sync::mpsc;
use std::time::Duration;

use streamhouse_observability::http::metrics_router;
use streamhouse_observability::prometheus::openmetrics;
use streamhouse_observability::prometheus::text;
use streamhouse_observability::{Telemetry, TelemetryConfig, catalog};

const PROMETHEUS_2: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

#[tokio::test]
async fn content_type_follows_the_accept_header() {
    let telemetry = support::telemetry();
    telemetry.storage().record_cache_hit();
    let addr = support::serve(metrics_router(&telemetry)).await;
    let client = reqwest::Client::new();
    let cases = [
        (Some(PROMETHEUS_2), openmetrics::CONTENT_TYPE),
        (
            Some("application/openmetrics-text; version=1.0.0"),
            openmetrics::CONTENT_TYPE,
        ),
        (Some("text/plain"), text::CONTENT_TYPE),
        (Some("*/*"), text::CONTENT_TYPE),
        (None, text::CONTENT_TYPE),
        (Some("garbage;;q=x,,"), text::CONTENT_TYPE),
        (
            Some("text/plain;q=0.3,application/openmetrics-text;q=0.9"),
            openmetrics::CONTENT_TYPE,
        ),
        (
            Some("application/openmetrics-text;q=0.3,text/plain;q=0.9"),
            text::CONTENT_TYPE,
        ),
    ];
    for (accept, want) in cases {
        let mut request = client.get(format!("http://{addr}/metrics"));
        if let Some(accept) = accept {
            request = request.header("accept", accept);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], want, "{accept:?}");
        let body = response.text().await.unwrap();
        assert_eq!(
            body.ends_with("# EOF\n"),
            want == openmetrics::CONTENT_TYPE,
            "{accept:?}"
        );
    }
}

#[tokio::test]
async fn gzip_round_trips() {
    let telemetry = support::telemetry();
    let _recorded = support::record_every_metric(&telemetry);
    let addr = support::serve(metrics_router(&telemetry)).await;
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/metrics");

    let plain = client.get(&url).send().await.unwrap();
    assert!(plain.headers().get("content-encoding").is_none());
    let plain = plain.text().await.unwrap();

    let gzipped = client
        .get(&url)
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(gzipped.headers()["content-encoding"], "gzip");
    let compressed = gzipped.bytes().await.unwrap();
    assert!(
        compressed.len() * 3 < plain.len(),
        "{} vs {}",
        compressed.len(),
        plain.len()
    );
    let mut decoded = String::new();
    flate2::read::GzDecoder::new(&compressed[..])
        .read_to_string(&mut decoded)
        .unwrap();
    // Only uptime moves between the two scrapes.
    let stable = |body: &str| -> Vec<String> {
        body.lines()
            .filter(|l| !l.starts_with(catalog::UPTIME.prometheus_name))
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(stable(&decoded), stable(&plain));
}

#[tokio::test]
async fn scrapes_past_the_limit_get_503() {
    let mut config = TelemetryConfig::default();
    config.prometheus.max_concurrent_scrapes = 1;
    let telemetry = Telemetry::new(config).unwrap();
    // A gauge source that holds the first scrape until the test lets it go.
    let (entered_tx, entered_rx) = mpsc::channel::<()>();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let (entered_tx, release_rx) = (
        std::sync::Mutex::new(entered_tx),
        std::sync::Mutex::new(release_rx),
    );
    let _slow = telemetry.system().observe_topics(move || {
        let _ = entered_tx.lock().unwrap().send(());
        let _ = release_rx
            .lock()
            .unwrap()
            .recv_timeout(Duration::from_secs(10));
        1
    });
    let addr = support::serve(metrics_router(&telemetry)).await;
    let url = format!("http://{addr}/metrics");

    let first = tokio::spawn(reqwest::get(url.clone()));
    tokio::task::spawn_blocking(move || entered_rx.recv_timeout(Duration::from_secs(10)))
        .await
        .unwrap()
        .expect("first scrape reached the gauge source");
    let second = reqwest::get(&url).await.unwrap();
    assert_eq!(second.status(), 503);
    assert_eq!(second.headers()["retry-after"], "1");

    release_tx.send(()).unwrap();
    assert_eq!(first.await.unwrap().unwrap().status(), 200);
    // The permit is back: the next scrape is served.
    release_tx.send(()).unwrap();
    assert_eq!(reqwest::get(&url).await.unwrap().status(), 200);
}
