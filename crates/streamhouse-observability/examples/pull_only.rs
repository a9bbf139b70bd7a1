//! The SDK at its leanest: `default-features = false` links no OTLP transport, no TLS and no
//! HTTP server. The application records and renders the Prometheus text itself, here to
//! stdout; serving it is up to the application's own stack.
//!
//! ```text
//! cargo run -p streamhouse-observability --example pull_only --no-default-features
//! ```

use std::time::Duration;

use streamhouse_observability::{Telemetry, TelemetryConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let telemetry = Telemetry::new(TelemetryConfig::from_env()?)?;
    let orders = telemetry.producer().topic("orders");
    orders.record_batch(100, 12_800, Duration::from_millis(3));
    telemetry
        .consumer()
        .group("orders", "analytics")
        .record_records(90);
    print!("{}", telemetry.render_prometheus());
    telemetry.shutdown()?;
    Ok(())
}
