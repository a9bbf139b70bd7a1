//! Exemplars over OTLP, checked by an in-process receiver: every histogram and counter point
//! with a captured exemplar carries it, over gRPC and HTTP/protobuf, cumulative and delta.
//! Each exemplar's value lies in a bucket its point counts, its ids are those of the span
//! that was current when it was recorded, and its time lies within its point's interval
//! (for delta: the window since the last export, so no exemplar is sent twice).

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_proto::tonic::metrics::v1::{
    Exemplar, HistogramDataPoint, Metric, NumberDataPoint, exemplar, metric::Data,
    number_data_point,
};
use opentelemetry_sdk::metrics::Temporality;
use streamhouse_observability::catalog;
use streamhouse_observability::otlp::{OtlpConfig, OtlpProtocol, Signal};
use streamhouse_observability::{Telemetry, TelemetryConfig};
use support::otlp_receiver::{Received, Receiver, attribute, hex};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;

const CUMULATIVE: i32 = 2;
const DELTA: i32 = 1;

fn pushing(receiver: &Receiver, protocol: OtlpProtocol, temporality: Temporality) -> Telemetry {
    let endpoint = match protocol {
        OtlpProtocol::Grpc => receiver.grpc_endpoint(),
        OtlpProtocol::HttpProtobuf => receiver.http_endpoint(),
    };
    let otlp = OtlpConfig::default()
        .with_endpoint(&endpoint, protocol)
        .with_metric_export_interval(Duration::from_secs(3600))
        .with_temporality(temporality);
    let telemetry = Telemetry::new(TelemetryConfig::default().with_otlp(otlp)).unwrap();
    // Exemplar times come from a clock of a few ms resolution: keep records clear of the
    // instants that bound export windows.
    settle();
    telemetry
}

fn settle() {
    std::thread::sleep(Duration::from_millis(20));
}

/// Exports now, as the push thread does at each interval; returns once the receiver has
/// answered.
fn export(telemetry: &Telemetry) {
    settle();
    telemetry.meter_provider().force_flush().unwrap();
    settle();
}

/// The ids of a sampled span, as the receiver shows them (hex).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Ids {
    trace: String,
    span: String,
}

/// Records a produce to `topic` taking `latency` inside a sampled `tracing` span of
/// `telemetry`'s tracer; returns the span's ids.
fn produce_in_span(telemetry: &Telemetry, topic: &str, records: u64, latency: Duration) -> Ids {
    let tracer = telemetry.tracer_provider().tracer("exemplars");
    let subscriber =
        tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(tracer));
    tracing::subscriber::with_default(subscriber, || {
        let span = tracing::info_span!("produce");
        let _entered = span.enter();
        telemetry
            .producer()
            .record_batch(topic, records, 100, latency);
        let context = span.context();
        let span_context = context.span().span_context().clone();
        assert!(span_context.is_sampled());
        Ids {
            trace: span_context.trace_id().to_string(),
            span: span_context.span_id().to_string(),
        }
    })
}

fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// Every point of metric `name` for `topic` received so far, with its metric's temporality.
fn points<P>(
    received: &Received,
    name: &str,
    topic: &str,
    pick: impl Fn(&Metric) -> Option<(i32, Vec<P>)>,
    attributes: impl Fn(&P) -> &[opentelemetry_proto::tonic::common::v1::KeyValue],
) -> Vec<(i32, P)> {
    received
        .metrics()
        .into_iter()
        .filter(|(_, m)| m.name == name)
        .filter_map(|(_, m)| pick(&m))
        .flat_map(|(temporality, points)| points.into_iter().map(move |p| (temporality, p)))
        .filter(|(_, p)| attribute(attributes(p), catalog::label::TOPIC).as_deref() == Some(topic))
        .collect()
}

fn latency_points(received: &Received, topic: &str) -> Vec<(i32, HistogramDataPoint)> {
    let pick = |m: &Metric| match &m.data {
        Some(Data::Histogram(h)) => Some((h.aggregation_temporality, h.data_points.clone())),
        _ => None,
    };
    let name = catalog::PRODUCER_LATENCY.prometheus_name;
    points(received, name, topic, pick, |p| &p.attributes)
}

