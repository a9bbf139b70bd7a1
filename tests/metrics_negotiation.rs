//! `/metrics` over HTTP: scrape protocol negotiation, `HEAD`, disabled telemetry, gzip, and
//! the bound on concurrent scrapes.

mod support;

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use streamhouse_observability::config::{MAX_CONCURRENT_SCRAPES, PrometheusConfig};
use streamhouse_observability::http::metrics_router;
use streamhouse_observability::prometheus::{Format, ScrapeProtocol};
use streamhouse_observability::{Telemetry, TelemetryConfig, TelemetryError, catalog};

const PROMETHEUS_2: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
const PROMETHEUS_3: &str = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1";

// The Content-Types as the negotiation document requires them, written out rather than
// taken from `ScrapeProtocol::content_type`.
const OPENMETRICS_1: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=underscores";
const OPENMETRICS_0: &str = "application/openmetrics-text; version=0.0.1; charset=utf-8";
const TEXT_1: &str = "text/plain; version=1.0.0; charset=utf-8; escaping=underscores";
const TEXT_0: &str = "text/plain; version=0.0.4; charset=utf-8";

/// An `Accept` header asking for exactly `protocol`.
fn accept_only(protocol: ScrapeProtocol) -> &'static str {
    match protocol {
        ScrapeProtocol::OpenMetricsText1_0_0 => "application/openmetrics-text;version=1.0.0",
        ScrapeProtocol::OpenMetricsText0_0_1 => "application/openmetrics-text;version=0.0.1",
        ScrapeProtocol::PrometheusText1_0_0 => "text/plain;version=1.0.0;escaping=underscores",
        _ => "text/plain;version=0.0.4",
    }
}

const EVERY_PROTOCOL: [(ScrapeProtocol, &str); 4] = [
    (ScrapeProtocol::OpenMetricsText1_0_0, OPENMETRICS_1),
    (ScrapeProtocol::OpenMetricsText0_0_1, OPENMETRICS_0),
    (ScrapeProtocol::PrometheusText1_0_0, TEXT_1),
    (ScrapeProtocol::PrometheusText0_0_4, TEXT_0),
];

async fn get(client: &reqwest::Client, url: &str, accept: &str) -> reqwest::Response {
    let response = client
        .get(url)
        .header("accept", accept)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{accept}");
    response
}

/// The lines of a body that stay put between two scrapes: uptime and the process and
/// runtime figures move.
fn stable(body: &str) -> Vec<&str> {
    let moving = [
        &catalog::UPTIME,
        &catalog::PROCESS_RESIDENT_MEMORY,
        &catalog::PROCESS_CPU,
        &catalog::PROCESS_OPEN_FDS,
        &catalog::PROCESS_THREADS,
        &catalog::RUNTIME_ALIVE_TASKS,
        &catalog::RUNTIME_GLOBAL_QUEUE_DEPTH,
        // Each scrape records itself.
        &catalog::TELEMETRY_SCRAPE_DURATION,
        &catalog::TELEMETRY_SCRAPE_BODY_SIZE,
    ];
    body.lines()
        .filter(|l| {
            // A family's metadata too: the scrape histograms appear with the first scrape.
            let name = ["# HELP ", "# TYPE ", "# UNIT "]
                .iter()
                .find_map(|prefix| l.strip_prefix(prefix))
                .unwrap_or(l);
            !moving
                .iter()
                .any(|def| name.starts_with(def.prometheus_name))
        })
        .collect()
}

#[tokio::test]
async fn content_type_follows_the_accept_header() {
    let telemetry = support::telemetry();
    telemetry.storage().record_cache_hit();
    let addr = support::serve(metrics_router(&telemetry)).await;
    let client = reqwest::Client::new();
    // Each case: the Accept fields sent, the Content-Type answered.
    let cases: &[(&[&str], &str)] = &[
        (&[PROMETHEUS_2], OPENMETRICS_1),
        (&[PROMETHEUS_3], OPENMETRICS_1),
        // Protobuf first: we do not serve it, so the next best.
        (
            &[
                "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;escaping=allow-utf-8;q=0.6,application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,*/*;q=0.1",
            ],
            OPENMETRICS_1,
        ),
        (
            &["application/openmetrics-text;version=0.0.1;q=0.5,*/*;q=0.1"],
            OPENMETRICS_0,
        ),
        (
            &["text/plain;version=1.0.0;escaping=allow-utf-8;q=0.5,text/plain;version=0.0.4;q=0.4"],
            TEXT_1,
        ),
        (
            &["application/openmetrics-text; version=1.0.0"],
            OPENMETRICS_1,
        ),
        (&["application/openmetrics-text"], OPENMETRICS_1),
        (&["text/plain"], TEXT_0),
        (&["*/*"], TEXT_0),
        (&[], TEXT_0),
        (&["garbage;;q=x,,"], TEXT_0),
        (
            &["application/openmetrics-text;version=1.0.0;escaping=bogus"],
            TEXT_0,
        ),
        (&["application/openmetrics-text;q=0,*/*;q=0.1"], TEXT_0),
        (
            &["text/plain;q=0.3,application/openmetrics-text;q=0.9"],
            OPENMETRICS_1,
        ),
        (
            &["application/openmetrics-text;q=0.3,text/plain;q=0.9"],
            TEXT_0,
        ),
        // Two Accept fields are one list.
        (
            &[
                "text/plain;q=0.1",
                "application/openmetrics-text;version=0.0.1;q=0.5",
            ],
            OPENMETRICS_0,
        ),
    ];
    for (fields, want) in cases {
        let mut request = client.get(format!("http://{addr}/metrics"));
        for field in *fields {
            request = request.header("accept", *field);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], *want, "{fields:?}");
        assert_eq!(
            response.headers()["vary"],
            "accept, accept-encoding",
            "{fields:?}"
        );
        let body = response.text().await.unwrap();
        assert_eq!(
            body.ends_with("# EOF\n"),
            want.starts_with("application/openmetrics-text"),
            "{fields:?}"
        );
    }
}

