//! Telemetry overhead on the produce path: the broker's `produce` (what the HTTP handler
//! calls after parsing JSON) with telemetry on and with `OTEL_SDK_DISABLED`-style no-op
//! telemetry, side by side in one run. Segments flush to a store that discards them, so
//! memory stays flat however long criterion runs.
//!
//! Three workloads: the broker's `produce` with one record and with a hundred, and the whole
//! HTTP handler (routing, JSON parsing, produce, JSON answer) with ten, driven in process.
//! After criterion's estimates, a paired run alternates on and off in short rounds and
//! prints the median ratio, which holds up better on a machine shared with other work.
//!
//! ```text
//! cargo bench -p streamhouse-lite --bench produce_overhead
//! ```

use std::fmt;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use axum::body::{Body, Bytes};
use axum::http::Request;
use criterion::{BatchSize, Criterion, Throughput};
use futures::stream::{self, BoxStream, StreamExt};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};
use streamhouse_lite::broker::{Broker, ProduceRecord};
use streamhouse_lite::{LiteConfig, api};
use streamhouse_observability::health::HealthRegistry;
use streamhouse_observability::{Telemetry, TelemetryConfig};
use tower::ServiceExt;

/// Takes every put and keeps nothing; anything else is unsupported.
#[derive(Debug)]
struct DiscardStore;

impl fmt::Display for DiscardStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DiscardStore")
    }
}

fn unsupported() -> object_store::Error {
    object_store::Error::NotSupported {
        source: "the benchmark store only takes puts".into(),
    }
}

#[async_trait]
impl ObjectStore for DiscardStore {
    async fn put_opts(&self, _: &Path, _: PutPayload, _: PutOptions) -> Result<PutResult> {
        Ok(PutResult {
            e_tag: None,
            version: None,
            extensions: Default::default(),
        })
    }

    async fn put_multipart_opts(
        &self,
        _: &Path,
        _: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        Err(unsupported())
    }

    async fn get_opts(&self, _: &Path, _: GetOptions) -> Result<GetResult> {
        Err(unsupported())
    }

    fn delete_stream(
        &self,
        _: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        stream::once(async { Err(unsupported()) }).boxed()
    }

    fn list(&self, _: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        stream::once(async { Err(unsupported()) }).boxed()
    }

    async fn list_with_delimiter(&self, _: Option<&Path>) -> Result<ListResult> {
        Err(unsupported())
    }

    async fn copy_opts(&self, _: &Path, _: &Path, _: CopyOptions) -> Result<()> {
        Err(unsupported())
    }
}

fn records(count: usize) -> Vec<ProduceRecord> {
    (0..count)
        .map(|i| ProduceRecord {
            key: Some(format!("customer-{}", i % 64)),
            value: format!("{{\"order\":{i},\"amount\":1999,\"currency\":\"EUR\"}}"),
            partition: None,
            headers: Default::default(),
        })
        .collect()
}

/// One broker and its telemetry, per configuration.
struct Setup {
    name: &'static str,
    broker: Broker,
    router: axum::Router,
    _telemetry: Telemetry,
    _health: HealthRegistry,
}

fn setups() -> Vec<Setup> {
    [("on", false), ("off", true)]
        .into_iter()
        .map(|(name, disabled)| {
            let telemetry = Telemetry::new(TelemetryConfig::default().with_disabled(disabled))
                .expect("telemetry");
            let health = HealthRegistry::new();
            let broker = Broker::start(
                LiteConfig::default(),
                &telemetry,
                Arc::new(DiscardStore),
                &health,
            );
            broker.create_topic("bench", 8).expect("topic");
            Setup {
                name,
                router: api::router(broker.clone()),
                broker,
                _telemetry: telemetry,
                _health: health,
            }
        })
        .collect()
}

/// A `POST /api/v1/produce/batch` body of `count` records.
fn http_body(count: usize) -> Bytes {
    let records: Vec<serde_json::Value> = records(count)
        .into_iter()
        .map(|r| serde_json::json!({ "key": r.key, "value": r.value }))
        .collect();
    serde_json::to_vec(&serde_json::json!({ "topic": "bench", "records": records }))
        .expect("json")
        .into()
}

