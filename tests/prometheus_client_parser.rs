//! The exposition parses with Python `prometheus_client` to exactly the values recorded.

mod support;

use streamhouse_observability::catalog;

#[test]
fn parses_to_the_recorded_values() {
    let telemetry = support::telemetry();
    let recorded = support::record_every_metric(&telemetry);
    let body = telemetry.render_prometheus();

    let parsed = support::parse_with_prometheus_client("text", &body)
        .unwrap_or_else(|e| panic!("prometheus_client rejected the exposition: {e}\n{body}"));

    support::assert_expected(&parsed, &recorded.expected);
    for def in catalog::ALL {
        // The text parser names counter families without `_total`.
        let family = def
            .prometheus_name
            .strip_suffix("_total")
            .filter(|_| def.kind == catalog::MetricKind::Counter);
        let family = family.unwrap_or(def.prometheus_name);
        assert_eq!(
            parsed.families.get(family).map(String::as_str),
            Some(def.kind.prometheus_type()),
            "{}",
            def.prometheus_name
        );
    }
    let uptime = parsed.value(catalog::UPTIME.prometheus_name, &[]).unwrap();
    assert!(uptime > 0.0 && uptime < 60.0, "uptime {uptime}");
    let target_info = parsed
        .samples
        .iter()
        .find(|s| s.name == "target_info")
        .expect("target_info");
    assert_eq!(target_info.labels["service_name"], "streamhouse");
    assert_eq!(target_info.labels["service_instance_id"], "test-instance");
}