#[tokio::test]
async fn both_versions_of_a_format_share_one_body() {
    let telemetry = support::telemetry();
    let _recorded = support::record_every_metric(&telemetry);
    let addr = support::serve(metrics_router(&telemetry)).await;
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/metrics");
    let mut bodies = Vec::new();
    for (protocol, content_type) in EVERY_PROTOCOL {
        let response = get(&client, &url, accept_only(protocol)).await;
        assert_eq!(response.headers()["content-type"], content_type);
        bodies.push(response.text().await.unwrap());
    }
    let [om_1, om_0, text_1, text_0] = &bodies[..] else {
        unreachable!()
    };
    assert_eq!(stable(om_1), stable(om_0));
    assert_eq!(stable(text_1), stable(text_0));
    assert_ne!(stable(om_1), stable(text_0));
    support::parse_with_prometheus_client("openmetrics", om_0).expect("OpenMetrics 0.0.1");
    support::parse_with_prometheus_client("text", text_1).expect("text 1.0.0");
}

#[tokio::test]
async fn head_answers_the_headers_without_collecting() {
    let telemetry = support::telemetry();
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let _topics = telemetry.system().observe_topics(move || {
        counted.fetch_add(1, Ordering::SeqCst);
        7
    });
    let addr = support::serve(metrics_router(&telemetry)).await;
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/metrics");

    for (protocol, content_type) in EVERY_PROTOCOL {
        for gzip in [false, true] {
            let encoding = if gzip { "gzip" } else { "identity" };
            // GET collects: the callback runs.
            let before = calls.load(Ordering::SeqCst);
            let got = client
                .get(&url)
                .header("accept", accept_only(protocol))
                .header("accept-encoding", encoding)
                .send()
                .await
                .unwrap();
            assert_eq!(got.status(), 200);
            assert!(calls.load(Ordering::SeqCst) > before, "GET collected");

            let after_get = calls.load(Ordering::SeqCst);
            let head = client
                .head(&url)
                .header("accept", accept_only(protocol))
                .header("accept-encoding", encoding)
                .send()
                .await
                .unwrap();
            assert_eq!(calls.load(Ordering::SeqCst), after_get, "HEAD collected");
            assert_eq!(head.status(), 200);
            for name in ["content-type", "vary", "content-encoding"] {
                assert_eq!(
                    head.headers().get(name),
                    got.headers().get(name),
                    "{name} of {protocol:?}, {encoding}"
                );
            }
            assert_eq!(head.headers()["content-type"], content_type);
            // No Content-Length: 0, which would claim GET's body is empty.
            assert!(head.headers().get("content-length").is_none());
            assert!(head.bytes().await.unwrap().is_empty());
        }
    }
}

#[tokio::test]
async fn disabled_telemetry_answers_empty_expositions() {
    let telemetry = Telemetry::new(TelemetryConfig::default().with_disabled(true)).unwrap();
    assert_eq!(telemetry.render(Format::OpenMetrics), "# EOF\n");
    assert_eq!(telemetry.render(Format::Text), "");
    assert_eq!(telemetry.render_prometheus(), "");
    let addr = support::serve(metrics_router(&telemetry)).await;
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/metrics");

    for (protocol, content_type) in EVERY_PROTOCOL {
        let response = get(&client, &url, accept_only(protocol)).await;
        assert_eq!(response.headers()["content-type"], content_type);
        let body = response.text().await.unwrap();
        let head = client
            .head(&url)
            .header("accept", accept_only(protocol))
            .send()
            .await
            .unwrap();
        assert_eq!(head.status(), 200);
        assert_eq!(head.headers()["content-type"], content_type);
        assert_eq!(
            head.headers()["content-length"],
            body.len().to_string().as_str()
        );
        match protocol.format() {
            Format::OpenMetrics => {
                assert_eq!(body, "# EOF\n");
                let parsed = support::parse_with_prometheus_client("openmetrics", &body)
                    .expect("the strict parser accepts an empty exposition");
                assert!(parsed.samples.is_empty());
            }
            Format::Text => assert_eq!(body, ""),
        }
    }
}

#[tokio::test]
async fn an_unusable_scrape_limit_is_a_config_error() {
    for limit in [0, MAX_CONCURRENT_SCRAPES + 1, usize::MAX] {
        let config = TelemetryConfig::default()
            .with_prometheus(PrometheusConfig::default().with_max_concurrent_scrapes(limit));
        match Telemetry::new(config) {
            Err(TelemetryError::Config(error)) => {
                assert_eq!(error.variable, "PrometheusConfig::max_concurrent_scrapes");
                assert_eq!(error.value, limit.to_string());
            }
            other => panic!("{limit}: {other:?}"),
        }
    }
    // The bounds themselves serve.
    for limit in [1, MAX_CONCURRENT_SCRAPES] {
        let config = TelemetryConfig::default()
            .with_prometheus(PrometheusConfig::default().with_max_concurrent_scrapes(limit));
        let telemetry = Telemetry::new(config).unwrap();
        let addr = support::serve(metrics_router(&telemetry)).await;
        let response = reqwest::get(format!("http://{addr}/metrics"))
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{limit}");
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
    assert_eq!(stable(&decoded), stable(&plain));
}
