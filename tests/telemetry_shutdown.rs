//! Telemetry shutdown flushes every signal in parallel within its deadline: a metrics
//! collector that accepts and never answers neither holds the caller past the deadline nor
//! keeps spans recorded before shutdown from a working traces endpoint, from sync code and
//! from async code alike (where no runtime worker is held meanwhile).

mod support;

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use opentelemetry::trace::{Tracer as _, TracerProvider as _};
use streamhouse_observability::otlp::{OtlpConfig, OtlpExporterConfig, OtlpProtocol, Signal};
use streamhouse_observability::{Telemetry, TelemetryConfig, TelemetryError};
use support::otlp_receiver::Receiver;

const DEADLINE: Duration = Duration::from_secs(2);

/// A collector that takes connections and never answers; they stay open until it is dropped.
struct Silent {
    addr: std::net::SocketAddr,
    _thread: std::thread::JoinHandle<()>,
}

impl Silent {
    fn start() -> Silent {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let thread = std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming().flatten() {
                held.push(stream);
            }
        });
        Silent {
            addr,
            _thread: thread,
        }
    }
}

/// Metrics to `silent` (an export outlasts the deadline), traces to `receiver`; nothing is
/// exported before shutdown.
fn telemetry(silent: &Silent, receiver: &Receiver) -> Telemetry {
    let mut otlp = OtlpConfig::default()
        .with_metric_export_interval(Duration::from_secs(3600))
        .with_metric_export_timeout(Duration::from_secs(60))
        .with_span_export_delay(Duration::from_secs(3600));
    otlp.metrics = Some(
        OtlpExporterConfig::new(
            format!("http://{}/v1/metrics", silent.addr),
            OtlpProtocol::HttpProtobuf,
        )
        .with_timeout(Duration::from_secs(60)),
    );
    otlp.traces = Some(OtlpExporterConfig::new(
        format!("{}/v1/traces", receiver.http_endpoint()),
        OtlpProtocol::HttpProtobuf,
    ));
    let telemetry = Telemetry::new(
        TelemetryConfig::default()
            .with_otlp(otlp)
            .with_shutdown_timeout(DEADLINE),
    )
    .unwrap();
    telemetry
        .producer()
        .record_batch("orders", 1, 10, Duration::from_millis(1));
    let tracer = telemetry.tracer_provider().tracer("shutdown");
    tracer.in_span("before_shutdown", |_| {});
    telemetry
}

fn check(result: Result<(), TelemetryError>, took: Duration, receiver: &Receiver) {
    // The metrics push is still waiting for its answer: the deadline passed.
    assert!(
        matches!(result, Err(TelemetryError::ShutdownTimeout(t)) if t == DEADLINE),
        "{result:?}"
    );
    assert!(took >= DEADLINE - Duration::from_millis(100), "{took:?}");
    assert!(took < DEADLINE + Duration::from_secs(1), "{took:?}");
    let names: Vec<String> = receiver.with(|r| r.spans().into_iter().map(|s| s.name).collect());
    assert_eq!(names, ["before_shutdown"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_metrics_collector_neither_holds_shutdown_nor_the_spans() {
    let silent = Silent::start();
    let receiver = Receiver::start().await;
    let telemetry = telemetry(&silent, &receiver);
    let started = Instant::now();
    let result = tokio::task::spawn_blocking(move || telemetry.shutdown())
        .await
        .unwrap();
    check(result, started.elapsed(), &receiver);
    receiver.stop().await;
}

#[tokio::test(flavor = "current_thread")]
async fn async_shutdown_holds_no_runtime_worker() {
    let silent = Silent::start();
    // On this one thread: the receiver answers the final span export only if shutdown
    // leaves the runtime free.
    let receiver = Receiver::start().await;
    let telemetry = telemetry(&silent, &receiver);
    let ticks = Arc::new(AtomicUsize::new(0));
    let ticking = Arc::clone(&ticks);
    let ticker = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(10)).await;
            ticking.fetch_add(1, Ordering::Relaxed);
        }
    });
    let started = Instant::now();
    let result = telemetry.shutdown_async().await;
    let took = started.elapsed();
    ticker.abort();
    check(result, took, &receiver);
    assert!(ticks.load(Ordering::Relaxed) > 50, "the runtime was held");
    assert_eq!(telemetry.export_failures(Signal::Traces), 0);
    receiver.stop().await;
}
