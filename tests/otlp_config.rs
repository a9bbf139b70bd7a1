//! Configuration from the environment: bad values are clear errors naming the variable, and
//! secrets in OTLP headers never show in Debug output, `target_info` or log lines.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use streamhouse_observability::logging::{self, LogFormat, LoggingConfig};
use streamhouse_observability::otlp::{OtlpProtocol, Signal};
use streamhouse_observability::{Telemetry, TelemetryConfig, TelemetryError};

fn config(
    vars: &[(&str, &str)],
) -> Result<TelemetryConfig, streamhouse_observability::config::ConfigError> {
    let vars: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    TelemetryConfig::from_lookup(|name| vars.get(name).cloned())
}

#[test]
fn bad_values_are_errors_naming_the_variable() {
    let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318");
    let cases: [(&[(&str, &str)], &str); 6] = [
        (
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", "not a url")],
            "OTEL_EXPORTER_OTLP_ENDPOINT",
        ),
        (
            &[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "127.0.0.1:4317")],
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        ),
        (
            &[endpoint, ("OTEL_EXPORTER_OTLP_PROTOCOL", "thrift")],
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        ),
        (
            &[endpoint, ("OTEL_EXPORTER_OTLP_HEADERS", "api-key")],
            "OTEL_EXPORTER_OTLP_HEADERS",
        ),
        (
            &[endpoint, ("OTEL_METRIC_EXPORT_INTERVAL", "1m")],
            "OTEL_METRIC_EXPORT_INTERVAL",
        ),
        (
            &[("OTEL_TRACES_SAMPLER", "sometimes")],
            "OTEL_TRACES_SAMPLER",
        ),
    ];
    for (vars, variable) in cases {
        let err = config(vars).unwrap_err();
        assert_eq!(err.variable, variable);
        let message = TelemetryError::from(err).to_string();
        assert!(message.contains(variable), "{message}");
    }
    let err = LoggingConfig::from_lookup(|name| {
        (name == "STREAMHOUSE_LOG_FORMAT").then(|| "xml".to_owned())
    })
    .unwrap_err();
    assert_eq!(err.variable, "STREAMHOUSE_LOG_FORMAT");
    let err = LoggingConfig::from_lookup(|name| (name == "RUST_LOG").then(|| "[[".to_owned()))
        .unwrap_err();
    assert_eq!(err.variable, "RUST_LOG");
}

#[test]
fn environment_turns_push_on() {
    let config = config(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "1500"),
    ])
    .unwrap();
    let metrics = config.otlp.metrics.as_ref().unwrap();
    assert_eq!(metrics.protocol, OtlpProtocol::Grpc);
    assert_eq!(
        config.otlp.metric_export_interval,
        Duration::from_millis(1500)
    );
    assert!(
        TelemetryConfig::default().otlp.metrics.is_none(),
        "off by default"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_secrets_stay_secret() {
    let secret = "s3cr3t-token";
    // Nothing listens: exports fail and get logged.
    let port = support::free_addr();
    let mut config = config(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &format!("http://{port}")),
        (
            "OTEL_EXPORTER_OTLP_HEADERS",
            &format!("authorization=Bearer%20{secret}"),
        ),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "200"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "100"),
    ])
    .unwrap();
    config.shutdown_timeout = Duration::from_secs(1);
    assert!(!format!("{config:?}").contains(secret));
    let telemetry = Telemetry::new(config).unwrap();
    assert!(!format!("{telemetry:?}").contains(secret));

    let logs = support::LogBuffer::default();
    let logging = LoggingConfig::default()
        .with_format(LogFormat::Json)
        .with_filter("trace");
    let subscriber = logging::subscriber(&telemetry, &logging, logs.clone()).unwrap();
    let dispatch = tracing::Dispatch::new(subscriber);
    // The exporters log from their own threads: make this subscriber the process default.
    let _ = tracing::dispatcher::set_global_default(dispatch);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while telemetry.export_failures(Signal::Metrics) < 2 {
        assert!(std::time::Instant::now() < deadline, "exports never failed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let text = telemetry.render_prometheus();
    assert!(text.contains("target_info"));
    assert!(!text.contains(secret));
    let lines = logs.json_lines();
    assert!(
        lines
            .iter()
            .any(|l| l["fields"]["message"] == "OTLP export failed"),
        "the failure is logged: {lines:?}"
    );
    assert!(!format!("{lines:?}").contains(secret));
    let _ = telemetry.shutdown();
}

fn example() -> std::path::PathBuf {
    support::process::example_binary("otlp_push")
}

/// Runs the example for one second in a child process with `vars` only.
async fn run_example(vars: Vec<(&'static str, String)>) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(example())
            .env_clear()
            .env("OTEL_METRIC_EXPORT_INTERVAL", "200")
            .env("OTEL_BSP_SCHEDULE_DELAY", "100")
            .env("STREAMHOUSE_SHUTDOWN_TIMEOUT_MS", "2000")
            .env("STREAMHOUSE_DEMO_SECONDS", "1")
            .envs(vars)
            .output()
            .expect("run the example")
    })
    .await
    .unwrap()
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_wins_over_the_environment() {
    use support::otlp_receiver::{Receiver, Transport};
    let receiver = Receiver::start().await;
    let output = run_example(vec![
        ("STREAMHOUSE_DEMO_OTLP_HTTP", receiver.http_endpoint()),
        // All of these must be ignored: the example builds its OTLP settings in code.
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc".into()),
        ("OTEL_EXPORTER_OTLP_HEADERS", "x-evil=1".into()),
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip".into()),
        ("OTEL_EXPORTER_OTLP_INSECURE", "false".into()),
    ])
    .await;
    assert!(output.status.success(), "{output:?}");
    let requests = receiver.with(|r| r.requests.clone());
    assert!(!requests.is_empty(), "nothing arrived: {output:?}");
    for (transport, headers) in &requests {
        assert_eq!(*transport, Transport::Http, "{headers:?}");
        assert_eq!(
            header(headers, "x-demo-source"),
            Some("code"),
            "{headers:?}"
        );
        assert_eq!(header(headers, "x-evil"), None, "{headers:?}");
        assert_eq!(header(headers, "content-encoding"), None, "{headers:?}");
    }
    assert!(receiver.with(|r| !r.metrics.is_empty() && !r.traces.is_empty()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_env_uses_the_environment() {
    use support::otlp_receiver::{Receiver, Transport};
    let receiver = Receiver::start().await;
    let output = run_example(vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.grpc_endpoint()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "GRPC".into()),
        ("OTEL_EXPORTER_OTLP_HEADERS", "x-evil=1".into()),
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip".into()),
    ])
    .await;
    assert!(output.status.success(), "{output:?}");
    let requests = receiver.with(|r| r.requests.clone());
    assert!(!requests.is_empty(), "nothing arrived: {output:?}");
    for (transport, headers) in &requests {
        assert_eq!(*transport, Transport::Grpc, "{headers:?}");
        assert_eq!(header(headers, "x-evil"), Some("1"), "{headers:?}");
        assert_eq!(
            header(headers, "grpc-encoding"),
            Some("gzip"),
            "{headers:?}"
        );
    }
    assert!(receiver.with(|r| !r.metrics.is_empty() && !r.traces.is_empty()));
}
