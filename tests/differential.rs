//! The same recorded state, exposed by our bridge and by `opentelemetry-prometheus` on one
//! meter provider, yields the same samples (names, labels, values), both read by Python
//! `prometheus_client`.

mod support;

use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use prometheus::{Encoder, TextEncoder};
use streamhouse_observability::catalog::Catalog;
use streamhouse_observability::config::{PrometheusConfig, ScopeLabels};
use streamhouse_observability::prometheus::PrometheusReader;
use streamhouse_observability::views::catalog_view;

#[test]
fn our_bridge_and_opentelemetry_prometheus_expose_the_same_samples() {
    let registry = prometheus::Registry::new();
    let reference = opentelemetry_prometheus::exporter()
        .with_registry(registry.clone())
        // Catalog streams already carry their full Prometheus names.
        .without_units()
        .without_counter_suffixes()
        .build()
        .unwrap();
    let ours = PrometheusReader::new(
        PrometheusConfig::default()
            .with_target_info(true)
            .with_scope_labels(ScopeLabels::All),
    );
    let provider = SdkMeterProvider::builder()
        .with_resource(
            Resource::builder_empty()
                .with_attributes([
                    KeyValue::new("service.name", "diff"),
                    KeyValue::new("odd.key", "a\"b"),
                ])
                .build(),
        )
        .with_reader(ours.clone())
        .with_reader(reference)
        .with_view(catalog_view(&Catalog::streamhouse(), 2000))
        .build();

    let meter = provider.meter_with_scope(
        InstrumentationScope::builder("differential")
            .with_version("1.2.3")
            .build(),
    );
    let requests = meter.u64_counter("streamhouse.s3.requests").build();
    let latency = meter.f64_histogram("streamhouse.producer.latency").build();
    let lag = meter.i64_up_down_counter("queue.depth").build();
    for (i, value) in support::HOSTILE.iter().chain(["orders"].iter()).enumerate() {
        requests.add(
            i as u64 + 1,
            &[KeyValue::new("operation", value.to_string())],
        );
        latency.record(
            0.003 * (i + 1) as f64,
            &[KeyValue::new("topic", value.to_string())],
        );
        lag.add(-(i as i64), &[KeyValue::new("queue", value.to_string())]);
    }

    let ours = support::parse_with_prometheus_client("text", &ours.render_text().unwrap()).unwrap();
    let mut buffer = Vec::new();
    TextEncoder::new()
        .encode(&registry.gather(), &mut buffer)
        .unwrap();
    let reference =
        support::parse_with_prometheus_client("text", &String::from_utf8(buffer).unwrap()).unwrap();

    let key = |s: &support::Sample| (s.name.clone(), format!("{:?}", s.labels));
    // An empty label value is no label to Prometheus: we leave it out, the reference writes
    // it; compare as Prometheus would store them.
    let stored = |samples: &[support::Sample]| -> Vec<support::Sample> {
        let mut samples = samples.to_vec();
        for s in &mut samples {
            s.labels.retain(|_, value| !value.is_empty());
        }
        samples
    };
    let mut ours_samples = stored(&ours.samples);
    let mut reference_samples = stored(&reference.samples);
    ours_samples.sort_by_key(key);
    reference_samples.sort_by_key(key);
    assert!(ours_samples.len() > 3 * support::HOSTILE.len());
    let only_ours: Vec<_> = ours_samples
        .iter()
        .filter(|s| !reference_samples.contains(s))
        .collect();
    let only_reference: Vec<_> = reference_samples
        .iter()
        .filter(|s| !ours_samples.contains(s))
        .collect();
    assert!(
        only_ours.is_empty() && only_reference.is_empty(),
        "only ours: {only_ours:#?}\nonly opentelemetry-prometheus: {only_reference:#?}"
    );
    assert_eq!(ours_samples.len(), reference_samples.len());
    assert_eq!(ours.families, reference.families);
}
