//! Every error under `/api/v1` is JSON `{"error", "message"}` and counted in
//! `http_server_request_duration_seconds`, with a bounded route label: never the raw path of
//! a request that matched no route.

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;

use object_store::memory::InMemory;
use reqwest::StatusCode;
use serde_json::Value;
use streamhouse_observability::catalog::HTTP_SERVER_REQUEST_DURATION;
use support::lite::{LiteTestServer, Metrics, start, test_config};

async fn json_error(
    response: reqwest::Response,
) -> (StatusCode, Value, reqwest::header::HeaderMap) {
    let status = response.status();
    let headers = response.headers().clone();
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = response.text().await.expect("body");
    assert!(
        content_type.starts_with("application/json"),
        "{status} {content_type}: {text}"
    );
    let body: Value = serde_json::from_str(&text).expect("JSON body");
    assert!(body["error"].is_string(), "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    (status, body, headers)
}

fn count(metrics: &Metrics, method: &str, status: &str, route: Option<&str>) -> f64 {
    let mut labels = vec![
        ("http_request_method", method),
        ("http_response_status_code", status),
        ("url_scheme", "http"),
    ];
    labels.extend(route.map(|r| ("http_route", r)));
    metrics.get(&HTTP_SERVER_REQUEST_DURATION, "_count", &labels)
}

/// The label sets of the request-duration histogram.
fn series(metrics: &Metrics) -> BTreeSet<String> {
    let name = format!("{}_count", HTTP_SERVER_REQUEST_DURATION.prometheus_name);
    metrics
        .parsed
        .samples
        .iter()
        .filter(|s| s.name == name)
        .map(|s| format!("{:?}", s.labels))
        .collect()
}

async fn server() -> LiteTestServer {
    start(test_config(), Arc::new(InMemory::new())).await
}

#[tokio::test]
async fn unknown_paths_answer_json_404_counted_without_a_route() {
    let server = server().await;
    for path in ["/api/v1/no-such-thing", "/api/v1", "/nowhere"] {
        let response = server.client.get(server.url(path)).send().await.unwrap();
        let (status, body, _) = json_error(response).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body["error"], "not_found");
    }
    let metrics = server.metrics().await;
    assert_eq!(count(&metrics, "GET", "404", None), 3.0);
    assert!(!metrics.body.contains("no-such-thing"));
    assert!(!metrics.body.contains("nowhere"));
}

#[tokio::test]
async fn random_unknown_paths_add_no_series() {
    let server = server().await;
    let first = server
        .client
        .get(server.url("/api/v1/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 404);
    let before = series(&server.metrics().await);
    for i in 0..1000u32 {
        let path = format!("/api/v1/{:08x}/{}", i.wrapping_mul(2_654_435_761), i);
        let response = server.client.get(server.url(&path)).send().await.unwrap();
        assert_eq!(response.status(), 404);
    }
    let metrics = server.metrics().await;
    assert_eq!(series(&metrics), before);
    assert_eq!(count(&metrics, "GET", "404", None), 1001.0);
}

#[tokio::test]
async fn a_wrong_method_answers_json_405_with_allow() {
    let server = server().await;
    let response = server
        .client
        .delete(server.url("/api/v1/topics"))
        .send()
        .await
        .unwrap();
    let (status, body, headers) = json_error(response).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(body["error"], "method_not_allowed");
    let allow = headers
        .get("allow")
        .expect("Allow header")
        .to_str()
        .unwrap();
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
    let metrics = server.metrics().await;
    assert_eq!(
        count(&metrics, "DELETE", "405", Some("/api/v1/topics")),
        1.0
    );
}

#[tokio::test]
async fn a_bad_path_parameter_answers_json_400() {
    let server = server().await;
    // Not UTF-8 once percent-decoded: axum's `Path` rejects it.
    let response = server
        .client
        .get(server.url("/api/v1/consumer-groups/%FF%FE/lag"))
        .send()
        .await
        .unwrap();
    let (status, body, _) = json_error(response).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_request");
    let metrics = server.metrics().await;
    let route = "/api/v1/consumer-groups/{group_id}/lag";
    assert_eq!(count(&metrics, "GET", "400", Some(route)), 1.0);
    assert!(!metrics.body.contains("%FF"));
}

#[tokio::test]
async fn a_body_past_the_limit_answers_json_413() {
    let server = server().await;
    let limit = server.server.broker().config().max_body_bytes;
    let response = server
        .client
        .post(server.url("/api/v1/topics"))
        .header("content-type", "application/json")
        .body(vec![b' '; limit + 1])
        .send()
        .await
        .unwrap();
    let (status, _, _) = json_error(response).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let metrics = server.metrics().await;
    assert_eq!(count(&metrics, "POST", "413", Some("/api/v1/topics")), 1.0);
}
