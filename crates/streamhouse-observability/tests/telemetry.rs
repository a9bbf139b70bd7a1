//! The handle: global init, independent instances, resource, shutdown.

use std::time::{Duration, Instant};

use streamhouse_observability::catalog;
use streamhouse_observability::{Telemetry, TelemetryConfig};

#[test]
fn global_init_is_idempotent() {
    let first =
        Telemetry::init_global(TelemetryConfig::default().with_service_name("first")).unwrap();
    let second =
        Telemetry::init_global(TelemetryConfig::default().with_service_name("second")).unwrap();
    assert_eq!(second.config().service_name, "first");
    assert_eq!(Telemetry::global().unwrap().config().service_name, "first");

    // One set of instruments: recording through either handle lands in one series.
    first.consumer().record_rebalance("g");
    second.consumer().record_rebalance("g");
    let text = second.render_prometheus();
    let name = catalog::CONSUMER_REBALANCES.prometheus_name;
    assert!(
        text.contains(&format!("{name}{{consumer_group=\"g\"}} 2\n")),
        "{text}"
    );
    assert_eq!(text.matches(&format!("# TYPE {name} ")).count(), 1);
}

#[test]
fn instances_side_by_side_do_not_share_state() {
    let a = Telemetry::new(TelemetryConfig::default().with_service_name("a")).unwrap();
    let b = Telemetry::new(TelemetryConfig::default().with_service_name("b")).unwrap();
    a.producer()
        .record_batch("orders", 3, 30, Duration::from_millis(1));
    let name = catalog::PRODUCER_RECORDS.prometheus_name;
    let text_a = a.render_prometheus();
    let text_b = b.render_prometheus();
    assert!(text_a.contains(&format!("{name}{{topic=\"orders\"}} 3\n")));
    assert!(!text_b.contains(name));
    assert!(text_a.contains(r#"service_name="a""#));
    assert!(text_b.contains(r#"service_name="b""#));
}

#[test]
fn resource_carries_service_identity() {
    let t = Telemetry::new(
        TelemetryConfig::default()
            .with_service_version("9.9.9")
            .with_resource_attribute("deployment.environment.name", "test"),
    )
    .unwrap();
    let text = t.render_prometheus();
    let target_info = text
        .lines()
        .find(|l| l.starts_with("target_info{"))
        .unwrap();
    assert!(
        target_info.contains(r#"service_name="streamhouse""#),
        "{target_info}"
    );
    assert!(
        target_info.contains(r#"service_version="9.9.9""#),
        "{target_info}"
    );
    assert!(
        target_info.contains(r#"deployment_environment_name="test""#),
        "{target_info}"
    );
    // A generated instance id is a UUID, different per instance.
    let id = |t: &Telemetry| {
        t.render_prometheus()
            .split("service_instance_id=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .to_owned()
    };
    let other = Telemetry::new(TelemetryConfig::default()).unwrap();
    assert_eq!(id(&t).len(), 36);
    assert_ne!(id(&t), id(&other));
}

#[test]
fn target_info_and_scope_labels_follow_the_config() {
    use streamhouse_observability::config::{PrometheusConfig, ScopeLabels};
    let t = Telemetry::new(
        TelemetryConfig::default().with_prometheus(
            PrometheusConfig::default()
                .with_target_info(false)
                .with_scope_labels(ScopeLabels::All),
        ),
    )
    .unwrap();
    t.storage().record_cache_hit();
    let text = t.render_prometheus();
    assert!(!text.contains("target_info"));
    let hits = catalog::CACHE_HITS.prometheus_name;
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        text.contains(&format!(
            "{hits}{{otel_scope_name=\"streamhouse\",otel_scope_version=\"{version}\"}} 1\n"
        )),
        "{text}"
    );
}

#[test]
fn shutdown_is_bounded_and_repeatable() {
    let t = Telemetry::new(
        TelemetryConfig::default().with_shutdown_timeout(Duration::from_millis(500)),
    )
    .unwrap();
    t.storage().record_cache_miss();
    let started = Instant::now();
    t.shutdown().unwrap();
    t.shutdown().unwrap();
    assert!(started.elapsed() < Duration::from_secs(2));
    // After shutdown nothing is served, and recording does not panic.
    t.storage().record_cache_miss();
    assert_eq!(t.render_prometheus(), "");
}

#[test]
fn a_component_registers_its_metrics_and_gets_pinned_names_and_buckets() {
    use opentelemetry::KeyValue;
    use opentelemetry::metrics::MeterProvider as _;
    use streamhouse_observability::catalog::MetricDef;

    // Declared once, in the component's own crate.
    const COMPACTION: MetricDef = MetricDef::histogram(
        "streamhouse.compactor.duration",
        "streamhouse_compactor_duration_seconds",
        "s",
        "Compaction duration",
        &["topic"],
        &[0.5, 5.0],
    );
    let config = TelemetryConfig::default()
        .with_service_instance_id("i")
        .with_metrics(&[COMPACTION])
        .unwrap();
    let telemetry = Telemetry::new(config).unwrap();
    let meter = telemetry
        .meter_provider()
        .meter(streamhouse_observability::SCOPE_NAME);
    let duration = meter.f64_histogram(COMPACTION.otel_name).build();
    duration.record(1.0, &[KeyValue::new("topic", "orders")]);
    let text = telemetry.render_prometheus();
    let name = COMPACTION.prometheus_name;
    for line in [
        format!("# HELP {name} Compaction duration\n# TYPE {name} histogram\n"),
        format!("{name}_bucket{{topic=\"orders\",le=\"0.5\"}} 0\n"),
        format!("{name}_bucket{{topic=\"orders\",le=\"5\"}} 1\n"),
        format!("{name}_bucket{{topic=\"orders\",le=\"+Inf\"}} 1\n"),
        format!("{name}_count{{topic=\"orders\"}} 1\n"),
    ] {
        assert!(text.contains(&line), "{line}\n{text}");
    }

    // A registration that clashes with the catalog names the entry and never starts.
    let clash = MetricDef::gauge(
        "streamhouse.compactor.records",
        catalog::PRODUCER_RECORDS.prometheus_name,
        "{record}",
        "Clashes with the producer counter",
        &[],
    );
    let err = TelemetryConfig::default()
        .with_metrics(&[clash])
        .unwrap_err();
    assert_eq!(err.metric, "streamhouse.compactor.records");
    assert!(
        err.to_string()
            .contains(catalog::PRODUCER_RECORDS.prometheus_name)
    );
}
