//! Hot-path recording cost: our recorders and the raw OTel SDK against the tikv
//! `prometheus` crate, side by side in one group per instrument kind; recording past the
//! cardinality limit from 2 threads next to recording existing series; and both cores
//! recording on one bound counter and one bound histogram (`contention`).
//!
//! After criterion's groups, paired rounds hold the targets against noise: each round times
//! both sides of a pair by this thread's CPU time, which side goes first alternates, and the
//! table gives the median of the per-round ratios (or differences) with quartiles.
//!
//! ```text
//! cargo bench -p streamhouse-observability --bench record              # criterion + paired
//! cargo bench -p streamhouse-observability --bench record -- paired    # paired rounds only
//! PAIRED_ROUNDS=7 cargo bench -p streamhouse-observability --bench record -- paired
//! ```

use std::hint::black_box;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use criterion::Criterion;
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

/// The SDK's bound histogram our `BoundHistogram` wraps, with the 11 producer buckets: named
/// like the catalog entry, on a meter of its own, so the catalog view applies.
fn sdk_bound_histogram(telemetry: &Telemetry) -> impl Fn(f64) + Sync + use<> {
    let meter = telemetry.meter_provider().meter("bench");
    let bound = meter
        .f64_histogram(catalog::PRODUCER_LATENCY.otel_name)
        .build()
        .bind(&[KeyValue::new("topic", "orders")]);
    move |value| bound.record(value)
}

/// Benchmarks `record` alone and on 2 threads at once (same handle, barrier start).
fn alone_and_on_two_threads(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    record: impl Fn() + Sync,
) {
    group.bench_function(format!("{name}_1_thread"), |b| b.iter(&record));
    group.bench_function(format!("{name}_2_threads"), |b| {
        b.iter_custom(|iters| on_two_threads(iters, |_, _| record()))
    });
}

// Both cores on ONE bound counter and ONE bound histogram, next to each alone: the 2-thread
// figure over the 1-thread one is what the shared cache lines (and the SDK's per-series
// histogram mutex) cost.
fn contention(c: &mut Criterion) {
    let telemetry = new_telemetry(true);
    let ours_counter = telemetry.consumer().group("orders", "analytics");
    let sdk_histogram = sdk_bound_histogram(&telemetry);
    let tikv_counter = tikv_counter(&["topic"]).with_label_values(&["orders"]);
    let tikv_histogram = tikv_histogram(&["topic"]).with_label_values(&["orders"]);

    let mut group = c.benchmark_group("contention");
    alone_and_on_two_threads(&mut group, "counter_ours", || {
        ours_counter.record_records(black_box(1))
    });
    alone_and_on_two_threads(&mut group, "counter_tikv_cached", || {
        tikv_counter.inc_by(black_box(1))
    });
    alone_and_on_two_threads(&mut group, "histogram_sdk_bound", || {
        sdk_histogram(black_box(LATENCY))
    });
    alone_and_on_two_threads(&mut group, "histogram_tikv_cached", || {
        tikv_histogram.observe(black_box(LATENCY))
    });
    group.finish();
}

/// Paired rounds per comparison; `PAIRED_ROUNDS` overrides the default of 31.
fn paired_rounds() -> usize {
    std::env::var("PAIRED_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n: &usize| n > 0)
        .unwrap_or(31)
}

/// About this much thread CPU time per side and round: long enough for scheduler noise to
/// average out, short enough that drift hits both sides of a round alike.
const ROUND_NS: f64 = 30e6;

/// CPU time of the calling thread in ns: unlike wall time, it leaves out the time other
/// processes on a shared machine take the core away. (The crate has no `libc` dependency;
/// the C library std links is called directly, with the 64-bit Linux `timespec`.)
#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
fn thread_cpu_ns() -> u64 {
    #[repr(C)]
    struct Timespec {
        tv_sec: i64,
        tv_nsec: i64,
    }
    unsafe extern "C" {
        fn clock_gettime(clock: i32, now: *mut Timespec) -> i32;
    }
    const CLOCK_THREAD_CPUTIME_ID: i32 = 3;
    let mut now = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec of the platform's layout; the clock id is a
    // constant Linux knows.
    let rc = unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &mut now) };
    assert_eq!(rc, 0, "clock_gettime");
    now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
}

