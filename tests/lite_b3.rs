//! `OTEL_PROPAGATORS` through the reference server: a produce request carrying Zipkin B3
//! headers (multi-header `X-B3-*`, or the single `b3` header) is continued by the server
//! span, checked on what a collector receives, and the stored record carries the same trace
//! as W3C `traceparent`, whatever the HTTP propagators are.

mod support;

use std::sync::Arc;
use std::time::Duration;

use object_store::memory::InMemory;
use serde_json::json;
use streamhouse_observability::logging::{self, LoggingConfig};
use streamhouse_observability::otlp::{OtlpConfig, OtlpProtocol};
use streamhouse_observability::{Telemetry, TelemetryConfig};
use support::lite::{start_with_telemetry, test_config};
use support::otlp_receiver::{Receiver, attribute, hex};

const B3_TRACE: &str = "463ac35c9f6413ad48485a3953bb6124";
const B3_SPAN: &str = "a2fb4a1d1a96d312";
/// A W3C parent the B3-only server must ignore.
const W3C_PARENT: &str = "00-11111111111111111111111111111111-2222222222222222-01";

/// Telemetry configured the way the server's environment would be, through `from_lookup`
/// (tests may not set process variables), pushing spans to `receiver`.
fn telemetry(receiver: &Receiver, propagators: &str) -> Telemetry {
    let propagators = propagators.to_owned();
    let config = TelemetryConfig::from_lookup(|name| {
        (name == "OTEL_PROPAGATORS").then(|| propagators.clone())
    })
    .expect("OTEL_PROPAGATORS parses");
    let otlp = OtlpConfig::default()
        .with_endpoint(&receiver.http_endpoint(), OtlpProtocol::HttpProtobuf)
        .with_span_export_delay(Duration::from_millis(50));
    Telemetry::new(config.with_otlp(otlp)).expect("telemetry starts")
}

/// Runs a server whose telemetry uses `propagators`, produces one record with `headers`, and
/// checks the server span and the stored record.
fn produce_with_b3(propagators: &str, headers: &[(&str, &str)]) {
    // Server tasks run on this runtime's threads, each with this test's subscriber, so the
    // two tests of this binary keep their own telemetry.
    let bootstrap = tokio::runtime::Runtime::new().unwrap();
    let receiver = bootstrap.block_on(Receiver::start());
    let telemetry = telemetry(&receiver, propagators);
    let subscriber =
        logging::subscriber(&telemetry, &LoggingConfig::default(), std::io::sink).unwrap();
    let dispatch = tracing::Dispatch::new(subscriber);
    let runtime = support::runtime_with(&dispatch);
    let _main = tracing::dispatcher::set_default(&dispatch);
    let stored = runtime.block_on(async {
        let server =
            start_with_telemetry(test_config(), Arc::new(InMemory::new()), telemetry.clone()).await;
        server.create_topic("b3", 1).await;
        let mut request = server
            .client
            .post(server.url("/api/v1/produce"))
            .json(&json!({ "topic": "b3", "value": "v" }));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("produce");
        assert!(response.status().is_success(), "{}", response.status());
        let (status, body) = server
            .get("/api/v1/consume?topic=b3&partition=0&offset=0&maxRecords=1")
            .await;
        assert!(status.is_success(), "{body}");
        let stored = body["records"][0]["headers"]["traceparent"]
            .as_str()
            .unwrap_or_else(|| panic!("no traceparent stored: {body}"))
            .to_owned();
        let exported = receiver
            .wait_until(Duration::from_secs(10), |r| {
                r.spans().iter().any(|s| s.name == "POST /api/v1/produce")
            })
            .await;
        assert!(exported, "no server span reached the collector");
        stored
    });

    receiver.with(|r| {
        let spans = r.spans();
        let server = spans
            .iter()
            .find(|s| s.name == "POST /api/v1/produce")
            .unwrap();
        assert_eq!(hex(&server.trace_id), B3_TRACE, "the B3 trace continues");
        assert_eq!(
            hex(&server.parent_span_id),
            B3_SPAN,
            "the B3 span is the parent"
        );
        // The accept loop hands the peer to the HTTP layer.
        assert_eq!(
            attribute(&server.attributes, "client.address").as_deref(),
            Some("127.0.0.1")
        );
    });
    // Records speak W3C whatever the HTTP propagators: same trace, a span of the server's.
    let parts: Vec<&str> = stored.split('-').collect();
    assert_eq!(parts.len(), 4, "{stored}");
    assert_eq!(
        (parts[0], parts[1], parts[3]),
        ("00", B3_TRACE, "01"),
        "{stored}"
    );
    assert_ne!(parts[2], B3_SPAN);

    telemetry.shutdown().unwrap();
    runtime.shutdown_background();
    bootstrap.block_on(receiver.stop());
}

#[test]
fn b3_multi_headers_are_continued_and_records_carry_w3c() {
    produce_with_b3(
        "b3multi",
        &[
            ("X-B3-TraceId", B3_TRACE),
            ("X-B3-SpanId", B3_SPAN),
            ("X-B3-Sampled", "1"),
            ("traceparent", W3C_PARENT),
        ],
    );
}

#[test]
fn the_b3_single_header_is_continued_and_records_carry_w3c() {
    let single = format!("{B3_TRACE}-{B3_SPAN}-1");
    produce_with_b3("B3", &[("b3", &single), ("traceparent", W3C_PARENT)]);
}
