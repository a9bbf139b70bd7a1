//! A real Prometheus server (Debian `prometheus`, exemplar storage on) scrapes our endpoint:
//! it negotiates OpenMetrics, stores our exemplars (queried back by trace id), and a second
//! target served as text 0.0.4 yields the same sample values.

mod support;

use std::time::Duration;

use axum::extract::Request;
use axum::http::header::ACCEPT;
use serde_json::Value;
use streamhouse_observability::catalog;
use streamhouse_observability::http::metrics_router;

async fn query(client: &reqwest::Client, base: &str, path: &str, promql: &str) -> Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let start = (now - 3600).to_string();
    let end = (now + 3600).to_string();
    let response = client
        .get(format!("{base}{path}"))
        .query(&[("query", promql), ("start", &start), ("end", &end)])
        .send()
        .await;
    match response {
        Ok(r) => {
            serde_json::from_slice(&r.bytes().await.unwrap_or_default()).unwrap_or(Value::Null)
        }
        Err(_) => Value::Null, // not up yet
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_openmetrics_with_exemplars_and_text_with_the_same_values() {
    let telemetry = support::telemetry();
    let (trace_id, _recorded) =
        support::in_sampled_span(&telemetry, || support::record_every_metric(&telemetry));

    let openmetrics_target = support::serve(metrics_router(&telemetry)).await;
    // The same endpoint with the Accept header stripped: served as text 0.0.4.
    let text_only = metrics_router(&telemetry).layer(axum::middleware::map_request(
        |mut request: Request| async move {
            request.headers_mut().remove(ACCEPT);
            request
        },
    ));
    let text_target = support::serve(text_only).await;

    let prometheus = support::Prometheus::start(&format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
         scrape_configs:\n\
         - job_name: openmetrics\n  static_configs:\n  - targets: ['{openmetrics_target}']\n\
         - job_name: text\n  static_configs:\n  - targets: ['{text_target}']\n"
    ));
    let base = prometheus.url();
    let client = reqwest::Client::new();

    // Exemplars come back with our trace id: OpenMetrics was negotiated.
    let latency = format!("{}_bucket", catalog::PRODUCER_LATENCY.prometheus_name);
    let exemplar_query = format!("{latency}{{job=\"openmetrics\"}}");
    let exemplars = support::eventually(
        Duration::from_secs(60),
        "exemplars from Prometheus",
        || async {
            let body = query(&client, &base, "/api/v1/query_exemplars", &exemplar_query).await;
            let data = body["data"].as_array()?.clone();
            (!data.is_empty()).then_some(data)
        },
    )
    .await;
    let trace_ids: Vec<&str> = exemplars
        .iter()
        .flat_map(|series| series["exemplars"].as_array().unwrap().iter())
        .map(|e| e["labels"]["trace_id"].as_str().unwrap())
        .collect();
    assert!(!trace_ids.is_empty());
    assert!(
        trace_ids.iter().all(|t| *t == trace_id),
        "{trace_ids:?} vs {trace_id}"
    );

    // Both targets report the same values, series by series.
    let records = catalog::PRODUCER_RECORDS.prometheus_name;
    let by_job = support::eventually(
        Duration::from_secs(60),
        "samples from both jobs",
        || async {
            let body = query(&client, &base, "/api/v1/query", records).await;
            let results = body["data"]["result"].as_array()?.clone();
            let of = |job: &str| -> Vec<(String, String)> {
                let mut v: Vec<_> = results
                    .iter()
                    .filter(|r| r["metric"]["job"] == job)
                    .map(|r| {
                        let topic = r["metric"]["topic"].as_str().unwrap_or_default().to_owned();
                        (topic, r["value"][1].as_str().unwrap().to_owned())
                    })
                    .collect();
                v.sort();
                v
            };
            let (om, text) = (of("openmetrics"), of("text"));
            (!om.is_empty() && !text.is_empty()).then_some((om, text))
        },
    )
    .await;
    assert_eq!(by_job.0, by_job.1);
    assert_eq!(by_job.0.len(), 1 + support::HOSTILE.len());

    // The text target has no exemplars to give.
    let text_exemplars = query(
        &client,
        &base,
        "/api/v1/query_exemplars",
        &format!("{latency}{{job=\"text\"}}"),
    )
    .await;
    assert_eq!(text_exemplars["status"], "success");
    assert!(text_exemplars["data"].as_array().unwrap().is_empty());
}
