//! `logging::layer` inside an application's own registry, JSON lines that keep span fields,
//! and the SDK's own diagnostics: they reach the output, never the collector.
//!
//! Spans and log records are captured by the in-process OTLP receiver over gRPC, so the
//! transport's HTTP/2 stack really runs while the export-stack filter is on.

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::logs::v1::LogRecord;
use streamhouse_observability::logging::{self, LogFormat, LoggingConfig, is_export_stack};
use streamhouse_observability::otlp::{OtlpConfig, OtlpExporterConfig, OtlpProtocol};
use streamhouse_observability::{Telemetry, TelemetryConfig};
use support::LogBuffer;
use support::otlp_receiver::{Received, Receiver, any_value_string, hex};
use tracing::{Subscriber, instrument};
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// An application's own layer: remembers every event's message and every span's name.
#[derive(Clone, Default)]
struct Recorder {
    events: Arc<Mutex<Vec<String>>>,
    spans: Arc<Mutex<Vec<String>>>,
}

struct Message(String);

impl tracing::field::Visit for Message {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Recorder {
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        _: &tracing::span::Id,
        _: Context<'_, S>,
    ) {
        let name = attrs.metadata().name().to_owned();
        self.spans.lock().unwrap().push(name);
    }

    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let mut message = Message(String::new());
        event.record(&mut message);
        self.events.lock().unwrap().push(message.0);
    }
}

/// Pushes spans to `traces` and log records to `logs` over gRPC; no metrics.
fn telemetry(traces: &str, logs: &str) -> Telemetry {
    let exporter = |endpoint: &str| {
        OtlpExporterConfig::new(endpoint, OtlpProtocol::Grpc).with_timeout(Duration::from_secs(2))
    };
    let mut otlp = OtlpConfig::default().with_span_export_delay(Duration::from_millis(100));
    otlp.metrics = None;
    otlp.traces = Some(exporter(traces));
    otlp.logs = Some(exporter(logs));
    Telemetry::new(
        TelemetryConfig::default()
            .with_service_name("logging-layers")
            .with_shutdown_timeout(Duration::from_secs(5))
            .with_otlp(otlp),
    )
    .expect("telemetry starts")
}

/// Every log record received, with its scope name (the `tracing` target).
fn records_by_target(r: &Received) -> Vec<(String, LogRecord)> {
    r.logs
        .iter()
        .flat_map(|request| &request.resource_logs)
        .flat_map(|rl| &rl.scope_logs)
        .flat_map(|sl| {
            let target = sl
                .scope
                .as_ref()
                .map(|s| s.name.clone())
                .unwrap_or_default();
            sl.log_records
                .iter()
                .map(move |l| (target.clone(), l.clone()))
        })
        .collect()
}

