//! The workloads of the scrape benchmarks, shared by `benches/scrape.rs` and
//! `examples/scrape_memory.rs` (both include this file with `#[path]`), so timings and memory
//! figures are taken on the same series, names, buckets and values in every library.
//!
//! Two shapes of N series:
//!
//! - [`Shape::Seed`]: the four producer families (`PRODUCER_RECORDS` and `PRODUCER_BYTES`
//!   counters, the 11-bucket `PRODUCER_LATENCY` and 8-bucket `PRODUCER_BATCH_SIZE`
//!   histograms) over N/4 topics, label `topic`; every library keeps one handle set per topic,
//!   as a producer does.
//! - [`Shape::Generic`]: N/2 counter and N/2 11-bucket histogram series labelled `topic`
//!   (N/200 topics) and `partition` (100 each), recorded without handles.
//!
//! Series values are computed from their index when recorded, never held, so a memory
//! reading counts only what the library keeps.

use std::sync::Arc;
use std::time::Duration;

use opentelemetry::metrics::{
    BoundCounter, BoundHistogram, Counter, Histogram, Meter, MeterProvider as _,
};
use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData, ResourceMetrics};
use opentelemetry_sdk::metrics::reader::MetricReader;
use opentelemetry_sdk::metrics::{
    InstrumentKind, ManualReader, Pipeline, SdkMeterProvider, Temporality,
};
use prometheus::Encoder as _;
use prometheus_client::encoding::EncodeLabelSet;
use streamhouse_observability::catalog::{self, Catalog, MetricDef};
use streamhouse_observability::config::{DEFAULT_CARDINALITY_LIMIT, PrometheusConfig};
use streamhouse_observability::metrics::TopicProducerMetrics;
use streamhouse_observability::prometheus::{Format, PrometheusReader};
use streamhouse_observability::views::catalog_view;
use streamhouse_observability::{Telemetry, TelemetryConfig};

/// The generic shape's counter.
pub const GENERIC_COUNTER: MetricDef = catalog::SEGMENT_WRITES;
/// The generic shape's histogram.
pub const GENERIC_HISTOGRAM: MetricDef = catalog::PRODUCER_LATENCY;
/// The seed shape's families, in the order of [`Batch`]'s fields.
pub const SEED_FAMILIES: [MetricDef; 4] = [
    catalog::PRODUCER_RECORDS,
    catalog::PRODUCER_BYTES,
    catalog::PRODUCER_LATENCY,
    catalog::PRODUCER_BATCH_SIZE,
];
/// One topic in this many records its seed batch inside a sampled span, in the exemplar
/// variant: 10% of series.
pub const EXEMPLAR_EVERY: usize = 10;

/// Which series a workload holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// The producer families over N/4 topics.
    Seed,
    /// Half counters, half histograms, by topic and partition.
    Generic,
}

impl Shape {
    /// Parses `seed` or `generic`.
    pub fn parse(name: &str) -> Option<Shape> {
        match name {
            "seed" => Some(Shape::Seed),
            "generic" => Some(Shape::Generic),
            _ => None,
        }
    }

    /// The name [`Shape::parse`] reads.
    pub fn name(self) -> &'static str {
        match self {
            Shape::Seed => "seed",
            Shape::Generic => "generic",
        }
    }

    /// Series per metric for N series.
    pub fn per_metric(self, n: usize) -> usize {
        match self {
            Shape::Seed => n / 4,
            Shape::Generic => n / 2,
        }
    }

    /// The cardinality limit for N series: the default, raised to fit every series of a
    /// metric (the SDK preallocates `1 + limit` slots per stream, so not higher).
    pub fn limit(self, n: usize) -> usize {
        self.per_metric(n).max(DEFAULT_CARDINALITY_LIMIT)
    }
}

/// One seed-shape produce request of a topic.
#[derive(Debug, Clone, Copy)]
pub struct Batch {
    /// Records in the batch.
    pub records: u64,
    /// Payload bytes.
    pub bytes: u64,
    /// Request latency.
    pub latency: Duration,
}

impl Batch {
    /// Topic `i`'s batch: values spread over the buckets of both histograms.
    pub fn of(i: usize) -> Batch {
        let records = (i % 1000) as u64 + 1;
        Batch {
            records,
            bytes: records * 100,
            latency: Duration::from_micros((i % 29) as u64 * 350 + 350),
        }
    }
}