async fn post(router: &axum::Router, body: Bytes) {
    let request = Request::post("/api/v1/produce/batch")
        .header("content-type", "application/json")
        .body(Body::from(body))
        .expect("request");
    let response = router.clone().oneshot(request).await.expect("infallible");
    assert!(response.status().is_success());
}

fn produce_overhead(c: &mut Criterion, runtime: &tokio::runtime::Runtime, setups: &[Setup]) {
    for batch in [1usize, 100] {
        let mut group = c.benchmark_group(format!("produce_batch_{batch}"));
        group.throughput(Throughput::Elements(batch as u64));
        let input = records(batch);
        for setup in setups {
            group.bench_function(format!("telemetry_{}", setup.name), |b| {
                b.iter_batched(
                    || input.clone(),
                    |records| {
                        black_box(
                            setup
                                .broker
                                .produce("bench", records, Instant::now())
                                .unwrap(),
                        )
                    },
                    BatchSize::SmallInput,
                )
            });
        }
        group.finish();
    }
    let mut group = c.benchmark_group("http_produce_batch_10");
    group.throughput(Throughput::Elements(10));
    let body = http_body(10);
    for setup in setups {
        group.bench_function(format!("telemetry_{}", setup.name), |b| {
            b.iter(|| runtime.block_on(post(&setup.router, body.clone())))
        });
    }
    group.finish();
}

/// CPU time of the calling thread: unlike wall time, it excludes the time other processes
/// on a shared machine take the core away. `block_on` runs the handler on this thread too.
fn thread_cpu_seconds() -> f64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec; the clock id is a constant Linux knows.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    assert_eq!(rc, 0, "clock_gettime");
    now.tv_sec as f64 + now.tv_nsec as f64 * 1e-9
}

/// Times one side of one round, in seconds.
type Timer<'a> = dyn Fn(&Setup) -> f64 + 'a;

/// Interleaves on and off in short rounds, timing each side by this thread's CPU time, and
/// reports the median of the per-round ratios: on a machine shared with other work, drift
/// hits both sides of each pair alike.
fn paired(runtime: &tokio::runtime::Runtime, setups: &[Setup]) {
    const ROUNDS: usize = 31;
    // About 50 ms per side and round: long enough that scheduler noise averages out.
    let time_broker = |setup: &Setup, batch: usize| {
        let calls = 100_000 / batch.min(50);
        let inputs: Vec<Vec<ProduceRecord>> = (0..calls).map(|_| records(batch)).collect();
        let started = Instant::now();
        for records in inputs {
            black_box(
                setup
                    .broker
                    .produce("bench", records, Instant::now())
                    .unwrap(),
            );
        }
        started.elapsed().as_secs_f64()
    };
    let body = http_body(10);
    let time_http = |setup: &Setup| {
        let started = thread_cpu_seconds();
        runtime.block_on(async {
            for _ in 0..4_000 {
                post(&setup.router, body.clone()).await;
            }
        });
        thread_cpu_seconds() - started
    };
    let workloads: [(&str, &Timer); 3] = [
        ("produce_batch_1", &|s| time_broker(s, 1)),
        ("produce_batch_100", &|s| time_broker(s, 100)),
        ("http_produce_batch_10", &time_http),
    ];
    println!(
        "\npaired rounds ({ROUNDS} rounds, ~50 ms each side, thread CPU time), telemetry on / off:"
    );
    for (name, time) in workloads {
        let mut ratios: Vec<f64> = (0..ROUNDS)
            .map(|round| {
                // Alternate which side goes first.
                let (on, off) = (&setups[0], &setups[1]);
                if round % 2 == 0 {
                    let t_on = time(on);
                    t_on / time(off)
                } else {
                    let t_off = time(off);
                    time(on) / t_off
                }
            })
            .collect();
        ratios.sort_by(f64::total_cmp);
        let median = ratios[ROUNDS / 2];
        println!(
            "  {name}: median time ratio {median:.4} (throughput cost {:+.2}%), quartiles {:.4}..{:.4}",
            (1.0 - 1.0 / median) * 100.0,
            ratios[ROUNDS / 4],
            ratios[3 * ROUNDS / 4]
        );
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let _entered = runtime.enter();
    let setups = setups();
    let mut criterion = Criterion::default().configure_from_args();
    produce_overhead(&mut criterion, &runtime, &setups);
    criterion.final_summary();
    if std::env::args().any(|a| a == "--bench") {
        paired(&runtime, &setups);
    }
}
