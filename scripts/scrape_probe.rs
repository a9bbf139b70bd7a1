//! The scrape bench's state (N series: counters and 11-bucket histograms by topic and
//! partition) rendered five times; `scripts/instructions-compare` builds it as an example of
//! two revisions and counts the instructions of `render` under callgrind.
//!
//! Usage: scrape_probe N text|openmetrics
use opentelemetry::KeyValue;
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use streamhouse_observability::catalog::{self, Catalog};
use streamhouse_observability::config::PrometheusConfig;
use streamhouse_observability::prometheus::{Format, PrometheusReader};
use streamhouse_observability::views::catalog_view;

fn main() {
    let n: usize = std::env::args().nth(1).unwrap().parse().unwrap();
    let format = match std::env::args().nth(2).unwrap().as_str() {
        "text" => Format::Text,
        _ => Format::OpenMetrics,
    };
    let reader = PrometheusReader::new(PrometheusConfig::default());
    let provider = SdkMeterProvider::builder()
        .with_resource(Resource::builder_empty().with_service_name("bench").build())
        .with_reader(reader.clone())
        .with_view(catalog_view(&Catalog::streamhouse(), n))
        .build();
    let meter = provider.meter("streamhouse");
    let counter = meter.u64_counter(catalog::SEGMENT_WRITES.otel_name).build();
    let histogram = meter.f64_histogram(catalog::PRODUCER_LATENCY.otel_name).build();
    for i in 0..n / 2 {
        let attributes = [
            KeyValue::new("topic", format!("topic-{:04}", i / 100)),
            KeyValue::new("partition", (i % 100).to_string()),
        ];
        counter.add(i as u64 + 1, &attributes);
        for v in [0.0005 * (i % 13 + 1) as f64, 0.02 * (i % 7 + 1) as f64, 0.3 * (i % 5 + 1) as f64] {
            histogram.record(v, &attributes);
        }
    }
    let mut total = 0;
    for _ in 0..5 {
        total += render(&reader, format);
    }
    println!("{total}");
}

#[inline(never)]
fn render(reader: &PrometheusReader, format: Format) -> usize {
    reader.render(format).unwrap().len()
}
