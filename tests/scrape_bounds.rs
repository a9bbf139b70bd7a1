//! `/metrics` over real HTTP: gzip streamed while rendering and negotiated by
//! `Accept-Encoding`, and scrapes that bound themselves (concurrency limit, Prometheus's
//! scrape timeout, a scraper that leaves) and observe themselves in the catalog's
//! `streamhouse_telemetry_scrape*` metrics.

mod support;

use std::io::Read;
use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use streamhouse_observability::catalog::{self, MetricDef};
use streamhouse_observability::http::metrics_router;
use streamhouse_observability::{Telemetry, TelemetryConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Lines of `body` that do not move between two scrapes of the same state: process and
/// runtime figures and the scrape metrics themselves do.
fn stable(body: &str) -> Vec<&str> {
    let moving = [
        &catalog::UPTIME,
        &catalog::PROCESS_RESIDENT_MEMORY,
        &catalog::PROCESS_CPU,
        &catalog::PROCESS_OPEN_FDS,
        &catalog::PROCESS_THREADS,
        &catalog::RUNTIME_ALIVE_TASKS,
        &catalog::RUNTIME_GLOBAL_QUEUE_DEPTH,
        &catalog::TELEMETRY_SCRAPE_DURATION,
        &catalog::TELEMETRY_SCRAPE_BODY_SIZE,
    ];
    body.lines()
        .filter(|l| {
            // A family's metadata too: the scrape histograms appear with the first scrape.
            let name = l
                .strip_prefix("# HELP ")
                .or_else(|| l.strip_prefix("# TYPE "))
                .unwrap_or(l);
            !moving
                .iter()
                .any(|def| name.starts_with(def.prometheus_name))
        })
        .collect()
}

/// The value of the sample `name` + `labels` (`{reason="deadline"}`, or empty) in the text
/// exposition `body`.
fn sample(body: &str, name: &str, labels: &str) -> Option<f64> {
    let prefix = format!("{name}{labels} ");
    body.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|v| v.parse().unwrap())
}

/// The scrape metrics as the telemetry reads them now (rendered in process: no scrape).
struct Scrapes {
    served: f64,
    body_bytes: f64,
    refused: f64,
    deadline: f64,
    client_gone: f64,
}

fn scrapes(telemetry: &Telemetry) -> Scrapes {
    let text = telemetry.render_prometheus();
    let count = |def: &MetricDef, suffix: &str| {
        sample(&text, &format!("{}{suffix}", def.prometheus_name), "").unwrap_or(0.0)
    };
    let stopped = |reason: &str| {
        sample(
            &text,
            catalog::TELEMETRY_SCRAPES_STOPPED.prometheus_name,
            &format!("{{reason=\"{reason}\"}}"),
        )
        .expect("every reason is exposed, at 0 before it happens")
    };
    let duration_count = count(&catalog::TELEMETRY_SCRAPE_DURATION, "_count");
    let served = count(&catalog::TELEMETRY_SCRAPE_BODY_SIZE, "_count");
    assert_eq!(duration_count, served, "one duration per body size");
    Scrapes {
        served,
        body_bytes: count(&catalog::TELEMETRY_SCRAPE_BODY_SIZE, "_sum"),
        refused: sample(
            &text,
            catalog::TELEMETRY_SCRAPES_REFUSED.prometheus_name,
            "",
        )
        .expect("the refusal counter is exposed, at 0 before any refusal"),
        deadline: stopped("deadline"),
        client_gone: stopped("client_gone"),
    }
}

/// A telemetry instance serving at most one scrape at a time, with room for `topics`
/// topics, each recorded once: four series per topic, about 2 KB of text.
fn telemetry_with_topics(topics: usize) -> Telemetry {
    let mut config = TelemetryConfig::default()
        .with_service_instance_id("test-instance")
        .with_cardinality_limit(topics + 10);
    config.prometheus.max_concurrent_scrapes = 1;
    let telemetry = Telemetry::new(config).unwrap();
    let producer = telemetry.producer();
    for i in 0..topics {
        let latency = Duration::from_micros(100 + i as u64 % 5_000);
        producer.record_batch(&format!("topic-{i:06}"), 1 + i as u64 % 700, 100, latency);
    }
    telemetry
}

fn gunzip(compressed: &[u8]) -> String {
    let mut text = String::new();
    flate2::read::GzDecoder::new(compressed)
        .read_to_string(&mut text)
        .expect("a complete gzip stream");
    text
}

