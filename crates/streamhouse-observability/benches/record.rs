//! Hot-path recording cost: our recorders and the raw OTel SDK against the tikv
//! `prometheus` crate, side by side in one group per instrument kind; and recording past
//! the cardinality limit from 2 threads next to recording existing series.

use std::hint::black_box;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use opentelemetry::KeyValue;
use opentelemetry::metrics::MeterProvider as _;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts};
use streamhouse_observability::catalog;
use streamhouse_observability::metrics::ProducerError;
use streamhouse_observability::{Telemetry, TelemetryConfig};

const LATENCY: f64 = 0.004;

// Exemplar capture is on by default; the `_no_exemplars` variants show what it costs.
fn new_telemetry(exemplars: bool) -> Telemetry {
    let config = TelemetryConfig::default()
        .with_service_name("bench")
        .with_exemplars(exemplars);
    Telemetry::new(config).expect("telemetry")
}

fn tikv_counter(labels: &[&str]) -> IntCounterVec {
    IntCounterVec::new(Opts::new("bench_counter_total", "bench"), labels).expect("counter vec")
}

fn tikv_histogram(labels: &[&str]) -> HistogramVec {
    let opts = HistogramOpts::new("bench_latency_seconds", "bench")
        .buckets(catalog::PRODUCER_LATENCY_BUCKETS.to_vec());
    HistogramVec::new(opts, labels).expect("histogram vec")
}

fn counters(c: &mut Criterion) {
    let telemetry = new_telemetry(true);
    let plain = new_telemetry(false);
    // A meter of its own, so the raw instruments do not collide with the catalog's.
    let meter = telemetry.meter_provider().meter("bench");
    let sdk_counter = meter.u64_counter("bench.counter").build();
    let sdk_bound = sdk_counter.bind(&[KeyValue::new("topic", "orders")]);
    let ours_bound = telemetry.consumer().group("orders", "analytics");
    let plain_bound = plain.consumer().group("orders", "analytics");
    let tikv1 = tikv_counter(&["topic"]);
    let tikv2 = tikv_counter(&["topic", "consumer_group"]);
    let tikv_cached = tikv1.with_label_values(&["orders"]);

    let mut group = c.benchmark_group("counter");
    group.bench_function("ours_bound", |b| {
        b.iter(|| ours_bound.record_records(black_box(1)))
    });
    group.bench_function("ours_bound_no_exemplars", |b| {
        b.iter(|| plain_bound.record_records(black_box(1)))
    });
    group.bench_function("sdk_bound", |b| b.iter(|| sdk_bound.add(black_box(1))));
    group.bench_function("tikv_cached", |b| {
        b.iter(|| tikv_cached.inc_by(black_box(1)))
    });
    group.bench_function("ours_labels2", |b| {
        b.iter(|| {
            telemetry
                .consumer()
                .record_records(black_box("orders"), black_box("analytics"), 1)
        })
    });
    group.bench_function("ours_labels2_no_exemplars", |b| {
        b.iter(|| {
            plain
                .consumer()
                .record_records(black_box("orders"), black_box("analytics"), 1)
        })
    });
    group.bench_function("ours_labels2_error", |b| {
        b.iter(|| {
            telemetry
                .producer()
                .record_error(black_box("orders"), ProducerError::Timeout)
        })
    });
    // Static-str values: the SDK's own per-call cost, without our `to_owned` copies.
    group.bench_function("sdk_labels2", |b| {
        b.iter(|| {
            sdk_counter.add(
                black_box(1),
                &[
                    KeyValue::new("topic", black_box("orders")),
                    KeyValue::new("consumer_group", black_box("analytics")),
                ],
            )
        })
    });
    group.bench_function("sdk_labels1", |b| {
        b.iter(|| sdk_counter.add(black_box(1), &[KeyValue::new("topic", black_box("orders"))]))
    });
    group.bench_function("tikv_labels1", |b| {
        b.iter(|| tikv1.with_label_values(&[black_box("orders")]).inc())
    });
    group.bench_function("tikv_labels2", |b| {
        b.iter(|| {
            tikv2
                .with_label_values(&[black_box("orders"), black_box("analytics")])
                .inc()
        })
    });
    group.finish();
}

