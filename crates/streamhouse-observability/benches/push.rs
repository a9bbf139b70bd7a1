//! OTLP metric push of the seed shape (per topic: records and bytes counters, latency and
//! batch-size histograms) over N topics, one export per iteration over HTTP/protobuf to a
//! loopback sink that reads and drops the body:
//!
//! - `push/N/ours`: our push (`Telemetry` with OTLP, `force_flush`), every series carrying
//!   an exemplar recorded in a sampled span;
//! - `push/N/ours_no_exemplars`: the same with `OTEL_METRICS_EXEMPLAR_FILTER=always_off`,
//!   so the ratio of the two is what carrying exemplars costs;
//! - `push/N/sdk`: the path we replaced, the bare SDK's cumulative collect converted by
//!   `opentelemetry-proto` (`ExportMetricsServiceRequest::from`), encoded and posted by the
//!   same HTTP client stack to the same sink (it carries no exemplars: the SDK fills none).
//!
//! Each library is checked before it is timed (the sink saw the series and, for ours, the
//! exemplars). Sizes from `PUSH_SIZES` (comma list), default `1000,10000`; about 2 minutes.
//!
//! ```sh
//! cargo bench -p streamhouse-observability --bench push
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use opentelemetry::{Context, KeyValue};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::reader::MetricReader;
use opentelemetry_sdk::metrics::{ManualReader, SdkMeterProvider};
use prost::Message as _;
use streamhouse_observability::catalog::{self, Catalog};
use streamhouse_observability::exemplars::ExemplarFilter;
use streamhouse_observability::otlp::{OtlpConfig, OtlpProtocol};
use streamhouse_observability::views::catalog_view;
use streamhouse_observability::{Telemetry, TelemetryConfig};

fn sizes() -> Vec<usize> {
    std::env::var("PUSH_SIZES")
        .unwrap_or_else(|_| "1000,10000".into())
        .split(',')
        .map(|n| {
            n.trim()
                .parse()
                .expect("PUSH_SIZES: a comma list of counts")
        })
        .collect()
}

/// A loopback HTTP server that reads every body and answers 200; counts the bytes.
struct Sink {
    url: String,
    bytes: Arc<AtomicUsize>,
    _runtime: tokio::runtime::Runtime,
}

impl Sink {
    fn start() -> Sink {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let bytes = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&bytes);
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = axum::Router::new()
            .fallback(move |body: Bytes| {
                let counted = Arc::clone(&counted);
                async move {
                    counted.fetch_add(body.len(), Ordering::Relaxed);
                    ""
                }
            })
            .layer(axum::extract::DefaultBodyLimit::disable());
        runtime.spawn(async move { axum::serve(listener, app).await });
        Sink {
            url,
            bytes,
            _runtime: runtime,
        }
    }

    fn take_bytes(&self) -> usize {
        self.bytes.swap(0, Ordering::Relaxed)
    }
}

/// Spread over the buckets, 0.5 ms to 2 s.
fn latency_of(i: usize) -> Duration {
    Duration::from_micros(500 + (i as u64 % 2000) * 997)
}

fn topic(i: usize) -> String {
    format!("topic-{i:07}")
}

/// Our push, N topics produced once each inside a sampled span.
fn ours(sink: &Sink, n: usize, filter: ExemplarFilter) -> Telemetry {
    let otlp = OtlpConfig::default()
        .with_endpoint(&sink.url, OtlpProtocol::HttpProtobuf)
        .with_metric_export_interval(Duration::from_secs(3600));
    let telemetry = Telemetry::new(
        TelemetryConfig::default()
            .with_otlp(otlp)
            .with_exemplar_filter(filter)
            .with_cardinality_limit(n + 100),
    )
    .unwrap();
    let span = SpanContext::new(
        TraceId::from_bytes([0xab; 16]),
        SpanId::from_bytes([0xcd; 8]),
        TraceFlags::SAMPLED,
        false,
        TraceState::default(),
    );
    let _sampled = Context::new().with_remote_span_context(span).attach();
    for i in 0..n {
        let latency = Duration::from_micros(500 + (i as u64 % 2000) * 997);
        telemetry
            .producer()
            .record_batch(&topic(i), 1, 100, latency);
    }
    telemetry
}

/// The bare SDK with the same histogram series and views, read by a cumulative manual
/// reader.
struct Sdk {
    reader: SharedReader,
    _provider: SdkMeterProvider,
    client: Client<HttpConnector, Full<Bytes>>,
    runtime: tokio::runtime::Runtime,
    url: String,
}

