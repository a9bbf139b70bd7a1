//! Trace context through the reference server: an HTTP `traceparent` becomes the parent of
//! the produce span, whose context the broker writes into each record's headers, so the
//! consumer reads the producer's trace back.

mod support;

use std::sync::Arc;

use object_store::memory::InMemory;
use serde_json::json;
use streamhouse_observability::catalog;
use streamhouse_observability::logging::{self, LoggingConfig};
use support::lite::{start, test_config};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN_ID: &str = "00f067aa0ba902b7";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_carry_the_producers_trace_to_the_consumer() {
    let server = start(test_config(), Arc::new(InMemory::new())).await;
    // This binary's only test: spans on every server thread become this telemetry's spans.
    let subscriber =
        logging::subscriber(&server.telemetry, &LoggingConfig::default(), std::io::sink).unwrap();
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let (status, _) = server
        .post(
            "/api/v1/topics",
            &json!({ "name": "traced", "partitions": 1 }),
        )
        .await;
    assert!(status.is_success());
    let response = server
        .client
        .post(server.url("/api/v1/produce"))
        .header("traceparent", format!("00-{TRACE_ID}-{CLIENT_SPAN_ID}-01"))
        .json(&json!({ "topic": "traced", "value": "v" }))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());

    let (status, body) = server
        .get("/api/v1/consume?topic=traced&partition=0&offset=0&maxRecords=10&groupId=g")
        .await;
    assert!(status.is_success(), "{body}");
    let traceparent = body["records"][0]["headers"]["traceparent"]
        .as_str()
        .unwrap_or_else(|| panic!("no traceparent stored: {body}"));
    let parts: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(parts.len(), 4, "{traceparent}");
    // Same trace as the caller, a span of the server's own (its send span), sampled.
    assert_eq!(parts[1], TRACE_ID);
    assert_ne!(parts[2], CLIENT_SPAN_ID);
    assert_eq!(parts[2].len(), 16);
    assert_eq!(parts[3], "01");

    // The server layer timed the request under its route template.
    let metrics = server.metrics().await;
    let count = metrics.get(
        &catalog::HTTP_SERVER_REQUEST_DURATION,
        "_count",
        &[
            ("http_request_method", "POST"),
            ("http_route", "/api/v1/produce"),
            ("http_response_status_code", "200"),
            ("url_scheme", "http"),
        ],
    );
    assert_eq!(count, 1.0);
}
