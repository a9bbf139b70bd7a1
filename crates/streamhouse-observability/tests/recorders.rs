//! Typed recorders through a real provider and the text bridge.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use streamhouse_observability::catalog;
use streamhouse_observability::metrics::{ProducerError, S3Operation};
use streamhouse_observability::{Telemetry, TelemetryConfig};

fn telemetry() -> Telemetry {
    Telemetry::new(TelemetryConfig::default()).unwrap()
}

/// Lines of the exposition that are samples of `name` (exactly, or with a suffix).
fn samples(text: &str, name: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(['{', ' ', '_']))
        })
        .map(str::to_owned)
        .collect()
}

#[test]
fn producer_records_bound_and_unbound_into_the_same_series() {
    let t = telemetry();
    let bound = t.producer().topic("orders");
    bound.record_batch(10, 1000, Duration::from_millis(3));
    t.producer()
        .record_batch("orders", 5, 500, Duration::from_millis(30));
    bound.record_error(ProducerError::Timeout);
    t.producer().record_error("orders", ProducerError::Timeout);

    let text = t.render_prometheus();
    let records = catalog::PRODUCER_RECORDS.prometheus_name;
    assert_eq!(
        samples(&text, records),
        [format!(r#"{records}{{topic="orders"}} 15"#)]
    );
    let bytes = catalog::PRODUCER_BYTES.prometheus_name;
    assert_eq!(
        samples(&text, bytes),
        [format!(r#"{bytes}{{topic="orders"}} 1500"#)]
    );
    let errors = catalog::PRODUCER_ERRORS.prometheus_name;
    assert_eq!(
        samples(&text, errors),
        [format!(
            r#"{errors}{{error_type="timeout",topic="orders"}} 2"#
        )]
    );
    let latency = catalog::PRODUCER_LATENCY.prometheus_name;
    let lines = samples(&text, latency);
    assert!(lines.contains(&format!(
        r#"{latency}_bucket{{topic="orders",le="0.001"}} 0"#
    )));
    assert!(lines.contains(&format!(
        r#"{latency}_bucket{{topic="orders",le="0.005"}} 1"#
    )));
    assert!(lines.contains(&format!(
        r#"{latency}_bucket{{topic="orders",le="0.05"}} 2"#
    )));
    assert!(lines.contains(&format!(
        r#"{latency}_bucket{{topic="orders",le="+Inf"}} 2"#
    )));
    assert!(lines.contains(&format!(r#"{latency}_sum{{topic="orders"}} 0.033"#)));
    assert!(lines.contains(&format!(r#"{latency}_count{{topic="orders"}} 2"#)));
    let batch = catalog::PRODUCER_BATCH_SIZE.prometheus_name;
    assert!(samples(&text, batch).contains(&format!(r#"{batch}_sum{{topic="orders"}} 15"#)));
}

#[test]
fn consumer_lag_appears_and_disappears_with_its_group() {
    let t = telemetry();
    let lag = catalog::CONSUMER_LAG.prometheus_name;
    let groups = Arc::new(Mutex::new(vec![("analytics", 500u64), ("billing", 7)]));
    let state = Arc::clone(&groups);
    let registration = t.consumer().observe_lag(move |report| {
        for (group, lag) in state.lock().unwrap().iter() {
            report.lag("orders", 0, group, *lag);
        }
    });
    assert_eq!(
        samples(&t.render_prometheus(), lag),
        [
            format!(r#"{lag}{{consumer_group="analytics",partition="0",topic="orders"}} 500"#),
            format!(r#"{lag}{{consumer_group="billing",partition="0",topic="orders"}} 7"#),
        ]
    );

    // The billing group leaves: its series is gone from the next scrape.
    groups.lock().unwrap().retain(|(g, _)| *g != "billing");
    assert_eq!(
        samples(&t.render_prometheus(), lag),
        [format!(
            r#"{lag}{{consumer_group="analytics",partition="0",topic="orders"}} 500"#
        )]
    );

    // The owner goes: no lag series at all, and no empty family either.
    drop(registration);
    let text = t.render_prometheus();
    assert!(samples(&text, lag).is_empty());
    assert!(!text.contains(&format!("# TYPE {lag} ")));
}

#[test]
fn cache_metrics_count_and_read_the_size() {
    let t = telemetry();
    let storage = t.storage();
    storage.record_cache_hit();
    storage.record_cache_hit();
    storage.record_cache_miss();
    let size = Arc::new(Mutex::new(1024u64));
    let source = Arc::clone(&size);
    let _registration = storage.observe_cache_size(move || *source.lock().unwrap());
    let text = t.render_prometheus();
    let hits = catalog::CACHE_HITS.prometheus_name;
    let misses = catalog::CACHE_MISSES.prometheus_name;
    let bytes = catalog::CACHE_SIZE.prometheus_name;
    assert_eq!(samples(&text, hits), [format!("{hits} 2")]);
    assert_eq!(samples(&text, misses), [format!("{misses} 1")]);
    assert_eq!(samples(&text, bytes), [format!("{bytes} 1024")]);
    *size.lock().unwrap() = 0;
    assert_eq!(
        samples(&t.render_prometheus(), bytes),
        [format!("{bytes} 0")]
    );
}

#[test]
fn every_s3_operation_is_exposed_from_the_start() {
    // Bound at start-up, so rate() works before the first call of an operation.
    let t = telemetry();
    let text = t.render_prometheus();
    let requests = catalog::S3_REQUESTS.prometheus_name;
    let lines = samples(&text, requests);
    assert_eq!(lines.len(), S3Operation::ALL.len());
    for op in S3Operation::ALL {
        assert!(
            lines.contains(&format!(r#"{requests}{{operation="{op}"}} 0"#)),
            "{op}"
        );
    }
}

#[test]
fn hostile_label_values_are_escaped() {
    let t = telemetry();
    let hostile = "a\"b\\c\nd ☃";
    t.producer()
        .record_batch(hostile, 1, 1, Duration::from_millis(1));
    let text = t.render_prometheus();
    let records = catalog::PRODUCER_RECORDS.prometheus_name;
    assert_eq!(
        samples(&text, records),
        [format!(r#"{records}{{topic="a\"b\\c\nd ☃"}} 1"#)]
    );
    // Nothing else leaks a raw newline: every line is a comment or a sample.
    for line in text.lines() {
        assert!(
            line.starts_with('#')
                || line.starts_with("streamhouse_")
                || line.starts_with("target_info"),
            "{line:?}"
        );
    }
}

#[test]
fn series_past_the_cardinality_limit_land_in_the_overflow_series() {
    let t = Telemetry::new(TelemetryConfig::default().with_cardinality_limit(4)).unwrap();
    for i in 0..10 {
        t.consumer().record_rebalance(&format!("group-{i}"));
    }
    let text = t.render_prometheus();
    let name = catalog::CONSUMER_REBALANCES.prometheus_name;
    let lines = samples(&text, name);
    let overflow: Vec<_> = lines
        .iter()
        .filter(|l| l.contains(r#"otel_metric_overflow="true""#))
        .collect();
    assert_eq!(overflow.len(), 1, "{lines:#?}");
    // The SDK keeps `limit` label sets; the overflow series comes on top of them.
    assert_eq!(lines.len(), 4 + 1, "{lines:#?}");
    // Nothing is lost: the counts add up to every rebalance recorded.
    let total: u64 = lines
        .iter()
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(total, 10);
}

#[test]
fn output_is_deterministic() {
    let t = telemetry();
    for topic in ["zeta", "alpha", "mid"] {
        t.producer()
            .record_batch(topic, 1, 1, Duration::from_millis(1));
    }
    let first = t.render_prometheus();
    for _ in 0..5 {
        assert_eq!(
            t.render_prometheus().replace(char::is_numeric, ""),
            first.replace(char::is_numeric, "")
        );
    }
    let records = catalog::PRODUCER_RECORDS.prometheus_name;
    let topics: Vec<_> = samples(&first, records)
        .iter()
        .map(|l| l.split('"').nth(1).unwrap().to_owned())
        .collect();
    assert_eq!(topics, ["alpha", "mid", "zeta"]);
    let families: Vec<_> = first
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .collect();
    let mut sorted = families[1..].to_vec();
    sorted.sort();
    assert_eq!(families[0], "target_info gauge");
    assert_eq!(families[1..], sorted[..]);
}
