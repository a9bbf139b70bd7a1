//! Telemetry overhead on the produce path: the broker's `produce` (what the HTTP handler
//! calls after parsing JSON) with telemetry on and with `OTEL_SDK_DISABLED`-style no-op
//! telemetry, side by side in one run. Segments flush to a store that discards them, so
//! memory stays flat however long criterion runs.
//!
//! Four workloads: the broker's `produce` with one record and with a hundred, the whole
//! HTTP handler (routing, JSON parsing, produce, JSON answer) with ten, driven in process,
//! and the real path: the server's API listener (accept loop, HTTP/1.1, the SDK's HTTP
//! layer, request deadline, handler) on a loopback TCP port, sent the same ten records by a
//! reqwest client over a kept-alive connection. After criterion's estimates, a paired run
//! alternates on and off in short rounds and prints the median ratio, which holds up better
//! on a machine shared with other work.
//!
//! ```text
//! cargo bench -p streamhouse-lite --bench produce_overhead            # criterion + paired
//! cargo bench -p streamhouse-lite --bench produce_overhead -- nothing # paired rounds only
//! PAIRED_ROUNDS=7 cargo bench -p streamhouse-lite --bench produce_overhead -- nothing
//! ```

mod support;

use std::fmt;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

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
use streamhouse_lite::server::LiteServer;
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
    support::order_records(count)
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