/// Wall time elsewhere: noisier, still paired.
#[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
fn thread_cpu_ns() -> u64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// One side of one round.
#[derive(Clone, Copy)]
struct Timed {
    /// Mean over threads of CPU ns per call.
    ns: f64,
    /// The least any thread was on a core, as a share of its wall time: threads that started
    /// together and each ran nearly all along overlapped, so they did contend.
    on_cpu: f64,
}

/// Calls `record` `calls` times on each of `threads` threads (barrier start, `context`
/// current on each).
fn cpu_ns_per_call(
    threads: usize,
    calls: u64,
    context: Option<&opentelemetry::Context>,
    record: &(impl Fn() + Sync),
) -> Timed {
    let run = || {
        let _current = context.map(|c| c.clone().attach());
        let (wall, started) = (Instant::now(), thread_cpu_ns());
        for _ in 0..calls {
            record();
        }
        let cpu = (thread_cpu_ns() - started) as f64;
        Timed {
            ns: cpu / calls as f64,
            on_cpu: cpu / wall.elapsed().as_nanos().max(1) as f64,
        }
    };
    if threads == 1 {
        return run();
    }
    let start = Barrier::new(threads);
    let per_thread: Vec<Timed> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    start.wait();
                    run()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("recording thread"))
            .collect()
    });
    Timed {
        ns: per_thread.iter().map(|t| t.ns).sum::<f64>() / threads as f64,
        on_cpu: per_thread.iter().map(|t| t.on_cpu).fold(1.0, f64::min),
    }
}

/// One side of a pair. The closure, boxed once per side, takes the calls per thread; the
/// loop inside is monomorphic, so there is no indirect call per recording.
struct Side<'a> {
    threads: usize,
    run: Box<dyn Fn(u64) -> Timed + 'a>,
}

fn side<'a>(
    threads: usize,
    context: Option<opentelemetry::Context>,
    record: impl Fn() + Sync + 'a,
) -> Side<'a> {
    Side {
        threads,
        run: Box::new(move |calls| cpu_ns_per_call(threads, calls, context.as_ref(), &record)),
    }
}

/// A 2-thread side whose threads were off a core for more than this share of a round did
/// not contend all along; such rounds are left out while enough others remain.
const MIN_ON_CPU: f64 = 0.9;

/// How a pair is read.
enum Compare {
    /// `a / b`, against an upper bound if there is a target.
    Ratio(Option<f64>),
    /// `(a - b) / instruments` in ns, against an upper bound if there is a target.
    PerInstrument(f64, Option<f64>),
}

/// Two sides timed in alternating order, round after round.
struct Pair<'a> {
    name: &'static str,
    a: Side<'a>,
    b: Side<'a>,
    compare: Compare,
}

/// Lower quartile, median and upper quartile.
fn quartiles(mut values: Vec<f64>) -> (f64, f64, f64) {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    (values[n / 4], values[n / 2], values[(3 * n) / 4])
}

fn run_pair(pair: &Pair<'_>, rounds: usize) {
    // Warms both sides up and sizes a round so the slower one takes about ROUND_NS.
    const PROBE: u64 = 20_000;
    let slower = ((pair.a.run)(PROBE).ns)
        .max((pair.b.run)(PROBE).ns)
        .max(0.1);
    let calls = ((ROUND_NS / slower) as u64).clamp(PROBE, 200_000_000);
    let (mut a, mut b) = (Vec::with_capacity(rounds), Vec::with_capacity(rounds));
    for round in 0..rounds {
        let (ta, tb) = if round % 2 == 0 {
            let ta = (pair.a.run)(calls);
            (ta, (pair.b.run)(calls))
        } else {
            let tb = (pair.b.run)(calls);
            ((pair.a.run)(calls), tb)
        };
        a.push(ta);
        b.push(tb);
    }
    let contends = |side: &Side<'_>, t: &Timed| side.threads == 1 || t.on_cpu >= MIN_ON_CPU;
    let clean: Vec<bool> = a
        .iter()
        .zip(&b)
        .map(|(ta, tb)| contends(&pair.a, ta) && contends(&pair.b, tb))
        .collect();
    let kept = clean.iter().filter(|&&c| c).count();
    let (a, b): (Vec<f64>, Vec<f64>) = a
        .iter()
        .zip(&b)
        .zip(&clean)
        .filter(|&(_, &c)| c || kept < 3.min(rounds))
        .map(|((ta, tb), _)| (ta.ns, tb.ns))
        .unzip();
    let rounds_read = match (kept, pair.a.threads.max(pair.b.threads)) {
        (_, 1) => String::new(),
        (kept, _) if kept >= 3.min(rounds) => format!("{kept}/{rounds}"),
        (kept, _) => format!("all ({kept} clean)"),
    };
    let per_round = |f: &dyn Fn(f64, f64) -> f64| -> Vec<f64> {
        a.iter().zip(&b).map(|(&a, &b)| f(a, b)).collect()
    };
    let (reading, verdict) = match pair.compare {
        Compare::Ratio(target) => {
            let (q1, median, q3) = quartiles(per_round(&|a, b| a / b));
            (
                format!("{median:6.3}x ({q1:.3}..{q3:.3})"),
                target.map(|t| (format!("<= {t}x"), median <= t)),
            )
        }
        Compare::PerInstrument(instruments, target) => {
            let (q1, median, q3) = quartiles(per_round(&|a, b| (a - b) / instruments));
            (
                format!("{median:+6.1} ns ({q1:+.1}..{q3:+.1})"),
                target.map(|t| (format!("<= +{t} ns"), median <= t)),
            )
        }
    };
    let (target, met) = match verdict {
        Some((target, true)) => (target, "met"),
        Some((target, false)) => (target, "NOT met"),
        None => (String::new(), ""),
    };
    println!(
        "{:<66} {:>8.2} {:>8.2}  {reading:<27} {target:<11} {met:<8} {rounds_read}",
        pair.name,
        quartiles(a).1,
        quartiles(b).1
    );
}