/// Sends `GET /metrics` with `headers` on a raw connection and reads until the end of the
/// response head, so the test decides when (and whether) to read the body.
async fn open_scrape(addr: SocketAddr, headers: &str) -> (TcpStream, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!("GET /metrics HTTP/1.1\r\nhost: {addr}\r\n{headers}\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = stream.read(&mut byte).await.unwrap();
        assert_eq!(n, 1, "connection closed in the response head: {head:?}");
        head.push(byte[0]);
    }
    (stream, String::from_utf8(head).unwrap())
}

/// Reads what is left on `stream` until the server closes it or it fails; whether the
/// chunked body ended with its last chunk.
async fn drain(mut stream: TcpStream) -> bool {
    let mut rest = Vec::new();
    let mut buffer = vec![0u8; 1 << 16];
    loop {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => rest.extend_from_slice(&buffer[..n]),
        }
        if rest.ends_with(b"\r\n0\r\n\r\n") {
            return true;
        }
    }
    false
}

#[tokio::test]
async fn gzip_when_accepted_is_the_same_series_and_passes_promtool() {
    let telemetry = support::telemetry();
    let _recorded = support::record_every_metric(&telemetry);
    let addr = support::serve(metrics_router(&telemetry)).await;
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/metrics");

    let plain = client.get(&url).send().await.unwrap();
    assert_eq!(plain.status(), 200);
    assert!(plain.headers().get("content-encoding").is_none());
    assert_eq!(plain.headers()["vary"], "accept, accept-encoding");
    let plain = plain.text().await.unwrap();

    let gzipped = client
        .get(&url)
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(gzipped.status(), 200);
    assert_eq!(gzipped.headers()["content-encoding"], "gzip");
    assert_eq!(gzipped.headers()["vary"], "accept, accept-encoding");
    let compressed = gzipped.bytes().await.unwrap();
    assert!(compressed.len() * 3 < plain.len());
    let decoded = gunzip(&compressed);
    assert_eq!(stable(&decoded), stable(&plain));

    // promtool reads the decompressed body as it reads any: only the seed's `_total` gauges.
    let (_, complaints) = support::promtool_check_metrics(&decoded);
    let allowed = [
        catalog::PARTITIONS.prometheus_name,
        catalog::TOPICS.prometheus_name,
    ];
    assert!(
        complaints
            .iter()
            .all(|c| allowed.iter().any(|name| c.starts_with(name))),
        "{complaints:?}"
    );
    assert_eq!(complaints.len(), allowed.len(), "{complaints:?}");

    // OpenMetrics too, and its body still ends with `# EOF`.
    let openmetrics = client
        .get(&url)
        .header("accept", "application/openmetrics-text;version=1.0.0")
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(openmetrics.headers()["content-encoding"], "gzip");
    let openmetrics = gunzip(&openmetrics.bytes().await.unwrap());
    assert!(openmetrics.ends_with("# EOF\n"));
    support::parse_with_prometheus_client("openmetrics", &openmetrics).expect("OpenMetrics");
}

#[tokio::test]
async fn accept_encoding_weights_pick_the_coding() {
    let telemetry = support::telemetry();
    telemetry.storage().record_cache_hit();
    let addr = support::serve(metrics_router(&telemetry)).await;
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/metrics");
    for (accept_encoding, gzip) in [
        ("gzip;q=0", false),
        ("identity", false),
        ("br, deflate", false),
        ("identity;q=1, gzip;q=0.5", false),
        ("*;q=0", false),
        ("gzip;q=1.5", false),
        ("*", true),
        ("GZIP;q=0.5", true),
        ("deflate, gzip;q=0.8, identity;q=0.1", true),
    ] {
        let response = client
            .get(&url)
            .header("accept-encoding", accept_encoding)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{accept_encoding}");
        let encoding = response.headers().get("content-encoding").cloned();
        let body = response.bytes().await.unwrap();
        let text = match gzip {
            true => {
                assert_eq!(encoding.unwrap(), "gzip", "{accept_encoding}");
                gunzip(&body)
            }
            false => {
                assert!(encoding.is_none(), "{accept_encoding}");
                String::from_utf8(body.to_vec()).unwrap()
            }
        };
        assert!(
            text.contains("streamhouse_cache_hits_total 1\n"),
            "{accept_encoding}"
        );
        // HEAD announces the same coding.
        let head = client
            .head(&url)
            .header("accept-encoding", accept_encoding)
            .send()
            .await
            .unwrap();
        assert_eq!(
            head.headers().get("content-encoding").is_some(),
            gzip,
            "{accept_encoding}"
        );
    }
}

