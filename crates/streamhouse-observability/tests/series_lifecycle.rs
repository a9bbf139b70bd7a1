//! Series lifecycle through the public API: removal by label, idle expiry with an injected
//! clock, counters that restart from zero, and a cardinality budget that churn never fills.

use std::sync::Arc;
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::MeterProvider as _;
use streamhouse_observability::catalog::label;
use streamhouse_observability::config::PrometheusConfig;
use streamhouse_observability::prometheus::Format;
use streamhouse_observability::series::ManualClock;
use streamhouse_observability::{Telemetry, TelemetryConfig};

fn telemetry(config: TelemetryConfig) -> Telemetry {
    Telemetry::new(config.with_service_name("lifecycle")).expect("telemetry starts")
}

/// The sample lines of `text` whose series carry `needle`.
fn lines_with<'a>(text: &'a str, needle: &str) -> Vec<&'a str> {
    text.lines()
        .filter(|l| !l.starts_with('#') && l.contains(needle))
        .collect()
}

fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn removing_a_topic_removes_every_series_carrying_it_and_nothing_else() {
    let t = telemetry(TelemetryConfig::default());
    let latency = Duration::from_millis(2);
    t.producer().record_batch("orders", 10, 100, latency);
    t.producer().record_batch("payments", 1, 10, latency);
    t.producer().record_error(
        "orders",
        streamhouse_observability::metrics::ProducerError::RecordTooLarge,
    );
    t.consumer().record_records("orders", "billing", 7);
    t.consumer().record_records("payments", "billing", 3);
    t.storage().record_segment_flush("orders", 0);
    t.storage().record_segment_write("orders", 1);
    let before = t.render_prometheus();
    assert!(
        lines_with(&before, r#"topic="orders""#).len() > 10,
        "{before}"
    );

    // producer records, bytes, latency, batch size, errors; consumer; two storage series.
    assert_eq!(t.remove_series(label::TOPIC, "orders"), 8);
    let after = t.render_prometheus();
    assert_eq!(lines_with(&after, r#"topic="orders""#), Vec::<&str>::new());
    assert_eq!(
        value(
            &after,
            r#"streamhouse_producer_records_total{topic="payments"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &after,
            r#"streamhouse_consumer_records_total{consumer_group="billing",topic="payments"}"#
        ),
        Some(3.0)
    );
    // A pair nothing carries removes nothing; neither does a key of another meaning.
    assert_eq!(t.remove_series(label::TOPIC, "nowhere"), 0);
    assert_eq!(t.remove_series(label::CONSUMER_GROUP, "payments"), 0);
}

#[test]
fn a_removed_series_that_returns_starts_from_zero_with_a_new_start_time() {
    let config = TelemetryConfig::default()
        .with_prometheus(PrometheusConfig::default().with_created_samples(true));
    let t = telemetry(config);
    t.consumer().record_records("orders", "billing", 1000);
    let first = t.render(Format::OpenMetrics);
    let created = |text: &str| {
        value(
            text,
            r#"streamhouse_consumer_records_created{consumer_group="billing",topic="orders"}"#,
        )
    };
    let created_before = created(&first).expect("a _created sample");
    std::thread::sleep(Duration::from_millis(20));

    t.remove_series(label::CONSUMER_GROUP, "billing");
    t.consumer().record_records("orders", "billing", 4);
    let again = t.render(Format::OpenMetrics);
    assert_eq!(
        value(
            &again,
            r#"streamhouse_consumer_records_total{consumer_group="billing",topic="orders"}"#
        ),
        Some(4.0),
        "{again}"
    );
    assert!(created(&again).expect("a _created sample") > created_before);
}

#[test]
fn handles_kept_across_a_removal_record_into_a_fresh_series() {
    let t = telemetry(TelemetryConfig::default());
    let orders = t.producer().topic("orders");
    let group = t.consumer().group("orders", "billing");
    let partition = t.storage().partition("orders", 3);
    orders.record_batch(50, 500, Duration::from_millis(1));
    group.record_records(9);
    partition.record_segment_flush();
    t.render_prometheus();

    t.remove_series(label::TOPIC, "orders");
    assert_eq!(
        lines_with(&t.render_prometheus(), "orders"),
        Vec::<&str>::new()
    );

    orders.record_batch(2, 20, Duration::from_millis(1));
    group.record_records(1);
    partition.record_segment_flush();
    let text = t.render_prometheus();
    assert_eq!(
        value(
            &text,
            r#"streamhouse_producer_records_total{topic="orders"}"#
        ),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            r#"streamhouse_consumer_records_total{consumer_group="billing",topic="orders"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &text,
            r#"streamhouse_segment_flushes_total{partition="3",topic="orders"}"#
        ),
        Some(1.0)
    );
}

#[test]
fn group_churn_never_reaches_the_overflow_series() {
    const LIMIT: usize = 100;
    let t = telemetry(TelemetryConfig::default().with_cardinality_limit(LIMIT));
    let mut alive = std::collections::VecDeque::new();
    for i in 0..2500 {
        let group = format!("group-{i}");
        t.consumer().record_records("orders", &group, 1);
        let handle = t.consumer().group("orders", &group);
        handle.record_records(1);
        alive.push_back(group);
        if alive.len() == 50 {
            let gone = alive.pop_front().unwrap();
            t.remove_series(label::CONSUMER_GROUP, &gone);
        }
        if i % 97 == 0 {
            let text = t.render_prometheus();
            assert!(!text.contains("otel_metric_overflow"), "at group {i}");
        }
    }
    let text = t.render_prometheus();
    assert!(!text.contains("otel_metric_overflow"), "{text}");
    let listed = lines_with(&text, "streamhouse_consumer_records_total{");
    assert_eq!(listed.len(), alive.len());
    for group in &alive {
        let series = format!(
            r#"streamhouse_consumer_records_total{{consumer_group="{group}",topic="orders"}}"#
        );
        assert_eq!(value(&text, &series), Some(2.0), "{group}");
    }
}

#[test]
fn idle_series_leave_and_a_series_touched_just_before_stays() {
    let clock = Arc::new(ManualClock::new());
    let t = telemetry(
        TelemetryConfig::default()
            .with_cardinality_limit(3)
            .with_metric_idle_timeout(Some(Duration::from_secs(60)))
            .with_clock(clock.clone()),
    );
    let lag = t
        .consumer()
        .observe_lag(|report| report.lag("orders", 0, "quiet", 5));
    t.producer()
        .record_batch("idle", 1, 1, Duration::from_millis(1));
    t.producer()
        .record_batch("busy", 1, 1, Duration::from_millis(1));
    t.render_prometheus();

    clock.advance(Duration::from_secs(59));
    t.producer()
        .record_batch("busy", 1, 1, Duration::from_millis(1));
    let text = t.render_prometheus();
    assert!(
        !lines_with(&text, r#"topic="idle""#).is_empty(),
        "kept until the timeout"
    );

    clock.advance(Duration::from_secs(2));
    let text = t.render_prometheus();
    assert_eq!(
        lines_with(&text, r#"topic="idle""#),
        Vec::<&str>::new(),
        "{text}"
    );
    assert_eq!(
        value(&text, r#"streamhouse_producer_records_total{topic="busy"}"#),
        Some(2.0)
    );
    // Gauges are levels their owners keep: never idle.
    assert_eq!(
        value(
            &text,
            r#"streamhouse_consumer_lag{consumer_group="quiet",partition="0",topic="orders"}"#
        ),
        Some(5.0)
    );
    // The idle series' place is free: two new topics fit beside "busy" under a limit of 3.
    t.producer()
        .record_batch("new-1", 1, 1, Duration::from_millis(1));
    t.producer()
        .record_batch("new-2", 1, 1, Duration::from_millis(1));
    let text = t.render_prometheus();
    assert_eq!(
        lines_with(
            &text,
            "streamhouse_producer_records_total{otel_metric_overflow"
        ),
        Vec::<&str>::new()
    );
    assert_eq!(
        value(
            &text,
            r#"streamhouse_producer_records_total{topic="new-2"}"#
        ),
        Some(1.0)
    );
    drop(lag);
}

#[test]
fn idle_expiry_covers_third_party_instruments() {
    let clock = Arc::new(ManualClock::new());
    let t = telemetry(
        TelemetryConfig::default()
            .with_metric_idle_timeout(Some(Duration::from_secs(10)))
            .with_clock(clock.clone()),
    );
    let jobs = t.meter_provider().meter("jobs").u64_counter("jobs").build();
    jobs.add(1, &[KeyValue::new("queue", "a")]);
    jobs.add(1, &[KeyValue::new("queue", "b")]);
    assert_eq!(lines_with(&t.render_prometheus(), "jobs_total").len(), 2);
    clock.advance(Duration::from_secs(11));
    jobs.add(1, &[KeyValue::new("queue", "b")]);
    let text = t.render_prometheus();
    assert_eq!(
        lines_with(&text, "jobs_total"),
        [r#"jobs_total{otel_scope_name="jobs",queue="b"} 2"#]
    );
    // Removal by label is for StreamHouse's own instruments only.
    assert_eq!(t.remove_series("queue", "b"), 0);
}

#[test]
fn without_a_timeout_nothing_expires() {
    let clock = Arc::new(ManualClock::new());
    let t = telemetry(TelemetryConfig::default().with_clock(clock.clone()));
    t.producer()
        .record_batch("orders", 1, 1, Duration::from_millis(1));
    t.render_prometheus();
    clock.advance(Duration::from_secs(365 * 24 * 3600));
    let text = t.render_prometheus();
    assert_eq!(
        value(
            &text,
            r#"streamhouse_producer_records_total{topic="orders"}"#
        ),
        Some(1.0)
    );
}

#[test]
fn the_idle_timeout_variable_is_parsed_and_bounded() {
    let read = |raw: &str| {
        TelemetryConfig::from_lookup(|name| {
            (name == "STREAMHOUSE_METRIC_IDLE_TIMEOUT").then(|| raw.to_owned())
        })
    };
    assert_eq!(
        read("15m").unwrap().metric_idle_timeout,
        Some(Duration::from_secs(900))
    );
    assert_eq!(
        read("250ms").unwrap().metric_idle_timeout,
        Some(Duration::from_millis(250))
    );
    assert_eq!(
        read("2h").unwrap().metric_idle_timeout,
        Some(Duration::from_secs(7200))
    );
    assert_eq!(read("off").unwrap().metric_idle_timeout, None);
    assert_eq!(read("0").unwrap().metric_idle_timeout, None);
    for bad in [
        "15",
        "m",
        "-1s",
        "1.5s",
        "10d",
        "31h9999999999999999",
        "0s",
        "745h",
    ] {
        let err = read(bad).unwrap_err();
        assert_eq!(err.variable, "STREAMHOUSE_METRIC_IDLE_TIMEOUT", "{bad}");
        assert!(err.to_string().contains("unit"), "{err}");
    }
}
