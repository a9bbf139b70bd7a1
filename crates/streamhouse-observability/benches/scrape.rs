//! Scrape cost (collect + encode) of N series, half counters and half 11-bucket histograms,
//! for our reader, `opentelemetry-prometheus` and `prometheus-client`, with the same names,
//! labels and values in all three.

use std::hint::black_box;
use std::time::Duration;

use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use opentelemetry::KeyValue;
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::reader::MetricReader;
use prometheus::Encoder as _;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use streamhouse_observability::catalog::{self, Catalog};
use streamhouse_observability::config::PrometheusConfig;
use streamhouse_observability::prometheus::{Format, PrometheusReader, ScrapeProtocol};
use streamhouse_observability::views::catalog_view;

const SIZES: [usize; 3] = [1_000, 10_000, 100_000];
const COUNTER: catalog::MetricDef = catalog::SEGMENT_WRITES;
const HISTOGRAM: catalog::MetricDef = catalog::PRODUCER_LATENCY;

struct Series {
    topic: String,
    partition: String,
    count: u64,
    observations: [f64; 3],
}

// 100 partitions per topic; values spread over several buckets.
fn series(n: usize) -> Vec<Series> {
    (0..n)
        .map(|i| Series {
            topic: format!("topic-{:04}", i / 100),
            partition: (i % 100).to_string(),
            count: i as u64 + 1,
            observations: [
                0.0005 * (i % 13 + 1) as f64,
                0.02 * (i % 7 + 1) as f64,
                0.3 * (i % 5 + 1) as f64,
            ],
        })
        .collect()
}

