//! Scrape cost (collect + encode) of N series, every library side by side in one run, on the
//! two shapes of `scrape_shapes` (same names, labels, buckets and values everywhere; each
//! library is checked before it is timed):
//!
//! - `scrape/N/*`, the generic shape: half counters, half 11-bucket histograms, labels topic
//!   and partition, raw SDK instruments read by our `PrometheusReader`; next to the bare
//!   SDK's cumulative collect (`sdk_collect`, the floor), `opentelemetry-prometheus`,
//!   `prometheus-client` and tikv `prometheus`.
//! - `scrape_seed/N/*`, the seed shape: the four producer families over N/4 topics through
//!   our real recorders (`Telemetry`, one `TopicProducerMetrics` kept per topic), text and
//!   OpenMetrics; with exemplars on 10% of series (`*_exemplars`); with every series changed
//!   before each render (`ours_all_changed`, next to `sdk_collect_all_changed`); and the peers,
//!   handles kept per topic.
//! - `scrape_gzip/N/*`: the seed shape's text rendered through `render_to` into a gzip
//!   encoder at levels 1, 3 and 6, next to `plain` (no compression); N from
//!   `SCRAPE_GZIP_SIZE`, default 100000. The compressed sizes are printed once.
//! - `negotiate/*`: Accept negotiation under hostile headers.
//!
//! Sizes come from `SCRAPE_SIZES` (comma list), default `1000,10000,100000,1000000`. A
//! library's series are built on its first benchmark and dropped after its last, so a
//! filter that leaves a library out builds nothing, and one library's memory does not
//! weigh on the next. `--warm-up-time`, `--measurement-time` and `--sample-size` given on
//! the command line win over the per-size settings.
//!
//! Expected run time on the 2-core development machine with the defaults: about 12 minutes
//! up to 100k (1k alone with `--measurement-time 1`: 4 minutes, most of it criterion's
//! analysis), and about 20 more for 1M (10 samples of one render each; tikv and
//! `opentelemetry-prometheus` render in 8-12 s there, and building a library's 1M series
//! takes seconds).
//!
//! ```sh
//! cargo bench -p streamhouse-observability --bench scrape
//! SCRAPE_SIZES=1000,10000 cargo bench -p streamhouse-observability --bench scrape -- scrape_seed
//! ```

#[allow(dead_code)] // Shared with examples/scrape_memory.rs, which uses other parts.
mod scrape_shapes;

use std::hint::black_box;
use std::io::Write;
use std::time::Duration;

use criterion::{
    BatchSize, BenchmarkGroup, BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group,
    criterion_main, measurement::WallTime,
};
use flate2::Compression;
use flate2::write::GzEncoder;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::reader::MetricReader;
use scrape_shapes::{
    Library, OtelPrometheus, OursGeneric, OursSeed, PrometheusClient, Sdk, Shape, Tikv,
};
use streamhouse_observability::prometheus::{Format, PrometheusReader, ScrapeProtocol};

/// gzip levels measured against rendering alone.
const GZIP_LEVELS: [u32; 3] = [1, 3, 6];

fn sizes() -> Vec<usize> {
    match std::env::var("SCRAPE_SIZES") {
        Ok(list) => list
            .split(',')
            .map(|s| {
                s.trim()
                    .parse()
                    .expect("SCRAPE_SIZES: a comma list of sizes")
            })
            .collect(),
        Err(_) => vec![1_000, 10_000, 100_000, 1_000_000],
    }
}

/// Whether `flag` was given on the command line (criterion's own settings lose to a group's).
fn cli_sets(flag: &str) -> bool {
    std::env::args().any(|a| a == flag || a.starts_with(&format!("{flag}=")))
}

fn group<'a>(c: &'a mut Criterion, name: &str, n: usize) -> BenchmarkGroup<'a, WallTime> {
    let mut group = c.benchmark_group(format!("{name}/{n}"));
    group.throughput(Throughput::Elements(n as u64));
    // One render of 1M series takes seconds: 10 samples of one iteration each.
    let (samples, secs, mode) = match n {
        0..=1_000 => (30, 3, SamplingMode::Auto),
        1_001..=10_000 => (20, 3, SamplingMode::Flat),
        10_001..=100_000 => (10, 4, SamplingMode::Flat),
        _ => (10, 10, SamplingMode::Flat),
    };
    group.sampling_mode(mode);
    if !cli_sets("--warm-up-time") {
        group.warm_up_time(Duration::from_secs(1));
    }
    if !cli_sets("--sample-size") {
        group.sample_size(samples);
    }
    if !cli_sets("--measurement-time") {
        group.measurement_time(Duration::from_secs(secs));
    }
    group
}

/// The library in `slot`, built, populated and checked on first use: the check runs before
/// the first timing, and a library no benchmark asks for is never built.
fn ready<'a, T: Library>(slot: &'a mut Option<T>, id: &str, build: impl FnOnce() -> T) -> &'a T {
    slot.get_or_insert_with(|| {
        let mut library = build();
        library.populate();
        let body = library.check();
        eprintln!("{id}: checked, body {body} bytes");
        library
    })
}