fn histograms(c: &mut Criterion) {
    let telemetry = new_telemetry(true);
    let meter = telemetry.meter_provider().meter("bench");
    // Named like the catalog entry so the catalog view gives it the 11 producer buckets.
    let sdk_histogram = meter
        .f64_histogram(catalog::PRODUCER_LATENCY.otel_name)
        .build();
    let sdk_bound = sdk_histogram.bind(&[KeyValue::new("topic", "orders")]);
    let tikv = tikv_histogram(&["topic"]);
    let tikv_cached = tikv.with_label_values(&["orders"]);

    let mut group = c.benchmark_group("histogram");
    group.bench_function("sdk_bound", |b| {
        b.iter(|| sdk_bound.record(black_box(LATENCY)))
    });
    group.bench_function("tikv_cached", |b| {
        b.iter(|| tikv_cached.observe(black_box(LATENCY)))
    });
    group.bench_function("sdk_labels1", |b| {
        b.iter(|| {
            sdk_histogram.record(
                black_box(LATENCY),
                &[KeyValue::new("topic", black_box("orders"))],
            )
        })
    });
    group.bench_function("tikv_labels1", |b| {
        b.iter(|| {
            tikv.with_label_values(&[black_box("orders")])
                .observe(black_box(LATENCY))
        })
    });
    group.finish();
}

// `record_batch` touches 2 counters and 2 histograms; tikv does the same four updates.
fn batches(c: &mut Criterion) {
    let telemetry = new_telemetry(true);
    let plain = new_telemetry(false);
    let ours_bound = telemetry.producer().topic("orders");
    let plain_bound = plain.producer().topic("orders");
    let latency = Duration::from_millis(4);
    let records = tikv_counter(&["topic"]);
    let bytes = IntCounterVec::new(Opts::new("bench_bytes_total", "bench"), &["topic"]).unwrap();
    let latencies = tikv_histogram(&["topic"]);
    let sizes = HistogramVec::new(
        HistogramOpts::new("bench_batch_size", "bench")
            .buckets(catalog::PRODUCER_BATCH_SIZE_BUCKETS.to_vec()),
        &["topic"],
    )
    .unwrap();
    let cached = (
        records.with_label_values(&["orders"]),
        bytes.with_label_values(&["orders"]),
        latencies.with_label_values(&["orders"]),
        sizes.with_label_values(&["orders"]),
    );

    let mut group = c.benchmark_group("batch");
    group.bench_function("ours_bound", |b| {
        b.iter(|| ours_bound.record_batch(black_box(10), black_box(1_000), black_box(latency)))
    });
    group.bench_function("ours_bound_no_exemplars", |b| {
        b.iter(|| plain_bound.record_batch(black_box(10), black_box(1_000), black_box(latency)))
    });
    group.bench_function("tikv_cached", |b| {
        b.iter(|| {
            let n = black_box(10u64);
            cached.0.inc_by(n);
            cached.1.inc_by(black_box(1_000));
            cached.2.observe(black_box(latency).as_secs_f64());
            cached.3.observe(n as f64);
        })
    });
    group.bench_function("ours_labels", |b| {
        b.iter(|| {
            telemetry.producer().record_batch(
                black_box("orders"),
                black_box(10),
                black_box(1_000),
                black_box(latency),
            )
        })
    });
    group.bench_function("tikv_labels", |b| {
        b.iter(|| {
            let topic = [black_box("orders")];
            let n = black_box(10u64);
            records.with_label_values(&topic).inc_by(n);
            bytes.with_label_values(&topic).inc_by(black_box(1_000));
            latencies
                .with_label_values(&topic)
                .observe(black_box(latency).as_secs_f64());
            sizes.with_label_values(&topic).observe(n as f64);
        })
    });
    group.finish();
}