#[tokio::test]
async fn duration_and_body_size_record_each_scrape_as_sent() {
    let telemetry = support::telemetry();
    // Not `record_every_metric`: it records a scrape of its own.
    telemetry.storage().record_cache_hit();
    let before = scrapes(&telemetry);
    assert_eq!(
        (
            before.served,
            before.refused,
            before.deadline,
            before.client_gone
        ),
        (0.0, 0.0, 0.0, 0.0)
    );
    let addr = support::serve(metrics_router(&telemetry)).await;
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/metrics");

    let plain = client
        .get(&url)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let after_plain = scrapes(&telemetry);
    assert_eq!(after_plain.served, 1.0);
    assert_eq!(after_plain.body_bytes, plain.len() as f64);

    // Compressed, the size is what went on the wire.
    let gzipped = client
        .get(&url)
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let after_gzip = scrapes(&telemetry);
    assert_eq!(after_gzip.served, 2.0);
    assert_eq!(after_gzip.body_bytes, (plain.len() + gzipped.len()) as f64);
    // The second body carries the first scrape.
    let second = gunzip(&gzipped);
    let count = format!(
        "{}_count",
        catalog::TELEMETRY_SCRAPE_DURATION.prometheus_name
    );
    assert_eq!(sample(&second, &count, ""), Some(1.0));

    // A timeout that is not a positive number of seconds is ignored: the scrape is served.
    for ignored in ["soon", "0", "-3", "NaN"] {
        let response = client
            .get(&url)
            .header("x-prometheus-scrape-timeout-seconds", ignored)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{ignored}");
        response.bytes().await.unwrap();
    }
    let after = scrapes(&telemetry);
    assert_eq!(after.served, 6.0);
    assert_eq!(
        (after.refused, after.deadline, after.client_gone),
        (0.0, 0.0, 0.0)
    );
}

#[tokio::test]
async fn a_scrape_past_the_limit_is_refused_and_counted() {
    let mut config = TelemetryConfig::default();
    config.prometheus.max_concurrent_scrapes = 1;
    let telemetry = Telemetry::new(config).unwrap();
    // A gauge source that holds the first scrape until the test lets it go.
    let (entered_tx, entered_rx) = mpsc::channel::<()>();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let (entered_tx, release_rx) = (
        std::sync::Mutex::new(Some(entered_tx)),
        std::sync::Mutex::new(release_rx),
    );
    let _slow = telemetry.system().observe_topics(move || {
        // Only the first collection waits.
        if let Some(entered) = entered_tx.lock().unwrap().take() {
            let _ = entered.send(());
            let _ = release_rx
                .lock()
                .unwrap()
                .recv_timeout(Duration::from_secs(10));
        }
        1
    });
    let addr = support::serve(metrics_router(&telemetry)).await;
    let url = format!("http://{addr}/metrics");

    let first = tokio::spawn(reqwest::get(url.clone()));
    tokio::task::spawn_blocking(move || entered_rx.recv_timeout(Duration::from_secs(10)))
        .await
        .unwrap()
        .expect("the first scrape reached the gauge source");
    for _ in 0..2 {
        let refused = reqwest::get(&url).await.unwrap();
        assert_eq!(refused.status(), 503);
        assert_eq!(refused.headers()["retry-after"], "1");
    }
    // HEAD collects nothing, so it needs no permit.
    let head = reqwest::Client::new().head(&url).send().await.unwrap();
    assert_eq!(head.status(), 200);
    release_tx.send(()).unwrap();
    let first = first.await.unwrap().unwrap();
    assert_eq!(first.status(), 200);
    first.bytes().await.unwrap();

    let counted = scrapes(&telemetry);
    assert_eq!(counted.refused, 2.0);
    assert_eq!(counted.served, 1.0);
    assert_eq!(reqwest::get(&url).await.unwrap().status(), 200);
}

