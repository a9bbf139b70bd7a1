//! `monitoring/`: alert and recording rules pass `promtool` and their unit tests, load and
//! evaluate in a real Prometheus, name only catalog metrics, and every alert links a runbook
//! section of `docs/runbooks.md` that exists.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use streamhouse_observability::catalog::{self, MetricKind};

const RUNBOOKS: &str = "https://github.com/streamhouse/streamhouse/blob/main/docs/runbooks.md";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn monitoring() -> PathBuf {
    root().join("monitoring")
}

fn promtool(args: &[&str]) -> String {
    let output = Command::new("promtool")
        .args(args)
        .current_dir(monitoring())
        .output()
        .expect("promtool (scripts/test installs it)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "promtool {args:?}:\n{text}");
    text
}

/// `monitoring/<name>` parsed by PyYAML, as JSON.
fn yaml(name: &str) -> Value {
    support::yaml_file(&monitoring().join(name))
}

fn rules_of(file: &str) -> Vec<Value> {
    yaml(file)["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|group| group["rules"].as_array().unwrap().clone())
        .collect()
}

fn alerts() -> Vec<Value> {
    let alerts = rules_of("alerts.yml");
    assert!(alerts.iter().all(|rule| rule["alert"].is_string()));
    alerts
}

fn recording_rules() -> Vec<Value> {
    let rules = rules_of("rules.yml");
    assert!(rules.iter().all(|rule| rule["record"].is_string()));
    rules
}

fn recording_rule_names() -> BTreeSet<String> {
    recording_rules()
        .iter()
        .map(|rule| rule["record"].as_str().unwrap().to_owned())
        .collect()
}

/// Every `expr` string anywhere in `value` (dashboard panels, rows and targets alike).
fn exprs_in(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                match (key.as_str(), inner) {
                    ("expr", Value::String(expr)) => out.push(expr.clone()),
                    _ => exprs_in(inner, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| exprs_in(item, out)),
        _ => {}
    }
}

fn dashboard_exprs() -> Vec<String> {
    let mut exprs = Vec::new();
    for entry in std::fs::read_dir(monitoring().join("dashboards")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let board: Value = serde_json::from_slice(&std::fs::read(&path).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            exprs_in(&board, &mut exprs);
        }
    }
    exprs
}

/// GitHub's anchor for a Markdown heading: lower case, punctuation other than `-` and `_`
/// dropped, spaces turned into hyphens.
fn github_slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The `##` section headings of `docs/runbooks.md`, outside code blocks.
fn runbook_sections() -> Vec<String> {
    let text = std::fs::read_to_string(root().join("docs/runbooks.md")).unwrap();
    let mut in_code = false;
    let mut sections = Vec::new();
    for line in text.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
        } else if !in_code && let Some(heading) = line.strip_prefix("## ") {
            sections.push(heading.trim().to_owned());
        }
    }
    sections
}

/// The metric names an expression selects: identifiers outside strings, label matchers,
/// ranges and grouping clauses that are neither function calls nor keywords.
fn selected_metrics(expr: &str) -> BTreeSet<String> {
    // Strings and the insides of {..} and [..] carry label values, matchers and durations.
    let mut plain = String::new();
    let mut chars = expr.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' | '\'' | '`' => {
                let mut escaped = false;
                for d in chars.by_ref() {
                    if d == c && !escaped {
                        break;
                    }
                    escaped = d == '\\' && !escaped;
                }
                plain.push(' ');
            }
            '{' | '[' => {
                let close = if c == '{' { '}' } else { ']' };
                for d in chars.by_ref() {
                    if d == close {
                        break;
                    }
                }
                plain.push(' ');
            }
            _ => plain.push(c),
        }
    }
    let chars: Vec<char> = plain.chars().collect();
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut names = BTreeSet::new();
    let mut i = 0;
    while i < chars.len() {
        if !is_ident(chars[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && is_ident(chars[i]) {
            i += 1;
        }
        let token: String = chars[start..i].iter().collect();
        let next = chars[i..].iter().find(|c| !c.is_whitespace());
        // Digits first, or right after a digit or dot: a number (`0.99`, `1e-9`, `5m`).
        let number = chars[start].is_ascii_digit()
            || start > 0 && (chars[start - 1].is_ascii_digit() || chars[start - 1] == '.');
        if support::PROMQL_LABEL_CLAUSES.contains(&token.as_str()) && next == Some(&'(') {
            // The label list of a grouping or matching clause.
            while i < chars.len() && chars[i] != ')' {
                i += 1;
            }
        } else if !number
            && !support::PROMQL_KEYWORDS.contains(&token.as_str())
            && next != Some(&'(')
        {
            names.insert(token);
        }
    }
    names
}

/// `name` with a histogram suffix folded into its catalog family.
fn catalog_family(name: &str) -> Option<&'static str> {
    catalog::by_prometheus_name(name)
        .or_else(|| {
            ["_bucket", "_sum", "_count"]
                .iter()
                .filter_map(|suffix| name.strip_suffix(suffix))
                .filter_map(catalog::by_prometheus_name)
                .find(|def| def.kind == MetricKind::Histogram)
        })
        .map(|def| def.prometheus_name)
}

