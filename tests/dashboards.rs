//! `monitoring/dashboards`: every panel is described and filtered by the dashboard's
//! variables, quantiles and ratios come from the recording rules of `monitoring/rules.yml`,
//! latency panels carry exemplars from their buckets, dashboards and rules name only catalog
//! metrics and cover the catalog, and every query returns data from a real Prometheus that
//! scrapes the reference server under its load generator.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use object_store::memory::InMemory;
use serde_json::Value;
use streamhouse_lite::loadgen;
use streamhouse_observability::catalog::{self, MetricDef, MetricKind};
use streamhouse_observability::logging::{self, LoggingConfig};

/// File, uid and title of the five dashboards: links and provisioning rely on them.
const BOARDS: &[(&str, &str, &str)] = &[
    (
        "consumer.json",
        "streamhouse-consumer",
        "StreamHouse / Consumer",
    ),
    (
        "overview.json",
        "streamhouse-overview",
        "StreamHouse / Overview",
    ),
    (
        "producer.json",
        "streamhouse-producer",
        "StreamHouse / Producer",
    ),
    (
        "storage.json",
        "streamhouse-storage",
        "StreamHouse / Storage",
    ),
    ("system.json", "streamhouse-system", "StreamHouse / System"),
];

/// Dashboard variables that filter queries, with the label each one filters.
const FILTERS: &[&str] = &["job", "instance", "topic", "consumer_group"];

/// Panels whose queries legitimately return nothing under the load generator, which
/// neither breaks the store nor makes the server fail a request.
const EMPTY_UNDER_LOAD: &[(&str, &str)] = &[
    (
        "Object store errors",
        "the in-memory store never fails: no error series exists",
    ),
    (
        "HTTP server errors by type",
        "the load generator's bad requests get 4xx answers, which carry no error.type",
    ),
    (
        "Storage faults found",
        "the in-memory store is never damaged: no fault series exists",
    ),
];

/// Latency panels whose exemplar targets legitimately find no exemplars.
const NO_EXEMPLARS: &[(&str, &str)] = &[(
    "/metrics scrape duration p50 and p99",
    "the admin router serves /metrics outside any span",
)];

fn monitoring() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("monitoring")
}

/// Every metric name in `text`: any `streamhouse_*` identifier and any other catalog name,
/// histogram suffixes folded into their family.
fn metric_names(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|token| !token.is_empty())
        .map(|token| family(token).map_or(token, |def| def.prometheus_name))
        // A bare prefix is a regex (`streamhouse_.+`), not a name.
        .filter(|name| {
            (name.starts_with("streamhouse_") && *name != "streamhouse_")
                || catalog::by_prometheus_name(name).is_some()
        })
        .map(str::to_owned)
        .collect()
}

/// The catalog metric a series name belongs to (`x_bucket` to histogram `x`).
fn family(series: &str) -> Option<&'static MetricDef> {
    catalog::by_prometheus_name(series).or_else(|| {
        ["_bucket", "_sum", "_count"]
            .iter()
            .filter_map(|suffix| series.strip_suffix(suffix))
            .filter_map(catalog::by_prometheus_name)
            .find(|def| def.kind == MetricKind::Histogram)
    })
}

fn is_seconds_histogram(def: &MetricDef) -> bool {
    def.kind == MetricKind::Histogram && def.unit == "s"
}

/// A YAML file of `monitoring/` as JSON, read by PyYAML.
fn yaml(name: &str) -> Value {
    support::yaml_file(&monitoring().join(name))
}