fn generic(c: &mut Criterion) {
    let shape = Shape::Generic;
    for n in sizes() {
        let limit = shape.limit(n);
        let mut group = group(c, "scrape", n);
        let id = |name: &str| format!("scrape/{n}/{name}");

        let mut ours = None;
        let mut body = Vec::new();
        let build_ours = || OursGeneric::new(n, limit);
        group.bench_function(BenchmarkId::from_parameter("ours"), |b| {
            let ours = ready(&mut ours, &id("ours"), build_ours);
            b.iter(|| streamed(&ours.reader, Format::Text, &mut body))
        });
        // OpenMetrics is what prometheus-client writes.
        group.bench_function(BenchmarkId::from_parameter("ours_openmetrics"), |b| {
            let ours = ready(&mut ours, &id("ours"), build_ours);
            b.iter(|| streamed(&ours.reader, Format::OpenMetrics, &mut body))
        });
        group.bench_function(BenchmarkId::from_parameter("ours_string"), |b| {
            let ours = ready(&mut ours, &id("ours"), build_ours);
            b.iter(|| black_box(ours.reader.render(Format::Text).expect("render")))
        });
        let mut metrics = ResourceMetrics::default();
        group.bench_function(BenchmarkId::from_parameter("ours_collect_only"), |b| {
            let ours = ready(&mut ours, &id("ours"), build_ours);
            b.iter(|| {
                MetricReader::collect(&ours.reader, &mut metrics).expect("collect");
                black_box(&metrics);
            })
        });
        drop(ours);

        let mut sdk = None;
        let mut rm = ResourceMetrics::default();
        group.bench_function(BenchmarkId::from_parameter("sdk_collect"), |b| {
            let sdk = ready(&mut sdk, &id("sdk"), || Sdk::new(shape, n, limit));
            b.iter(|| {
                sdk.collect(&mut rm);
                black_box(&rm);
            })
        });
        drop((sdk, rm));

        // Buffers reused between iterations: the peers' best case.
        let mut otel = None;
        let mut buf = Vec::new();
        let build_otel = || OtelPrometheus::new(shape, n, limit);
        group.bench_function(BenchmarkId::from_parameter("otel_prometheus"), |b| {
            let otel = ready(&mut otel, &id("otel_prometheus"), build_otel);
            b.iter(|| {
                otel.render(&mut buf);
                black_box(&buf);
            })
        });
        group.bench_function(
            BenchmarkId::from_parameter("otel_prometheus_gather_only"),
            |b| {
                let otel = ready(&mut otel, &id("otel_prometheus"), build_otel);
                b.iter(|| black_box(otel.gather()))
            },
        );
        drop(otel);

        let mut client = None;
        let mut text = String::new();
        group.bench_function(BenchmarkId::from_parameter("prometheus_client"), |b| {
            let client = ready(&mut client, &id("prometheus_client"), || {
                PrometheusClient::new(shape, n)
            });
            b.iter(|| {
                client.render(&mut text);
                black_box(&text);
            })
        });
        drop((client, text));

        let mut tikv = None;
        group.bench_function(BenchmarkId::from_parameter("tikv"), |b| {
            let tikv = ready(&mut tikv, &id("tikv"), || Tikv::new(shape, n));
            b.iter(|| {
                tikv.render(&mut buf);
                black_box(&buf);
            })
        });
        drop(tikv);
        group.finish();
    }
}