/// One server on a loopback port and a client kept connected to it, per configuration.
struct Loopback {
    name: &'static str,
    url: String,
    client: reqwest::Client,
    _server: LiteServer,
    _telemetry: Telemetry,
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// Starts the server's API listener on `127.0.0.1:0` on `runtime`, telemetry on and off.
fn loopbacks(runtime: &tokio::runtime::Runtime) -> Vec<Loopback> {
    [("on", false), ("off", true)]
        .into_iter()
        .map(|(name, disabled)| {
            let telemetry = Telemetry::new(TelemetryConfig::default().with_disabled(disabled))
                .expect("telemetry");
            // Criterion leaves one side's connection idle while it measures the other.
            let config = LiteConfig {
                header_read_timeout: Duration::from_secs(600),
                ..LiteConfig::default()
            };
            let server = LiteServer::start_with_store(config, &telemetry, Arc::new(DiscardStore));
            server.broker().create_topic("bench", 8).expect("topic");
            let listener = runtime
                .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
                .expect("loopback listener");
            let url = format!(
                "http://{}/api/v1/produce/batch",
                listener.local_addr().expect("address")
            );
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let serving = server.clone();
            runtime.spawn(async move {
                let shutdown = async {
                    let _ = stopped.await;
                };
                serving.serve_api(listener, shutdown).await
            });
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .pool_idle_timeout(Duration::from_secs(300))
                .build()
                .expect("client");
            Loopback {
                name,
                url,
                client,
                _server: server,
                _telemetry: telemetry,
                _stop: stop,
            }
        })
        .collect()
}

/// Sends the batch over the kept-alive connection and reads the whole answer, so the
/// connection goes back to the pool.
async fn post_loopback(loopback: &Loopback, body: Bytes) {
    let response = loopback
        .client
        .post(&loopback.url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("loopback request");
    assert!(response.status().is_success(), "{}", response.status());
    black_box(response.bytes().await.expect("loopback answer"));
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

fn produce_overhead(
    c: &mut Criterion,
    runtime: &tokio::runtime::Runtime,
    setups: &[Setup],
    client: &tokio::runtime::Runtime,
    loopbacks: &[Loopback],
) {
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
                            runtime
                                .block_on(setup.broker.produce("bench", records, Instant::now()))
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
    let mut group = c.benchmark_group("http_loopback_produce_batch_10");
    group.throughput(Throughput::Elements(10));
    for loopback in loopbacks {
        group.bench_function(format!("telemetry_{}", loopback.name), |b| {
            b.iter_custom(|iters| {
                client.block_on(async {
                    let started = Instant::now();
                    for _ in 0..iters {
                        post_loopback(loopback, body.clone()).await;
                    }
                    started.elapsed()
                })
            })
        });
    }
    group.finish();
}

/// CPU time of the calling thread: unlike wall time, it excludes the time other processes
/// on a shared machine take the core away. `block_on` runs the handler on this thread too.
fn thread_cpu_seconds() -> f64 {
    cpu_seconds(libc::CLOCK_THREAD_CPUTIME_ID)
}

/// CPU time of every thread of this process: the loopback request spans the client's
/// thread and the server's worker.
fn process_cpu_seconds() -> f64 {
    cpu_seconds(libc::CLOCK_PROCESS_CPUTIME_ID)
}

fn cpu_seconds(clock: libc::clockid_t) -> f64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec; the clock id is a constant Linux knows.
    let rc = unsafe { libc::clock_gettime(clock, &mut now) };
    assert_eq!(rc, 0, "clock_gettime");
    now.tv_sec as f64 + now.tv_nsec as f64 * 1e-9
}

/// What one side of one round took, in seconds: the timed figure, and the whole process's
/// CPU time for a workload that spans threads.
#[derive(Clone, Copy)]
struct Took {
    timed: f64,
    process_cpu: Option<f64>,
}

/// Times one side (0 = telemetry on, 1 = off) of one round.
type Timer<'a> = dyn Fn(usize) -> Took + 'a;

/// Rounds per paired workload; `PAIRED_ROUNDS` overrides the default of 31.
fn paired_rounds() -> usize {
    std::env::var("PAIRED_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n: &usize| n > 0)
        .unwrap_or(31)
}

/// Lower quartile, median and upper quartile.
fn quartiles(mut values: Vec<f64>) -> (f64, f64, f64) {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    (values[n / 4], values[n / 2], values[(3 * n) / 4])
}

/// Interleaves on and off in short rounds, timing each side by this thread's CPU time (wall
/// clock and the process's CPU time for the loopback workload), and reports the median of
/// the per-round ratios: on a machine shared with other work, drift hits both sides of each
/// pair alike.
fn paired(
    runtime: &tokio::runtime::Runtime,
    setups: &[Setup],
    client: &tokio::runtime::Runtime,
    loopbacks: &[Loopback],
) {
    let rounds = paired_rounds();
    // About 50 ms per side and round: long enough that scheduler noise averages out.
    let time_broker = |side: usize, batch: usize| {
        let calls = 100_000 / batch.min(50);
        let inputs: Vec<Vec<ProduceRecord>> = (0..calls).map(|_| records(batch)).collect();
        let started = thread_cpu_seconds();
        for records in inputs {
            black_box(
                runtime
                    .block_on(
                        setups[side]
                            .broker
                            .produce("bench", records, Instant::now()),
                    )
                    .unwrap(),
            );
        }
        Took {
            timed: thread_cpu_seconds() - started,
            process_cpu: None,
        }
    };
    let body = http_body(10);
    let time_http = |side: usize| {
        let started = thread_cpu_seconds();
        runtime.block_on(async {
            for _ in 0..4_000 {
                post(&setups[side].router, body.clone()).await;
            }
        });
        Took {
            timed: thread_cpu_seconds() - started,
            process_cpu: None,
        }
    };
    // The request crosses threads (client here, server on the runtime's worker), so one
    // thread's CPU time misses most of it: wall clock, with the process's CPU time beside.
    let time_loopback = |side: usize| {
        let (wall, cpu) = (Instant::now(), process_cpu_seconds());
        client.block_on(async {
            for _ in 0..500 {
                post_loopback(&loopbacks[side], body.clone()).await;
            }
        });
        Took {
            timed: wall.elapsed().as_secs_f64(),
            process_cpu: Some(process_cpu_seconds() - cpu),
        }
    };
    let workloads: [(&str, &Timer); 4] = [
        ("produce_batch_1", &|side| time_broker(side, 1)),
        ("produce_batch_100", &|side| time_broker(side, 100)),
        ("http_produce_batch_10", &time_http),
        ("http_loopback_produce_batch_10", &time_loopback),
    ];
    println!(
        "\npaired rounds ({rounds} rounds, ~50 ms each side, thread CPU time unless said), \
         telemetry on / off:"
    );
    let mut medians = Vec::new();
    for (name, time) in workloads {
        let (mut ratios, mut cpu_ratios) = (Vec::new(), Vec::new());
        for round in 0..rounds {
            // Alternate which side goes first.
            let (on, off) = if round % 2 == 0 {
                let on = time(0);
                (on, time(1))
            } else {
                let off = time(1);
                (time(0), off)
            };
            ratios.push(on.timed / off.timed);
            if let (Some(on), Some(off)) = (on.process_cpu, off.process_cpu) {
                cpu_ratios.push(on / off);
            }
        }
        let (q1, median, q3) = quartiles(ratios);
        let clock = match cpu_ratios.is_empty() {
            true => "",
            false => " (wall clock)",
        };
        println!(
            "  {name}: median time ratio{clock} {median:.4} (throughput cost {:+.2}%), \
             quartiles {q1:.4}..{q3:.4}",
            (1.0 - 1.0 / median) * 100.0,
        );
        if !cpu_ratios.is_empty() {
            let (q1, cpu, q3) = quartiles(cpu_ratios);
            medians.push(("process CPU", cpu));
            println!(
                "  {name}: median process CPU ratio {cpu:.4} (cost {:+.2}%), quartiles \
                 {q1:.4}..{q3:.4}",
                (1.0 - 1.0 / cpu) * 100.0,
            );
        }
        medians.push((name, median));
    }
    let cost = |name: &str| {
        medians
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(f64::NAN, |(_, m)| (1.0 - 1.0 / m) * 100.0)
    };
    println!(
        "  10-record produce, telemetry cost (target <= 1%): over loopback HTTP {:+.2}% by wall \
         clock, {:+.2}% by process CPU; through the handler in process {:+.2}%",
        cost("http_loopback_produce_batch_10"),
        cost("process CPU"),
        cost("http_produce_batch_10"),
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let _entered = runtime.enter();
    // The loopback client runs on the bench's own thread; the server on `runtime`'s worker.
    let client = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("client runtime");
    let setups = setups();
    let loopbacks = loopbacks(&runtime);
    let mut criterion = Criterion::default().configure_from_args();
    produce_overhead(&mut criterion, &runtime, &setups, &client, &loopbacks);
    criterion.final_summary();
    if std::env::args().any(|a| a == "--bench") {
        paired(&runtime, &setups, &client, &loopbacks);
    }
}