/// Every rule of a rule file: (`record` or `alert` name, expression).
fn rules_of(name: &str, kind: &str) -> BTreeMap<String, String> {
    yaml(name)["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|group| group["rules"].as_array().unwrap().iter())
        .filter_map(|rule| {
            Some((
                rule[kind].as_str()?.to_owned(),
                rule["expr"].as_str().unwrap().to_owned(),
            ))
        })
        .collect()
}

fn recording_rules() -> BTreeMap<String, String> {
    rules_of("rules.yml", "record")
}

fn alert_names() -> BTreeSet<String> {
    rules_of("alerts.yml", "alert").into_keys().collect()
}

/// A recording rule name `level:metric:operations`, split; `level` names its labels
/// (`job_instance_topic`: job, instance, topic).
fn rule_parts(name: &str) -> Option<(&str, &str, &str)> {
    let mut parts = name.split(':');
    let parts = (parts.next()?, parts.next()?, parts.next()?);
    (!parts.0.is_empty()).then_some(parts)
}

/// The labels a series name carries: its catalog labels (as Prometheus spells them) or a
/// recording rule's level, plus the target's job and instance.
fn labels_of(name: &str) -> BTreeSet<String> {
    let mut labels: BTreeSet<String> = ["job", "instance"].map(str::to_owned).into();
    if let Some((level, _, _)) = rule_parts(name) {
        let rest = level
            .strip_prefix("job_instance")
            .unwrap_or_else(|| panic!("{name}: a rule's level starts with job_instance"));
        if let Some(label) = rest.strip_prefix('_') {
            labels.insert(label.to_owned());
        }
    } else {
        let def = family(name).unwrap_or_else(|| panic!("{name} is not in the catalog"));
        labels.extend(def.labels.iter().map(|l| l.replace('.', "_")));
        if name.ends_with("_bucket") {
            labels.insert("le".to_owned());
        }
    }
    labels
}

/// A series selector in a PromQL expression: its metric (or recording rule) name and its
/// label matchers (label, operator, value).
#[derive(Debug)]
struct Selector {
    name: String,
    matchers: Vec<(String, String, String)>,
}

impl Selector {
    fn filters(&self, label: &str) -> bool {
        self.matchers
            .iter()
            .any(|(l, op, value)| l == label && op == "=~" && *value == format!("${label}"))
    }
}

/// Reads a double-quoted string starting at `chars[i]`; (its value, the index past it).
fn string_at(chars: &[char], mut i: usize) -> (String, usize) {
    let mut value = String::new();
    i += 1;
    while chars[i] != '"' {
        if chars[i] == '\\' {
            i += 1;
        }
        value.push(chars[i]);
        i += 1;
    }
    (value, i + 1)
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// The selectors of the PromQL subset the dashboards use: functions, aggregations with
/// `by (...)`, binary operators, range selectors and number literals around selectors of
/// named metrics.
fn selectors(expr: &str) -> Vec<Selector> {
    let chars: Vec<char> = expr.chars().collect();
    let skip_space = |mut i: usize| {
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        i
    };
    let mut found = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' {
            i = string_at(&chars, i).1;
        } else if c == '[' {
            i += chars[i..].iter().position(|&c| c == ']').unwrap() + 1;
        } else if c.is_ascii_digit() || c == '.' {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
        } else if is_ident(c) {
            let start = i;
            while i < chars.len() && is_ident(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let next = skip_space(i);
            if support::PROMQL_LABEL_CLAUSES.contains(&word.as_str()) {
                assert_eq!(chars.get(next), Some(&'('), "{expr}: {word} without labels");
                i = next + chars[next..].iter().position(|&c| c == ')').unwrap() + 1;
            } else if chars.get(next) != Some(&'(')
                && !support::PROMQL_KEYWORDS.contains(&word.as_str())
            {
                let mut matchers = Vec::new();
                if chars.get(next) == Some(&'{') {
                    i = next + 1;
                    loop {
                        i = skip_space(i);
                        if chars[i] == '}' {
                            i += 1;
                            break;
                        }
                        let label_start = i;
                        while is_ident(chars[i]) {
                            i += 1;
                        }
                        let label: String = chars[label_start..i].iter().collect();
                        i = skip_space(i);
                        let op_start = i;
                        while "=!~".contains(chars[i]) {
                            i += 1;
                        }
                        let op: String = chars[op_start..i].iter().collect();
                        i = skip_space(i);
                        assert_eq!(chars[i], '"', "{expr}: matcher of {label}");
                        let (value, after) = string_at(&chars, i);
                        matchers.push((label, op, value));
                        i = skip_space(after);
                        if chars[i] == ',' {
                            i += 1;
                        }
                    }
                }
                found.push(Selector {
                    name: word,
                    matchers,
                });
            }
        } else {
            assert!(c != '{', "{expr}: a selector without a metric name");
            i += 1;
        }
    }
    found
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

fn panels(board: &Value) -> &Vec<Value> {
    board["panels"].as_array().unwrap()
}

fn targets(panel: &Value) -> &Vec<Value> {
    panel["targets"].as_array().unwrap()
}

fn expr(target: &Value) -> &str {
    target["expr"].as_str().unwrap()
}

/// (where, expression) of every panel query.
fn dashboard_queries() -> Vec<(String, String)> {
    let mut queries = Vec::new();
    for (file, board) in dashboards() {
        for panel in panels(&board) {
            for target in targets(panel) {
                queries.push((
                    format!("{file}: {} {}", panel["title"], target["refId"]),
                    expr(target).to_owned(),
                ));
            }
        }
    }
    queries
}

/// The dashboard's query variables by name, in order.
fn variables(board: &Value) -> Vec<&Value> {
    board["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .collect()
}

/// `label_values(selector, label)` of a query variable: (selector, label).
fn label_values(variable: &Value) -> (&str, &str) {
    let query = variable["query"].as_str().unwrap();
    let inner = query
        .strip_prefix("label_values(")
        .and_then(|q| q.strip_suffix(')'))
        .unwrap_or_else(|| panic!("{query}: not label_values(...)"));
    let (selector, label) = inner.rsplit_once(',').unwrap();
    (selector.trim(), label.trim())
}

/// Grafana's expansion of the dashboard variables, with `values` for the filters
/// (`.*` for those not named, as "All" does).
fn expand(expr: &str, values: &[(&str, &str)]) -> String {
    let mut promql = expr.replace("$__rate_interval", "1m");
    for filter in FILTERS {
        let value = values
            .iter()
            .find(|(name, _)| name == filter)
            .map_or(".*", |(_, value)| value);
        promql = promql.replace(&format!("${filter}"), value);
    }
    assert!(!promql.contains('$'), "{expr}: a variable left");
    promql
}

#[test]
fn rules_and_dashboards_name_only_catalog_metrics_and_cover_the_catalog() {
    let rules = recording_rules();
    let alerts = rules_of("alerts.yml", "alert");
    for (rule, expr) in rules.iter().chain(&alerts) {
        for name in metric_names(expr) {
            assert!(
                catalog::by_prometheus_name(&name).is_some(),
                "{rule}: {name} is not in the catalog"
            );
        }
    }
    // Catalog metrics on a dashboard, directly or through a recording rule built on them.
    let mut on_dashboards = BTreeSet::new();
    for (where_, expr) in dashboard_queries() {
        let found = selectors(&expr);
        assert!(!found.is_empty(), "{where_}: no metric in {expr}");
        for selector in found {
            if rule_parts(&selector.name).is_some() {
                let rule = rules.get(&selector.name).unwrap_or_else(|| {
                    panic!(
                        "{where_}: {} is not a recording rule of rules.yml",
                        selector.name
                    )
                });
                on_dashboards.extend(metric_names(rule));
            } else {
                let def = family(&selector.name)
                    .unwrap_or_else(|| panic!("{where_}: {} is not in the catalog", selector.name));
                on_dashboards.insert(def.prometheus_name.to_owned());
            }
        }
    }
    for def in catalog::ALL {
        assert!(
            on_dashboards.contains(def.prometheus_name),
            "{} is on no dashboard",
            def.prometheus_name
        );
    }
}

#[test]
fn the_five_dashboards_keep_their_names_and_describe_every_panel() {
    let boards = dashboards();
    let files: Vec<(&str, &str, &str)> = boards
        .iter()
        .map(|(file, board)| {
            (
                file.as_str(),
                board["uid"].as_str().unwrap(),
                board["title"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(files, BOARDS);
    let alerts = alert_names();
    for (file, board) in &boards {
        let mut ids = BTreeSet::new();
        for panel in panels(board) {
            let title = &panel["title"];
            assert!(ids.insert(panel["id"].as_u64().unwrap()), "{file}: {title}");
            let description = panel["description"].as_str().unwrap_or_default();
            // What it shows, what is normal, which alert watches it.
            assert!(
                description.len() > 100 && description.contains("Normal"),
                "{file}: {title} needs a description that says what is normal: {description:?}"
            );
            let named: Vec<&str> = description
                .split(|c: char| !c.is_ascii_alphanumeric())
                .filter(|word| word.len() > 11 && word.starts_with("StreamHouse"))
                .collect();
            for alert in &named {
                assert!(
                    alerts.contains(*alert),
                    "{file}: {title} names {alert}, which is not in alerts.yml"
                );
            }
            assert!(
                !named.is_empty() || description.to_lowercase().contains("no alert"),
                "{file}: {title} says neither which alert watches it nor that none does"
            );
            assert_eq!(
                panel["datasource"]["uid"], "${datasource}",
                "{file}: {title}"
            );
            for target in targets(panel) {
                assert_eq!(
                    target["datasource"]["uid"], "${datasource}",
                    "{file}: {title}"
                );
            }
        }
    }
}

#[test]
fn every_query_filters_by_the_dashboard_variables() {
    for (file, board) in dashboards() {
        let vars = variables(&board);
        let names: Vec<&str> = vars.iter().map(|v| v["name"].as_str().unwrap()).collect();
        assert_eq!(names[..3], ["datasource", "job", "instance"], "{file}");
        assert_eq!(vars[0]["type"], "datasource");
        assert_eq!(vars[0]["query"], "prometheus");

        // The labels the dashboard's queries select on decide its topic and group variables.
        let selected: Vec<Selector> = panels(&board)
            .iter()
            .flat_map(targets)
            .flat_map(|target| selectors(expr(target)))
            .collect();
        let labels: BTreeSet<String> = selected.iter().flat_map(|s| labels_of(&s.name)).collect();
        let wanted: Vec<&str> = FILTERS
            .iter()
            .copied()
            .filter(|filter| labels.contains(*filter))
            .collect();
        assert_eq!(names[1..], wanted, "{file}: variables");
        for selector in &selected {
            for label in labels_of(&selector.name) {
                if wanted.contains(&label.as_str()) {
                    assert!(
                        selector.filters(&label),
                        "{file}: {} does not filter {label}=~\"${label}\"",
                        selector.name
                    );
                }
            }
        }

        // Each query variable: multi-select with All (matching series without the label
        // too), its values from a catalog metric that has the label, filtered by the
        // variables before it.
        for (position, variable) in vars.iter().enumerate().skip(1) {
            let name = variable["name"].as_str().unwrap();
            assert_eq!(variable["type"], "query", "{file}: {name}");
            assert_eq!(variable["multi"], true, "{file}: {name}");
            assert_eq!(variable["includeAll"], true, "{file}: {name}");
            assert_eq!(variable["allValue"], ".*", "{file}: {name}");
            assert_eq!(variable["datasource"]["uid"], "${datasource}");
            let (selector, label) = label_values(variable);
            assert_eq!(label, name, "{file}");
            let parsed = selectors(selector);
            assert_eq!(parsed.len(), 1, "{file}: {selector}");
            assert!(labels_of(&parsed[0].name).contains(label), "{file}: {name}");
            for earlier in &names[1..position] {
                assert!(parsed[0].filters(earlier), "{file}: {name} by {earlier}");
            }
        }
    }
}

#[test]
fn quantiles_and_ratios_come_from_recording_rules() {
    let rules = recording_rules();
    for (file, board) in dashboards() {
        for panel in panels(&board) {
            let title = &panel["title"];
            for target in targets(panel) {
                let expr = expr(target);
                for selector in selectors(expr) {
                    let Some((level, metric, _)) = rule_parts(&selector.name) else {
                        continue;
                    };
                    assert!(
                        rules.contains_key(&selector.name),
                        "{file}: {title}: {} is not in rules.yml",
                        selector.name
                    );
                    // The level's labels are labels of the metric the rule reads.
                    let def = catalog::by_prometheus_name(metric).unwrap();
                    for label in labels_of(&selector.name) {
                        assert!(
                            ["job", "instance"].contains(&label.as_str())
                                || def.labels.iter().any(|l| l.replace('.', "_") == label),
                            "{file}: {level} is not a level of {metric}"
                        );
                    }
                }
            }
            // Panels of a quantile that has a rule read the rule, except the target that
            // brings the exemplars.
            let unit = panel["fieldConfig"]["defaults"]["unit"].as_str().unwrap();
            for target in targets(panel) {
                let expr = expr(target);
                if target["exemplar"] == true || !expr.starts_with("histogram_quantile") {
                    continue;
                }
                let bucket = selectors(expr).remove(0).name;
                let metric = bucket.strip_suffix("_bucket").unwrap();
                assert!(
                    !rules.keys().any(|rule| rule_parts(rule)
                        .is_some_and(|(_, m, op)| m == metric && op.starts_with('p'))),
                    "{file}: {title}: {metric} has quantile rules; read them"
                );
            }
            if unit == "percentunit" {
                for target in targets(panel) {
                    assert!(
                        selectors(expr(target))
                            .iter()
                            .all(|s| s.name.ends_with("ratio_rate5m")),
                        "{file}: {title}: a ratio panel reads a ratio rule"
                    );
                }
            }
        }
    }
    for ratio in [
        "job_instance_topic:streamhouse_producer_errors_total:ratio_rate5m",
        "job_instance_operation:streamhouse_s3_errors_total:ratio_rate5m",
        "job_instance:streamhouse_cache_hits_total:ratio_rate5m",
        "job_instance:http_server_request_duration_seconds:error_ratio_rate5m",
    ] {
        assert!(
            dashboard_queries()
                .iter()
                .any(|(_, expr)| selectors(expr).iter().any(|s| s.name == ratio)),
            "no panel draws {ratio}"
        );
    }
}

/// Decodes `%XX` escapes.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
            out.push(u8::from_str_radix(hex, 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

#[test]
fn latency_panels_show_exemplars_and_link_to_traces() {
    let mut latency_panels = 0;
    for (file, board) in dashboards() {
        for panel in panels(&board) {
            let title = &panel["title"];
            let selected: Vec<(Selector, bool)> = targets(panel)
                .iter()
                .flat_map(|t| {
                    selectors(expr(t))
                        .into_iter()
                        .map(|s| (s, t["exemplar"] == true))
                })
                .collect();
            // Buckets or quantile rules of a histogram of seconds.
            let latency: BTreeSet<&str> = selected
                .iter()
                .filter_map(|(s, _)| match rule_parts(&s.name) {
                    Some((_, metric, op)) if op.starts_with('p') => Some(metric),
                    Some(_) => None,
                    None => s.name.strip_suffix("_bucket"),
                })
                .filter(|metric| {
                    catalog::by_prometheus_name(metric).is_some_and(is_seconds_histogram)
                })
                .collect();
            for metric in &latency {
                latency_panels += 1;
                assert_eq!(
                    panel["fieldConfig"]["defaults"]["unit"], "s",
                    "{file}: {title}"
                );
                let bucket = format!("{metric}_bucket");
                assert!(
                    selected
                        .iter()
                        .any(|(s, exemplar)| *exemplar && s.name == bucket),
                    "{file}: {title}: no target over {bucket} with exemplars on"
                );
            }
            // Exemplars are fetched for the target's series: only buckets carry the ones a
            // latency panel draws.
            for (selector, exemplar) in &selected {
                assert!(
                    !exemplar || selector.name.ends_with("_bucket"),
                    "{file}: {title}: exemplars asked of {}",
                    selector.name
                );
            }
            for link in panel["links"].as_array().into_iter().flatten() {
                let url = link["url"].as_str().unwrap();
                let panes = url
                    .strip_prefix("/explore?")
                    .and_then(|q| q.split('&').find_map(|p| p.strip_prefix("panes=")))
                    .unwrap_or_else(|| panic!("{file}: {title}: {url} is no Explore link"));
                let panes: Value = serde_json::from_str(&percent_decode(panes))
                    .unwrap_or_else(|e| panic!("{file}: {title}: {e}"));
                for pane in panes.as_object().unwrap().values() {
                    assert_eq!(pane["datasource"], "tempo", "{file}: {title}");
                    assert_eq!(pane["range"]["from"], "${__from}", "{file}: {title}");
                    assert_eq!(pane["range"]["to"], "${__to}", "{file}: {title}");
                    for query in pane["queries"].as_array().unwrap() {
                        assert_eq!(query["datasource"]["uid"], "tempo");
                        assert_eq!(query["queryType"], "traceql");
                        let traceql = query["query"].as_str().unwrap();
                        assert!(
                            traceql.starts_with('{')
                                && traceql.ends_with('}')
                                && traceql.contains("resource.service.name=\"streamhouse\""),
                            "{file}: {title}: {traceql}"
                        );
                    }
                }
            }
            if latency.contains(catalog::PRODUCER_LATENCY.prometheus_name) {
                assert!(
                    panel["links"].as_array().is_some_and(|l| !l.is_empty()),
                    "{file}: {title}: no link to the produce traces"
                );
            }
        }
    }
    // Overview, Producer, Storage and two on System.
    assert_eq!(latency_panels, 5);
}

/// The `data` of a Prometheus API answer; panics when Prometheus rejects the query.
async fn api(client: &reqwest::Client, url: String, params: &[(&str, &str)]) -> Value {
    let response = client.get(url).query(params).send().await.unwrap();
    let status = response.status();
    let body: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert!(status.is_success(), "{params:?}\n{body}");
    body["data"].clone()
}

/// An instant query's result.
async fn query(client: &reqwest::Client, base: &str, promql: &str) -> Vec<Value> {
    let data = api(client, format!("{base}/api/v1/query"), &[("query", promql)]).await;
    data["result"].as_array().unwrap().clone()
}

/// Exemplars Prometheus stored for the series of `promql` in the last hour.
async fn exemplars(client: &reqwest::Client, base: &str, promql: &str) -> Vec<Value> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (start, end) = ((now - 3600).to_string(), (now + 60).to_string());
    let params = [("query", promql), ("start", &start), ("end", &end)];
    let data = api(client, format!("{base}/api/v1/query_exemplars"), &params).await;
    data.as_array()
        .unwrap()
        .iter()
        .flat_map(|series| series["exemplars"].as_array().unwrap().clone())
        .collect()
}

fn is_trace_id(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        && id.bytes().any(|b| b != b'0')
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_queries_return_data_from_the_reference_server_under_load() {
    let telemetry = support::telemetry();
    // Handlers record inside the server's spans (so with exemplars) only when spans reach
    // OpenTelemetry: the one global subscriber of this test binary.
    let subscriber =
        logging::subscriber(&telemetry, &LoggingConfig::default(), std::io::sink).unwrap();
    tracing::subscriber::set_global_default(subscriber).unwrap();
    let config = support::lite::test_config()
        .with_segment_max_bytes(64 << 10)
        .with_segment_max_age(Duration::from_millis(200));
    let server =
        support::lite::start_with_telemetry(config, Arc::new(InMemory::new()), telemetry).await;
    let generator = loadgen::spawn(format!("http://{}", server.addr));

    let rules = std::fs::read_to_string(monitoring().join("rules.yml")).unwrap();
    let alerts = std::fs::read_to_string(monitoring().join("alerts.yml")).unwrap();
    let prometheus = support::Prometheus::start_with_files(
        &format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - rules.yml\n  - alerts.yml\n\
             scrape_configs:\n  - job_name: streamhouse\n    static_configs:\n\
             \x20     - targets: ['{}']\n",
            server.addr
        ),
        &[("rules.yml", &rules), ("alerts.yml", &alerts)],
    );
    let base = prometheus.url();
    let client = reqwest::Client::new();
    support::eventually(Duration::from_secs(60), "prometheus to answer", || async {
        let up = client.get(format!("{base}/-/ready")).send().await.ok()?;
        up.status().is_success().then_some(())
    })
    .await;

    let mut exempt: BTreeMap<&str, bool> =
        EMPTY_UNDER_LOAD.iter().map(|(t, _)| (*t, false)).collect();
    let mut panel_queries = Vec::new();
    let mut variable_queries = Vec::new();
    for (file, board) in dashboards() {
        for panel in panels(&board) {
            let title = panel["title"].as_str().unwrap().to_owned();
            if let Some(seen) = exempt.get_mut(title.as_str()) {
                *seen = true;
            }
            for target in targets(panel) {
                panel_queries.push((
                    format!("{file}: {title}"),
                    title.clone(),
                    expr(target).to_owned(),
                ));
            }
        }
        for variable in variables(&board).into_iter().skip(1) {
            let (selector, label) = label_values(variable);
            variable_queries.push((
                format!("{file}: ${label}"),
                label.to_owned(),
                selector.to_owned(),
            ));
        }
    }
    for (title, seen) in &exempt {
        assert!(seen, "{title} is exempted but is on no dashboard");
    }

    // Every query answers with data once the rules have evaluated over a few scrapes.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let mut empty = Vec::new();
        for (where_, title, expr) in &panel_queries {
            let result = query(&client, &base, &expand(expr, &[])).await;
            if result.is_empty() && !exempt.contains_key(title.as_str()) {
                empty.push(format!("{where_}: {expr}"));
            }
        }
        if empty.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no data after 90 s for:\n{}",
            empty.join("\n")
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    // Each variable filters: a value that matches nothing empties every query using it.
    for (where_, title, expr) in &panel_queries {
        if exempt.contains_key(title.as_str()) {
            continue;
        }
        let instance = server.addr.to_string();
        let exact = [("job", "streamhouse"), ("instance", instance.as_str())];
        assert!(
            !query(&client, &base, &expand(expr, &exact))
                .await
                .is_empty(),
            "{where_}: no data for this job and instance: {expr}"
        );
        for filter in FILTERS.iter().filter(|f| expr.contains(&format!("${f}"))) {
            let none = expand(expr, &[(filter, "no-such-value")]);
            assert!(
                query(&client, &base, &none).await.is_empty(),
                "{where_}: ${filter} does not filter {none}"
            );
        }
    }

    // Grafana fills each variable from the label values of its selector.
    for (where_, label, selector) in &variable_queries {
        let url = format!("{base}/api/v1/label/{label}/values");
        let values = api(&client, url, &[("match[]", &expand(selector, &[]))]).await;
        let values = values.as_array().unwrap();
        assert!(!values.is_empty(), "{where_}: no values for {selector}");
        if label == "topic" {
            for (topic, _) in loadgen::TOPICS {
                assert!(values.contains(&Value::from(*topic)), "{where_}: {topic}");
            }
        }
    }

    // The exemplars a latency panel draws: Grafana asks for those of its exemplar target.
    let mut exemplar_targets = Vec::new();
    for (file, board) in dashboards() {
        for panel in panels(&board) {
            let title = panel["title"].as_str().unwrap().to_owned();
            for target in targets(panel).iter().filter(|t| t["exemplar"] == true) {
                exemplar_targets.push((
                    format!("{file}: {title}"),
                    title.clone(),
                    expr(target).to_owned(),
                ));
            }
        }
    }
    let produce = format!("{}_bucket", catalog::PRODUCER_LATENCY.prometheus_name);
    assert!(
        exemplar_targets
            .iter()
            .any(|(_, _, expr)| expr.contains(&produce))
    );
    for (title, _) in NO_EXEMPLARS {
        assert!(
            exemplar_targets.iter().any(|(_, t, _)| t == title),
            "{title} is exempted but has no exemplar target"
        );
    }
    for (where_, title, expr) in &exemplar_targets {
        let promql = expand(expr, &[]);
        if NO_EXEMPLARS.iter().any(|(t, _)| t == title) {
            // Still a query Prometheus accepts.
            exemplars(&client, &base, &promql).await;
            continue;
        }
        let found = support::eventually(Duration::from_secs(30), "exemplars", || async {
            let found = exemplars(&client, &base, &promql).await;
            (!found.is_empty()).then_some(found)
        })
        .await;
        for exemplar in &found {
            let trace_id = exemplar["labels"]["trace_id"].as_str().unwrap_or_default();
            assert!(is_trace_id(trace_id), "{where_}: {exemplar}");
            let span_id = exemplar["labels"]["span_id"].as_str().unwrap_or_default();
            assert_eq!(span_id.len(), 16, "{where_}: {exemplar}");
        }
    }

    // Prometheus loaded every rule and evaluates it without error.
    let loaded = api(&client, format!("{base}/api/v1/rules"), &[]).await;
    let loaded: Vec<&Value> = loaded["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .collect();
    assert_eq!(loaded.len(), recording_rules().len() + alert_names().len());
    for rule in loaded {
        assert_eq!(rule["health"], "ok", "{rule}");
    }
    generator.abort();
}
