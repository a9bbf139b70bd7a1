//! Typed recorders through a real provider and the text bridge.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use streamhouse_observability::catalog;
use streamhouse_observability::metrics::{ConsumerError, ProducerError, S3Operation};
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
        assert!(line.starts_with('#') || is_sample(line), "{line:?}");
    }
}

/// Starts with a metric name, then its labels or its value.
fn is_sample(line: &str) -> bool {
    let name_end = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(line.len());
    name_end > 0
        && !line.starts_with(|c: char| c.is_ascii_digit())
        && line[name_end..].starts_with(['{', ' '])
}

/// The value of the one sample of `name` whose line contains `labels`.
fn value(text: &str, name: &str, labels: &str) -> f64 {
    let lines: Vec<_> = samples(text, name)
        .into_iter()
        .filter(|l| l.contains(labels))
        .collect();
    assert_eq!(lines.len(), 1, "{name} {labels}: {lines:#?}");
    lines[0].rsplit(' ').next().unwrap().parse().unwrap()
}

/// Every quoted label value on a sample line, unescaped enough to measure its length.
fn label_values(line: &str) -> Vec<String> {
    let Some(labels) = line
        .split_once('{')
        .and_then(|(_, rest)| rest.rsplit_once('}'))
    else {
        return Vec::new();
    };
    labels
        .0
        .split("\",")
        .filter_map(|pair| pair.split_once("=\""))
        .map(|(_, value)| value.trim_end_matches('"').to_owned())
        .collect()
}