fn body(record: &LogRecord) -> String {
    record
        .body
        .as_ref()
        .map(any_value_string)
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_application_registry_adds_our_layers() {
    let receiver = Receiver::start().await;
    let telemetry = telemetry(&receiver.grpc_endpoint(), &receiver.grpc_endpoint());
    let app = Recorder::default();
    let output = LogBuffer::default();
    let ours = logging::layer(
        &telemetry,
        &LoggingConfig::default().with_format(LogFormat::Json),
        Some(BoxMakeWriter::new(output.clone())),
    )
    .unwrap();
    // The application's registry: its own layer first, unfiltered; ours added to it.
    let subscriber = tracing_subscriber::registry().with(app.clone()).with(ours);
    tracing::subscriber::with_default(subscriber, || {
        let request = tracing::info_span!("app_request", route = "/orders");
        let _request = request.enter();
        let step = tracing::info_span!("app_step", partition = 3);
        let _step = step.enter();
        tracing::info!(records = 5, "step done");
        tracing::debug!("app debug detail");
        // Export-stack events and spans on the application's thread: ours must not export them.
        tracing::info!(target: "hyper::proto::h1::conn", "transport event");
        tracing::warn!(target: "opentelemetry_sdk", name = "Test.Diagnostic", "sdk diagnostic");
        let frame = tracing::info_span!(target: "h2::codec", "h2_frame");
        frame.in_scope(|| tracing::info!(target: "h2::codec", "frame written"));
    });
    telemetry.shutdown().expect("flushes");

    // The application's layer saw every event and span, whatever our filters say.
    assert_eq!(
        *app.events.lock().unwrap(),
        [
            "step done",
            "app debug detail",
            "transport event",
            "sdk diagnostic",
            "frame written"
        ]
    );
    assert_eq!(
        *app.spans.lock().unwrap(),
        ["app_request", "app_step", "h2_frame"]
    );

    let arrived = receiver
        .wait_until(Duration::from_secs(10), |r| {
            r.spans().len() >= 2 && !r.log_records().is_empty()
        })
        .await;
    assert!(arrived, "{:?}", receiver.with(|r| r.spans()));
    let (request, step) = receiver.with(|r| {
        let spans = r.spans();
        let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names.len(), 2, "only the application's spans: {names:?}");
        let find = |name: &str| spans.iter().find(|s| s.name == name).unwrap().clone();
        (find("app_request"), find("app_step"))
    });
    assert_eq!(step.trace_id, request.trace_id);
    assert_eq!(step.parent_span_id, request.span_id);
    assert!(request.parent_span_id.is_empty());

    let records = receiver.with(records_by_target);
    let bodies: Vec<String> = records.iter().map(|(_, l)| body(l)).collect();
    assert_eq!(bodies, ["step done"], "{records:?}");
    let (target, record) = &records[0];
    assert_eq!(target, module_path!());
    assert_eq!(record.trace_id, step.trace_id);
    assert_eq!(record.span_id, step.span_id);

    // Our output: `info` and up, the export stack included, stamped with the span ids.
    let lines = output.json_lines();
    let messages: Vec<&str> = lines
        .iter()
        .map(|l| l["fields"]["message"].as_str().unwrap())
        .collect();
    assert_eq!(
        messages,
        [
            "step done",
            "transport event",
            "sdk diagnostic",
            "frame written"
        ]
    );
    assert_eq!(lines[0]["trace_id"], hex(&step.trace_id));
    assert_eq!(lines[0]["span_id"], hex(&step.span_id));
    assert_eq!(lines[0]["span"]["partition"], 3);
    assert_eq!(lines[0]["spans"][0]["route"], "/orders");
    // Inside the unexported h2 span: the ids of the application span around it.
    assert_eq!(lines[3]["span"]["name"], "h2_frame");
    assert_eq!(lines[3]["span_id"], hex(&step.span_id));
    receiver.stop().await;
}

#[instrument(fields(topic))]
fn append(partition: u32, topic_name: &str) {
    tracing::Span::current().record("topic", topic_name);
    tracing::info!(bytes = 512, "appended");
    write_segment(topic_name.len());
}

#[instrument]
fn write_segment(size: usize) {
    tracing::warn!("slow \"write\"\nsecond line\t\u{1}\u{1b}[31m");
}

