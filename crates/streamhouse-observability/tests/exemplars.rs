//! Exemplars: captured inside sampled spans only, exposed in OpenMetrics, absent from text.

use std::time::Duration;

use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use streamhouse_observability::catalog;
use streamhouse_observability::prometheus::Format;
use streamhouse_observability::{Telemetry, TelemetryConfig};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;

/// Runs `f` inside a `tracing` span bridged to OTel by `tracing-opentelemetry`, with spans
/// sampled or not; returns the span's trace id.
fn in_span(sampled: bool, f: impl FnOnce()) -> String {
    let sampler = if sampled {
        Sampler::AlwaysOn
    } else {
        Sampler::AlwaysOff
    };
    let provider = SdkTracerProvider::builder().with_sampler(sampler).build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
    tracing::subscriber::with_default(subscriber, || {
        let span = tracing::info_span!("produce");
        let _entered = span.enter();
        f();
        span.context().span().span_context().trace_id().to_string()
    })
}

fn exemplar_lines(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| l.contains(" # {trace_id="))
        .collect()
}

#[test]
fn a_record_inside_a_sampled_span_carries_its_trace_id() {
    let t = Telemetry::new(TelemetryConfig::default()).unwrap();
    let orders = t.producer().topic("orders");
    let trace_id = in_span(true, || {
        orders.record_batch(10, 100, Duration::from_millis(3));
        t.consumer().record_records("orders", "analytics", 4);
    });
    assert_eq!(trace_id.len(), 32);

    let text = t.render(Format::OpenMetrics);
    let latency = catalog::PRODUCER_LATENCY.prometheus_name;
    let bucket = text
        .lines()
        .find(|l| {
            l.starts_with(&format!(
                r#"{latency}_bucket{{topic="orders",le="0.005"}} 1 # "#
            ))
        })
        .unwrap_or_else(|| panic!("no exemplar on the 5 ms bucket:\n{text}"));
    assert!(
        bucket.contains(&format!(r#"trace_id="{trace_id}""#)),
        "{bucket}"
    );
    let span_id = bucket
        .split("span_id=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    assert_eq!(span_id.len(), 16);
    assert!(
        span_id
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    );
    assert!(bucket.contains("} 0.003 "), "{bucket}");

    // Counters carry theirs on the _total sample, bound or not.
    let records = catalog::CONSUMER_RECORDS.prometheus_name;
    let counter = text
        .lines()
        .find(|l| l.starts_with(&format!("{records}{{")))
        .unwrap();
    assert!(
        counter.contains(&format!(r#"trace_id="{trace_id}""#)),
        "{counter}"
    );
    // Only the bucket the value fell in has one.
    let with = |name: &str| {
        exemplar_lines(&text)
            .iter()
            .filter(|l| l.starts_with(name))
            .count()
    };
    assert_eq!(with(&format!("{latency}_bucket")), 1);

    // The text format 0.0.4 has no exemplars.
    assert!(exemplar_lines(&t.render_prometheus()).is_empty());
}

#[test]
fn unsampled_or_absent_spans_record_no_exemplar() {
    let t = Telemetry::new(TelemetryConfig::default()).unwrap();
    let orders = t.producer().topic("orders");
    in_span(false, || {
        orders.record_batch(1, 1, Duration::from_millis(1))
    });
    orders.record_batch(1, 1, Duration::from_millis(1));
    t.storage().record_cache_hit();
    assert!(exemplar_lines(&t.render(Format::OpenMetrics)).is_empty());
}

#[test]
fn capture_can_be_turned_off() {
    let t = Telemetry::new(TelemetryConfig::default().with_exemplars(false)).unwrap();
    in_span(true, || t.storage().record_cache_miss());
    let text = t.render(Format::OpenMetrics);
    assert!(text.contains(&format!("{} 1\n", catalog::CACHE_MISSES.prometheus_name)));
    assert!(exemplar_lines(&text).is_empty());
}

#[test]
fn the_latest_exemplar_wins() {
    let t = Telemetry::new(TelemetryConfig::default()).unwrap();
    let first = in_span(true, || t.storage().record_cache_hit());
    let second = in_span(true, || t.storage().record_cache_hit());
    assert_ne!(first, second);
    let text = t.render(Format::OpenMetrics);
    let hits = exemplar_lines(&text);
    assert_eq!(hits.len(), 1);
    assert!(hits[0].contains(&second), "{}", hits[0]);
}

#[test]
fn always_on_keeps_exemplars_outside_spans_without_labels() {
    use streamhouse_observability::exemplars::ExemplarFilter;

    let t =
        Telemetry::new(TelemetryConfig::default().with_exemplar_filter(ExemplarFilter::AlwaysOn))
            .unwrap();
    t.producer()
        .record_batch("orders", 1, 1, Duration::from_millis(3));
    t.storage().record_cache_hit();
    let text = t.render(Format::OpenMetrics);
    let latency = catalog::PRODUCER_LATENCY.prometheus_name;
    let prefix = format!(r#"{latency}_bucket{{topic="orders",le="0.005"}} 1 # {{}} 0.003 "#);
    let bucket = text
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no label-less exemplar:\n{text}"));
    let timestamp: f64 = bucket[prefix.len()..].parse().unwrap();
    assert!(timestamp > 1.6e9, "{bucket}");
    let hits = catalog::CACHE_HITS.prometheus_name;
    assert!(
        text.lines()
            .any(|l| l.starts_with(&format!("{hits} 1 # {{}} 1 "))),
        "{text}"
    );
    // Inside a sampled span the ids are still there.
    let trace_id = in_span(true, || t.storage().record_cache_hit());
    let text = t.render(Format::OpenMetrics);
    assert!(
        text.contains(&format!(r#"trace_id="{trace_id}""#)),
        "{text}"
    );
}

#[test]
fn http_series_without_error_type_or_route_get_exemplars() {
    let t = Telemetry::new(TelemetryConfig::default()).unwrap();
    let trace_id = in_span(true, || {
        t.http_server()
            .record_request("GET", None, 200, Duration::from_millis(3));
        t.http_server()
            .record_request("GET", Some("/r"), 503, Duration::from_millis(3));
    });
    let text = t.render(Format::OpenMetrics);
    let name = catalog::HTTP_SERVER_REQUEST_DURATION.prometheus_name;
    let with_exemplar: Vec<&str> = exemplar_lines(&text)
        .into_iter()
        .filter(|l| l.starts_with(name))
        .collect();
    assert_eq!(with_exemplar.len(), 2, "{text}");
    assert!(with_exemplar.iter().all(|l| l.contains(&trace_id)));
    assert!(
        with_exemplar
            .iter()
            .any(|l| !l.contains("error_type") && !l.contains("http_route"))
    );
}