#[tokio::test]
async fn a_deadline_that_passes_during_the_collection_answers_503_and_frees_the_permit() {
    let mut config = TelemetryConfig::default();
    config.prometheus.max_concurrent_scrapes = 1;
    let telemetry = Telemetry::new(config).unwrap();
    let slow = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let slow_source = std::sync::Arc::clone(&slow);
    let _slow = telemetry.system().observe_topics(move || {
        if slow_source.swap(false, std::sync::atomic::Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(500));
        }
        1
    });
    let addr = support::serve(metrics_router(&telemetry)).await;
    let url = format!("http://{addr}/metrics");
    let client = reqwest::Client::new();

    let started = Instant::now();
    let stopped = client
        .get(&url)
        .header("x-prometheus-scrape-timeout-seconds", "0.05")
        .send()
        .await
        .unwrap();
    assert_eq!(stopped.status(), 503);
    assert!(started.elapsed() < Duration::from_secs(5));
    let text = stopped.text().await.unwrap();
    assert!(text.contains("deadline"), "{text}");
    // Counted as soon as answered, and the permit is free: the next scrape is served.
    assert_eq!(scrapes(&telemetry).deadline, 1.0);
    let next = client.get(&url).send().await.unwrap();
    assert_eq!(next.status(), 200);
    next.bytes().await.unwrap();
    let counted = scrapes(&telemetry);
    assert_eq!((counted.refused, counted.served), (0.0, 1.0));
}

/// 5000 topics: 20k series, about 10 MB of text, far more than socket buffers and the body
/// queue hold, and far longer to render than 100 ms in a debug build.
const LARGE: usize = 5_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_render_stops_at_the_scrape_timeout_and_frees_its_permit() {
    let telemetry = telemetry_with_topics(LARGE);
    let addr = support::serve(metrics_router(&telemetry)).await;

    // Prometheus's header, far shorter than the render: it stops, before its first byte
    // (503) or, if a render streams its first chunk within 100 ms, with its body cut.
    let started = Instant::now();
    let (stream, head) = open_scrape(addr, "x-prometheus-scrape-timeout-seconds: 0.1\r\n").await;
    if head.starts_with("HTTP/1.1 200") {
        assert!(!drain(stream).await, "a stopped body ended as complete");
    } else {
        assert!(head.starts_with("HTTP/1.1 503"), "{head}");
    }
    let counted = scrapes(&telemetry);
    assert_eq!(
        (
            counted.deadline,
            counted.served,
            counted.refused,
            counted.client_gone
        ),
        (1.0, 0.0, 0.0, 0.0)
    );

    // A scraper that stops reading: the render, blocked on a full queue, stops at the
    // deadline; the body ends with an error, not as if complete.
    let (stream, head) = open_scrape(addr, "x-prometheus-scrape-timeout-seconds: 2\r\n").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(!drain(stream).await, "a stopped body ended as complete");
    let counted = support::eventually(Duration::from_secs(10), "the stop counted", || async {
        let counted = scrapes(&telemetry);
        (counted.deadline == 2.0).then_some(counted)
    })
    .await;
    assert_eq!(
        (counted.served, counted.refused, counted.client_gone),
        (0.0, 0.0, 0.0)
    );
    assert!(started.elapsed() < Duration::from_secs(10));

    // The permit is free again: the next scrape (limit 1) is served, whole.
    let response = reqwest::Client::new()
        .get(format!("http://{addr}/metrics"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body = gunzip(&response.bytes().await.unwrap());
    let records = format!("{}{{", catalog::PRODUCER_RECORDS.prometheus_name);
    let series = body.lines().filter(|l| l.starts_with(&records)).count();
    assert_eq!(series, LARGE);
    assert_eq!(scrapes(&telemetry).refused, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scraper_that_leaves_mid_body_is_counted_as_gone() {
    let telemetry = telemetry_with_topics(LARGE);
    let addr = support::serve(metrics_router(&telemetry)).await;

    let (mut stream, head) = open_scrape(addr, "").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let mut some = [0u8; 1024];
    stream.read_exact(&mut some).await.unwrap();
    drop(stream);

    let counted = support::eventually(Duration::from_secs(30), "the leave counted", || async {
        let counted = scrapes(&telemetry);
        (counted.client_gone == 1.0).then_some(counted)
    })
    .await;
    assert_eq!(
        (counted.served, counted.refused, counted.deadline),
        (0.0, 0.0, 0.0)
    );
    // Its permit is back.
    let response = reqwest::Client::new()
        .get(format!("http://{addr}/metrics"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.bytes().await.unwrap();
}
