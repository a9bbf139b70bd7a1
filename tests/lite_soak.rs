//! The short form of `scripts/soak`: the main job, as a child process with its load generator
//! and small bounds, sampled every 5 s for 60 s. Resident memory must stay within
//!
//!   base + 1.5 x (segment cache bound + unflushed-bytes budget
//!                 + largest request body x peak connections open)
//!
//! and level off (grow by less than a tenth of that over the last third of the run), and the
//! segment cache must fill towards its bound without passing it, so the bound is what held.

mod support;

use std::time::{Duration, Instant};

use support::process::{MainJob, sample_sum};

const RUN: Duration = Duration::from_secs(60);
const INTERVAL: Duration = Duration::from_secs(5);
/// Small enough for the load generator to fill within the run.
const CACHE_MAX: u64 = 2 << 20;
const UNFLUSHED_MAX: u64 = 8 << 20;
const BODY_MAX: u64 = 256 << 10;
/// What the job holds before any bound comes into play: the debug build is about 23 MiB
/// idle (runtime, telemetry SDK, listeners, debug code); the rest is allocator slack (an arena
/// per worker thread) and the load generator's own client in the same process.
const BASE: u64 = 48 << 20;

struct Sample {
    at: Duration,
    rss: u64,
    cache: u64,
    connections: u64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_levels_off_within_the_bounds_under_load() {
    let store = tempfile::tempdir().expect("store directory");
    let store_path = store.path().to_str().expect("utf-8 path").to_owned();
    let (cache, unflushed, body) = (
        CACHE_MAX.to_string(),
        UNFLUSHED_MAX.to_string(),
        BODY_MAX.to_string(),
    );
    let mut job = MainJob::spawn(&[
        ("STREAMHOUSE_OBJECT_STORE", &store_path),
        ("STREAMHOUSE_CACHE_MAX_BYTES", &cache),
        ("STREAMHOUSE_MAX_UNFLUSHED_BYTES", &unflushed),
        ("STREAMHOUSE_MAX_BODY_BYTES", &body),
    ]);
    let client = support::http_client(Duration::from_secs(10));
    job.wait_live(&client, Duration::from_secs(30)).await;

    let start = Instant::now();
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + INTERVAL, INTERVAL);
    let mut samples = Vec::new();
    while start.elapsed() < RUN {
        ticks.tick().await;
        let metrics = job.metrics(&client).await;
        let gauge = |name| sample_sum(&metrics, name, &[]).unwrap_or(0.0) as u64;
        samples.push(Sample {
            at: start.elapsed(),
            rss: job.rss_bytes(),
            cache: gauge("streamhouse_cache_size_bytes"),
            connections: gauge("streamhouse_connections_active"),
        });
    }

    let peak_connections = samples.iter().map(|s| s.connections).max().unwrap_or(0);
    let bounds = CACHE_MAX + UNFLUSHED_MAX + BODY_MAX * peak_connections;
    let limit = BASE + bounds * 3 / 2;
    let curve: Vec<String> = samples
        .iter()
        .map(|s| {
            format!(
                "{:>3} s  RSS {:>6.1} MiB  cache {:>5.2} MiB  connections {}",
                s.at.as_secs(),
                s.rss as f64 / 1_048_576.0,
                s.cache as f64 / 1_048_576.0,
                s.connections
            )
        })
        .collect();
    let context = format!(
        "limit {:.1} MiB; curve:\n{}\njob log:\n{}",
        limit as f64 / 1_048_576.0,
        curve.join("\n"),
        job.log_tail()
    );
    println!("{}", curve.join("\n"));
    let peak = samples.iter().map(|s| s.rss).max().expect("samples");
    assert!(peak <= limit, "peak RSS {peak} over the limit; {context}");
    let last_third = &samples[samples.len() - samples.len() / 3 - 1..];
    let late_growth = last_third.iter().map(|s| s.rss).max().expect("samples") - last_third[0].rss;
    assert!(
        late_growth <= limit / 10,
        "RSS grew {late_growth} bytes in the last third of the run; {context}"
    );
    assert!(
        samples.iter().all(|s| s.cache <= CACHE_MAX),
        "the cache passed its bound; {context}"
    );
    let filled = samples.iter().map(|s| s.cache).max().unwrap_or(0);
    assert!(
        filled >= CACHE_MAX * 3 / 4,
        "the load never brought the cache near its bound ({filled} bytes): the run proves nothing; {context}"
    );
}
