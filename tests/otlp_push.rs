//! OTLP push to an in-process receiver, over gRPC and HTTP/protobuf: pinned metric names,
//! buckets, attributes, resource, span names and parent/child links arrive as sent, and the
//! JSON log line inside a span carries that span's ids.

mod support;

use std::time::Duration;

use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use streamhouse_observability::catalog::{self, MetricKind};
use streamhouse_observability::logging::{self, LogFormat, LoggingConfig};
use streamhouse_observability::otlp::{OtlpConfig, OtlpProtocol, Signal};
use streamhouse_observability::{Telemetry, TelemetryConfig};
use support::LogBuffer;
use support::otlp_receiver::{Receiver, attribute, hex};

fn telemetry_pushing_to(endpoint: &str, protocol: OtlpProtocol, gzip: bool) -> Telemetry {
    let otlp = OtlpConfig::default()
        .with_endpoint(endpoint, protocol)
        .with_metric_export_interval(Duration::from_millis(100))
        .with_span_export_delay(Duration::from_millis(100))
        .map_exporters(|e| {
            e.with_header("x-tenant", "team-a")
                .with_gzip(gzip)
                .with_timeout(Duration::from_secs(2))
        });
    Telemetry::new(
        TelemetryConfig::default()
            .with_service_name("otlp-test")
            .with_service_instance_id("instance-7")
            .with_resource_attribute("deployment.environment.name", "test")
            .with_shutdown_timeout(Duration::from_secs(5))
            .with_otlp(otlp),
    )
    .expect("telemetry starts")
}