fn records_points(received: &Received, topic: &str) -> Vec<(i32, NumberDataPoint)> {
    let pick = |m: &Metric| match &m.data {
        Some(Data::Sum(s)) => Some((s.aggregation_temporality, s.data_points.clone())),
        _ => None,
    };
    let name = catalog::PRODUCER_RECORDS.prometheus_name;
    points(received, name, topic, pick, |p| &p.attributes)
}

fn ids_of(exemplar: &Exemplar) -> Ids {
    Ids {
        trace: hex(&exemplar.trace_id),
        span: hex(&exemplar.span_id),
    }
}

fn value_of(exemplar: &Exemplar) -> f64 {
    match exemplar.value {
        Some(exemplar::Value::AsDouble(v)) => v,
        Some(exemplar::Value::AsInt(v)) => v as f64,
        None => panic!("an exemplar without a value"),
    }
}

/// Asserts what every exemplar of a latency point must be; returns them by ids.
fn check_histogram_point(point: &HistogramDataPoint, spans: &[Ids]) -> BTreeMap<Ids, f64> {
    let mut buckets = BTreeSet::new();
    let mut found = BTreeMap::new();
    for exemplar in &point.exemplars {
        let value = value_of(exemplar);
        let bucket = point
            .explicit_bounds
            .partition_point(|bound| *bound < value);
        assert!(
            point.bucket_counts[bucket] > 0,
            "exemplar {value} lies in bucket {bucket}, which the point does not count: {point:?}"
        );
        assert!(buckets.insert(bucket), "two exemplars in bucket {bucket}");
        assert!(
            point.start_time_unix_nano <= exemplar.time_unix_nano
                && exemplar.time_unix_nano <= point.time_unix_nano,
            "exemplar time {} outside its point's [{}, {}]",
            exemplar.time_unix_nano,
            point.start_time_unix_nano,
            point.time_unix_nano
        );
        let ids = ids_of(exemplar);
        assert!(
            spans.contains(&ids),
            "{ids:?} is no span of ours: {spans:?}"
        );
        found.insert(ids, value);
    }
    found
}