impl Sdk {
    fn new(sink: &Sink, n: usize) -> Sdk {
        let reader = SharedReader(Arc::new(ManualReader::builder().build()));
        let provider = SdkMeterProvider::builder()
            .with_reader(reader.clone())
            .with_view(catalog_view(&Catalog::streamhouse(), n + 100))
            .build();
        // What `record_batch` records: two counters and two histograms per topic.
        let meter = provider.meter(streamhouse_observability::SCOPE_NAME);
        let records = meter
            .u64_counter(catalog::PRODUCER_RECORDS.otel_name)
            .build();
        let bytes = meter.u64_counter(catalog::PRODUCER_BYTES.otel_name).build();
        let latency = meter
            .f64_histogram(catalog::PRODUCER_LATENCY.otel_name)
            .build();
        let batch = meter
            .f64_histogram(catalog::PRODUCER_BATCH_SIZE.otel_name)
            .build();
        for i in 0..n {
            let attributes = [KeyValue::new(catalog::label::TOPIC, topic(i))];
            records.add(1, &attributes);
            bytes.add(100, &attributes);
            latency.record(latency_of(i).as_secs_f64(), &attributes);
            batch.record(1.0, &attributes);
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        Sdk {
            reader,
            _provider: provider,
            client: Client::builder(TokioExecutor::new()).build_http(),
            runtime,
            url: sink.url.clone(),
        }
    }

    fn push(&self) {
        let mut metrics = ResourceMetrics::default();
        self.reader.collect(&mut metrics).unwrap();
        let body = ExportMetricsServiceRequest::from(&metrics).encode_to_vec();
        let request = http::Request::post(&self.url)
            .header(http::header::CONTENT_TYPE, "application/x-protobuf")
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        let status = self
            .runtime
            .block_on(self.client.request(request))
            .unwrap()
            .status();
        assert!(status.is_success());
    }
}

fn push(c: &mut Criterion) {
    let sink = Sink::start();
    for n in sizes() {
        let mut group = c.benchmark_group(format!("push/{n}"));
        group.throughput(Throughput::Elements(n as u64));
        group.sample_size(20);

        for (name, filter) in [
            ("ours", ExemplarFilter::TraceBased),
            ("ours_no_exemplars", ExemplarFilter::AlwaysOff),
        ] {
            let telemetry = ours(&sink, n, filter);
            sink.take_bytes();
            telemetry.meter_provider().force_flush().unwrap();
            let bytes = sink.take_bytes();
            // Every series went out; with exemplars, each carries one (about 40 bytes).
            assert!(bytes > n * 60, "{name}: {bytes} bytes for {n} series");
            println!("push/{n}/{name}: {bytes} bytes per export");
            group.bench_function(BenchmarkId::from_parameter(name), |b| {
                b.iter(|| telemetry.meter_provider().force_flush().unwrap())
            });
            telemetry.shutdown().unwrap();
        }

        let sdk = Sdk::new(&sink, n);
        sink.take_bytes();
        sdk.push();
        let bytes = sink.take_bytes();
        assert!(bytes > n * 60, "sdk: {bytes} bytes for {n} series");
        println!("push/{n}/sdk: {bytes} bytes per export");
        group.bench_function(BenchmarkId::from_parameter("sdk"), |b| {
            b.iter(|| sdk.push())
        });
        group.finish();
    }
}

/// One manual reader registered with the provider and read by the benchmark.
#[derive(Clone, Debug)]
struct SharedReader(Arc<ManualReader>);

impl MetricReader for SharedReader {
    fn register_pipeline(&self, pipeline: std::sync::Weak<opentelemetry_sdk::metrics::Pipeline>) {
        self.0.register_pipeline(pipeline);
    }

    fn collect(&self, rm: &mut ResourceMetrics) -> opentelemetry_sdk::error::OTelSdkResult {
        self.0.collect(rm)
    }

    fn force_flush(&self) -> opentelemetry_sdk::error::OTelSdkResult {
        self.0.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> opentelemetry_sdk::error::OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }

    fn temporality(
        &self,
        kind: opentelemetry_sdk::metrics::InstrumentKind,
    ) -> opentelemetry_sdk::metrics::Temporality {
        self.0.temporality(kind)
    }
}

criterion_group!(benches, push);
criterion_main!(benches);
