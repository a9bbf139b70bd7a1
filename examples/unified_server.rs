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
//! unless `STREAMHOUSE_LOADGEN=off`. Ctrl-C flushes buffered segments and stops.

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
    let loadgen_on =
        !std::env::var("STREAMHOUSE_LOADGEN").is_ok_and(|v| v.trim().eq_ignore_ascii_case("off"));
    let store = config.store.clone();
    let listener = tokio::net::TcpListener::bind(config.http_addr).await?;
    let server = LiteServer::start(config, &telemetry).await?;
    let base = format!("http://{}", listener.local_addr()?);

    println!("StreamHouse lite: segments in {store:?}");
    println!("  API      {base}/api/v1/topics");
    println!("  metrics  {base}/metrics");
    println!("  health   {base}/health  {base}/health/live  {base}/health/ready");
    let loadgen = loadgen_on.then(|| {
        println!("  load generator on (STREAMHOUSE_LOADGEN=off disables)");
        loadgen::spawn(base.clone())
    });
    println!("Ctrl-C to stop");

    server
        .serve(listener, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    if let Some(loadgen) = loadgen {
        loadgen.abort();
    }
    telemetry.shutdown()?;
    Ok(())
}
