//! A collector that is down from the start, hangs, or is killed mid-run and restarted:
//! recording and `/metrics` keep working, the failure counter rises, spans past the queue
//! bound are dropped and counted, export resumes, shutdown is bounded.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use streamhouse_observability::catalog;
use streamhouse_observability::http::metrics_router;
use streamhouse_observability::logging::{self, LoggingConfig};
use streamhouse_observability::otlp::{OtlpConfig, OtlpProtocol, Signal};
use streamhouse_observability::{Telemetry, TelemetryConfig};
use support::otlp_receiver::Receiver;

/// The exposed sample of `n` records produced to `orders`.
fn orders_records(n: u64) -> String {
    format!(
        "{}{{topic=\"orders\"}} {n}\n",
        catalog::PRODUCER_RECORDS.prometheus_name
    )
}

const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(2);

fn telemetry(endpoint: &str, protocol: OtlpProtocol) -> Telemetry {
    let otlp = OtlpConfig::default()
        .with_endpoint(endpoint, protocol)
        .with_metric_export_interval(Duration::from_millis(100))
        .with_span_export_delay(Duration::from_millis(100))
        .map_exporters(|e| e.with_timeout(Duration::from_millis(300)));
    let mut otlp = otlp;
    otlp.span_queue_size = 64;
    Telemetry::new(
        TelemetryConfig::default()
            .with_shutdown_timeout(SHUTDOWN_TIMEOUT)
            .with_otlp(otlp),
    )
    .unwrap()
}

fn failures_on_metrics_page(body: &str, signal: &str) -> f64 {
    let prefix = format!(
        "{}{{signal=\"{signal}\"}} ",
        catalog::TELEMETRY_EXPORT_FAILURES.prometheus_name
    );
    body.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {prefix} in:\n{body}"))
        .parse()
        .unwrap()
}

async fn wait_for(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    done()
}

/// Records many spans and metrics; returns how long it took.
fn record_burst(telemetry: &Telemetry) -> Duration {
    let subscriber =
        logging::subscriber(telemetry, &LoggingConfig::default(), std::io::sink).unwrap();
    let started = Instant::now();
    tracing::subscriber::with_default(subscriber, || {
        let orders = telemetry.producer().topic("orders");
        for _ in 0..5_000 {
            let _span = tracing::info_span!("produce").entered();
            orders.record_batch(1, 10, Duration::from_millis(1));
        }
    });
    started.elapsed()
}

async fn collector_down_from_the_start(protocol: OtlpProtocol) {
    let telemetry = telemetry(&format!("http://{}", support::free_addr()), protocol);
    let addr = support::serve(metrics_router(&telemetry)).await;

    let took = record_burst(&telemetry);
    // Recording and span creation never wait on the exporter (the queue holds 64 spans).
    assert!(took < Duration::from_secs(3), "recording took {took:?}");

    let raised = wait_for(Duration::from_secs(10), || {
        telemetry.export_failures(Signal::Metrics) >= 2
            && telemetry.export_failures(Signal::Traces) >= 1
    })
    .await;
    assert!(raised, "failures were not counted");
    let body = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(failures_on_metrics_page(&body, "metrics") >= 1.0);
    assert!(failures_on_metrics_page(&body, "traces") >= 1.0);
    assert!(body.contains(&orders_records(5000)), "{body}");
    // 5000 spans against a queue of 64 and a dead collector: most are dropped, and counted.
    let dropped = telemetry.dropped_spans();
    assert!(dropped > 1_000 && dropped < 5_000, "dropped {dropped}");
    let prefix = format!("{} ", catalog::TELEMETRY_SPANS_DROPPED.prometheus_name);
    let exposed: f64 = body
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {prefix} in:\n{body}"))
        .parse()
        .unwrap();
    assert!(exposed > 1_000.0, "exposed {exposed}");

    let started = Instant::now();
    let _ = telemetry.shutdown();
    let took = started.elapsed();
    assert!(
        took <= SHUTDOWN_TIMEOUT + Duration::from_millis(500),
        "shutdown took {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collector_down_from_the_start_over_grpc() {
    collector_down_from_the_start(OtlpProtocol::Grpc).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collector_down_from_the_start_over_http() {
    collector_down_from_the_start(OtlpProtocol::HttpProtobuf).await;
}

async fn collector_restarts(protocol: OtlpProtocol) {
    let receiver = Receiver::start().await;
    let (grpc, http) = (receiver.grpc_addr, receiver.http_addr);
    let endpoint = match protocol {
        OtlpProtocol::Grpc => receiver.grpc_endpoint(),
        OtlpProtocol::HttpProtobuf => receiver.http_endpoint(),
    };
    let telemetry = telemetry(&endpoint, protocol);
    let addr = support::serve(metrics_router(&telemetry)).await;
    let name = catalog::PRODUCER_RECORDS.prometheus_name;
    telemetry
        .producer()
        .record_batch("orders", 1, 10, Duration::from_millis(1));
    assert!(
        receiver
            .wait_until(Duration::from_secs(10), |r| r.metric(name).is_some())
            .await
    );
    assert_eq!(telemetry.export_failures(Signal::Metrics), 0);
    let took = record_burst(&telemetry);
    assert!(took < Duration::from_secs(3), "recording took {took:?}");

    receiver.stop().await;
    let before = telemetry.export_failures(Signal::Metrics);
    assert!(
        wait_for(Duration::from_secs(10), || telemetry
            .export_failures(Signal::Metrics)
            > before)
        .await,
        "a stopped collector was not counted"
    );
    // Still recording and serving while the collector is away.
    telemetry
        .producer()
        .record_batch("orders", 1, 10, Duration::from_millis(1));
    let body = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(body.contains(&orders_records(5002)), "{body}");
    assert!(failures_on_metrics_page(&body, "metrics") >= 1.0);

    let back = Receiver::start_on(grpc, http).await;
    let resumed = back
        .wait_until(Duration::from_secs(15), |r| r.metric(name).is_some())
        .await;
    assert!(
        resumed,
        "export did not resume after the collector came back"
    );
    let failures = telemetry.export_failures(Signal::Metrics);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        telemetry.export_failures(Signal::Metrics),
        failures,
        "failures kept rising after recovery"
    );
    let started = Instant::now();
    telemetry
        .shutdown()
        .expect("clean shutdown once the collector is back");
    assert!(started.elapsed() <= SHUTDOWN_TIMEOUT);
    back.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collector_killed_and_restarted_over_grpc() {
    collector_restarts(OtlpProtocol::Grpc).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collector_killed_and_restarted_over_http() {
    collector_restarts(OtlpProtocol::HttpProtobuf).await;
}

/// Accepts connections and never answers: a collector that hangs.
async fn hanging_collector() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (addr, task)
}

async fn slow_collector(protocol: OtlpProtocol) {
    let (addr, task) = hanging_collector().await;
    let telemetry = telemetry(&format!("http://{addr}"), protocol);
    let took = record_burst(&telemetry);
    assert!(took < Duration::from_secs(3), "recording took {took:?}");
    assert!(
        wait_for(Duration::from_secs(10), || telemetry
            .export_failures(Signal::Metrics)
            >= 1)
        .await,
        "timed-out exports are failures"
    );
    let started = Instant::now();
    let _ = telemetry.shutdown();
    let took = started.elapsed();
    assert!(
        took <= SHUTDOWN_TIMEOUT + Duration::from_millis(500),
        "shutdown took {took:?}"
    );
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hanging_collector_over_grpc() {
    slow_collector(OtlpProtocol::Grpc).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hanging_collector_over_http() {
    slow_collector(OtlpProtocol::HttpProtobuf).await;
}
