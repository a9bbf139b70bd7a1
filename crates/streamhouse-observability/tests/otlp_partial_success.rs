//! A collector that accepts an export but refuses part of it (OTLP partial success): the
//! export counts as done, and the refusal is logged when it starts and when it stops, not for
//! every batch.

#![cfg(all(feature = "otlp-http", feature = "axum"))]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::routing::post;
use opentelemetry::trace::{Tracer as _, TracerProvider as _};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};
use prost::Message as _;
use streamhouse_observability::otlp::{OtlpConfig, OtlpProtocol, Signal};
use streamhouse_observability::{Telemetry, TelemetryConfig};

#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Log {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }

    fn count(&self, needle: &str) -> usize {
        self.text().matches(needle).count()
    }
}

/// Answers `/v1/traces` with a partial success refusing 2 spans while `refusing` is set.
async fn collector(refusing: Arc<AtomicBool>) -> String {
    let app = Router::new().route(
        "/v1/traces",
        post(move || {
            let refusing = refusing.load(Ordering::Relaxed);
            async move {
                let response = ExportTraceServiceResponse {
                    partial_success: refusing.then(|| ExportTracePartialSuccess {
                        rejected_spans: 2,
                        error_message: "spans older than 1h".into(),
                    }),
                };
                (
                    [("content-type", "application/x-protobuf")],
                    response.encode_to_vec(),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_success_is_logged_when_it_starts_and_stops() {
    // Exports run on the SDK's own thread, which logs through the global subscriber.
    let log = Log::default();
    let writer = log.clone();
    tracing::subscriber::set_global_default(
        tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_max_level(tracing::Level::INFO)
            .with_ansi(false)
            .finish(),
    )
    .unwrap();
    let refusing = Arc::new(AtomicBool::new(true));
    let endpoint = collector(Arc::clone(&refusing)).await;
    let mut otlp = OtlpConfig::default()
        .with_endpoint(&endpoint, OtlpProtocol::HttpProtobuf)
        .with_span_export_delay(Duration::from_millis(50));
    // Spans only: the collector answers `/v1/traces` alone.
    otlp.metrics = None;
    otlp.logs = None;
    let telemetry = Telemetry::new(TelemetryConfig::default().with_otlp(otlp)).unwrap();
    let tracer = telemetry.tracer_provider().tracer("partial");
    let wait_for = |needle: &'static str, times: usize| {
        let log = log.clone();
        async move {
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while log.count(needle) < times {
                assert!(
                    std::time::Instant::now() < deadline,
                    "{needle}: {}",
                    log.text()
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };

    // Three refused batches: one warning, with the count and the collector's reason.
    for _ in 0..3 {
        tracer.in_span("refused", |_| {});
        telemetry.tracer_provider().force_flush().unwrap();
    }
    wait_for("rejected part of an OTLP export", 1).await;
    let text = log.text();
    assert_eq!(log.count("rejected part of an OTLP export"), 1, "{text}");
    assert!(text.contains("rejected=2"), "{text}");
    assert!(text.contains("spans older than 1h"), "{text}");
    assert!(text.contains("signal=\"traces\""), "{text}");
    // A partial success is a done export, not a failure.
    assert_eq!(telemetry.export_failures(Signal::Traces), 0);

    // Whole again: one line says so.
    refusing.store(false, Ordering::Relaxed);
    tracer.in_span("taken", |_| {});
    telemetry.tracer_provider().force_flush().unwrap();
    wait_for("takes whole OTLP exports again", 1).await;
    assert_eq!(log.count("rejected part of an OTLP export"), 1);
    let _ = telemetry.shutdown();
}
