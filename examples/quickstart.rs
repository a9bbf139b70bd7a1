//! Initialise telemetry, record a sample of every catalog metric, and serve `/metrics` on
//! `127.0.0.1:9464` (`OTEL_EXPORTER_PROMETHEUS_HOST`/`_PORT` or `STREAMHOUSE_METRICS_ADDR`
//! override) until Ctrl-C; with `STREAMHOUSE_METRICS_BEARER_TOKEN` set, only for scrapers
//! that send it. (TLS and transport limits are the main job's, `unified_server`.)
//!
//! ```text
//! cargo run --example quickstart
//! curl -s http://127.0.0.1:9464/metrics
//! ```

use std::error::Error;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use streamhouse_observability::http::{BearerAuthLayer, metrics_router};
use streamhouse_observability::metrics::{ConsumerError, ProducerError, S3Error, S3Operation};
use streamhouse_observability::{Telemetry, TelemetryConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let config = TelemetryConfig::from_env()?;
    let addr = config.metrics_addr;
    let token = config.admin.bearer_token.clone();
    let telemetry = Telemetry::init_global(config)?;

    // Producer: a bound handle for the hot path, and one error.
    let orders = telemetry.producer().topic("orders");
    orders.record_batch(100, 12_800, Duration::from_millis(3));
    orders.record_batch(20, 2_560, Duration::from_millis(40));
    orders.record_error(ProducerError::RecordTooLarge);

    // Consumer: records, a rebalance, an error, and lag read from state we own.
    let consumer = telemetry.consumer();
    consumer.group("orders", "analytics").record_records(90);
    consumer.record_rebalance("analytics");
    consumer.record_error("orders", "analytics", ConsumerError::OffsetOutOfRange);
    let committed = Arc::new(AtomicU64::new(90));
    let high_watermark = 120;
    let lag_state = Arc::clone(&committed);
    let _lag = consumer.observe_lag(move |report| {
        let lag = high_watermark - lag_state.load(Ordering::Relaxed);
        report.lag("orders", 0, "analytics", lag);
    });

    // Storage: one segment through the write path, object store calls, the cache.
    let storage = telemetry.storage();
    let partition = storage.partition("orders", 0);
    partition.record_segment_write();
    partition.record_segment_flush();
    storage.record_s3_request(S3Operation::Put, Duration::from_millis(45), Ok(()));
    storage.record_s3_request(
        S3Operation::Get,
        Duration::from_millis(12),
        Err(S3Error::NotFound),
    );
    storage.record_cache_miss();
    storage.record_cache_hit();
    let _cache = storage.observe_cache_size(|| 4 * 1024 * 1024);
    let _unflushed = storage.observe_unflushed_bytes(|| 64 * 1024);

    // System state.
    let system = telemetry.system();
    let _connections = system.observe_connections(|| 1);
    let _topics = system.observe_topics(|| 1);
    let _partitions = system.observe_partitions(|report| report.partitions("orders", 3));
    let _agents = system.observe_agents(|| 1);

    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!(
        "serving http://{}/metrics (Ctrl-C to stop)",
        listener.local_addr()?
    );
    let app = match token {
        Some(token) => metrics_router(&telemetry).layer(BearerAuthLayer::new(token)),
        None => metrics_router(&telemetry),
    };
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    telemetry.shutdown()?;
    Ok(())
}