/// Paired, interleaved rounds for the recording targets and for contention.
fn paired() {
    use opentelemetry::Context;
    use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId};
    use streamhouse_observability::metrics::S3Operation;

    let on = new_telemetry(true);
    let off = new_telemetry(false);
    let ours_counter = on.consumer().group("orders", "analytics");
    let sdk_histogram = sdk_bound_histogram(&on);
    let sdk_counter = on
        .meter_provider()
        .meter("bench")
        .u64_counter("bench.counter")
        .build()
        .bind(&[KeyValue::new("topic", "orders")]);
    let tikv_counter = tikv_counter(&["topic"]).with_label_values(&["orders"]);
    let tikv_observe = tikv_histogram(&["topic"]).with_label_values(&["orders"]);
    let tikv_labels2 = self::tikv_counter(&["topic", "consumer_group"]);
    let sampled = Context::new().with_remote_span_context(SpanContext::new(
        TraceId::from_bytes([7; 16]),
        SpanId::from_bytes([9; 8]),
        TraceFlags::SAMPLED,
        false,
        Default::default(),
    ));
    let s3_latency = Duration::from_millis(40);
    let s3_request = |t: &Telemetry| {
        t.storage()
            .record_s3_request(black_box(S3Operation::Put), black_box(s3_latency), Ok(()))
    };
    let ours_counter = || ours_counter.record_records(black_box(1));
    let sdk_counter = || sdk_counter.add(black_box(1));
    let tikv_counter = || tikv_counter.inc_by(black_box(1));
    let sdk_histogram = || sdk_histogram(black_box(LATENCY));
    let tikv_histogram = || tikv_observe.observe(black_box(LATENCY));

    let pairs = [
        Pair {
            name: "bound counter: ours (record_records) / tikv cached",
            a: side(1, None, ours_counter),
            b: side(1, None, tikv_counter),
            compare: Compare::Ratio(Some(2.0)),
        },
        Pair {
            name: "bound counter: SDK bound (ours wraps it) / tikv cached",
            a: side(1, None, sdk_counter),
            b: side(1, None, tikv_counter),
            compare: Compare::Ratio(None),
        },
        Pair {
            name: "bound histogram: SDK bound (ours wraps it) / tikv cached",
            a: side(1, None, sdk_histogram),
            b: side(1, None, tikv_histogram),
            compare: Compare::Ratio(Some(2.0)),
        },
        Pair {
            name: "bound counter + histogram: ours (record_s3_request) / tikv cached",
            a: side(1, None, || s3_request(&on)),
            b: side(1, None, || {
                tikv_counter();
                tikv_observe.observe(black_box(s3_latency).as_secs_f64())
            }),
            compare: Compare::Ratio(Some(2.0)),
        },
        Pair {
            name: "label values per call, 2 labels: ours / tikv with_label_values",
            a: side(1, None, || {
                on.consumer()
                    .record_records(black_box("orders"), black_box("analytics"), 1)
            }),
            b: side(1, None, || {
                tikv_labels2
                    .with_label_values(&[black_box("orders"), black_box("analytics")])
                    .inc()
            }),
            compare: Compare::Ratio(Some(1.0)),
        },
        Pair {
            name: "sampled exemplar, per instrument: sampled span - capture off",
            a: side(1, Some(sampled.clone()), || s3_request(&on)),
            b: side(1, Some(sampled.clone()), || s3_request(&off)),
            compare: Compare::PerInstrument(2.0, Some(15.0)),
        },
        Pair {
            name: "exemplar capture, no span, per instrument: on - off",
            a: side(1, None, || s3_request(&on)),
            b: side(1, None, || s3_request(&off)),
            compare: Compare::PerInstrument(2.0, None),
        },
        Pair {
            name: "contention, bound counter, ours: 2 threads / 1 thread",
            a: side(2, None, ours_counter),
            b: side(1, None, ours_counter),
            compare: Compare::Ratio(None),
        },
        Pair {
            name: "contention, bound counter, tikv cached: 2 threads / 1 thread",
            a: side(2, None, tikv_counter),
            b: side(1, None, tikv_counter),
            compare: Compare::Ratio(None),
        },
        Pair {
            name: "contention, bound histogram, SDK bound: 2 threads / 1 thread",
            a: side(2, None, sdk_histogram),
            b: side(1, None, sdk_histogram),
            compare: Compare::Ratio(None),
        },
        Pair {
            name: "contention, bound histogram, tikv cached: 2 threads / 1 thread",
            a: side(2, None, tikv_histogram),
            b: side(1, None, tikv_histogram),
            compare: Compare::Ratio(None),
        },
        Pair {
            name: "contention, 2 threads, bound counter: ours / tikv cached",
            a: side(2, None, ours_counter),
            b: side(2, None, tikv_counter),
            compare: Compare::Ratio(None),
        },
        Pair {
            name: "contention, 2 threads, bound histogram: SDK bound / tikv cached",
            a: side(2, None, sdk_histogram),
            b: side(2, None, tikv_histogram),
            compare: Compare::Ratio(None),
        },
    ];

    let rounds = paired_rounds();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "\npaired rounds: {rounds} rounds, ~{} ms of thread CPU a side, which side goes first \
         alternates; median (quartiles) of the per-round values; load average {}",
        ROUND_NS / 1e6,
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "(2-thread sides: the mean of both threads' CPU ns per call; they contend only while \
         both cores are free, so rounds where a thread was off its core for over {:.0}% of \
         its wall time are left out while 3 others remain: \"rounds\" says how many were kept)",
        (1.0 - MIN_ON_CPU) * 100.0
    );
    println!(
        "{:<66} {:>8} {:>8}  {:<27} {:<11} {:<8} rounds",
        "pair (A / B)", "A ns", "B ns", "median (quartiles)", "target", "verdict"
    );
    for pair in &pairs {
        run_pair(pair, rounds);
    }
}