async fn pushes_everything(protocol: OtlpProtocol, gzip: bool) {
    let receiver = Receiver::start().await;
    let endpoint = match protocol {
        OtlpProtocol::Grpc => receiver.grpc_endpoint(),
        OtlpProtocol::HttpProtobuf => receiver.http_endpoint(),
    };
    let telemetry = telemetry_pushing_to(&endpoint, protocol, gzip);
    let _recorded = support::record_every_metric(&telemetry);

    let logs = LogBuffer::default();
    let config = LoggingConfig::default().with_format(LogFormat::Json);
    let subscriber = logging::subscriber(&telemetry, &config, logs.clone()).unwrap();
    tracing::subscriber::with_default(subscriber, || {
        let outer = tracing::info_span!("handle_produce", topic = "orders");
        let _outer = outer.enter();
        let inner = tracing::info_span!("append_segment", partition = 3);
        inner.in_scope(|| tracing::info!(records = 5, "appended"));
    });

    let all_metrics = |r: &support::otlp_receiver::Received| {
        catalog::ALL
            .iter()
            .all(|def| r.metric(def.prometheus_name).is_some())
    };
    let arrived = receiver
        .wait_until(Duration::from_secs(10), |r| {
            all_metrics(r) && r.spans().len() >= 2 && !r.log_records().is_empty()
        })
        .await;
    assert!(
        arrived,
        "not everything arrived: {:?}",
        receiver.with(|r| r
            .metrics()
            .into_iter()
            .map(|(_, m)| m.name)
            .collect::<Vec<_>>())
    );

    receiver.with(|r| {
        for def in catalog::ALL {
            let metric = r.metric(def.prometheus_name).unwrap();
            assert_eq!(metric.unit, def.unit, "{}", def.prometheus_name);
            match (def.kind, metric.data.as_ref().unwrap()) {
                (MetricKind::Histogram, Data::Histogram(h)) => {
                    for point in &h.data_points {
                        assert_eq!(
                            point.explicit_bounds, def.buckets,
                            "{}",
                            def.prometheus_name
                        );
                    }
                }
                (MetricKind::Counter, Data::Sum(s)) => assert!(s.is_monotonic),
                (MetricKind::Gauge, Data::Gauge(_)) => {}
                // An up-down counter (active requests) is a Prometheus gauge and an OTLP
                // non-monotonic sum.
                (MetricKind::Gauge, Data::Sum(s)) if !s.is_monotonic => {}
                (kind, data) => panic!("{}: {kind:?} arrived as {data:?}", def.prometheus_name),
            }
        }
        // A label value and its count, as recorded.
        let Data::Sum(records) = r
            .metric(catalog::PRODUCER_RECORDS.prometheus_name)
            .unwrap()
            .data
            .unwrap()
        else {
            panic!("records is a sum")
        };
        let orders = records
            .data_points
            .iter()
            .find(|p| attribute(&p.attributes, "topic").as_deref() == Some("orders"))
            .expect("a point for topic=orders");
        assert_eq!(
            orders.value,
            Some(opentelemetry_proto::tonic::metrics::v1::number_data_point::Value::AsInt(1))
        );
        let Data::Histogram(http) = r
            .metric(catalog::HTTP_SERVER_REQUEST_DURATION.prometheus_name)
            .unwrap()
            .data
            .unwrap()
        else {
            panic!("http duration is a histogram")
        };
        let point = &http.data_points[0];
        assert_eq!(
            attribute(&point.attributes, "http.route").as_deref(),
            Some("/topics/{topic}")
        );
        assert_eq!(
            attribute(&point.attributes, "http.response.status_code").as_deref(),
            Some("200")
        );

        let (resource, _) = r.metrics().into_iter().next().unwrap();
        let resource = resource.expect("metrics carry a resource");
        for (key, value) in [
            ("service.name", "otlp-test"),
            ("service.instance.id", "instance-7"),
            ("deployment.environment.name", "test"),
        ] {
            assert_eq!(
                attribute(&resource.attributes, key).as_deref(),
                Some(value),
                "{key}"
            );
        }
        let span_resource = &r.span_resources()[0];
        assert_eq!(
            attribute(&span_resource.attributes, "service.name").as_deref(),
            Some("otlp-test")
        );
        assert!(
            r.last_headers
                .iter()
                .any(|(k, v)| k == "x-tenant" && v == "team-a"),
            "{:?}",
            r.last_headers
        );

        let spans = r.spans();
        let outer = spans
            .iter()
            .find(|s| s.name == "handle_produce")
            .expect("outer span");
        let inner = spans
            .iter()
            .find(|s| s.name == "append_segment")
            .expect("inner span");
        assert_eq!(inner.trace_id, outer.trace_id);
        assert_eq!(inner.parent_span_id, outer.span_id);
        assert!(outer.parent_span_id.is_empty());
        assert_eq!(
            attribute(&outer.attributes, "topic").as_deref(),
            Some("orders")
        );
        assert_eq!(
            attribute(&inner.attributes, "partition").as_deref(),
            Some("3")
        );

        let lines = logs.json_lines();
        let line = lines
            .iter()
            .find(|l| l["fields"]["message"] == "appended")
            .expect("the log line");
        assert_eq!(line["trace_id"], hex(&inner.trace_id));
        assert_eq!(line["span_id"], hex(&inner.span_id));
        // The logging layer writes the current span as an object with its fields.
        assert_eq!(line["span"]["name"], "append_segment", "{line}");
        assert_eq!(line["fields"]["records"], 5);
        let trace_id = line["trace_id"].as_str().unwrap();
        let span_id = line["span_id"].as_str().unwrap();
        assert!(trace_id.len() == 32 && span_id.len() == 16);
        assert!(
            (trace_id.to_owned() + span_id)
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)),
            "lowercase hex"
        );

        // The same event as an OTLP log record, stamped with the same span.
        let records = r.log_records();
        let record = records
            .iter()
            .find(|l| {
                l.body
                    .as_ref()
                    .map(support::otlp_receiver::any_value_string)
                    .as_deref()
                    == Some("appended")
            })
            .unwrap_or_else(|| panic!("no OTLP log record: {records:?}"));
        assert_eq!(record.trace_id, inner.trace_id);
        assert_eq!(record.span_id, inner.span_id);
        assert_eq!(record.severity_text, "INFO");
    });
    assert_eq!(telemetry.export_failures(Signal::Metrics), 0);
    assert_eq!(telemetry.export_failures(Signal::Traces), 0);
    assert_eq!(telemetry.export_failures(Signal::Logs), 0);
    assert_eq!(telemetry.dropped_spans(), 0);
    telemetry.shutdown().expect("clean shutdown");
    receiver.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_over_grpc() {
    pushes_everything(OtlpProtocol::Grpc, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_over_http_protobuf() {
    pushes_everything(OtlpProtocol::HttpProtobuf, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_gzip_over_both_protocols() {
    pushes_everything(OtlpProtocol::Grpc, true).await;
    pushes_everything(OtlpProtocol::HttpProtobuf, true).await;
}

#[test]
fn pushes_from_sync_code_without_a_runtime() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let receiver = runtime.block_on(Receiver::start());
    let telemetry = telemetry_pushing_to(&receiver.grpc_endpoint(), OtlpProtocol::Grpc, false);
    telemetry
        .producer()
        .record_batch("orders", 2, 20, Duration::from_millis(1));
    telemetry.shutdown().expect("shutdown flushes");
    let name = catalog::PRODUCER_RECORDS.prometheus_name;
    assert!(
        receiver.with(|r| r.metric(name).is_some()),
        "final flush arrived"
    );
    runtime.block_on(receiver.stop());
}
