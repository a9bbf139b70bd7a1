//! `monitoring/dashboards`: dashboards and rules name only catalog metrics, every catalog
//! metric is on a dashboard, and every dashboard query is valid PromQL for a real Prometheus.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use streamhouse_observability::catalog::{self, MetricKind};

fn monitoring() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("monitoring")
}

/// Every metric name in `text`: any `streamhouse_*` identifier and any other catalog name,
/// histogram suffixes folded into their family.
fn metric_names(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|token| !token.is_empty())
        .map(|token| {
            ["_bucket", "_sum", "_count"]
                .iter()
                .filter_map(|suffix| token.strip_suffix(suffix))
                .find(|base| {
                    catalog::by_prometheus_name(base)
                        .is_some_and(|d| d.kind == MetricKind::Histogram)
                })
                .unwrap_or(token)
        })
        // A bare prefix is a regex (`streamhouse_.+`), not a name.
        .filter(|name| {
            (name.starts_with("streamhouse_") && *name != "streamhouse_")
                || catalog::by_prometheus_name(name).is_some()
        })
        .map(str::to_owned)
        .collect()
}

fn dashboards() -> Vec<(String, Value)> {
    let mut boards: Vec<_> = std::fs::read_dir(monitoring().join("dashboards"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .map(|path| {
            let json = serde_json::from_slice(&std::fs::read(&path).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (
                path.file_name().unwrap().to_string_lossy().into_owned(),
                json,
            )
        })
        .collect();
    boards.sort_by(|a, b| a.0.cmp(&b.0));
    boards
}

fn dashboard_queries() -> Vec<(String, String)> {
    let mut queries = Vec::new();
    for (file, board) in dashboards() {
        for panel in board["panels"].as_array().unwrap() {
            for target in panel["targets"].as_array().unwrap() {
                let expr = target["expr"].as_str().unwrap().to_owned();
                queries.push((format!("{file}: {}", panel["title"]), expr));
            }
        }
    }
    queries
}

#[test]
fn rules_and_dashboards_name_only_catalog_metrics_and_cover_the_catalog() {
    let rules = std::fs::read_to_string(monitoring().join("alerts.yml")).unwrap();
    let mut used = metric_names(&rules);
    for (where_, expr) in dashboard_queries() {
        let names = metric_names(&expr);
        assert!(
            !names.is_empty(),
            "{where_}: no StreamHouse metric in {expr}"
        );
        used.extend(names);
    }
    for name in &used {
        assert!(
            catalog::by_prometheus_name(name).is_some(),
            "{name} is not in the catalog"
        );
    }
    let on_dashboards: BTreeSet<String> = dashboard_queries()
        .iter()
        .flat_map(|(_, expr)| metric_names(expr))
        .collect();
    for def in catalog::ALL {
        assert!(
            on_dashboards.contains(def.prometheus_name),
            "{} is on no dashboard",
            def.prometheus_name
        );
    }
    assert_eq!(dashboards().len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_query_is_valid_promql() {
    let rules = std::fs::read_to_string(monitoring().join("alerts.yml")).unwrap();
    let prometheus = support::Prometheus::start_with_files(
        "global:\n  evaluation_interval: 1s\nrule_files:\n  - alerts.yml\n",
        &[("alerts.yml", &rules)],
    );
    let client = reqwest::Client::new();
    let url = format!("{}/api/v1/query", prometheus.url());
    support::eventually(Duration::from_secs(60), "prometheus to answer", || async {
        let up = client
            .get(&url)
            .query(&[("query", "1")])
            .send()
            .await
            .ok()?;
        up.status().is_success().then_some(())
    })
    .await;
    for (where_, expr) in dashboard_queries() {
        // Grafana's variables, as Grafana would expand them.
        let promql = expr
            .replace("$__rate_interval", "1m")
            .replace("$instance", ".*");
        let response = client
            .get(&url)
            .query(&[("query", &promql)])
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body = response.text().await.unwrap();
        assert!(status.is_success(), "{where_}: {promql}\n{body}");
    }
    // Prometheus loaded every rule.
    let rules_url = format!("{}/api/v1/rules", prometheus.url());
    let loaded: Value = serde_json::from_slice(
        &client
            .get(&rules_url)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
    )
    .unwrap();
    let count: usize = loaded["data"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["rules"].as_array().unwrap().len())
        .sum();
    assert_eq!(count, rules.matches("- alert:").count());
}