#[test]
fn a_one_mebibyte_label_value_is_stored_cut_on_a_character_boundary() {
    let t = telemetry();
    // 1 MiB: "a" then 2-byte characters, so the 256-byte bound falls inside one of them.
    let huge = format!("a{}", "é".repeat((1 << 20) / 2));
    assert!(huge.len() > 1 << 20);
    let stored = format!("a{}", "é".repeat(127));
    assert_eq!(stored.len(), 255);

    let latency = Duration::from_millis(1);
    t.producer().record_batch(&huge, 1, 1, latency);
    t.producer()
        .record_error(&huge, ProducerError::TopicNotFound);
    t.producer()
        .topic(&huge)
        .record_error(ProducerError::Timeout);
    t.consumer().record_records(&huge, &huge, 2);
    t.consumer().group(&huge, &huge).record_records(3);
    t.consumer().record_rebalance(&huge);
    t.consumer()
        .record_error(&huge, &huge, ConsumerError::GroupNotFound);
    t.storage().record_segment_write(&huge, 0);
    t.storage().partition(&huge, 0).record_segment_flush();
    t.http_server()
        .record_request(&huge, Some(&huge), 200, latency);
    let lag_topic = huge.clone();
    let _lag = t
        .consumer()
        .observe_lag(move |report| report.lag(&lag_topic, 0, &lag_topic, 5));
    let partitions_topic = huge.clone();
    let _partitions = t
        .system()
        .observe_partitions(move |report| report.partitions(&partitions_topic, 4));

    let text = t.render_prometheus();
    assert!(text.len() < 256 * 1024, "{} bytes", text.len());
    let records = catalog::PRODUCER_RECORDS.prometheus_name;
    assert_eq!(
        samples(&text, records),
        [format!(r#"{records}{{topic="{stored}"}} 1"#)]
    );
    let group_records = catalog::CONSUMER_RECORDS.prometheus_name;
    assert_eq!(
        value(&text, group_records, &format!(r#"topic="{stored}""#)),
        5.0
    );
    // Every family fed the value holds it cut, never longer.
    let fed = [
        catalog::PRODUCER_RECORDS,
        catalog::PRODUCER_ERRORS,
        catalog::CONSUMER_RECORDS,
        catalog::CONSUMER_REBALANCES,
        catalog::CONSUMER_ERRORS,
        catalog::CONSUMER_LAG,
        catalog::SEGMENT_WRITES,
        catalog::SEGMENT_FLUSHES,
        catalog::PARTITIONS,
        catalog::HTTP_SERVER_REQUEST_DURATION,
    ];
    for def in fed {
        let lines = samples(&text, def.prometheus_name);
        assert!(
            lines.iter().any(|l| label_values(l).contains(&stored)),
            "{}: {lines:#?}",
            def.prometheus_name
        );
    }
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        for value in label_values(line) {
            assert!(value.len() <= 256, "{} bytes in {line:.80}", value.len());
        }
    }
}

#[test]
fn the_label_value_bound_is_configurable() {
    let t = Telemetry::new(TelemetryConfig::default().with_max_label_value_bytes(1000)).unwrap();
    let huge = "☃".repeat(1 << 18); // 3 bytes each: the cut lands at 999
    t.producer()
        .record_batch(&huge, 1, 1, Duration::from_millis(1));
    let records = catalog::PRODUCER_RECORDS.prometheus_name;
    let stored = "☃".repeat(333);
    assert_eq!(
        samples(&t.render_prometheus(), records),
        [format!(r#"{records}{{topic="{stored}"}} 1"#)]
    );
}

#[test]
fn long_values_sharing_their_first_bytes_fold_into_one_series() {
    // Intended: a bound that kept them apart would have to keep them whole.
    let t = telemetry();
    let prefix = "p".repeat(256);
    t.producer()
        .record_batch(&format!("{prefix}-first"), 1, 10, Duration::from_millis(1));
    t.producer()
        .record_batch(&format!("{prefix}-second"), 2, 20, Duration::from_millis(1));
    t.consumer().record_rebalance(&format!("{prefix}-a"));
    t.consumer().record_rebalance(&format!("{prefix}-b"));
    let text = t.render_prometheus();
    let records = catalog::PRODUCER_RECORDS.prometheus_name;
    assert_eq!(
        samples(&text, records),
        [format!(r#"{records}{{topic="{prefix}"}} 3"#)]
    );
    let rebalances = catalog::CONSUMER_REBALANCES.prometheus_name;
    assert_eq!(
        samples(&text, rebalances),
        [format!(r#"{rebalances}{{consumer_group="{prefix}"}} 2"#)]
    );
}

#[test]
fn past_the_limit_every_recorder_folds_new_label_sets_into_the_overflow_series() {
    const LIMIT: usize = 4;
    let t = Telemetry::new(TelemetryConfig::default().with_cardinality_limit(LIMIT)).unwrap();
    let latency = Duration::from_millis(2);
    let real: Vec<String> = (0..LIMIT).map(|i| format!("real-{i}")).collect();
    for name in &real {
        t.producer().record_batch(name, 1, 100, latency);
        t.consumer().record_records(name, "g", 1);
        t.http_server()
            .record_request("GET", Some(name), 200, latency);
    }
    let mut real_records = vec![1u64; LIMIT];
    let hostile: Vec<String> = (0..50).map(|i| format!("hostile-{i}")).collect();
    for (i, name) in hostile.iter().enumerate() {
        let n = i as u64 + 1;
        t.producer().record_batch(name, n, 10 * n, latency);
        t.consumer().record_records(name, "g", n);
        t.http_server()
            .record_request("GET", Some(name), 200, latency);
        // Real series keep counting in their own series meanwhile.
        t.producer().record_batch(&real[i % LIMIT], 1, 100, latency);
        real_records[i % LIMIT] += 1;
    }
    let hostile_records: u64 = (1..=50).sum();

    let text = t.render_prometheus();
    let overflow = r#"otel_metric_overflow="true""#;
    let records = catalog::PRODUCER_RECORDS.prometheus_name;
    assert_eq!(samples(&text, records).len(), LIMIT + 1, "{text}");
    assert_eq!(value(&text, records, overflow), hostile_records as f64);
    for (name, expected) in real.iter().zip(&real_records) {
        assert_eq!(
            value(&text, records, &format!(r#"topic="{name}""#)),
            *expected as f64
        );
    }
    let bytes = catalog::PRODUCER_BYTES.prometheus_name;
    assert_eq!(value(&text, bytes, overflow), 10.0 * hostile_records as f64);
    let batch = catalog::PRODUCER_BATCH_SIZE.prometheus_name;
    assert_eq!(
        value(&text, &format!("{batch}_sum"), overflow),
        hostile_records as f64
    );
    let latency_name = catalog::PRODUCER_LATENCY.prometheus_name;
    assert_eq!(
        value(&text, &format!("{latency_name}_count"), overflow),
        50.0
    );
    let group_records = catalog::CONSUMER_RECORDS.prometheus_name;
    assert_eq!(samples(&text, group_records).len(), LIMIT + 1);
    assert_eq!(
        value(&text, group_records, overflow),
        hostile_records as f64
    );
    let http = catalog::HTTP_SERVER_REQUEST_DURATION.prometheus_name;
    assert_eq!(value(&text, &format!("{http}_count"), overflow), 50.0);
    assert!(!text.contains("hostile"), "{text}");
}

#[test]
fn a_bad_label_value_bound_names_its_variable() {
    for raw in ["0", "15", "65537", "256 bytes"] {
        let err = TelemetryConfig::from_lookup(|name| {
            (name == "STREAMHOUSE_MAX_LABEL_VALUE_BYTES").then(|| raw.to_owned())
        })
        .unwrap_err();
        assert_eq!(err.variable, "STREAMHOUSE_MAX_LABEL_VALUE_BYTES");
        assert_eq!(err.value, raw);
        assert!(err.to_string().contains("from 16 to 65536"), "{err}");
    }
    let config = TelemetryConfig::from_lookup(|name| {
        (name == "STREAMHOUSE_MAX_LABEL_VALUE_BYTES").then(|| "4096".to_owned())
    })
    .unwrap();
    assert_eq!(config.max_label_value_bytes, 4096);
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

#[test]
fn the_process_wide_telemetry_bounds_messaging_spans() {
    use tracing::field::{Field, Visit};
    use tracing_subscriber::layer::{Context, SubscriberExt};

    /// Keeps the `otel.name` of every new span.
    struct SpanNames(Arc<Mutex<Vec<String>>>);
    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for SpanNames {
        fn on_new_span(
            &self,
            span: &tracing::span::Attributes<'_>,
            _: &tracing::Id,
            _: Context<'_, S>,
        ) {
            struct Name<'a>(&'a Mutex<Vec<String>>);
            impl Visit for Name<'_> {
                fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
                    if field.name() == "otel.name" {
                        // A `String` field arrives as its `Debug` form, quoted.
                        let name = format!("{value:?}");
                        self.0
                            .lock()
                            .unwrap()
                            .push(name.trim_matches('"').to_owned());
                    }
                }
            }
            span.record(&mut Name(&self.0));
        }
    }

    // The only `init_global` of this binary, so no other test sees its bound.
    Telemetry::init_global(TelemetryConfig::default().with_max_label_value_bytes(64)).unwrap();
    let names = Arc::new(Mutex::new(Vec::new()));
    let subscriber = tracing_subscriber::registry().with(SpanNames(Arc::clone(&names)));
    tracing::subscriber::with_default(subscriber, || {
        drop(streamhouse_observability::propagation::send_span(
            &"t".repeat(1 << 20),
        ));
    });
    assert_eq!(*names.lock().unwrap(), [format!("send {}", "t".repeat(64))]);
}

#[test]
fn http_requests_carry_scheme_error_type_and_known_methods() {
    use streamhouse_observability::config::HttpServerConfig;
    use streamhouse_observability::metrics::{HttpOutcome, KnownMethods};

    let known =
        KnownMethods::parse("OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS", "GET,PROPFIND").unwrap();
    let t = Telemetry::new(
        TelemetryConfig::default()
            .with_http_server(HttpServerConfig::default().with_known_methods(known)),
    )
    .unwrap();
    let http = t.http_server();
    let latency = Duration::from_millis(2);
    let route = Some("/topics/{topic}");
    http.record_request("GET", route, 200, latency);
    http.record_request("GET", route, 404, latency);
    http.record_request_with("GET", route, "HTTPS", HttpOutcome::Status(503), latency);
    http.record_request_with(
        "PROPFIND",
        None,
        "https",
        HttpOutcome::Failed("timeout"),
        latency,
    );
    // Outside the configured set, even a standard method is `_OTHER`; so is a strange scheme.
    http.record_request_with("POST", route, "gopher", HttpOutcome::Status(500), latency);

    let text = t.render_prometheus();
    let name = format!(
        "{}_count",
        catalog::HTTP_SERVER_REQUEST_DURATION.prometheus_name
    );
    let mut counts = samples(&text, &name);
    counts.sort();
    let want = [
        // Sorted label names, as the bridge writes them; no error_type without an error.
        r#"{error_type="500",http_request_method="_OTHER",http_response_status_code="500",http_route="/topics/{topic}",url_scheme="_OTHER"} 1"#,
        r#"{error_type="503",http_request_method="GET",http_response_status_code="503",http_route="/topics/{topic}",url_scheme="https"} 1"#,
        r#"{error_type="timeout",http_request_method="PROPFIND",url_scheme="https"} 1"#,
        r#"{http_request_method="GET",http_response_status_code="200",http_route="/topics/{topic}",url_scheme="http"} 1"#,
        r#"{http_request_method="GET",http_response_status_code="404",http_route="/topics/{topic}",url_scheme="http"} 1"#,
    ];
    let want: Vec<String> = want.iter().map(|w| format!("{name}{w}")).collect();
    assert_eq!(counts, want);
}

#[test]
fn active_requests_count_until_the_guard_drops() {
    let t = telemetry();
    let http = t.http_server();
    let active = catalog::HTTP_SERVER_ACTIVE_REQUESTS.prometheus_name;
    let first = http.start_request("GET", "http");
    let second = http.start_request("GET", "http");
    let other = http.start_request("BREW", "http");
    let get = format!(r#"{active}{{http_request_method="GET",url_scheme="http"}}"#);
    let brew = format!(r#"{active}{{http_request_method="_OTHER",url_scheme="http"}}"#);
    let text = t.render_prometheus();
    assert!(text.contains(&format!("{get} 2\n")), "{text}");
    assert!(text.contains(&format!("{brew} 1\n")), "{text}");
    assert!(text.contains(&format!("# TYPE {active} gauge\n")), "{text}");
    drop(first);
    // A guard moved into a future that is dropped unfinished still ends its count.
    let future = async move {
        let _second = second;
        std::future::pending::<()>().await;
    };
    drop(future);
    drop(other);
    let text = t.render_prometheus();
    assert!(text.contains(&format!("{get} 0\n")), "{text}");
    assert!(text.contains(&format!("{brew} 0\n")), "{text}");
}