// Exemplar capture: one bound counter and one bound histogram per call, with no span, an
// unsampled span and a sampled span current, and with capture off.
fn exemplars(c: &mut Criterion) {
    use opentelemetry::Context;
    use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId};
    use streamhouse_observability::metrics::S3Operation;

    let span = |flags| {
        Context::new().with_remote_span_context(SpanContext::new(
            TraceId::from_bytes([7; 16]),
            SpanId::from_bytes([9; 8]),
            flags,
            false,
            Default::default(),
        ))
    };
    let on = new_telemetry(true);
    let off = new_telemetry(false);
    let latency = Duration::from_millis(40);
    let record = |t: &Telemetry| {
        t.storage()
            .record_s3_request(black_box(S3Operation::Put), black_box(latency), Ok(()))
    };

    let mut group = c.benchmark_group("exemplar");
    group.bench_function("capture_off", |b| b.iter(|| record(&off)));
    group.bench_function("no_span", |b| b.iter(|| record(&on)));
    {
        let _unsampled = span(TraceFlags::default()).attach();
        group.bench_function("unsampled_span", |b| b.iter(|| record(&on)));
    }
    {
        let _sampled = span(TraceFlags::SAMPLED).attach();
        group.bench_function("sampled_span", |b| b.iter(|| record(&on)));
    }
    group.finish();
}

/// Calls `record(thread, i)` `iters` times on each of 2 threads at once; the time reported
/// per iteration is the wall time of one call as each thread sees it under contention.
fn on_two_threads(iters: u64, record: impl Fn(usize, usize) + Sync) -> Duration {
    let start = Barrier::new(2);
    let elapsed: Vec<Duration> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..2)
            .map(|thread| {
                let (start, record) = (&start, &record);
                scope.spawn(move || {
                    start.wait();
                    let began = Instant::now();
                    for i in 0..iters as usize {
                        record(thread, i);
                    }
                    began.elapsed()
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    elapsed.into_iter().max().unwrap_or_default()
}

// A hostile stream of names never seen before, past the cardinality limit, against the same
// calls on series that exist; both from 2 threads, so lock contention shows.
fn overflow(c: &mut Criterion) {
    const LIMIT: usize = 64;
    let telemetry = Telemetry::new(
        TelemetryConfig::default()
            .with_service_name("bench")
            .with_cardinality_limit(LIMIT),
    )
    .expect("telemetry");
    let real: Vec<String> = (0..LIMIT).map(|i| format!("topic-{i}")).collect();
    for name in &real {
        telemetry.consumer().record_records(name, name, 1);
        telemetry
            .producer()
            .record_batch(name, 1, 1, Duration::from_millis(1));
    }
    // 4096 per thread, more than any cache could keep; built outside the measurement.
    let fresh: Vec<Vec<String>> = (0..2)
        .map(|t| (0..4096).map(|i| format!("hostile-{t}-{i}")).collect())
        .collect();
    let latency = Duration::from_millis(4);
    let consumer = telemetry.consumer();
    let producer = telemetry.producer();

    let mut group = c.benchmark_group("overflow_2_threads");
    group.bench_function("labels2_existing", |b| {
        b.iter_custom(|iters| {
            on_two_threads(iters, |_, i| {
                let name = black_box(real[i % LIMIT].as_str());
                consumer.record_records(name, name, 1)
            })
        })
    });
    group.bench_function("labels2_fresh_past_limit", |b| {
        b.iter_custom(|iters| {
            on_two_threads(iters, |t, i| {
                let name = black_box(fresh[t][i % 4096].as_str());
                consumer.record_records(name, name, 1)
            })
        })
    });
    group.bench_function("batch_existing", |b| {
        b.iter_custom(|iters| {
            on_two_threads(iters, |_, i| {
                producer.record_batch(black_box(real[i % LIMIT].as_str()), 10, 1_000, latency)
            })
        })
    });
    group.bench_function("batch_fresh_past_limit", |b| {
        b.iter_custom(|iters| {
            on_two_threads(iters, |t, i| {
                producer.record_batch(black_box(fresh[t][i % 4096].as_str()), 10, 1_000, latency)
            })
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50);
    targets = counters, histograms, batches, exemplars, overflow
}
criterion_main!(benches);
