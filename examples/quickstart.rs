//! Initialise telemetry, record a sample of every catalog metric, and serve `/metrics` and
//! `/health*` on the SDK's own admin listener, in one call, until Ctrl-C.
//!
//! Everything the admin listener offers comes from the environment: the address
//! (`OTEL_EXPORTER_PROMETHEUS_HOST`/`_PORT`, or `STREAMHOUSE_METRICS_ADDR`; default
//! `127.0.0.1:9464`), a bearer token (`STREAMHOUSE_METRICS_BEARER_TOKEN`), HTTPS
//! (`STREAMHOUSE_METRICS_TLS_CERT`/`_KEY`, reloaded when the files change) and transport
//! limits (`STREAMHOUSE_METRICS_*`; see `streamhouse_observability::config::admin`).
//!
//! ```text
//! cargo run --example quickstart
//! curl -s http://127.0.0.1:9464/metrics
//! ```

use std::error::Error;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use streamhouse_observability::health::HealthRegistry;
use streamhouse_observability::metrics::{ConsumerError, ProducerError, S3Error, S3Operation};
use streamhouse_observability::serve::AdminServer;
use streamhouse_observability::{Telemetry, TelemetryConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let telemetry = Telemetry::init_global(TelemetryConfig::from_env()?)?;
    // Readiness checks would be registered here; STREAMHOUSE_HEALTH_* bound them.
    let health = HealthRegistry::from_config(&telemetry.config().admin);

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

    // `/metrics` and `/health*`, with the token, TLS and limits the environment sets.
    let admin = AdminServer::start(&telemetry, &health).await?;
    println!("serving {}/metrics (Ctrl-C to stop)", admin.url());
    tokio::signal::ctrl_c().await?;
    admin.shutdown().await;
    telemetry.shutdown_async().await?;
    Ok(())
}
