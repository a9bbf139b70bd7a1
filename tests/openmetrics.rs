//! OpenMetrics output, with exemplars and hostile label values, through the strict parser of
//! Python `prometheus_client`.

mod support;

use streamhouse_observability::catalog::{self, MetricKind};
use streamhouse_observability::prometheus::Format;

#[test]
fn strict_parser_accepts_every_metric_with_exemplars() {
    let telemetry = support::telemetry();
    let (trace_id, recorded) =
        support::in_sampled_span(&telemetry, || support::record_every_metric(&telemetry));
    let body = telemetry.render(Format::OpenMetrics);
    assert!(body.ends_with("# EOF\n"));

    let parsed = support::parse_with_prometheus_client("openmetrics", &body)
        .unwrap_or_else(|e| panic!("strict OpenMetrics parser rejected the body: {e}\n{body}"));
    support::assert_expected(&parsed, &recorded.expected);

    // Every family with its type; counters named without `_total`.
    for def in catalog::ALL {
        let family = match def.kind {
            MetricKind::Counter => def.prometheus_name.strip_suffix("_total").unwrap(),
            _ => def.prometheus_name,
        };
        assert_eq!(
            parsed.families.get(family).map(String::as_str),
            Some(def.kind.prometheus_type()),
            "{family}"
        );
    }
    assert_eq!(
        parsed.families.get("target").map(String::as_str),
        Some("info")
    );

    // Every counter and histogram series recorded in the span carries its trace id; each
    // histogram series has exactly one (one observation each).
    let with_exemplar: Vec<_> = parsed
        .samples
        .iter()
        .filter(|s| s.exemplar.is_some())
        .collect();
    for sample in &with_exemplar {
        let (labels, _, timestamp) = sample.exemplar.as_ref().unwrap();
        assert_eq!(labels["trace_id"], trace_id, "{sample:?}");
        assert_eq!(labels["span_id"].len(), 16);
        assert!(timestamp.is_some_and(|t| t > 1.7e9), "{sample:?}");
    }
    let latency = format!("{}_bucket", catalog::PRODUCER_LATENCY.prometheus_name);
    let hostile_topic = support::HOSTILE[0];
    let hits: Vec<_> = with_exemplar
        .iter()
        .filter(|s| s.name == latency && s.labels["topic"] == hostile_topic)
        .collect();
    assert_eq!(hits.len(), 1, "{hits:?}");
    let records = catalog::PRODUCER_RECORDS.prometheus_name;
    assert!(with_exemplar.iter().any(|s| s.name == records));
    // Gauges never carry exemplars.
    assert!(
        !with_exemplar
            .iter()
            .any(|s| s.name == catalog::CONSUMER_LAG.prometheus_name)
    );
}

#[test]
fn strict_parser_rejects_what_we_must_not_emit() {
    // Guards the test above: the parser is strict (a missing `# EOF` fails).
    let telemetry = support::telemetry();
    let _recorded = support::record_every_metric(&telemetry);
    let body = telemetry.render(Format::OpenMetrics);
    let truncated = body.trim_end_matches("# EOF\n");
    assert!(support::parse_with_prometheus_client("openmetrics", truncated).is_err());
}

#[test]
fn strict_parser_accepts_exemplars_without_labels() {
    use streamhouse_observability::TelemetryConfig;
    use streamhouse_observability::exemplars::ExemplarFilter;
    use streamhouse_observability::{Telemetry, metrics::HttpOutcome};

    // `always_on` outside any span: exemplars without trace or span id, `# {} value time`.
    let telemetry =
        Telemetry::new(TelemetryConfig::default().with_exemplar_filter(ExemplarFilter::AlwaysOn))
            .unwrap();
    telemetry
        .producer()
        .record_batch("orders", 2, 10, std::time::Duration::from_millis(3));
    telemetry.http_server().record_request_with(
        "GET",
        None,
        "http",
        HttpOutcome::Status(500),
        std::time::Duration::from_millis(3),
    );
    let body = telemetry.render(Format::OpenMetrics);
    assert!(body.contains(" # {} "), "{body}");
    let parsed = support::parse_with_prometheus_client("openmetrics", &body)
        .unwrap_or_else(|e| panic!("strict OpenMetrics parser rejected the body: {e}\n{body}"));
    let latency = format!("{}_bucket", catalog::PRODUCER_LATENCY.prometheus_name);
    let sample = parsed
        .samples
        .iter()
        .find(|s| s.name == latency && s.exemplar.is_some())
        .unwrap_or_else(|| panic!("no exemplar parsed:\n{body}"));
    let (labels, value, timestamp) = sample.exemplar.clone().unwrap();
    assert!(labels.is_empty(), "{labels:?}");
    assert_eq!(value, 0.003);
    assert!(timestamp.is_some_and(|t| t > 1.6e9));
    let records = catalog::PRODUCER_RECORDS.prometheus_name;
    assert!(
        parsed
            .samples
            .iter()
            .any(|s| s.name == records && s.exemplar.as_ref().is_some_and(|e| e.1 == 2.0)),
        "{body}"
    );
}