#[test]
fn alert_rules_pass_promtool_and_their_unit_tests() {
    let checked = promtool(&["check", "rules", "rules.yml", "alerts.yml"]);
    assert_eq!(checked.matches("SUCCESS").count(), 2, "{checked}");
    assert!(promtool(&["check", "config", "prometheus.yml"]).contains("SUCCESS"));
    let tested = promtool(&["test", "rules", "rules_test.yml", "alerts_test.yml"]);
    assert_eq!(tested.matches("SUCCESS").count(), 2, "{tested}");
    // Prometheus evaluates the alerts with the recording rules they read.
    let config = yaml("prometheus.yml");
    let loaded: Vec<&str> = config["rule_files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert!(
        loaded.contains(&"rules.yml") && loaded.contains(&"alerts.yml"),
        "{loaded:?}"
    );
}

#[test]
fn the_expression_scanner_finds_selected_metrics_only() {
    let names = selected_metrics(
        r#"sum by (job, le) (rate(a_total{x="b_total",y=~"c.+"}[5m])) / on (job) group_left (z)
           job:b_seconds:p99_rate5m > bool 1e-9 and absent(up{job="s"}) or 0 * c_bytes offset 5m"#,
    );
    let expected: BTreeSet<String> = ["a_total", "job:b_seconds:p99_rate5m", "up", "c_bytes"]
        .map(str::to_owned)
        .into();
    assert_eq!(names, expected);
}

#[test]
fn rules_and_alerts_select_only_catalog_metrics_and_recording_rules() {
    let recorded = recording_rule_names();
    let mut exprs: Vec<(String, String)> = Vec::new();
    for rule in recording_rules() {
        exprs.push((
            rule["record"].as_str().unwrap().to_owned(),
            rule["expr"].as_str().unwrap().to_owned(),
        ));
    }
    for rule in alerts() {
        exprs.push((
            rule["alert"].as_str().unwrap().to_owned(),
            rule["expr"].as_str().unwrap().to_owned(),
        ));
    }
    for (rule, expr) in exprs {
        let names = selected_metrics(&expr);
        // A `__name__` matcher selects by pattern (the overflow alert), not by name.
        assert!(
            !names.is_empty() || expr.contains("__name__"),
            "{rule}: no metric in {expr}"
        );
        for name in names {
            // `up` is the scrape's own series, written by Prometheus.
            let known = name == "up" || recorded.contains(&name) || catalog_family(&name).is_some();
            assert!(
                known,
                "{rule}: {name} is neither a catalog metric nor a recording rule"
            );
        }
    }
}

#[test]
fn every_alert_has_a_description_and_a_runbook_section_and_every_section_an_alert() {
    let sections = runbook_sections();
    let slugs: BTreeMap<String, &String> = sections.iter().map(|s| (github_slug(s), s)).collect();
    assert_eq!(slugs.len(), sections.len(), "duplicate runbook headings");
    let mut names = BTreeSet::new();
    for alert in alerts() {
        let name = alert["alert"].as_str().unwrap();
        assert!(names.insert(name.to_owned()), "{name} is defined twice");
        let annotations = &alert["annotations"];
        for key in ["summary", "description"] {
            let text = annotations[key].as_str().unwrap_or_default();
            assert!(!text.trim().is_empty(), "{name} has no {key}");
        }
        let url = annotations["runbook_url"]
            .as_str()
            .unwrap_or_else(|| panic!("{name} has no runbook_url"));
        let anchor = url
            .strip_prefix(RUNBOOKS)
            .and_then(|rest| rest.strip_prefix('#'))
            .unwrap_or_else(|| panic!("{name}: {url} is not a section of {RUNBOOKS}"));
        let section = slugs
            .get(anchor)
            .unwrap_or_else(|| panic!("{name}: docs/runbooks.md has no heading for #{anchor}"));
        assert_eq!(*section, name, "{name} links the runbook of {section}");
        assert!(
            alert["labels"]["severity"].is_string(),
            "{name} has no severity"
        );
    }
    let orphans: Vec<&String> = sections.iter().filter(|s| !names.contains(*s)).collect();
    assert!(
        orphans.is_empty(),
        "runbook sections of no alert: {orphans:?}"
    );
}