fn seed(c: &mut Criterion) {
    let shape = Shape::Seed;
    for n in sizes() {
        let limit = shape.limit(n);
        let mut group = group(c, "scrape_seed", n);
        let id = |name: &str| format!("scrape_seed/{n}/{name}");

        let mut ours = None;
        let mut body = Vec::new();
        let build_ours = || OursSeed::new(n, limit, false);
        group.bench_function(BenchmarkId::from_parameter("ours"), |b| {
            let ours = ready(&mut ours, &id("ours"), build_ours);
            b.iter(|| streamed(ours.reader(), Format::Text, &mut body))
        });
        group.bench_function(BenchmarkId::from_parameter("ours_openmetrics"), |b| {
            let ours = ready(&mut ours, &id("ours"), build_ours);
            b.iter(|| streamed(ours.reader(), Format::OpenMetrics, &mut body))
        });
        group.bench_function(BenchmarkId::from_parameter("ours_string"), |b| {
            let ours = ready(&mut ours, &id("ours"), build_ours);
            b.iter(|| black_box(ours.reader().render(Format::Text).expect("render")))
        });
        // Last of ours: it changes the values the check reads.
        group.bench_function(BenchmarkId::from_parameter("ours_all_changed"), |b| {
            let ours = ready(&mut ours, &id("ours"), build_ours);
            b.iter_batched(
                || ours.record(),
                |()| streamed(ours.reader(), Format::Text, &mut body),
                BatchSize::PerIteration,
            )
        });
        drop(ours);

        let mut exemplars = None;
        let build_exemplars = || OursSeed::new(n, limit, true);
        group.bench_function(BenchmarkId::from_parameter("ours_exemplars"), |b| {
            let ours = ready(&mut exemplars, &id("ours_exemplars"), build_exemplars);
            b.iter(|| streamed(ours.reader(), Format::Text, &mut body))
        });
        group.bench_function(
            BenchmarkId::from_parameter("ours_openmetrics_exemplars"),
            |b| {
                let ours = ready(&mut exemplars, &id("ours_exemplars"), build_exemplars);
                b.iter(|| streamed(ours.reader(), Format::OpenMetrics, &mut body))
            },
        );
        drop((exemplars, body));

        let mut sdk = None;
        let mut rm = ResourceMetrics::default();
        let build_sdk = || Sdk::new(shape, n, limit);
        group.bench_function(BenchmarkId::from_parameter("sdk_collect"), |b| {
            let sdk = ready(&mut sdk, &id("sdk"), build_sdk);
            b.iter(|| {
                sdk.collect(&mut rm);
                black_box(&rm);
            })
        });
        group.bench_function(
            BenchmarkId::from_parameter("sdk_collect_all_changed"),
            |b| {
                let sdk = ready(&mut sdk, &id("sdk"), build_sdk);
                b.iter_batched(
                    || sdk.sdk.record(),
                    |()| {
                        sdk.collect(&mut rm);
                        black_box(&rm);
                    },
                    BatchSize::PerIteration,
                )
            },
        );
        drop((sdk, rm));

        // Buffers reused between iterations: the peers' best case.
        let mut client = None;
        let mut text = String::new();
        group.bench_function(BenchmarkId::from_parameter("prometheus_client"), |b| {
            let client = ready(&mut client, &id("prometheus_client"), || {
                PrometheusClient::new(shape, n)
            });
            b.iter(|| {
                client.render(&mut text);
                black_box(&text);
            })
        });
        drop((client, text));

        let mut buf = Vec::new();
        let mut tikv = None;
        group.bench_function(BenchmarkId::from_parameter("tikv"), |b| {
            let tikv = ready(&mut tikv, &id("tikv"), || Tikv::new(shape, n));
            b.iter(|| {
                tikv.render(&mut buf);
                black_box(&buf);
            })
        });
        drop(tikv);

        let mut otel = None;
        group.bench_function(BenchmarkId::from_parameter("otel_prometheus"), |b| {
            let otel = ready(&mut otel, &id("otel_prometheus"), || {
                OtelPrometheus::new(shape, n, limit)
            });
            b.iter(|| {
                otel.render(&mut buf);
                black_box(&buf);
            })
        });
        drop(otel);
        group.finish();
    }
}

/// Our scrape as `/metrics` runs it: rendered in chunks into a writer (here a buffer
/// reused between iterations, as the peers' are); `ours_string` is `render` into a fresh
/// `String` instead, whose pages the allocator maps and unmaps at every scrape past 32 MiB.
fn streamed(reader: &PrometheusReader, format: Format, body: &mut Vec<u8>) -> u64 {
    body.clear();
    black_box(reader.render_to(format, body).expect("render"))
}

/// A writer that keeps nothing and counts the bytes it was given.
#[derive(Default)]
struct Counted(u64);

impl Write for Counted {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn gzip_size(ours: &OursSeed, level: u32) -> u64 {
    let mut gz = GzEncoder::new(Counted::default(), Compression::new(level));
    ours.reader()
        .render_to(Format::Text, &mut gz)
        .expect("render");
    gz.finish().expect("finish").0
}

/// The text body compressed while rendering, to pick the level where compressing costs no
/// more than rendering.
fn gzip(c: &mut Criterion) {
    let n = std::env::var("SCRAPE_GZIP_SIZE").map_or(100_000, |s| {
        s.parse().expect("SCRAPE_GZIP_SIZE: a number of series")
    });
    let mut group = group(c, "scrape_gzip", n);
    let mut ours = None;
    let mut printed = false;
    let id = format!("scrape_gzip/{n}/ours");
    let build = || OursSeed::new(n, Shape::Seed.limit(n), false);
    // Once, before the first timing of the group, whichever benchmark the filter kept.
    let mut sizes = |ours: &OursSeed| {
        if std::mem::replace(&mut printed, true) {
            return;
        }
        let mut plain = Counted::default();
        ours.reader()
            .render_to(Format::Text, &mut plain)
            .expect("render");
        for level in GZIP_LEVELS {
            let size = gzip_size(ours, level);
            eprintln!(
                "scrape_gzip/{n}: level {level}: {size} of {} bytes ({:.1}%)",
                plain.0,
                size as f64 * 100.0 / plain.0 as f64
            );
        }
    };
    group.bench_function("plain", |b| {
        let ours = ready(&mut ours, &id, build);
        sizes(ours);
        b.iter(|| {
            let mut sink = Counted::default();
            ours.reader()
                .render_to(Format::Text, &mut sink)
                .expect("render");
            black_box(sink.0)
        })
    });
    for level in GZIP_LEVELS {
        group.bench_function(format!("gzip_{level}"), |b| {
            let ours = ready(&mut ours, &id, build);
            sizes(ours);
            b.iter(|| black_box(gzip_size(ours, level)))
        });
    }
    group.finish();
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

criterion_group!(benches, generic, seed, gzip, negotiate);
criterion_main!(benches);