// The cardinality limit must exceed the series per metric (n / 2); the SDK preallocates
// `1 + limit` map slots per stream, so it is sized to n rather than set to usize::MAX - 1.
fn provider(reader: impl MetricReader, n: usize, data: &[Series]) -> SdkMeterProvider {
    let provider = SdkMeterProvider::builder()
        .with_resource(Resource::builder_empty().with_service_name("bench").build())
        .with_reader(reader)
        .with_view(catalog_view(&Catalog::streamhouse(), n))
        .build();
    let meter = provider.meter("streamhouse");
    let counter = meter.u64_counter(COUNTER.otel_name).build();
    let histogram = meter.f64_histogram(HISTOGRAM.otel_name).build();
    for s in data {
        // The recorders' attribute order (topic, partition).
        let attributes = [
            KeyValue::new("topic", s.topic.clone()),
            KeyValue::new("partition", s.partition.clone()),
        ];
        counter.add(s.count, &attributes);
        for v in s.observations {
            histogram.record(v, &attributes);
        }
    }
    provider
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Labels {
    partition: String,
    topic: String,
}

fn latency_histogram() -> Histogram {
    Histogram::new(HISTOGRAM.buckets.iter().copied())
}

fn prometheus_client_registry(data: &[Series]) -> prometheus_client::registry::Registry {
    let counters = Family::<Labels, Counter>::default();
    let histograms =
        Family::<Labels, Histogram, fn() -> Histogram>::new_with_constructor(latency_histogram);
    for s in data {
        let labels = Labels {
            partition: s.partition.clone(),
            topic: s.topic.clone(),
        };
        counters.get_or_create(&labels).inc_by(s.count);
        let histogram = histograms.get_or_create(&labels);
        for v in s.observations {
            histogram.observe(v);
        }
    }
    let mut registry = prometheus_client::registry::Registry::default();
    // prometheus-client appends `_total` to counters itself.
    let counter_name = COUNTER.prometheus_name.trim_end_matches("_total");
    registry.register(counter_name, COUNTER.description, counters);
    registry.register(HISTOGRAM.prometheus_name, HISTOGRAM.description, histograms);
    registry
}

fn sample_lines(text: &str) -> usize {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .count()
}

fn scrape(c: &mut Criterion) {
    for n in SIZES {
        let data = series(n / 2);

        let ours = PrometheusReader::new(PrometheusConfig::default());
        let _ours_provider = provider(ours.clone(), n, &data);

        let registry = prometheus::Registry::new();
        // Names are pinned by the catalog view already; without these the exporter would
        // emit `_seconds_seconds` and `_total_total`. Scope labels off, as ours by default.
        let exporter = opentelemetry_prometheus::exporter()
            .with_registry(registry.clone())
            .without_units()
            .without_counter_suffixes()
            .scope_info_enabled(false)
            .build()
            .expect("exporter");
        let _otel_provider = provider(exporter, n, &data);

        let client = prometheus_client_registry(&data);

        // Same series in all three: n / 2 counter lines, 14 lines per histogram.
        let expected = n / 2 + n / 2 * (HISTOGRAM.buckets.len() + 3);
        let ours_text = ours.render_text().expect("render");
        let mut otel_text = Vec::new();
        prometheus::TextEncoder::new()
            .encode(&registry.gather(), &mut otel_text)
            .expect("encode");
        let otel_text = String::from_utf8(otel_text).expect("utf-8");
        let mut client_text = String::new();
        prometheus_client::encoding::text::encode(&mut client_text, &client).expect("encode");
        for (name, text) in [("ours", &ours_text), ("otel_prometheus", &otel_text)] {
            // + 1: target_info.
            assert_eq!(sample_lines(text), expected + 1, "{name}");
            assert!(
                text.contains(
                    r#"streamhouse_segment_writes_total{partition="0",topic="topic-0000"} 1"#
                ),
                "{name}"
            );
        }
        assert_eq!(sample_lines(&client_text), expected, "prometheus_client");
        let ours_om = ours.render(Format::OpenMetrics).expect("render");
        assert_eq!(sample_lines(&ours_om), expected + 1, "ours_openmetrics");
        eprintln!(
            "n={n}: bytes ours={} ours_openmetrics={} otel_prometheus={} prometheus_client={}",
            ours_text.len(),
            ours_om.len(),
            otel_text.len(),
            client_text.len()
        );

        let mut group = c.benchmark_group(format!("scrape/{n}"));
        group.throughput(Throughput::Elements(n as u64));
        group.warm_up_time(Duration::from_secs(1));
        match n {
            1_000 => group
                .sample_size(30)
                .measurement_time(Duration::from_secs(3)),
            10_000 => group
                .sample_size(20)
                .measurement_time(Duration::from_secs(3))
                .sampling_mode(SamplingMode::Flat),
            _ => group
                .sample_size(10)
                .measurement_time(Duration::from_secs(4))
                .sampling_mode(SamplingMode::Flat),
        };

        group.bench_function(BenchmarkId::from_parameter("ours"), |b| {
            b.iter(|| black_box(ours.render_text().expect("render")))
        });
        // OpenMetrics is what prometheus-client writes.
        group.bench_function(BenchmarkId::from_parameter("ours_openmetrics"), |b| {
            b.iter(|| black_box(ours.render(Format::OpenMetrics).expect("render")))
        });
        let mut metrics = ResourceMetrics::default();
        group.bench_function(BenchmarkId::from_parameter("ours_collect_only"), |b| {
            b.iter(|| {
                MetricReader::collect(&ours, &mut metrics).expect("collect");
                black_box(&metrics);
            })
        });
        // Buffers reused between iterations: the competitors' best case.
        let mut buf = Vec::with_capacity(otel_text.len());
        group.bench_function(BenchmarkId::from_parameter("otel_prometheus"), |b| {
            b.iter(|| {
                buf.clear();
                prometheus::TextEncoder::new()
                    .encode(&registry.gather(), &mut buf)
                    .expect("encode");
                black_box(&buf);
            })
        });
        group.bench_function(
            BenchmarkId::from_parameter("otel_prometheus_gather_only"),
            |b| b.iter(|| black_box(registry.gather())),
        );
        let mut text = String::with_capacity(client_text.len());
        group.bench_function(BenchmarkId::from_parameter("prometheus_client"), |b| {
            b.iter(|| {
                text.clear();
                prometheus_client::encoding::text::encode(&mut text, &client).expect("encode");
                black_box(&text);
            })
        });
        group.finish();
    }
}

/// Accept negotiation of the header Prometheus 3 sends, next to 1 MiB hostile headers: the
/// cost per byte must stay of one order (linear work), whatever the header holds.
fn negotiate(c: &mut Criterion) {
    const PROMETHEUS_3: &str = "application/openmetrics-text;version=1.0.0;escaping=underscores;q=0.5,\
        application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=underscores;q=0.3,\
        text/plain;version=0.0.4;q=0.2,*/*;q=0.1";
    let mut many_ranges = "a/b;q=0.5,".repeat(100_000);
    many_ranges.push_str("application/openmetrics-text");
    let mut many_params = String::from("application/openmetrics-text");
    many_params.push_str(&";charset=utf".repeat(100_000));
    let headers = [
        ("prometheus_3", PROMETHEUS_3.to_owned()),
        ("hostile_100k_ranges", many_ranges),
        ("hostile_100k_params", many_params),
        ("hostile_separators", ";,".repeat(500_000)),
    ];
    let mut group = c.benchmark_group("negotiate");
    for (name, header) in &headers {
        group.throughput(Throughput::Bytes(header.len() as u64));
        group.bench_function(*name, |b| {
            b.iter(|| ScrapeProtocol::negotiate(Some(black_box(header))))
        });
    }
    group.finish();
}

criterion_group!(benches, scrape, negotiate);
criterion_main!(benches);