#[test]
fn json_lines_keep_instrumented_fields() {
    let telemetry = Telemetry::new(TelemetryConfig::default()).unwrap();
    let output = LogBuffer::default();
    let config = LoggingConfig::default().with_format(LogFormat::Json);
    let subscriber = logging::subscriber(&telemetry, &config, output.clone()).unwrap();
    let hostile = "or\"ders\n\u{0}\u{7f}\\";
    tracing::subscriber::with_default(subscriber, || {
        append(7, "orders");
        append(8, hostile);
    });

    // Every line parsed by serde_json (json_lines panics otherwise).
    let lines = output.json_lines();
    assert_eq!(lines.len(), 4, "{lines:?}");
    let by_message: BTreeMap<(String, u64), &serde_json::Value> = lines
        .iter()
        .map(|l| {
            let partition = l["spans"][0]["partition"].as_u64().unwrap();
            let message = l["fields"]["message"].as_str().unwrap().to_owned();
            ((message, partition), l)
        })
        .collect();

    let appended = by_message[&("appended".to_owned(), 7)];
    assert_eq!(appended["level"], "INFO");
    assert_eq!(appended["target"], module_path!());
    assert_eq!(appended["fields"]["bytes"], 512);
    assert_eq!(appended["span"]["name"], "append");
    // The argument, and the field declared empty and recorded later.
    assert_eq!(appended["span"]["partition"], 7);
    assert_eq!(appended["span"]["topic"], "orders");
    assert_eq!(appended["span"]["topic_name"], "orders");
    assert_eq!(appended["spans"].as_array().unwrap().len(), 1);
    let trace_id = appended["trace_id"].as_str().unwrap();
    assert_eq!(trace_id.len(), 32);

    // Inside the nested span: both spans, outermost first; the same trace, its own span id.
    let nested = by_message[&("slow \"write\"\nsecond line\t\u{1}\u{1b}[31m".to_owned(), 7)];
    assert_eq!(nested["level"], "WARN");
    assert_eq!(
        nested["span"],
        serde_json::json!({"name": "write_segment", "size": 6})
    );
    assert_eq!(nested["spans"][0]["name"], "append");
    assert_eq!(nested["spans"][0]["topic"], "orders");
    assert_eq!(nested["spans"][1]["size"], 6);
    assert_eq!(nested["trace_id"], trace_id);
    assert_ne!(nested["span_id"], appended["span_id"]);

    // A hostile field value arrives intact.
    let hostile_line = by_message[&("appended".to_owned(), 8)];
    assert_eq!(hostile_line["span"]["topic"], hostile);
    assert_ne!(
        hostile_line["trace_id"], trace_id,
        "a new root span, a new trace"
    );
}

/// The SDK reports a failed export from its own thread, which logs through the global
/// subscriber: this is the binary's only test that installs one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_diagnostics_reach_the_output_and_never_the_collector() {
    let receiver = Receiver::start().await;
    // Spans go to a port nobody listens on; log records to the receiver.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_endpoint = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    let telemetry = telemetry(&dead_endpoint, &receiver.grpc_endpoint());
    let output = LogBuffer::default();
    // `trace`: the transport's own chatter reaches the layers and must still stay home.
    let config = LoggingConfig::default()
        .with_format(LogFormat::Json)
        .with_filter("trace");
    let subscriber = logging::subscriber(&telemetry, &config, output.clone()).unwrap();
    tracing::subscriber::set_global_default(subscriber).unwrap();

    {
        let _span = tracing::info_span!("doomed_export").entered();
        tracing::info!("diagnostics marker");
    }
    let line_from = |target: &str, level: &str| {
        output.json_lines().into_iter().find(|l| {
            l["target"].as_str().is_some_and(|t| t.starts_with(target)) && l["level"] == level
        })
    };
    // Our once-per-outage warning reports the failed export...
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while line_from("streamhouse_observability::otlp", "WARN").is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "no export failure logged: {:?}",
            output.json_lines()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // ...so the SDK's own report of each failed batch stays out of our output.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let repeated: Vec<_> = output
        .json_lines()
        .into_iter()
        .filter(|l| l["fields"]["name"] == "BatchSpanProcessor.ExportError")
        .collect();
    assert!(repeated.is_empty(), "{repeated:?}");

    let _ = telemetry.shutdown();
    let arrived = receiver
        .wait_until(Duration::from_secs(10), |r| {
            r.log_records()
                .iter()
                .any(|l| body(l) == "diagnostics marker")
        })
        .await;
    assert!(arrived, "the application's record is exported");
    // The export stack talked (HTTP/2 to the receiver, the SDK's debug lines)...
    let lines = output.json_lines();
    for stack in ["h2", "opentelemetry_sdk"] {
        assert!(
            lines.iter().any(|l| l["target"]
                .as_str()
                .is_some_and(|t| t == stack || t.starts_with(&format!("{stack}::")))),
            "no {stack} lines at trace"
        );
    }
    // ...and none of it arrived at the collector.
    let records = receiver.with(records_by_target);
    let leaked: Vec<_> = records
        .iter()
        .filter(|(target, record)| {
            is_export_stack(target) || body(record).contains("BatchSpanProcessor")
        })
        .collect();
    assert!(leaked.is_empty(), "export stack exported: {leaked:?}");
    receiver.stop().await;
}
