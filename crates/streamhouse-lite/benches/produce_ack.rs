//! Produce throughput and latency with `STREAMHOUSE_PRODUCE_ACK=memory` and `=flushed`, side
//! by side in one run, over the local store the main job uses by default (files, fsynced),
//! and `flushed` again over a store whose puts take 20 ms, as S3's do (object_store's
//! `ThrottledStore` over memory).
//!
//! Each iteration is one round of 16 concurrent producers each sending 8 requests of 10
//! records to a topic of 4 partitions, through the broker's `produce` (what the HTTP handler
//! calls). Criterion reports the time of a round and its throughput in records; every
//! request's latency is kept and, after criterion, p50 and p99 per mode are printed with the
//! ratios flushed / memory.
//!
//! ```text
//! cargo bench -p streamhouse-lite --bench produce_ack
//! cargo bench -p streamhouse-lite --bench produce_ack -- --warm-up-time 1 --measurement-time 5
//! ```

mod support;

use std::hint::black_box;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use object_store::ObjectStore;
use object_store::memory::InMemory;
use object_store::throttle::{ThrottleConfig, ThrottledStore};
use streamhouse_lite::broker::{Broker, ProduceRecord};
use streamhouse_lite::config::{ProduceAck, StoreLocation};
use streamhouse_lite::server::LiteServer;
use streamhouse_lite::{LiteConfig, store};
use streamhouse_observability::{Telemetry, TelemetryConfig};

const PRODUCERS: usize = 16;
const REQUESTS: usize = 8;
const RECORDS: usize = 10;

fn records() -> Vec<ProduceRecord> {
    support::order_records(RECORDS)
}

/// One server per acknowledgement mode and store.
struct Mode {
    name: &'static str,
    broker: Broker,
    latencies: Arc<Mutex<Vec<Duration>>>,
    _server: LiteServer,
    _telemetry: Telemetry,
    _dir: tempfile::TempDir,
}

/// The fsynced local store over a directory of its own.
fn local(dir: &tempfile::TempDir) -> Arc<dyn ObjectStore> {
    store::open(&StoreLocation::Local(dir.path().to_owned())).expect("local store")
}

/// A store whose puts take 20 ms, as S3's do.
fn s3_like(_: &tempfile::TempDir) -> Arc<dyn ObjectStore> {
    let config = ThrottleConfig {
        wait_put_per_call: Duration::from_millis(20),
        ..ThrottleConfig::default()
    };
    Arc::new(ThrottledStore::new(InMemory::new(), config))
}

fn mode(
    name: &'static str,
    ack: ProduceAck,
    open: fn(&tempfile::TempDir) -> Arc<dyn ObjectStore>,
) -> Mode {
    let dir = tempfile::tempdir().expect("directory");
    let store = open(&dir);
    let telemetry = Telemetry::new(TelemetryConfig::default()).expect("telemetry");
    let config = LiteConfig {
        produce_ack: ack,
        ..LiteConfig::default()
    };
    let server = LiteServer::start_with_store(config, &telemetry, store);
    server.broker().create_topic("bench", 4).expect("topic");
    Mode {
        name,
        broker: server.broker().clone(),
        latencies: Arc::default(),
        _server: server,
        _telemetry: telemetry,
        _dir: dir,
    }
}

/// One round: every producer sends its requests one after another; returns the time taken.
async fn round(mode: &Mode) -> Duration {
    let started = Instant::now();
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|_| {
            let broker = mode.broker.clone();
            let latencies = Arc::clone(&mode.latencies);
            tokio::spawn(async move {
                let mut took = Vec::with_capacity(REQUESTS);
                for _ in 0..REQUESTS {
                    let sent = Instant::now();
                    let answer = broker.produce("bench", records(), sent).await;
                    black_box(answer.expect("produce"));
                    took.push(sent.elapsed());
                }
                latencies.lock().unwrap().extend(took);
            })
        })
        .collect();
    for producer in producers {
        producer.await.expect("producer");
    }
    started.elapsed()
}

/// Segments stored so far: `streamhouse_segment_flushes_total` over all partitions.
fn segment_flushes(telemetry: &Telemetry) -> f64 {
    let name = streamhouse_observability::catalog::SEGMENT_FLUSHES.prometheus_name;
    telemetry
        .render_prometheus()
        .lines()
        .filter(|line| line.starts_with(name))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let _entered = runtime.enter();
    let modes = [
        mode("memory", ProduceAck::Memory, local),
        mode("flushed", ProduceAck::Flushed, local),
        mode("flushed_20ms_puts", ProduceAck::Flushed, s3_like),
    ];
    let mut criterion = Criterion::default().configure_from_args();
    let mut group = criterion.benchmark_group("produce_ack");
    group.throughput(Throughput::Elements(
        (PRODUCERS * REQUESTS * RECORDS) as u64,
    ));
    for mode in &modes {
        group.bench_function(mode.name, |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| runtime.block_on(round(mode)))
                    .sum::<Duration>()
            })
        });
    }
    group.finish();
    criterion.final_summary();
    let mut summary = Vec::new();
    for mode in &modes {
        let mut took = mode.latencies.lock().unwrap().clone();
        if took.is_empty() {
            return;
        }
        took.sort_unstable();
        let (p50, p99) = (quantile(&took, 0.5), quantile(&took, 0.99));
        let flushes = segment_flushes(&mode._telemetry);
        println!(
            "produce_ack/{}: {} requests, p50 {p50:?}, p99 {p99:?}, {flushes} segment puts \
             ({:.1} requests per put)",
            mode.name,
            took.len(),
            took.len() as f64 / flushes.max(1.0)
        );
        summary.push((p50, p99));
    }
    for (i, mode) in modes.iter().enumerate().skip(1) {
        let ratio = |f: fn(&(Duration, Duration)) -> Duration| {
            f(&summary[i]).as_secs_f64() / f(&summary[0]).as_secs_f64()
        };
        println!(
            "produce_ack: {} / memory latency: p50 {:.1}x, p99 {:.1}x",
            mode.name,
            ratio(|s| s.0),
            ratio(|s| s.1)
        );
    }
}
