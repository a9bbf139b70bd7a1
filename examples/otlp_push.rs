//! Pushes every catalog metric and a few nested spans to the OTLP collector configured in
//! the environment, for `STREAMHOUSE_DEMO_SECONDS` (default 5), then flushes and exits 0,
//! also when the collector is unreachable (failures are logged and counted, not fatal), and
//! prints its export failure counts as the last line of standard output.
//!
//! With `STREAMHOUSE_DEMO_OTLP_HTTP=<base URL>` the OTLP settings are built in code instead
//! (HTTP/protobuf to that URL, header `x-demo-source: code`): the `OTEL_EXPORTER_OTLP_*`
//! variables are then ignored, which shows that code wins over the environment.
//!
//! ```text
//! docker run -p 4317:4317 -p 4318:4318 -v $PWD/otel-collector.yaml:/etc/otelcol-contrib/config.yaml \
//!     otel/opentelemetry-collector-contrib:0.130.0
//! OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 OTEL_METRIC_EXPORT_INTERVAL=1000 \
//!     STREAMHOUSE_LOG_FORMAT=json cargo run --example otlp_push
//! ```

use std::error::Error;
use std::time::{Duration, Instant};

use streamhouse_observability::logging::{self, LoggingConfig};
use streamhouse_observability::metrics::{
    ConsumerError, ProducerError, S3Error, S3Operation, StorageFault,
};
use streamhouse_observability::otlp::{OtlpConfig, OtlpProtocol, Signal};
use streamhouse_observability::{Telemetry, TelemetryConfig, propagation};

fn main() -> Result<(), Box<dyn Error>> {
    let seconds: u64 = match std::env::var("STREAMHOUSE_DEMO_SECONDS") {
        Ok(raw) => raw.trim().parse().map_err(|_| {
            format!("STREAMHOUSE_DEMO_SECONDS: expected whole seconds, got {raw:?}")
        })?,
        Err(_) => 5,
    };
    let mut config = TelemetryConfig::from_env()?;
    if let Ok(base) = std::env::var("STREAMHOUSE_DEMO_OTLP_HTTP") {
        // Built in code: only these settings are used, whatever OTEL_EXPORTER_OTLP_* says.
        config.otlp = OtlpConfig::default()
            .with_endpoint(&base, OtlpProtocol::HttpProtobuf)
            .with_metric_export_interval(config.otlp.metric_export_interval)
            .with_span_export_delay(config.otlp.span_export_delay)
            .map_exporters(|e| e.with_header("x-demo-source", "code"));
    }
    if config.otlp.metrics.is_none() && config.otlp.traces.is_none() {
        eprintln!("no OTLP endpoint set (OTEL_EXPORTER_OTLP_ENDPOINT): recording locally only");
    }
    let telemetry = Telemetry::init_global(config)?;
    logging::init(&telemetry, &LoggingConfig::from_env()?)?;
    let _gauges = observe_state(&telemetry);
    // No async work here: a runtime of its own gives the runtime gauges something to report.
    let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    let _runtime_gauges = telemetry
        .process()
        .observe_runtime(runtime.handle().clone());

    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut round = 0u64;
    while Instant::now() < deadline {
        round += 1;
        produce_and_consume(&telemetry, round);
        std::thread::sleep(Duration::from_millis(250));
    }

    tracing::info!(
        rounds = round,
        metric_export_failures = telemetry.export_failures(Signal::Metrics),
        span_export_failures = telemetry.export_failures(Signal::Traces),
        "shutting down"
    );
    // A collector that is away makes the final flush fail: report it, still exit 0.
    if let Err(error) = telemetry.shutdown() {
        eprintln!("telemetry shutdown: {error}");
    }
    println!(
        "export failures: metrics={} traces={} logs={}",
        telemetry.export_failures(Signal::Metrics),
        telemetry.export_failures(Signal::Traces),
        telemetry.export_failures(Signal::Logs),
    );
    Ok(())
}

/// One round of traffic: a produce request with nested spans, a consumer processing the
/// record under the producer's trace, and a sample of every recorder.
#[tracing::instrument(skip(telemetry))]
fn produce_and_consume(telemetry: &Telemetry, round: u64) {
    let mut headers: Vec<(String, Vec<u8>)> = Vec::new();
    {
        let send = propagation::send_span("orders");
        let _send = send.enter();
        let started = Instant::now();
        append_to_segment(telemetry, round);
        telemetry
            .producer()
            .record_batch("orders", 10, 1_280, started.elapsed());
        if round % 5 == 1 {
            telemetry
                .producer()
                .record_error("orders", ProducerError::RecordTooLarge);
        }
        propagation::inject_record_headers(&send, &mut headers);
    }
    let process = propagation::process_span("orders", "analytics", &headers);
    let _process = process.enter();
    let consumer = telemetry.consumer();
    consumer.group("orders", "analytics").record_records(10);
    if round % 7 == 1 {
        consumer.record_rebalance("analytics");
        consumer.record_error("orders", "analytics", ConsumerError::OffsetOutOfRange);
    }
    let active = telemetry.http_server().start_request("POST", "http");
    telemetry.http_server().record_request(
        "POST",
        Some("/topics/{topic}/records"),
        200,
        Duration::from_millis(3),
    );
    drop(active);
    tracing::info!(records = 10, "processed");
}

#[tracing::instrument(skip(telemetry))]
fn append_to_segment(telemetry: &Telemetry, round: u64) {
    let storage = telemetry.storage();
    let partition = storage.partition("orders", (round % 3) as u32);
    partition.record_segment_write();
    partition.record_segment_flush();
    let outcome = if round.is_multiple_of(4) {
        Err(S3Error::Timeout)
    } else {
        Ok(())
    };
    storage.record_s3_request(S3Operation::Put, Duration::from_millis(40), outcome);
    storage.record_cache_hit();
    storage.record_cache_miss();
    if round == 1 {
        // A read that stepped over offsets no segment holds.
        storage.record_fault("orders", StorageFault::Hole);
    }
    // What `/metrics` records of itself, for an application that also serves it.
    telemetry
        .scrapes()
        .record_served(Duration::from_millis(5), 16 * 1024);
    tracing::debug!(round, "segment appended");
}

fn observe_state(
    telemetry: &Telemetry,
) -> Vec<streamhouse_observability::metrics::GaugeRegistration> {
    let system = telemetry.system();
    vec![
        telemetry
            .consumer()
            .observe_lag(|report| report.lag("orders", 0, "analytics", 30)),
        telemetry.storage().observe_cache_size(|| 4 * 1024 * 1024),
        telemetry.storage().observe_unflushed_bytes(|| 64 * 1024),
        telemetry
            .storage()
            .observe_failed_partitions(|report| report.partitions("orders", 0)),
        system.observe_connections(|| 2),
        system.observe_topics(|| 1),
        system.observe_partitions(|report| report.partitions("orders", 3)),
        system.observe_agents(|| 1),
    ]
}