#[test]
fn every_alert_has_a_firing_and_a_not_firing_unit_test() {
    let tests = yaml("alerts_test.yml");
    let files: Vec<&str> = tests["rule_files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert_eq!(files, ["rules.yml", "alerts.yml"]);
    let mut firing = BTreeSet::new();
    let mut silent = BTreeSet::new();
    for group in tests["tests"].as_array().unwrap() {
        for case in group["alert_rule_test"].as_array().unwrap_or(&Vec::new()) {
            let name = case["alertname"].as_str().unwrap().to_owned();
            let expected = case["exp_alerts"].as_array().unwrap();
            if expected.is_empty() {
                silent.insert(name);
                continue;
            }
            for alert in expected {
                let annotations = &alert["exp_annotations"];
                for key in ["summary", "description", "runbook_url"] {
                    assert!(
                        annotations[key].is_string(),
                        "{name} at {}: no expected {key}",
                        case["eval_time"]
                    );
                }
            }
            firing.insert(name);
        }
    }
    for alert in alerts() {
        let name = alert["alert"].as_str().unwrap();
        assert!(firing.contains(name), "{name} has no firing case");
        assert!(silent.contains(name), "{name} has no not-firing case");
    }
}

#[test]
fn every_recording_rule_has_an_expression_test_and_a_reader() {
    let tests = yaml("rules_test.yml");
    assert_eq!(tests["rule_files"], serde_json::json!(["rules.yml"]));
    let mut tested = BTreeSet::new();
    for group in tests["tests"].as_array().unwrap() {
        for case in group["promql_expr_test"].as_array().unwrap_or(&Vec::new()) {
            let expr = case["expr"].as_str().unwrap();
            // An expected value, not only an expected absence.
            if !case["exp_samples"].as_array().unwrap().is_empty() {
                tested.extend(selected_metrics(expr));
            }
        }
    }
    let mut readers: Vec<String> = alerts()
        .iter()
        .map(|alert| alert["expr"].as_str().unwrap().to_owned())
        .collect();
    readers.extend(dashboard_exprs());
    let read: BTreeSet<String> = readers.iter().flat_map(|e| selected_metrics(e)).collect();
    let mut unread = Vec::new();
    for name in recording_rule_names() {
        assert!(tested.contains(&name), "{name} has no promql_expr_test");
        if !read.contains(&name) {
            unread.push(name);
        }
    }
    assert!(
        unread.is_empty(),
        "recording rules no alert or dashboard reads: {unread:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recording_and_alerting_rules_load_and_evaluate_in_prometheus() {
    let rules = std::fs::read_to_string(monitoring().join("rules.yml")).unwrap();
    let alert_rules = std::fs::read_to_string(monitoring().join("alerts.yml")).unwrap();
    let prometheus = support::Prometheus::start_with_files(
        "global:\n  evaluation_interval: 1s\nrule_files:\n  - rules.yml\n  - alerts.yml\n",
        &[("rules.yml", &rules), ("alerts.yml", &alert_rules)],
    );
    let mut expected: BTreeSet<String> = recording_rule_names();
    expected.extend(
        alerts()
            .iter()
            .map(|a| a["alert"].as_str().unwrap().to_owned()),
    );
    let client = reqwest::Client::new();
    let url = format!("{}/api/v1/rules", prometheus.url());
    // Every rule evaluated at least once; `unknown` health until then.
    let loaded = support::eventually(Duration::from_secs(60), "every rule evaluated", || async {
        let body: Value =
            serde_json::from_slice(&client.get(&url).send().await.ok()?.bytes().await.ok()?)
                .ok()?;
        let rules: BTreeMap<String, Value> = body["data"]["groups"]
            .as_array()?
            .iter()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .map(|r| (r["name"].as_str().unwrap_or_default().to_owned(), r))
            .collect();
        let evaluated =
            rules.len() == expected.len() && rules.values().all(|r| r["health"] != "unknown");
        evaluated.then_some(rules)
    })
    .await;
    let names: BTreeSet<String> = loaded.keys().cloned().collect();
    assert_eq!(names, expected);
    for (name, rule) in &loaded {
        assert_eq!(rule["health"], "ok", "{name}: {rule}");
    }
}
