//! Interop with a real OTLP collector, `rotel`: it receives our metrics and spans over gRPC
//! and over HTTP/protobuf, and its debug log shows the pinned metric names, a label value,
//! and the trace id that our JSON log line carries, on the span, on the OTLP log record and
//! on the exemplars of the metrics recorded in that span.

mod support;

use std::time::Duration;

use streamhouse_observability::catalog;
use streamhouse_observability::logging::{self, LogFormat, LoggingConfig};
use streamhouse_observability::otlp::{OtlpConfig, OtlpProtocol, Signal};
use streamhouse_observability::{Telemetry, TelemetryConfig};
use support::LogBuffer;
use support::rotel::Rotel;

async fn rotel_receives(protocol: OtlpProtocol, name: &str) {
    let rotel = Rotel::start(name);
    let endpoint = match protocol {
        OtlpProtocol::Grpc => rotel.grpc_endpoint(),
        OtlpProtocol::HttpProtobuf => rotel.http_endpoint(),
    };
    let otlp = OtlpConfig::default()
        .with_endpoint(&endpoint, protocol)
        .with_metric_export_interval(Duration::from_millis(200))
        .with_span_export_delay(Duration::from_millis(100));
    let telemetry = Telemetry::new(
        TelemetryConfig::default()
            .with_service_name(format!("rotel-{name}"))
            .with_otlp(otlp),
    )
    .unwrap();
    let _recorded = support::record_every_metric(&telemetry);
    let topic = format!("topic-{name}");
    telemetry
        .producer()
        .record_batch(&topic, 4, 400, Duration::from_millis(12));

    let logs = LogBuffer::default();
    let config = LoggingConfig::default().with_format(LogFormat::Json);
    let subscriber = logging::subscriber(&telemetry, &config, logs.clone()).unwrap();
    tracing::subscriber::with_default(subscriber, || {
        let _span = tracing::info_span!("rotel_produce").entered();
        // Recorded inside the span: its exemplars carry the trace id the log line shows.
        telemetry
            .producer()
            .record_batch(&topic, 2, 200, Duration::from_millis(40));
        tracing::info!("sent to rotel");
    });
    let line = logs
        .json_lines()
        .into_iter()
        .find(|l| l["fields"]["message"] == "sent to rotel")
        .expect("log line");
    let trace_id = line["trace_id"].as_str().expect("trace_id").to_owned();
    assert_eq!(trace_id.len(), 32);

    // Needles in rotel's detailed debug format (pinned by the rotel version in
    // tests/peers/requirements.txt).
    let names: Vec<String> = catalog::ALL
        .iter()
        .map(|def| format!("-> Name: {}\n", def.prometheus_name))
        .collect();
    let mut needles: Vec<&str> = names.iter().map(String::as_str).collect();
    let topic_label = format!("-> topic: Str({topic})");
    let service = format!("-> service.name: Str(rotel-{name})");
    let trace = format!("Trace ID       : {trace_id}");
    let span_id = line["span_id"].as_str().expect("span_id");
    // The OTLP log record of the same event, stamped with the same span.
    let log_record = format!(
        "Body: Str(sent to rotel)\n    Trace ID       : {trace_id}\n    Span ID        : {span_id}\n"
    );
    needles.extend([
        topic_label.as_str(),
        "ExplicitBounds #10: 5\n",
        "Name           : rotel_produce",
        trace.as_str(),
        log_record.as_str(),
        service.as_str(),
    ]);
    // The exemplars of the produce recorded in that span: rotel's debug format prints each
    // as `Exemplar #i` with its ids, time and value.
    let exemplar =
        format!("Exemplar #0\n     -> Trace ID: {trace_id}\n     -> Span ID: {span_id}\n");
    needles.push(exemplar.as_str());
    let output = rotel.wait_for(&needles, Duration::from_secs(15)).await;
    // One of them is the latency histogram's, its value the 40 ms the produce took.
    assert!(
        output
            .split("Exemplar #")
            .any(|e| e.contains(&trace_id) && e.contains("-> Value: 0.04\n")),
        "no latency exemplar of trace {trace_id}:\n{output}"
    );
    telemetry.shutdown().expect("clean shutdown");
    assert_eq!(telemetry.export_failures(Signal::Metrics), 0);
    assert_eq!(telemetry.export_failures(Signal::Traces), 0);
    assert_eq!(telemetry.export_failures(Signal::Logs), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotel_receives_over_grpc() {
    rotel_receives(OtlpProtocol::Grpc, "grpc").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotel_receives_over_http_protobuf() {
    rotel_receives(OtlpProtocol::HttpProtobuf, "http").await;
}
