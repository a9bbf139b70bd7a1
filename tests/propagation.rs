//! Trace context across a record (producer to consumer through record headers) and across
//! HTTP (the server layer continues the caller's trace), checked on what a receiver gets.

mod support;

use std::time::Duration;

use axum::routing::get;
use streamhouse_observability::catalog;
use streamhouse_observability::http::HttpServerLayer;
use streamhouse_observability::logging::{self, LoggingConfig};
use streamhouse_observability::otlp::{OtlpConfig, OtlpProtocol};
use streamhouse_observability::propagation;
use streamhouse_observability::{Telemetry, TelemetryConfig};
use support::otlp_receiver::{Receiver, attribute, hex};

fn telemetry(receiver: &Receiver, service: &str) -> Telemetry {
    let otlp = OtlpConfig::default()
        .with_endpoint(&receiver.grpc_endpoint(), OtlpProtocol::Grpc)
        .with_metric_export_interval(Duration::from_millis(100))
        .with_span_export_delay(Duration::from_millis(50));
    Telemetry::new(
        TelemetryConfig::default()
            .with_service_name(service)
            .with_otlp(otlp),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_continues_the_producer_trace_through_record_headers() {
    let receiver = Receiver::start().await;
    // Two services, as in production: each has its own providers.
    let producer = telemetry(&receiver, "producer");
    let consumer = telemetry(&receiver, "consumer");

    let mut headers: Vec<(String, Vec<u8>)> = vec![("content-type".into(), b"json".to_vec())];
    let producer_logs =
        logging::subscriber(&producer, &LoggingConfig::default(), std::io::sink).unwrap();
    tracing::subscriber::with_default(producer_logs, || {
        let send = propagation::send_span("orders");
        let _entered = send.enter();
        propagation::inject_record_headers(&send, &mut headers);
    });
    assert!(
        headers.iter().any(|(k, _)| k == "traceparent"),
        "{headers:?}"
    );

    let consumer_logs =
        logging::subscriber(&consumer, &LoggingConfig::default(), std::io::sink).unwrap();
    tracing::subscriber::with_default(consumer_logs, || {
        let records: Vec<&[(String, Vec<u8>)]> = vec![&headers];
        let receive = propagation::receive_span("orders", "billing", records);
        let _receive = receive.enter();
        let process = propagation::process_span("orders", "billing", &headers);
        let _process = process.enter();
    });

    assert!(
        receiver
            .wait_until(Duration::from_secs(10), |r| r.spans().len() >= 3)
            .await
    );
    receiver.with(|r| {
        let spans = r.spans();
        let find = |name: &str| {
            spans
                .iter()
                .find(|s| s.name == name)
                .unwrap_or_else(|| panic!("{name}: {spans:?}"))
        };
        let send = find("send orders");
        let process = find("process orders");
        let receive = find("receive orders");
        assert_eq!(
            process.trace_id, send.trace_id,
            "one trace across both services"
        );
        assert_eq!(process.parent_span_id, send.span_id);
        assert_eq!(receive.links.len(), 1);
        assert_eq!(receive.links[0].span_id, send.span_id);
        assert_eq!(receive.links[0].trace_id, send.trace_id);
        // SpanKind: 4 = producer, 5 = consumer.
        assert_eq!(send.kind, 4);
        assert_eq!(process.kind, 5);
        for (key, value) in [
            ("messaging.system", "streamhouse"),
            ("messaging.destination.name", "orders"),
            ("messaging.operation.type", "send"),
        ] {
            assert_eq!(
                attribute(&send.attributes, key).as_deref(),
                Some(value),
                "{key}"
            );
        }
        assert_eq!(
            attribute(&process.attributes, "messaging.operation.type").as_deref(),
            Some("process")
        );
        assert_eq!(
            attribute(&process.attributes, "messaging.consumer.group.name").as_deref(),
            Some("billing")
        );
        assert_eq!(
            attribute(&receive.attributes, "messaging.batch.message_count").as_deref(),
            Some("1")
        );
    });
    producer.shutdown().unwrap();
    consumer.shutdown().unwrap();
    receiver.stop().await;
}

#[test]
fn http_layer_continues_the_callers_trace_and_records_the_route() {
    // The server's tasks run on runtime threads: each gets this test's subscriber, so tests
    // in the same binary keep their own.
    let bootstrap = tokio::runtime::Runtime::new().unwrap();
    let receiver = bootstrap.block_on(Receiver::start());
    let telemetry = telemetry(&receiver, "http-server");
    let subscriber =
        logging::subscriber(&telemetry, &LoggingConfig::default(), std::io::sink).unwrap();
    let dispatch = tracing::Dispatch::new(subscriber);
    let runtime = support::runtime_with(&dispatch);
    let _main = tracing::dispatcher::set_default(&dispatch);
    runtime.block_on(serve_and_check(&receiver, &telemetry));
    telemetry.shutdown().unwrap();
    runtime.shutdown_background();
    bootstrap.block_on(receiver.stop());
}

async fn serve_and_check(receiver: &Receiver, telemetry: &Telemetry) {
    let app = axum::Router::new()
        .route(
            "/topics/{topic}",
            get(|| async {
                tracing::info!("handled");
                "ok"
            }),
        )
        .route(
            "/fail",
            get(|| async { (http::StatusCode::BAD_GATEWAY, "upstream down") }),
        )
        .layer(HttpServerLayer::new(telemetry).with_traceresponse(true));
    // With the peer's address, so spans get `client.address`.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
    });

    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent_id = "00f067aa0ba902b7";
    let client = reqwest::Client::new();
    let response = client
        .get(format!("http://{addr}/topics/orders"))
        .header("traceparent", format!("00-{trace_id}-{parent_id}-01"))
        .header("user-agent", "probe/1.0")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // W3C Trace Context Level 2: the trace, and the server span as the one to look up.
    let traceresponse = response.headers()["traceresponse"]
        .to_str()
        .unwrap()
        .to_owned();
    let failed = client
        .get(format!("http://{addr}/fail"))
        .send()
        .await
        .unwrap();
    assert_eq!(failed.status(), 502);
    let brew = client
        .request(
            reqwest::Method::from_bytes(b"BREW").unwrap(),
            format!("http://{addr}/topics/pot"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(brew.status(), 405);
    let missing = client
        .get(format!("http://{addr}/nowhere/at/all"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);

    let name = catalog::HTTP_SERVER_REQUEST_DURATION.prometheus_name;
    assert!(
        receiver
            .wait_until(Duration::from_secs(10), |r| {
                r.spans().iter().any(|s| s.name == "GET /topics/{topic}")
                    && r.metric(name).is_some()
            })
            .await
    );
    receiver.with(|r| {
        let spans = r.spans();
        let server = spans
            .iter()
            .find(|s| s.name == "GET /topics/{topic}")
            .unwrap();
        assert_eq!(hex(&server.trace_id), trace_id);
        assert_eq!(hex(&server.parent_span_id), parent_id);
        assert_eq!(server.kind, 2, "SPAN_KIND_SERVER");
        assert_eq!(
            attribute(&server.attributes, "http.route").as_deref(),
            Some("/topics/{topic}")
        );
        assert_eq!(
            attribute(&server.attributes, "url.path").as_deref(),
            Some("/topics/orders")
        );
        assert_eq!(
            attribute(&server.attributes, "http.response.status_code").as_deref(),
            Some("200")
        );
        assert_eq!(
            traceresponse,
            format!("00-{trace_id}-{}-01", hex(&server.span_id))
        );
        let port = addr.port().to_string();
        for (key, value) in [
            ("url.scheme", "http"),
            ("server.address", "127.0.0.1"),
            ("server.port", port.as_str()),
            ("client.address", "127.0.0.1"),
            ("user_agent.original", "probe/1.0"),
            ("network.protocol.version", "1.1"),
            ("http.request.method", "GET"),
        ] {
            assert_eq!(
                attribute(&server.attributes, key).as_deref(),
                Some(value),
                "{key}"
            );
        }
        assert_eq!(attribute(&server.attributes, "error.type"), None);
        assert_eq!(
            attribute(&server.attributes, "http.request.method_original"),
            None
        );
        let failed = spans.iter().find(|s| s.name == "GET /fail").unwrap();
        assert_eq!(
            attribute(&failed.attributes, "error.type").as_deref(),
            Some("502")
        );
        // SpanKind 2 = server; status code 2 = error.
        assert_eq!(failed.status.as_ref().map(|s| s.code), Some(2));
    });
    assert!(
        receiver
            .wait_until(Duration::from_secs(10), |r| {
                r.spans().iter().any(|s| s.name == "_OTHER /topics/{topic}")
            })
            .await
    );
    receiver.with(|r| {
        let spans = r.spans();
        let brew = spans
            .iter()
            .find(|s| s.name == "_OTHER /topics/{topic}")
            .unwrap();
        assert_eq!(
            attribute(&brew.attributes, "http.request.method_original").as_deref(),
            Some("BREW")
        );
    });
    let text = telemetry.render_prometheus();
    assert!(
        text.contains(r#"http_server_request_duration_seconds_count{http_request_method="GET",http_response_status_code="200",http_route="/topics/{topic}",url_scheme="http"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"http_server_request_duration_seconds_count{error_type="502",http_request_method="GET",http_response_status_code="502",http_route="/fail",url_scheme="http"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"http_server_request_duration_seconds_count{http_request_method="_OTHER",http_response_status_code="405",http_route="/topics/{topic}",url_scheme="http"} 1"#),
        "{text}"
    );
    // Every request has finished.
    assert!(
        text.contains(
            r#"http_server_active_requests{http_request_method="GET",url_scheme="http"} 0"#
        ),
        "{text}"
    );
    // No route matched: no raw path becomes a label.
    assert!(text.contains(r#"http_server_request_duration_seconds_count{http_request_method="GET",http_response_status_code="404",url_scheme="http"} 1"#));
    assert!(!text.contains("nowhere"));
    assert!(text.contains("le=\"0.075\""), "semantic-convention buckets");
}

#[test]
fn http_headers_carry_trace_context_and_baggage_onward() {
    use opentelemetry::trace::TraceContextExt;
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    let telemetry = Telemetry::new(TelemetryConfig::default()).unwrap();
    let subscriber =
        logging::subscriber(&telemetry, &LoggingConfig::default(), std::io::sink).unwrap();
    tracing::subscriber::with_default(subscriber, || {
        let mut incoming = http::HeaderMap::new();
        incoming.insert(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
                .parse()
                .unwrap(),
        );
        incoming.insert("baggage", "tenant=acme".parse().unwrap());
        let span = tracing::info_span!("proxy");
        let _ = span.set_parent(propagation::extract_http(&incoming));

        let mut outgoing = http::HeaderMap::new();
        propagation::inject_http(&span, &mut outgoing);
        let own_id = span.context().span().span_context().span_id().to_string();
        assert_eq!(
            outgoing["traceparent"].to_str().unwrap(),
            format!("00-4bf92f3577b34da6a3ce929d0e0e4736-{own_id}-01"),
            "same trace, this span as the parent of the next hop"
        );
        assert_ne!(own_id, "00f067aa0ba902b7");
        assert_eq!(outgoing["baggage"].to_str().unwrap(), "tenant=acme");

        // Malformed context is ignored, not an error: a new trace starts.
        let mut garbage = http::HeaderMap::new();
        garbage.insert("traceparent", "00-zz-yy-01".parse().unwrap());
        let cx = propagation::extract_http(&garbage);
        assert!(!cx.span().span_context().is_valid());
    });
}