/// Criterion options that take a value, so the next argument is not a filter.
const VALUE_FLAGS: &[&str] = &[
    "-c",
    "--color",
    "-s",
    "--save-baseline",
    "-b",
    "--baseline",
    "--baseline-lenient",
    "--format",
    "--profile-time",
    "--load-baseline",
    "--sample-size",
    "--warm-up-time",
    "--measurement-time",
    "--nresamples",
    "--noise-threshold",
    "--confidence-level",
    "--significance-level",
    "--plotting-backend",
    "--output-format",
];

/// The paired rounds run in a `cargo bench` run without a filter, or with the filter
/// `paired` (which matches no criterion benchmark, so only they run).
fn paired_selected() -> bool {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == "--bench") {
        return false;
    }
    let mut filters = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        if VALUE_FLAGS.contains(&arg.as_str()) {
            args.next();
        } else if !arg.starts_with('-') {
            filters.push(arg.as_str());
        }
    }
    filters.is_empty() || filters.contains(&"paired")
}

fn main() {
    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50)
        .configure_from_args();
    counters(&mut criterion);
    histograms(&mut criterion);
    batches(&mut criterion);
    exemplars(&mut criterion);
    overflow(&mut criterion);
    contention(&mut criterion);
    criterion.final_summary();
    if paired_selected() {
        paired();
    }
}
