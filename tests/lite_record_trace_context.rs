//! Trace context in records: always a valid `traceparent`, whatever the global propagator
//! says; `tracestate` only within W3C bounds; baggage only when configured; and all of it
//! inside the record header limits, with room reserved so it is never crowded out.

mod support;

use std::sync::{Arc, OnceLock};

use object_store::memory::InMemory;
use opentelemetry_sdk::propagation::BaggagePropagator;
use reqwest::StatusCode;
use serde_json::{Value, json};
use streamhouse_lite::LiteConfig;
use streamhouse_observability::Telemetry;
use streamhouse_observability::logging::{self, LoggingConfig};
use support::lite::{LiteTestServer, start, test_config};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// One subscriber for every server thread of this binary (tests run side by side), and a
/// global propagator without trace context: records must not depend on it.
fn install_tracing() {
    static INSTALLED: OnceLock<Telemetry> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let telemetry = support::telemetry();
        let subscriber =
            logging::subscriber(&telemetry, &LoggingConfig::default(), std::io::sink).unwrap();
        tracing::subscriber::set_global_default(subscriber).unwrap();
        opentelemetry::global::set_text_map_propagator(BaggagePropagator::new());
        telemetry
    });
}

async fn traced_server(config: LiteConfig) -> LiteTestServer {
    install_tracing();
    let server = start(config, Arc::new(InMemory::new())).await;
    server.create_topic("traced", 1).await;
    server
}

/// Produces `record` with HTTP trace headers `http`; returns the status and JSON answer.
async fn produce(
    server: &LiteTestServer,
    http: &[(&str, &str)],
    record: Value,
) -> (StatusCode, Value) {
    let mut request = server
        .client
        .post(server.url("/api/v1/produce"))
        .json(&record);
    for (name, value) in http {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("request");
    let status = response.status();
    (status, response.json().await.expect("JSON answer"))
}

/// The headers of the record at `offset`.
async fn stored_headers(server: &LiteTestServer, offset: u64) -> serde_json::Map<String, Value> {
    let (status, body) = server
        .get(&format!(
            "/api/v1/consume?topic=traced&partition=0&offset={offset}&maxRecords=1"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["records"][0]["headers"]
        .as_object()
        .unwrap_or_else(|| panic!("no headers: {body}"))
        .clone()
}

fn assert_traceparent_of(headers: &serde_json::Map<String, Value>, trace_id: &str) {
    let value = headers["traceparent"].as_str().expect("traceparent");
    let parts: Vec<&str> = value.split('-').collect();
    assert_eq!(parts.len(), 4, "{value}");
    assert_eq!(parts[0], "00");
    assert_eq!(parts[1], trace_id);
    assert_eq!(parts[2].len(), 16);
    assert_ne!(parts[2], "0000000000000000");
    assert_eq!(parts[3], "01");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_carry_trace_context_without_the_global_propagator() {
    let server = traced_server(test_config()).await;
    let http = [
        ("traceparent", CLIENT_PARENT),
        ("tracestate", "vendor=abc,other=1"),
        ("baggage", "user=alice"),
    ];
    let (status, body) = produce(&server, &http, json!({ "topic": "traced", "value": "v" })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let headers = stored_headers(&server, 0).await;
    assert_traceparent_of(&headers, TRACE_ID);
    assert_eq!(headers["tracestate"], "vendor=abc,other=1");
    assert!(!headers.contains_key("baggage"), "{headers:?}");

    // A client's own valid traceparent stays; a malformed one is replaced by the server's.
    let own = "00-11111111111111111111111111111111-2222222222222222-01";
    let (status, _) = produce(
        &server,
        &http,
        json!({ "topic": "traced", "value": "v", "headers": { "traceparent": own } }),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(stored_headers(&server, 1).await["traceparent"], own);
    let (status, _) = produce(
        &server,
        &http,
        json!({ "topic": "traced", "value": "v", "headers": { "TraceParent": "00-zz-1-01" } }),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let replaced = stored_headers(&server, 2).await;
    assert_traceparent_of(&replaced, TRACE_ID);
    assert!(!replaced.contains_key("TraceParent"), "{replaced:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_tracestate_is_not_copied() {
    let server = traced_server(test_config()).await;
    let many: Vec<String> = (0..33).map(|i| format!("v{i}=x")).collect();
    let long: Vec<String> = (0..3)
        .map(|i| format!("v{i}={}", "x".repeat(200)))
        .collect();
    for (offset, tracestate) in [many.join(","), long.join(",")].iter().enumerate() {
        let http = [
            ("traceparent", CLIENT_PARENT),
            ("tracestate", tracestate.as_str()),
        ];
        let (status, body) =
            produce(&server, &http, json!({ "topic": "traced", "value": "v" })).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let headers = stored_headers(&server, offset as u64).await;
        assert_traceparent_of(&headers, TRACE_ID);
        assert!(!headers.contains_key("tracestate"), "{headers:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baggage_is_recorded_only_when_configured() {
    let mut config = test_config();
    config.record_baggage = true;
    let server = traced_server(config).await;
    let http = [
        ("traceparent", CLIENT_PARENT),
        ("baggage", "user=alice,tier=gold"),
    ];
    let (status, body) = produce(&server, &http, json!({ "topic": "traced", "value": "v" })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let headers = stored_headers(&server, 0).await;
    assert_traceparent_of(&headers, TRACE_ID);
    let baggage = headers["baggage"].as_str().expect("baggage recorded");
    let mut members: Vec<&str> = baggage.split(',').collect();
    members.sort_unstable();
    assert_eq!(members, ["tier=gold", "user=alice"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_filling_the_limit_are_refused_rather_than_losing_trace_context() {
    let mut config = test_config();
    config.max_record_header_bytes = 2_048;
    let server = traced_server(config).await;
    let http = [("traceparent", CLIENT_PARENT)];
    // Name and value together fill the whole limit: nothing left for trace context.
    let full = json!({ "topic": "traced", "value": "v", "headers": { "h": "x".repeat(2_047) } });
    let (status, body) = produce(&server, &http, full).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["error"], "record_too_large");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("kept for trace context"), "{message}");

    // Up to the limit less the reservation, a record's own headers fit beside its context.
    let room = 2_048 - ("traceparent".len() + 55 + "tracestate".len() + 512);
    let fits = json!({ "topic": "traced", "value": "v", "headers": { "h": "x".repeat(room - 1) } });
    let (status, body) = produce(&server, &http, fits).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let headers = stored_headers(&server, 0).await;
    assert_traceparent_of(&headers, TRACE_ID);
    let bytes: usize = headers
        .iter()
        .map(|(name, value)| name.len() + value.as_str().unwrap().len())
        .sum();
    assert!(bytes <= 2_048, "{bytes} header bytes stored");
}