async fn cumulative_exemplars_reach_the_receiver(protocol: OtlpProtocol) {
    let receiver = Receiver::start().await;
    let telemetry = pushing(&receiver, protocol, Temporality::Cumulative);
    let before = unix_nanos();
    // 3 ms, 300 ms and 7 s: three buckets, the last `+Inf`.
    let latencies = [0.003, 0.3, 7.0];
    let spans: Vec<Ids> = latencies
        .iter()
        .map(|s| produce_in_span(&telemetry, "orders", 5, Duration::from_secs_f64(*s)))
        .collect();
    export(&telemetry);
    telemetry.shutdown().unwrap();
    assert_eq!(telemetry.export_failures(Signal::Metrics), 0);

    receiver.with(|r| {
        let latency = latency_points(r, "orders");
        // The export, then the one at shutdown: the latest exemplars both times.
        assert_eq!(latency.len(), 2, "{latency:?}");
        assert_eq!(latency[0].1.exemplars, latency[1].1.exemplars);
        let (temporality, point) = &latency[0];
        assert_eq!(*temporality, CUMULATIVE);
        let found = check_histogram_point(point, &spans);
        for (ids, latency) in spans.iter().zip(latencies) {
            assert!((found[ids] - latency).abs() < 1e-9, "{found:?}");
        }
        // Exemplar times come from a coarse clock: up to a tick (a few ms) early.
        for exemplar in &point.exemplars {
            let earliest = before - Duration::from_millis(10).as_nanos() as u64;
            assert!(
                exemplar.time_unix_nano >= earliest,
                "recorded after {before}"
            );
        }
        // The counter keeps the latest increment, from the last span, as an integer.
        let records = records_points(r, "orders");
        let (_, point) = records.last().unwrap();
        assert_eq!(point.value, Some(number_data_point::Value::AsInt(15)));
        let [exemplar] = point.exemplars.as_slice() else {
            panic!("one counter exemplar: {point:?}")
        };
        assert_eq!(exemplar.value, Some(exemplar::Value::AsInt(5)));
        assert_eq!(ids_of(exemplar), spans[2]);
        assert!(exemplar.time_unix_nano <= point.time_unix_nano);
    });
    receiver.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cumulative_exemplars_reach_the_receiver_over_grpc() {
    cumulative_exemplars_reach_the_receiver(OtlpProtocol::Grpc).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cumulative_exemplars_reach_the_receiver_over_http_protobuf() {
    cumulative_exemplars_reach_the_receiver(OtlpProtocol::HttpProtobuf).await;
}

async fn delta_points_carry_the_exemplars_of_their_window(protocol: OtlpProtocol) {
    let receiver = Receiver::start().await;
    let telemetry = pushing(&receiver, protocol, Temporality::Delta);
    // An observable counter arrives as totals: delta pushes what it grew by.
    let total = Arc::new(AtomicU64::new(10));
    let observed = Arc::clone(&total);
    let _observable = telemetry
        .meter_provider()
        .meter("test")
        .u64_observable_counter("test.observed")
        .with_callback(move |o| o.observe(observed.load(Ordering::Relaxed), &[]))
        .build();

    let first = produce_in_span(&telemetry, "orders", 2, Duration::from_millis(3));
    export(&telemetry);
    total.store(25, Ordering::Relaxed);
    let second = produce_in_span(&telemetry, "orders", 3, Duration::from_millis(4));
    export(&telemetry);
    // Nothing recorded since: the last export has no latency point.
    telemetry.shutdown().unwrap();
    assert_eq!(telemetry.export_failures(Signal::Metrics), 0);

    receiver.with(|r| {
        let spans = [first.clone(), second.clone()];
        let latency = latency_points(r, "orders");
        let mut seen = Vec::new();
        let mut count = 0;
        for (temporality, point) in &latency {
            assert_eq!(*temporality, DELTA);
            count += point.count;
            seen.extend(check_histogram_point(point, &spans).into_keys());
        }
        // Both in the same bucket, each exported once, in its own window.
        assert_eq!(latency.len(), 2, "{latency:?}");
        assert_eq!(seen, spans.to_vec(), "{latency:?}");
        assert_eq!(count, 2, "each produce counted once: {latency:?}");
        // Windows follow each other.
        for pair in latency.windows(2) {
            assert!(pair[0].1.time_unix_nano <= pair[1].1.start_time_unix_nano);
        }
        let records: Vec<i64> = records_points(r, "orders")
            .into_iter()
            .map(|(temporality, p)| {
                assert_eq!(temporality, DELTA);
                match p.value {
                    Some(number_data_point::Value::AsInt(v)) => v,
                    other => panic!("{other:?}"),
                }
            })
            .collect();
        assert_eq!(records, [2, 3]);

        let observed: Vec<i64> = r
            .metrics()
            .into_iter()
            .filter(|(_, m)| m.name == "test.observed")
            .flat_map(|(_, m)| match m.data {
                Some(Data::Sum(s)) => {
                    assert_eq!(s.aggregation_temporality, DELTA);
                    s.data_points
                }
                _ => Vec::new(),
            })
            .map(|p| match p.value {
                Some(number_data_point::Value::AsInt(v)) => v,
                other => panic!("{other:?}"),
            })
            .collect();
        // 10 at the first export, the growth to 25 at the second, none at shutdown.
        assert_eq!(observed, [10, 15, 0]);
    });
    receiver.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delta_points_carry_the_exemplars_of_their_window_over_grpc() {
    delta_points_carry_the_exemplars_of_their_window(OtlpProtocol::Grpc).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delta_points_carry_the_exemplars_of_their_window_over_http_protobuf() {
    delta_points_carry_the_exemplars_of_their_window(OtlpProtocol::HttpProtobuf).await;
}

/// Every (trace id, value) of the exemplars of histogram `name` in an OTLP request.
fn otlp_exemplars_of(received: &Received, name: &str) -> BTreeSet<(String, String)> {
    received
        .metrics()
        .into_iter()
        .filter(|(_, m)| m.name == name)
        .flat_map(|(_, m)| match m.data {
            Some(Data::Histogram(h)) => h.data_points,
            _ => Vec::new(),
        })
        .flat_map(|p| p.exemplars)
        .map(|e| (hex(&e.trace_id), format!("{}", value_of(&e))))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_push_carries_the_exemplars_metrics_shows() {
    use streamhouse_observability::prometheus::Format;

    let receiver = Receiver::start().await;
    let telemetry = pushing(
        &receiver,
        OtlpProtocol::HttpProtobuf,
        Temporality::Cumulative,
    );
    let produced = produce_in_span(&telemetry, "orders", 1, Duration::from_millis(30));
    // A series with dotted semantic-convention keys (`http.route`): exposed as `http_route`,
    // pushed as it is; its exemplar must be found on both paths.
    let tracer = telemetry.tracer_provider().tracer("exemplars");
    let subscriber =
        tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(tracer));
    let request = tracing::subscriber::with_default(subscriber, || {
        let span = tracing::info_span!("request");
        let _entered = span.enter();
        telemetry.http_server().record_request(
            "GET",
            Some("/topics/{topic}"),
            200,
            Duration::from_millis(60),
        );
        span.context().span().span_context().trace_id().to_string()
    });
    export(&telemetry);
    let body = telemetry.render(Format::OpenMetrics);
    let parsed = support::parse_with_prometheus_client("openmetrics", &body)
        .unwrap_or_else(|e| panic!("{e}\n{body}"));
    telemetry.shutdown().unwrap();

    let cases = [
        (
            catalog::PRODUCER_LATENCY.prometheus_name,
            &produced.trace,
            "0.03",
        ),
        (
            catalog::HTTP_SERVER_REQUEST_DURATION.prometheus_name,
            &request,
            "0.06",
        ),
    ];
    receiver.with(|r| {
        for (name, trace, value) in cases {
            let scraped: BTreeSet<(String, String)> = parsed
                .samples
                .iter()
                .filter(|s| s.name == format!("{name}_bucket"))
                .filter_map(|s| s.exemplar.as_ref())
                .map(|(labels, value, _)| (labels["trace_id"].clone(), format!("{value}")))
                .collect();
            let pushed = otlp_exemplars_of(r, name);
            let expected = BTreeSet::from([(trace.clone(), value.to_owned())]);
            assert_eq!(scraped, expected, "/metrics exemplars of {name}:\n{body}");
            assert_eq!(pushed, expected, "OTLP exemplars of {name}");
        }
    });
    receiver.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_delta_export_loses_nothing() {
    let (grpc, http) = (support::free_addr(), support::free_addr());
    let otlp = OtlpConfig::default()
        .with_endpoint(&format!("http://{http}"), OtlpProtocol::HttpProtobuf)
        .with_metric_export_interval(Duration::from_secs(3600))
        .with_temporality(Temporality::Delta)
        .map_exporters(|e| e.with_timeout(Duration::from_secs(2)));
    let telemetry = Telemetry::new(TelemetryConfig::default().with_otlp(otlp)).unwrap();
    settle();
    produce_in_span(&telemetry, "orders", 2, Duration::from_millis(3));
    // Nothing listens yet: the export fails, and its window waits for the next one.
    settle();
    assert!(telemetry.meter_provider().force_flush().is_err());
    assert_eq!(telemetry.export_failures(Signal::Metrics), 1);
    let later = produce_in_span(&telemetry, "orders", 3, Duration::from_millis(4));
    let receiver = Receiver::start_on(grpc, http).await;
    export(&telemetry);
    telemetry.shutdown().unwrap();

    receiver.with(|r| {
        let records: Vec<i64> = records_points(r, "orders")
            .into_iter()
            .map(|(_, p)| match p.value {
                Some(number_data_point::Value::AsInt(v)) => v,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(records, [5], "both windows in one export");
        let latency = latency_points(r, "orders");
        let [(_, point)] = latency.as_slice() else {
            panic!("one latency point: {latency:?}")
        };
        assert_eq!(point.count, 2);
        // One slot per bucket: the later exemplar of the two, within the joined window.
        let found = check_histogram_point(point, std::slice::from_ref(&later));
        assert_eq!(found.into_keys().collect::<Vec<_>>(), vec![later]);
    });
    receiver.stop().await;
}
