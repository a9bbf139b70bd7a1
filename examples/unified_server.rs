//! The reference StreamHouse server, instrumented, with a built-in load generator: the
//! README's main job.
//!
//! ```text
//! cargo run --release --example unified_server
//! curl -s http://127.0.0.1:8080/metrics
//! ```
//!
//! Serves `/api/v1`, `/metrics` and `/health*` on `127.0.0.1:8080` (`STREAMHOUSE_HTTP_ADDR`
//! overrides), stores segments under `./data` (`STREAMHOUSE_OBJECT_STORE` overrides: a
//! directory, `memory`, or `s3://bucket/prefix`), and drives itself with a load generator
//! unless `STREAMHOUSE_LOADGEN=off`. Ctrl-C (SIGINT) or SIGTERM, what Docker and Kubernetes
//! send, flushes buffered segments and stops.
//!
//! With any admin variable set (`OTEL_EXPORTER_PROMETHEUS_HOST`/`_PORT`,
//! `STREAMHOUSE_METRICS_ADDR`, `STREAMHOUSE_METRICS_BEARER_TOKEN`,
//! `STREAMHOUSE_METRICS_TLS_CERT`/`_KEY`), `/metrics` and `/health*` move to the admin
//! address (default `127.0.0.1:9464`) and the public port serves `/api/v1` only. On a stop
//! signal the public port closes first; the admin listener keeps serving through the final flush
//! (and `STREAMHOUSE_ADMIN_LINGER_MS` more), so the last scrapes see the flushed state.

use std::error::Error;

use streamhouse_lite::server::LiteServer;
use streamhouse_lite::{LiteConfig, loadgen};
use streamhouse_observability::logging::{self, LoggingConfig};
use streamhouse_observability::{Telemetry, TelemetryConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let telemetry = Telemetry::init_global(TelemetryConfig::from_env()?)?;
    // Logs (RUST_LOG, STREAMHOUSE_LOG_FORMAT) and spans: OTLP push when an endpoint is set.
    logging::init(&telemetry, &LoggingConfig::from_env()?)?;
    let config = LiteConfig::from_env()?;
    config.check_stop_timeout(telemetry.config().shutdown_timeout)?;
    let loadgen_on =
        !std::env::var("STREAMHOUSE_LOADGEN").is_ok_and(|v| v.trim().eq_ignore_ascii_case("off"));
    let store = config.store.clone();
    let listener = tokio::net::TcpListener::bind(config.http_addr).await?;
    let server = LiteServer::start(config, &telemetry).await?;
    // A bad PEM file stops the start, before anything is served.
    let admin_tls = server.admin_tls()?;
    let base = format!("http://{}", listener.local_addr()?);
    let admin = if telemetry.config().admin.is_separate() {
        let admin = tokio::net::TcpListener::bind(telemetry.config().metrics_addr).await?;
        let scheme = if admin_tls.is_some() { "https" } else { "http" };
        let admin_base = format!("{scheme}://{}", admin.local_addr()?);
        Some((admin, admin_base))
    } else {
        None
    };
    let admin_base = admin.as_ref().map_or(base.clone(), |(_, b)| b.clone());

    println!("StreamHouse lite: segments in {store:?}");
    println!("  API      {base}/api/v1/topics");
    println!("  metrics  {admin_base}/metrics");
    println!("  health   {admin_base}/health  {admin_base}/health/live  {admin_base}/health/ready");
    let loadgen = loadgen_on.then(|| {
        println!("  load generator on (STREAMHOUSE_LOADGEN=off disables)");
        loadgen::spawn(base.clone())
    });
    println!("Ctrl-C (or SIGTERM) to stop");

    let stop = stop_signal();
    match admin {
        None => server.serve(listener, stop).await?,
        // The admin listener stops after the final flush, so a last scrape sees it.
        Some((admin, _)) => server.serve_split(listener, admin, admin_tls, stop).await?,
    }
    if let Some(loadgen) = loadgen {
        loadgen.abort();
    }
    telemetry.shutdown_async().await?;
    Ok(())
}

/// Ctrl-C (SIGINT), or SIGTERM: what `docker stop` and Kubernetes send.
async fn stop_signal() {
    #[cfg(unix)]
    if let Ok(mut terminate) =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
        return;
    }
    let _ = tokio::signal::ctrl_c().await;
}