/// Topic `i`'s name.
pub fn topic_name(i: usize) -> String {
    format!("topic-{i}")
}

/// Generic series `i`: (topic, partition, counter increment, histogram observations).
pub fn generic_series(i: usize) -> (String, String, u64, [f64; 3]) {
    (
        format!("topic-{:04}", i / 100),
        (i % 100).to_string(),
        i as u64 + 1,
        [
            0.0005 * (i % 13 + 1) as f64,
            0.02 * (i % 7 + 1) as f64,
            0.3 * (i % 5 + 1) as f64,
        ],
    )
}

/// A sampled remote span for topic `i`, so a record made under it captures an exemplar
/// without a tracer.
pub fn sampled_span(i: usize) -> Context {
    Context::current().with_remote_span_context(SpanContext::new(
        TraceId::from(i as u128 + 1),
        SpanId::from(i as u64 + 1),
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    ))
}

/// What every library must expose for a shape and N, checked before anything is timed.
#[derive(Debug)]
pub struct Expected {
    /// Sample lines of the shape's families.
    pub sample_lines: usize,
    /// `(series name, label pairs as written, value)` of chosen series.
    pub values: Vec<(String, Vec<String>, f64)>,
}

impl Expected {
    /// The expectation for `shape` at `n` series, after one round of recording.
    pub fn new(shape: Shape, n: usize) -> Expected {
        match shape {
            Shape::Seed => {
                let topics = n / 4;
                let lines_per_topic: usize = SEED_FAMILIES
                    .iter()
                    .map(|def| match def.buckets.len() {
                        0 => 1,
                        b => b + 3,
                    })
                    .sum();
                let k = 7.min(topics.saturating_sub(1));
                let batch = Batch::of(k);
                let topic = vec![format!(r#"topic="{}""#, topic_name(k))];
                Expected {
                    sample_lines: topics * lines_per_topic,
                    values: vec![
                        (
                            catalog::PRODUCER_BYTES.prometheus_name.to_owned(),
                            topic.clone(),
                            batch.bytes as f64,
                        ),
                        (
                            format!("{}_sum", catalog::PRODUCER_LATENCY.prometheus_name),
                            topic.clone(),
                            batch.latency.as_secs_f64(),
                        ),
                        (
                            format!("{}_count", catalog::PRODUCER_BATCH_SIZE.prometheus_name),
                            topic,
                            1.0,
                        ),
                    ],
                }
            }
            Shape::Generic => {
                let series = n / 2;
                let (topic, partition, count, observations) = generic_series(1);
                let labels = vec![
                    format!(r#"topic="{topic}""#),
                    format!(r#"partition="{partition}""#),
                ];
                Expected {
                    sample_lines: series * (1 + GENERIC_HISTOGRAM.buckets.len() + 3),
                    values: vec![
                        (
                            GENERIC_COUNTER.prometheus_name.to_owned(),
                            labels.clone(),
                            count as f64,
                        ),
                        (
                            format!("{}_sum", GENERIC_HISTOGRAM.prometheus_name),
                            labels,
                            observations.iter().sum(),
                        ),
                    ],
                }
            }
        }
    }

    /// Panics, naming `library`, unless the exposition `text` holds the expected sample
    /// lines and values.
    pub fn check_text(&self, shape: Shape, library: &str, text: &str) {
        let families: Vec<&str> = match shape {
            Shape::Seed => SEED_FAMILIES.iter().map(|d| d.prometheus_name).collect(),
            Shape::Generic => vec![
                GENERIC_COUNTER.prometheus_name,
                GENERIC_HISTOGRAM.prometheus_name,
            ],
        };
        let lines = text
            .lines()
            .filter(|l| !l.starts_with('#') && families.iter().any(|f| l.starts_with(f)))
            .count();
        assert_eq!(lines, self.sample_lines, "{library}: sample lines");
        for (name, labels, value) in &self.values {
            let prefix = format!("{name}{{");
            let found = text
                .lines()
                .find(|l| l.starts_with(&prefix) && labels.iter().all(|p| l.contains(p)))
                .unwrap_or_else(|| panic!("{library}: no {name} series with {labels:?}"));
            let got: f64 = found
                .split_once("} ")
                .and_then(|(_, v)| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{library}: no value in {found}"));
            assert!(
                (got - value).abs() <= value.abs() * 1e-9,
                "{library}: {found}: expected {value}"
            );
        }
    }

    /// Panics unless the bare SDK's collection holds the expected series per family and the
    /// chosen counter's value.
    pub fn check_collection(&self, shape: Shape, n: usize, rm: &ResourceMetrics) {
        let families: Vec<&str> = match shape {
            Shape::Seed => SEED_FAMILIES.iter().map(|d| d.prometheus_name).collect(),
            Shape::Generic => vec![
                GENERIC_COUNTER.prometheus_name,
                GENERIC_HISTOGRAM.prometheus_name,
            ],
        };
        let (counter, labels, value) = &self.values[0];
        let mut found = None;
        let mut seen = 0;
        for metric in rm.scope_metrics().flat_map(|s| s.metrics()) {
            if !families.contains(&metric.name()) {
                continue;
            }
            seen += 1;
            let points = match metric.data() {
                AggregatedMetrics::U64(MetricData::Sum(sum)) => {
                    if metric.name() == counter {
                        found = sum
                            .data_points()
                            .find(|p| {
                                labels.iter().all(|l| {
                                    p.attributes().any(|kv| {
                                        format!(r#"{}="{}""#, kv.key, kv.value.as_str()) == *l
                                    })
                                })
                            })
                            .map(|p| p.value() as f64);
                    }
                    sum.data_points().count()
                }
                AggregatedMetrics::F64(MetricData::Histogram(h)) => h.data_points().count(),
                _ => panic!("sdk: unexpected data for {}", metric.name()),
            };
            assert_eq!(points, shape.per_metric(n), "sdk: {}", metric.name());
        }
        assert_eq!(seen, families.len(), "sdk: families");
        assert_eq!(found, Some(*value), "sdk: {counter} {labels:?}");
    }
}

/// One library holding one shape of N series, as the memory example drives it.
pub trait Library {
    /// Records every series once; in the seed shape, binds the topics' handles first.
    fn populate(&mut self);
    /// One scrape (collect + encode) into a fresh body, which is dropped; returns its length
    /// (0 for the bare SDK, which has no encoding).
    fn scrape(&self) -> usize;
    /// Panics unless a scrape exposes the expected series; returns that scrape's body length
    /// (0 for the bare SDK).
    fn check(&self) -> usize;
    /// The bare SDK's collection, to measure what a reader that keeps it holds; `None` for
    /// the others.
    fn collection(&self) -> Option<ResourceMetrics> {
        None
    }
}

/// Builds `library` with `shape`'s instruments and nothing recorded yet, or `None` for a
/// name it does not know. Names: `ours`, `ours_exemplars` (seed only), `sdk`,
/// `prometheus_client`, `tikv`, `otel_prometheus`.
pub fn build(library: &str, shape: Shape, n: usize, limit: usize) -> Option<Box<dyn Library>> {
    Some(match (library, shape) {
        ("ours", Shape::Seed) => Box::new(OursSeed::new(n, limit, false)),
        ("ours_exemplars", Shape::Seed) => Box::new(OursSeed::new(n, limit, true)),
        ("ours", Shape::Generic) => Box::new(OursGeneric::new(n, limit)),
        ("sdk", _) => Box::new(Sdk::new(shape, n, limit)),
        ("prometheus_client", _) => Box::new(PrometheusClient::new(shape, n)),
        ("tikv", _) => Box::new(Tikv::new(shape, n)),
        ("otel_prometheus", _) => Box::new(OtelPrometheus::new(shape, n, limit)),
        _ => return None,
    })
}

/// Ours on the seed shape: the real recorders of a [`Telemetry`] instance, one
/// [`TopicProducerMetrics`] kept per topic.
pub struct OursSeed {
    /// The instance; render through `telemetry.prometheus()`.
    pub telemetry: Telemetry,
    topics: Vec<TopicProducerMetrics>,
    n: usize,
    exemplars: bool,
}

impl OursSeed {
    /// An instance with cardinality limit `limit`; with `exemplars`, one topic in
    /// [`EXEMPLAR_EVERY`] records inside a sampled span.
    pub fn new(n: usize, limit: usize, exemplars: bool) -> Self {
        let telemetry = Telemetry::new(
            TelemetryConfig::default()
                .with_service_name("bench")
                .with_cardinality_limit(limit),
        )
        .expect("telemetry starts");
        OursSeed {
            telemetry,
            topics: Vec::new(),
            n,
            exemplars,
        }
    }

    /// The `/metrics` reader.
    pub fn reader(&self) -> &PrometheusReader {
        self.telemetry.prometheus().expect("enabled")
    }

    /// Records every topic's batch once more through its handle.
    pub fn record(&self) {
        for (i, topic) in self.topics.iter().enumerate() {
            let b = Batch::of(i);
            if self.exemplars && i % EXEMPLAR_EVERY == 0 {
                let _span = sampled_span(i).attach();
                topic.record_batch(b.records, b.bytes, b.latency);
            } else {
                topic.record_batch(b.records, b.bytes, b.latency);
            }
        }
    }
}

impl Library for OursSeed {
    fn populate(&mut self) {
        let producer = self.telemetry.producer();
        self.topics = (0..Shape::Seed.per_metric(self.n))
            .map(|i| producer.topic(&topic_name(i)))
            .collect();
        self.record();
    }

    fn scrape(&self) -> usize {
        self.reader().render(Format::Text).expect("render").len()
    }

    fn check(&self) -> usize {
        let expected = Expected::new(Shape::Seed, self.n);
        let om = self.reader().render(Format::OpenMetrics).expect("render");
        expected.check_text(Shape::Seed, "ours OpenMetrics", &om);
        let with_exemplar = om.lines().filter(|l| l.contains(" # {")).count();
        let sampled = match self.exemplars {
            true => self.topics.len().div_ceil(EXEMPLAR_EVERY),
            false => 0,
        };
        // At least one exemplar per sampled topic, none without a span.
        assert!(
            (sampled == 0) == (with_exemplar == 0) && with_exemplar >= sampled,
            "ours: {with_exemplar} lines with an exemplar for {sampled} sampled topics"
        );
        let text = self.reader().render(Format::Text).expect("render");
        expected.check_text(Shape::Seed, "ours text", &text);
        text.len()
    }
}

/// A [`ManualReader`] that can be registered and still collected from.
#[derive(Debug, Clone)]
pub struct SharedManualReader(Arc<ManualReader>);

impl MetricReader for SharedManualReader {
    fn register_pipeline(&self, pipeline: std::sync::Weak<Pipeline>) {
        self.0.register_pipeline(pipeline)
    }

    fn collect(&self, rm: &mut ResourceMetrics) -> OTelSdkResult {
        self.0.collect(rm)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.0.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }

    fn temporality(&self, kind: InstrumentKind) -> Temporality {
        self.0.temporality(kind)
    }
}

/// The seed families' instruments bound to one topic.
struct SeedHandles {
    records: BoundCounter<u64>,
    bytes: BoundCounter<u64>,
    latency: BoundHistogram<f64>,
    batch_size: BoundHistogram<f64>,
}

enum SdkInstruments {
    Seed {
        records: Counter<u64>,
        bytes: Counter<u64>,
        latency: Histogram<f64>,
        batch_size: Histogram<f64>,
    },
    Generic {
        counter: Counter<u64>,
        histogram: Histogram<f64>,
    },
}

/// A shape's instruments on a bare OpenTelemetry SDK provider, whichever reader reads them:
/// the catalog view pins names and buckets as in ours.
pub struct SdkShape {
    _provider: SdkMeterProvider,
    instruments: SdkInstruments,
    bound: Vec<SeedHandles>,
    n: usize,
}

impl SdkShape {
    /// A provider read by `reader`, with `shape`'s instruments and nothing recorded.
    pub fn new(reader: impl MetricReader, shape: Shape, n: usize, limit: usize) -> Self {
        let provider = SdkMeterProvider::builder()
            .with_resource(Resource::builder_empty().with_service_name("bench").build())
            .with_reader(reader)
            .with_view(catalog_view(&Catalog::streamhouse(), limit))
            .build();
        let meter: Meter = provider.meter("streamhouse");
        let counter = |def: MetricDef| meter.u64_counter(def.otel_name).build();
        let histogram = |def: MetricDef| meter.f64_histogram(def.otel_name).build();
        let instruments = match shape {
            Shape::Seed => SdkInstruments::Seed {
                records: counter(catalog::PRODUCER_RECORDS),
                bytes: counter(catalog::PRODUCER_BYTES),
                latency: histogram(catalog::PRODUCER_LATENCY),
                batch_size: histogram(catalog::PRODUCER_BATCH_SIZE),
            },
            Shape::Generic => SdkInstruments::Generic {
                counter: counter(GENERIC_COUNTER),
                histogram: histogram(GENERIC_HISTOGRAM),
            },
        };
        SdkShape {
            _provider: provider,
            instruments,
            bound: Vec::new(),
            n,
        }
    }

    /// Records every series once; the seed shape binds its topics first.
    pub fn populate(&mut self) {
        if let SdkInstruments::Seed {
            records,
            bytes,
            latency,
            batch_size,
        } = &self.instruments
        {
            self.bound = (0..Shape::Seed.per_metric(self.n))
                .map(|i| {
                    let attributes = [KeyValue::new("topic", topic_name(i))];
                    SeedHandles {
                        records: records.bind(&attributes),
                        bytes: bytes.bind(&attributes),
                        latency: latency.bind(&attributes),
                        batch_size: batch_size.bind(&attributes),
                    }
                })
                .collect();
        }
        self.record();
    }

    /// Records every series once more: through the bound handles (seed), or with the
    /// attributes per call (generic, in the recorders' order: topic, partition).
    pub fn record(&self) {
        match &self.instruments {
            SdkInstruments::Seed { .. } => {
                for (i, h) in self.bound.iter().enumerate() {
                    let b = Batch::of(i);
                    h.records.add(b.records);
                    h.bytes.add(b.bytes);
                    h.latency.record(b.latency.as_secs_f64());
                    h.batch_size.record(b.records as f64);
                }
            }
            SdkInstruments::Generic { counter, histogram } => {
                for i in 0..Shape::Generic.per_metric(self.n) {
                    let (topic, partition, count, observations) = generic_series(i);
                    let attributes = [
                        KeyValue::new("topic", topic),
                        KeyValue::new("partition", partition),
                    ];
                    counter.add(count, &attributes);
                    for v in observations {
                        histogram.record(v, &attributes);
                    }
                }
            }
        }
    }
}

/// Ours on the generic shape: raw SDK instruments read by our [`PrometheusReader`].
pub struct OursGeneric {
    /// The reader to render with.
    pub reader: PrometheusReader,
    /// The instruments.
    pub sdk: SdkShape,
}

impl OursGeneric {
    /// Our reader on a bare provider with the generic instruments.
    pub fn new(n: usize, limit: usize) -> Self {
        let reader = PrometheusReader::new(PrometheusConfig::default());
        let sdk = SdkShape::new(reader.clone(), Shape::Generic, n, limit);
        OursGeneric { reader, sdk }
    }
}

impl Library for OursGeneric {
    fn populate(&mut self) {
        self.sdk.populate();
    }

    fn scrape(&self) -> usize {
        self.reader.render(Format::Text).expect("render").len()
    }

    fn check(&self) -> usize {
        let expected = Expected::new(Shape::Generic, self.sdk.n);
        let om = self.reader.render(Format::OpenMetrics).expect("render");
        expected.check_text(Shape::Generic, "ours OpenMetrics", &om);
        let text = self.reader.render(Format::Text).expect("render");
        expected.check_text(Shape::Generic, "ours text", &text);
        text.len()
    }
}

/// The floor: the bare SDK with a cumulative [`ManualReader`], collected and not encoded.
pub struct Sdk {
    reader: SharedManualReader,
    /// The instruments.
    pub sdk: SdkShape,
    shape: Shape,
}

impl Sdk {
    /// A cumulative manual reader on a provider with `shape`'s instruments.
    pub fn new(shape: Shape, n: usize, limit: usize) -> Self {
        let reader = SharedManualReader(Arc::new(ManualReader::builder().build()));
        let sdk = SdkShape::new(reader.clone(), shape, n, limit);
        Sdk { reader, sdk, shape }
    }

    /// One collection into `rm`, which the SDK refills in place.
    pub fn collect(&self, rm: &mut ResourceMetrics) {
        self.reader.collect(rm).expect("collect");
    }
}

impl Library for Sdk {
    fn populate(&mut self) {
        self.sdk.populate();
    }

    fn scrape(&self) -> usize {
        let mut rm = ResourceMetrics::default();
        self.collect(&mut rm);
        0
    }

    fn check(&self) -> usize {
        let mut rm = ResourceMetrics::default();
        self.collect(&mut rm);
        Expected::new(self.shape, self.sdk.n).check_collection(self.shape, self.sdk.n, &rm);
        0
    }

    fn collection(&self) -> Option<ResourceMetrics> {
        let mut rm = ResourceMetrics::default();
        self.collect(&mut rm);
        Some(rm)
    }
}

/// `opentelemetry-prometheus`: its exporter reads the SDK, the `prometheus` crate encodes.
pub struct OtelPrometheus {
    registry: prometheus::Registry,
    /// The instruments.
    pub sdk: SdkShape,
    shape: Shape,
}

impl OtelPrometheus {
    /// The exporter on a provider with `shape`'s instruments.
    pub fn new(shape: Shape, n: usize, limit: usize) -> Self {
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
        let sdk = SdkShape::new(exporter, shape, n, limit);
        OtelPrometheus {
            registry,
            sdk,
            shape,
        }
    }

    /// One scrape into `out` (cleared first).
    pub fn render(&self, out: &mut Vec<u8>) {
        out.clear();
        prometheus::TextEncoder::new()
            .encode(&self.registry.gather(), out)
            .expect("encode");
    }

    /// Collect alone: the exporter's gather.
    pub fn gather(&self) -> Vec<prometheus::proto::MetricFamily> {
        self.registry.gather()
    }
}

impl Library for OtelPrometheus {
    fn populate(&mut self) {
        self.sdk.populate();
    }

    fn scrape(&self) -> usize {
        let mut out = Vec::new();
        self.render(&mut out);
        out.len()
    }

    fn check(&self) -> usize {
        let mut out = Vec::new();
        self.render(&mut out);
        let text = String::from_utf8(out).expect("utf-8");
        Expected::new(self.shape, self.sdk.n).check_text(self.shape, "otel_prometheus", &text);
        text.len()
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TopicLabel {
    topic: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TopicPartitionLabels {
    partition: String,
    topic: String,
}

type ClientCounter = prometheus_client::metrics::counter::Counter;
type ClientHistogram = prometheus_client::metrics::histogram::Histogram;
type ClientFamily<L> = prometheus_client::metrics::family::Family<L, ClientCounter>;
type ClientHistograms<L> =
    prometheus_client::metrics::family::Family<L, ClientHistogram, fn() -> ClientHistogram>;

fn latency_histogram() -> ClientHistogram {
    ClientHistogram::new(catalog::PRODUCER_LATENCY.buckets.iter().copied())
}

fn batch_size_histogram() -> ClientHistogram {
    ClientHistogram::new(catalog::PRODUCER_BATCH_SIZE.buckets.iter().copied())
}

enum ClientFamilies {
    Seed {
        records: ClientFamily<TopicLabel>,
        bytes: ClientFamily<TopicLabel>,
        latency: ClientHistograms<TopicLabel>,
        batch_size: ClientHistograms<TopicLabel>,
        handles: Vec<[ClientCounter; 2]>,
        histograms: Vec<[ClientHistogram; 2]>,
    },
    Generic {
        counters: ClientFamily<TopicPartitionLabels>,
        histograms: ClientHistograms<TopicPartitionLabels>,
    },
}

/// `prometheus-client`, its families registered under the catalog's names.
pub struct PrometheusClient {
    registry: prometheus_client::registry::Registry,
    families: ClientFamilies,
    shape: Shape,
    n: usize,
}

// prometheus-client appends `_total` to counters itself.
fn counter_stem(def: &MetricDef) -> &'static str {
    def.prometheus_name.trim_end_matches("_total")
}

impl PrometheusClient {
    /// A registry with `shape`'s families and no series.
    pub fn new(shape: Shape, n: usize) -> Self {
        let mut registry = prometheus_client::registry::Registry::default();
        let families = match shape {
            Shape::Seed => {
                let records = ClientFamily::<TopicLabel>::default();
                let bytes = ClientFamily::<TopicLabel>::default();
                let latency = ClientHistograms::<TopicLabel>::new_with_constructor(
                    latency_histogram as fn() -> ClientHistogram,
                );
                let batch_size = ClientHistograms::<TopicLabel>::new_with_constructor(
                    batch_size_histogram as fn() -> ClientHistogram,
                );
                let [r, b, l, s] = &SEED_FAMILIES;
                registry.register(counter_stem(r), r.description, records.clone());
                registry.register(counter_stem(b), b.description, bytes.clone());
                registry.register(l.prometheus_name, l.description, latency.clone());
                registry.register(s.prometheus_name, s.description, batch_size.clone());
                ClientFamilies::Seed {
                    records,
                    bytes,
                    latency,
                    batch_size,
                    handles: Vec::new(),
                    histograms: Vec::new(),
                }
            }
            Shape::Generic => {
                let counters = ClientFamily::<TopicPartitionLabels>::default();
                let histograms = ClientHistograms::<TopicPartitionLabels>::new_with_constructor(
                    latency_histogram as fn() -> ClientHistogram,
                );
                registry.register(
                    counter_stem(&GENERIC_COUNTER),
                    GENERIC_COUNTER.description,
                    counters.clone(),
                );
                registry.register(
                    GENERIC_HISTOGRAM.prometheus_name,
                    GENERIC_HISTOGRAM.description,
                    histograms.clone(),
                );
                ClientFamilies::Generic {
                    counters,
                    histograms,
                }
            }
        };
        PrometheusClient {
            registry,
            families,
            shape,
            n,
        }
    }

    /// Records every series once more: through the kept handles (seed) or by label set
    /// (generic).
    pub fn record(&self) {
        match &self.families {
            ClientFamilies::Seed {
                handles,
                histograms,
                ..
            } => {
                for (i, ([records, bytes], [latency, batch_size])) in
                    handles.iter().zip(histograms).enumerate()
                {
                    let b = Batch::of(i);
                    records.inc_by(b.records);
                    bytes.inc_by(b.bytes);
                    latency.observe(b.latency.as_secs_f64());
                    batch_size.observe(b.records as f64);
                }
            }
            ClientFamilies::Generic {
                counters,
                histograms,
            } => {
                for i in 0..Shape::Generic.per_metric(self.n) {
                    let (topic, partition, count, observations) = generic_series(i);
                    let labels = TopicPartitionLabels { partition, topic };
                    counters.get_or_create(&labels).inc_by(count);
                    let histogram = histograms.get_or_create(&labels);
                    for v in observations {
                        histogram.observe(v);
                    }
                }
            }
        }
    }

    /// One scrape into `out` (cleared first), in OpenMetrics, the one format it writes.
    pub fn render(&self, out: &mut String) {
        out.clear();
        prometheus_client::encoding::text::encode(out, &self.registry).expect("encode");
    }
}

impl Library for PrometheusClient {
    fn populate(&mut self) {
        if let ClientFamilies::Seed {
            records,
            bytes,
            latency,
            batch_size,
            handles,
            histograms,
        } = &mut self.families
        {
            for i in 0..Shape::Seed.per_metric(self.n) {
                let labels = TopicLabel {
                    topic: topic_name(i),
                };
                handles.push([
                    records.get_or_create_owned(&labels),
                    bytes.get_or_create_owned(&labels),
                ]);
                histograms.push([
                    latency.get_or_create_owned(&labels),
                    batch_size.get_or_create_owned(&labels),
                ]);
            }
        }
        self.record();
    }

    fn scrape(&self) -> usize {
        let mut out = String::new();
        self.render(&mut out);
        out.len()
    }

    fn check(&self) -> usize {
        let mut out = String::new();
        self.render(&mut out);
        Expected::new(self.shape, self.n).check_text(self.shape, "prometheus_client", &out);
        out.len()
    }
}

enum TikvFamilies {
    Seed {
        handles: Vec<(
            prometheus::IntCounter,
            prometheus::IntCounter,
            prometheus::Histogram,
            prometheus::Histogram,
        )>,
        vecs: (
            prometheus::IntCounterVec,
            prometheus::IntCounterVec,
            prometheus::HistogramVec,
            prometheus::HistogramVec,
        ),
    },
    Generic {
        counters: prometheus::IntCounterVec,
        histograms: prometheus::HistogramVec,
    },
}

/// The tikv `prometheus` crate, cached `with_label_values` handles in the seed shape.
pub struct Tikv {
    registry: prometheus::Registry,
    families: TikvFamilies,
    shape: Shape,
    n: usize,
}

impl Tikv {
    /// A registry with `shape`'s families and no series.
    pub fn new(shape: Shape, n: usize) -> Self {
        let registry = prometheus::Registry::new();
        let counter = |def: &MetricDef, labels: &[&str]| {
            let vec = prometheus::IntCounterVec::new(
                prometheus::Opts::new(def.prometheus_name, def.description),
                labels,
            )
            .expect("valid");
            registry.register(Box::new(vec.clone())).expect("register");
            vec
        };
        let histogram = |def: &MetricDef, labels: &[&str]| {
            let vec = prometheus::HistogramVec::new(
                prometheus::HistogramOpts::new(def.prometheus_name, def.description)
                    .buckets(def.buckets.to_vec()),
                labels,
            )
            .expect("valid");
            registry.register(Box::new(vec.clone())).expect("register");
            vec
        };
        let families = match shape {
            Shape::Seed => {
                let [r, b, l, s] = &SEED_FAMILIES;
                TikvFamilies::Seed {
                    handles: Vec::new(),
                    vecs: (
                        counter(r, &["topic"]),
                        counter(b, &["topic"]),
                        histogram(l, &["topic"]),
                        histogram(s, &["topic"]),
                    ),
                }
            }
            Shape::Generic => TikvFamilies::Generic {
                counters: counter(&GENERIC_COUNTER, &["topic", "partition"]),
                histograms: histogram(&GENERIC_HISTOGRAM, &["topic", "partition"]),
            },
        };
        Tikv {
            registry,
            families,
            shape,
            n,
        }
    }

    /// Records every series once more: through the cached handles (seed) or
    /// `with_label_values` (generic).
    pub fn record(&self) {
        match &self.families {
            TikvFamilies::Seed { handles, .. } => {
                for (i, (records, bytes, latency, batch_size)) in handles.iter().enumerate() {
                    let b = Batch::of(i);
                    records.inc_by(b.records);
                    bytes.inc_by(b.bytes);
                    latency.observe(b.latency.as_secs_f64());
                    batch_size.observe(b.records as f64);
                }
            }
            TikvFamilies::Generic {
                counters,
                histograms,
            } => {
                for i in 0..Shape::Generic.per_metric(self.n) {
                    let (topic, partition, count, observations) = generic_series(i);
                    let labels = [topic.as_str(), partition.as_str()];
                    counters.with_label_values(&labels).inc_by(count);
                    let histogram = histograms.with_label_values(&labels);
                    for v in observations {
                        histogram.observe(v);
                    }
                }
            }
        }
    }

    /// One scrape into `out` (cleared first).
    pub fn render(&self, out: &mut Vec<u8>) {
        out.clear();
        prometheus::TextEncoder::new()
            .encode(&self.registry.gather(), out)
            .expect("encode");
    }
}

impl Library for Tikv {
    fn populate(&mut self) {
        if let TikvFamilies::Seed { handles, vecs } = &mut self.families {
            for i in 0..Shape::Seed.per_metric(self.n) {
                let topic = topic_name(i);
                let labels = [topic.as_str()];
                handles.push((
                    vecs.0.with_label_values(&labels),
                    vecs.1.with_label_values(&labels),
                    vecs.2.with_label_values(&labels),
                    vecs.3.with_label_values(&labels),
                ));
            }
        }
        self.record();
    }

    fn scrape(&self) -> usize {
        let mut out = Vec::new();
        self.render(&mut out);
        out.len()
    }

    fn check(&self) -> usize {
        let mut out = Vec::new();
        self.render(&mut out);
        let text = String::from_utf8(out).expect("utf-8");
        Expected::new(self.shape, self.n).check_text(self.shape, "tikv", &text);
        text.len()
    }
}
