//! Shared by the end-to-end tests: the real peers (Python `prometheus_client`, `promtool`),
//! a server on a free loopback port, and one recorded state touching every catalog metric.

#![allow(dead_code)] // each test binary uses a different part

pub mod flaky_store;
pub mod lite;
pub mod nginx;
pub mod otlp_receiver;
pub mod process;
pub mod producers;
pub mod proxy;
pub mod rotel;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use streamhouse_observability::catalog::{self, MetricDef};
use streamhouse_observability::metrics::{
    ConsumerError, GaugeRegistration, ProducerError, S3Error, S3Operation, ScrapeStop, StorageFault,
};
use streamhouse_observability::{Telemetry, TelemetryConfig};

/// Label values that break naive encoders.
pub const HOSTILE: &[&str] = &[
    "quote\"d",
    "back\\slash",
    "new\nline",
    "unicode ☃ ü 日本",
    "{braces}=,commas",
    "literal \\n not a newline",
    "trailing backslash\\",
    "",
];

/// Runs `f` inside a sampled `tracing` span bridged to OTel by `tracing-opentelemetry`
/// (spans of `telemetry`'s tracer provider); returns the span's trace id.
pub fn in_sampled_span<T>(telemetry: &Telemetry, f: impl FnOnce() -> T) -> (String, T) {
    use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    use tracing_subscriber::layer::SubscriberExt;

    let tracer = telemetry.tracer_provider().tracer("e2e");
    let subscriber =
        tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(tracer));
    tracing::subscriber::with_default(subscriber, || {
        let span = tracing::info_span!("request");
        let _entered = span.enter();
        let out = f();
        let trace_id = span.context().span().span_context().trace_id().to_string();
        (trace_id, out)
    })
}

/// A sample as a peer parsed it.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
    /// The exemplar's labels, value and timestamp (OpenMetrics only).
    pub exemplar: Option<(BTreeMap<String, String>, f64, Option<f64>)>,
}

/// What a peer parser returned.
#[derive(Debug, Default)]
pub struct Parsed {
    pub families: BTreeMap<String, String>,
    pub samples: Vec<Sample>,
}

impl Parsed {
    /// The value of the sample with exactly these labels. As in Prometheus, a label with an
    /// empty value is the same as no label.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let labels: BTreeMap<String, String> = labels
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.samples
            .iter()
            .find(|s| s.name == name && s.labels == labels)
            .map(|s| s.value)
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The test virtualenv's Python; `scripts/test` creates it.
pub fn python() -> PathBuf {
    let python = root().join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run ./scripts/test, which installs the test peers",
        python.display()
    );
    python
}

fn run_with_stdin(command: &mut Command, stdin: &str) -> Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("wait for peer")
}

/// Parses `body` with Python `prometheus_client` (`format`: `text` or `openmetrics`).
pub fn parse_with_prometheus_client(format: &str, body: &str) -> Result<Parsed, String> {
    let script = root().join("tests/peers/parse_exposition.py");
    let output = run_with_stdin(Command::new(python()).arg(script).arg(format), body);
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    let json: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("parser prints JSON");
    let mut parsed = Parsed::default();
    for (name, kind) in json["families"].as_object().expect("families") {
        parsed
            .families
            .insert(name.clone(), kind.as_str().expect("type").to_owned());
    }
    for sample in json["samples"].as_array().expect("samples") {
        let value = match &sample[2] {
            serde_json::Value::String(s) => s.parse::<f64>().unwrap_or(match s.as_str() {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                _ => f64::NAN,
            }),
            number => number.as_f64().expect("number"),
        };
        parsed.samples.push(Sample {
            name: sample[0].as_str().expect("name").to_owned(),
            labels: sample[1]
                .as_object()
                .expect("labels")
                .iter()
                .map(|(k, v)| {
                    let v = v.as_str().expect("label");
                    (
                        k.clone(),
                        if k == "le" {
                            normalize_bound(v)
                        } else {
                            v.to_owned()
                        },
                    )
                })
                .collect(),
            value,
            exemplar: sample.get(3).map(|e| {
                let labels = e["labels"]
                    .as_object()
                    .expect("exemplar labels")
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().expect("label").to_owned()))
                    .collect();
                let value = e["value"].as_f64().expect("exemplar value");
                (labels, value, e["timestamp"].as_f64())
            }),
        });
    }
    Ok(parsed)
}

/// Runs `promtool check metrics` on `body`; returns its exit success and its complaints.
pub fn promtool_check_metrics(body: &str) -> (bool, Vec<String>) {
    let output = run_with_stdin(Command::new("promtool").args(["check", "metrics"]), body);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let complaints = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect();
    (output.status.success(), complaints)
}

/// PromQL words that are not metric names; aggregations may put their `by` clause before
/// the parenthesis, so they are not recognised by a following `(`.
#[rustfmt::skip]
pub const PROMQL_KEYWORDS: &[&str] = &[
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
    "bottomk", "topk", "quantile", "and", "or", "unless", "by", "without", "on", "ignoring",
    "group_left", "group_right", "bool", "offset", "inf", "nan",
];

/// PromQL clauses followed by a list of label names.
pub const PROMQL_LABEL_CLAUSES: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// YAML text parsed by PyYAML (`tests/peers/yaml_to_json.py`), as JSON.
pub fn yaml(text: &[u8]) -> serde_json::Value {
    let mut child = Command::new(python())
        .arg(root().join("tests/peers/yaml_to_json.py"))
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python");
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(text)
        .expect("write to python");
    let output = child.wait_with_output().expect("wait for python");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON")
}

/// A YAML file parsed by PyYAML, as JSON.
pub fn yaml_file(path: &std::path::Path) -> serde_json::Value {
    let text = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    yaml(&text)
}

/// A Prometheus server (Debian `prometheus`, exemplar storage on) on a free loopback port,
/// killed when dropped.
pub struct Prometheus {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts Prometheus with `config` (YAML) written beside `files` (name, contents).
    pub fn start_with_files(config: &str, files: &[(&str, &str)]) -> Self {
        Self::spawn(|_| config.to_owned(), files)
    }

    /// Starts Prometheus with the configuration `config` makes from the port Prometheus will
    /// listen on, so that a job can scrape Prometheus's own `/metrics`.
    pub fn start_with_own_port(config: impl FnOnce(u16) -> String) -> Self {
        Self::spawn(config, &[])
    }

    fn spawn(config: impl FnOnce(u16) -> String, files: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_addr().port();
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config(port)).expect("write config");
        for (name, contents) in files {
            std::fs::write(dir.path().join(name), contents).expect("write file");
        }
        let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log file");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--enable-feature=exemplar-storage")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start prometheus (scripts/test installs it)");
        Prometheus {
            child,
            port,
            _dir: dir,
        }
    }

    /// Starts Prometheus with `config` (YAML).
    pub fn start(config: &str) -> Self {
        Self::start_with_files(config, &[])
    }

    /// Its base URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP client for the servers under test. It drops idle connections after 1 s, well
/// before the server's header-read timeout (5 s by default) closes them: a request sent on a
/// connection the server is closing at that instant is reset, a race every server with an
/// idle timeout has.
pub fn http_client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .pool_idle_timeout(Duration::from_secs(1))
        .build()
        .expect("client")
}

/// A loopback address nothing listens on (until a test binds it, soon after).
pub fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free loopback port")
}

/// Polls `check` until it returns `Some`, failing after `timeout` with `what`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Serves `router` on a free loopback port for the rest of the test.
pub async fn serve(router: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}

/// A fresh, independent telemetry instance with a fixed instance id.
pub fn telemetry() -> Telemetry {
    Telemetry::new(TelemetryConfig::default().with_service_instance_id("test-instance"))
        .expect("telemetry starts")
}

/// One expected sample of [`record_every_metric`].
#[derive(Debug, Clone)]
pub struct Expected {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

/// The recorded state: registrations to keep alive and the samples it must expose.
pub struct Recorded {
    pub registrations: Vec<GaugeRegistration>,
    pub expected: Vec<Expected>,
}

const GROUP: &str = "group \"g\"";

/// Records every catalog metric, for topics named "orders" and each [`HOSTILE`] value.
pub fn record_every_metric(telemetry: &Telemetry) -> Recorded {
    let mut expected = Vec::new();
    let mut expect = |def: &MetricDef, suffix: &str, labels: &[(&str, &str)], value: f64| {
        expected.push(Expected {
            name: format!("{}{suffix}", def.prometheus_name),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            value,
        });
    };
    let topics: Vec<String> = std::iter::once("orders")
        .chain(HOSTILE.iter().copied())
        .map(str::to_owned)
        .collect();
    let producer = telemetry.producer();
    let consumer = telemetry.consumer();
    let storage = telemetry.storage();
    for (i, topic) in topics.iter().enumerate() {
        let n = (i + 1) as u64;
        let latency = Duration::from_millis(7 * n);
        producer.topic(topic).record_batch(n, 100 * n, latency);
        producer.record_error(topic, ProducerError::TopicNotFound);
        consumer.record_records(topic, GROUP, n);
        consumer.record_error(topic, GROUP, ConsumerError::OffsetOutOfRange);
        storage.record_segment_write(topic, i as u32);
        storage.record_segment_flush(topic, i as u32);
        storage.record_fault(topic, StorageFault::Hole);

        let t = [("topic", topic.as_str())];
        expect(
            &catalog::STORAGE_FAULTS,
            "",
            &[t[0], ("fault", "hole")],
            1.0,
        );
        expect(&catalog::PARTITIONS_FAILED, "", &t, i as f64);
        expect(&catalog::PRODUCER_RECORDS, "", &t, n as f64);
        expect(&catalog::PRODUCER_BYTES, "", &t, (100 * n) as f64);
        expect_histogram(
            &mut expect,
            &catalog::PRODUCER_LATENCY,
            &t,
            latency.as_secs_f64(),
        );
        expect_histogram(&mut expect, &catalog::PRODUCER_BATCH_SIZE, &t, n as f64);
        let error = ProducerError::TopicNotFound.as_str();
        expect(
            &catalog::PRODUCER_ERRORS,
            "",
            &[t[0], ("error_type", error)],
            1.0,
        );
        let tg = [t[0], ("consumer_group", GROUP)];
        expect(&catalog::CONSUMER_RECORDS, "", &tg, n as f64);
        let error = ConsumerError::OffsetOutOfRange.as_str();
        expect(
            &catalog::CONSUMER_ERRORS,
            "",
            &[tg[0], tg[1], ("error_type", error)],
            1.0,
        );
        let p = i.to_string();
        let tp = [t[0], ("partition", p.as_str())];
        expect(&catalog::SEGMENT_WRITES, "", &tp, 1.0);
        expect(&catalog::SEGMENT_FLUSHES, "", &tp, 1.0);
        expect(
            &catalog::CONSUMER_LAG,
            "",
            &[tg[0], tp[1], tg[1]],
            (10 * i) as f64,
        );
        expect(&catalog::PARTITIONS, "", &t, n as f64);
    }
    consumer.record_rebalance(GROUP);
    expect(
        &catalog::CONSUMER_REBALANCES,
        "",
        &[("consumer_group", GROUP)],
        1.0,
    );

    storage.record_s3_request(S3Operation::Put, Duration::from_millis(20), Ok(()));
    storage.record_s3_request(
        S3Operation::Get,
        Duration::from_millis(5),
        Err(S3Error::NotFound),
    );
    expect(&catalog::S3_REQUESTS, "", &[("operation", "put")], 1.0);
    expect(&catalog::S3_REQUESTS, "", &[("operation", "get")], 1.0);
    expect(&catalog::S3_REQUESTS, "", &[("operation", "delete")], 0.0);
    expect(
        &catalog::S3_ERRORS,
        "",
        &[("operation", "get"), ("error_type", "not_found")],
        1.0,
    );
    expect_histogram(
        &mut expect,
        &catalog::S3_LATENCY,
        &[("operation", "put")],
        0.020,
    );
    expect_histogram(
        &mut expect,
        &catalog::S3_LATENCY,
        &[("operation", "get")],
        0.005,
    );

    storage.record_cache_hit();
    storage.record_cache_hit();
    storage.record_cache_miss();
    expect(&catalog::CACHE_HITS, "", &[], 2.0);
    expect(&catalog::CACHE_MISSES, "", &[], 1.0);
    expect(&catalog::CACHE_SIZE, "", &[], 4096.0);
    expect(&catalog::UNFLUSHED_BYTES, "", &[], 2048.0);
    expect(&catalog::CONNECTIONS_ACTIVE, "", &[], 3.0);
    expect(&catalog::TOPICS, "", &[], topics.len() as f64);
    expect(&catalog::AGENTS_ACTIVE, "", &[], 2.0);

    telemetry.http_server().record_request(
        "GET",
        Some("/topics/{topic}"),
        200,
        Duration::from_millis(30),
    );
    // Prometheus exposes the dotted semantic-convention keys with underscores.
    expect_histogram(
        &mut expect,
        &catalog::HTTP_SERVER_REQUEST_DURATION,
        &[
            ("http_request_method", "GET"),
            ("http_response_status_code", "200"),
            ("http_route", "/topics/{topic}"),
            ("url_scheme", "http"),
        ],
        0.030,
    );
    // A request that started and finished: the in-flight gauge is back to 0.
    drop(telemetry.http_server().start_request("GET", "http"));
    expect(
        &catalog::HTTP_SERVER_ACTIVE_REQUESTS,
        "",
        &[("http_request_method", "GET"), ("url_scheme", "http")],
        0.0,
    );
    expect(&catalog::TELEMETRY_SPANS_DROPPED, "", &[], 0.0);
    for signal in ["metrics", "traces", "logs"] {
        expect(
            &catalog::TELEMETRY_EXPORT_FAILURES,
            "",
            &[("signal", signal)],
            0.0,
        );
    }
    telemetry
        .scrapes()
        .record_served(Duration::from_millis(12), 4096);
    expect_histogram(&mut expect, &catalog::TELEMETRY_SCRAPE_DURATION, &[], 0.012);
    expect_histogram(
        &mut expect,
        &catalog::TELEMETRY_SCRAPE_BODY_SIZE,
        &[],
        4096.0,
    );
    expect(&catalog::TELEMETRY_SCRAPES_REFUSED, "", &[], 0.0);
    for reason in ScrapeStop::ALL {
        expect(
            &catalog::TELEMETRY_SCRAPES_STOPPED,
            "",
            &[("reason", reason.as_str())],
            0.0,
        );
    }

    let runtime = runtime_handle();
    let workers = runtime.metrics().num_workers() as f64;
    expect(&catalog::RUNTIME_WORKERS, "", &[], workers);

    let lag_topics = topics.clone();
    let partition_topics = topics.clone();
    let failed_topics = topics.clone();
    let topic_count = topics.len() as u64;
    let system = telemetry.system();
    let registrations = vec![
        consumer.observe_lag(move |report| {
            for (i, topic) in lag_topics.iter().enumerate() {
                report.lag(topic, i as u32, GROUP, 10 * i as u64);
            }
        }),
        system.observe_partitions(move |report| {
            for (i, topic) in partition_topics.iter().enumerate() {
                report.partitions(topic, (i + 1) as u64);
            }
        }),
        storage.observe_failed_partitions(move |report| {
            for (i, topic) in failed_topics.iter().enumerate() {
                report.partitions(topic, i as u64);
            }
        }),
        storage.observe_cache_size(|| 4096),
        storage.observe_unflushed_bytes(|| 2048),
        system.observe_connections(|| 3),
        system.observe_topics(move || topic_count),
        system.observe_agents(|| 2),
        telemetry.process().observe_runtime(runtime.clone()),
    ];
    Recorded {
        registrations,
        expected,
    }
}

/// The runtime the caller runs on, or for a test without one a runtime kept for the
/// process, so the runtime gauges have one to report.
fn runtime_handle() -> tokio::runtime::Handle {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    tokio::runtime::Handle::try_current().unwrap_or_else(|_| {
        let build = || tokio::runtime::Builder::new_current_thread().build();
        RUNTIME
            .get_or_init(|| build().expect("runtime"))
            .handle()
            .clone()
    })
}

/// Expected `_bucket`, `_sum` and `_count` samples of one observation `value`.
fn expect_histogram(
    expect: &mut impl FnMut(&MetricDef, &str, &[(&str, &str)], f64),
    def: &MetricDef,
    labels: &[(&str, &str)],
    value: f64,
) {
    for bound in def.buckets {
        let le = format_bound(*bound);
        let mut with_le = labels.to_vec();
        with_le.push(("le", &le));
        expect(
            def,
            "_bucket",
            &with_le,
            if value <= *bound { 1.0 } else { 0.0 },
        );
    }
    let mut with_inf = labels.to_vec();
    with_inf.push(("le", "+Inf"));
    expect(def, "_bucket", &with_inf, 1.0);
    expect(def, "_sum", labels, value);
    expect(def, "_count", labels, 1.0);
}

/// One spelling per bound, so `le="1"` and `le="1.0"` compare equal.
fn format_bound(bound: f64) -> String {
    if bound.is_infinite() {
        return "+Inf".to_owned();
    }
    format!("{bound:?}")
}

fn normalize_bound(le: &str) -> String {
    match le.parse::<f64>() {
        Ok(bound) => format_bound(bound),
        Err(_) => le.to_owned(),
    }
}

/// Asserts that every expected sample was parsed with its value.
pub fn assert_expected(parsed: &Parsed, expected: &[Expected]) {
    for e in expected {
        let labels: Vec<(&str, &str)> = e
            .labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let got = parsed
            .value(&e.name, &labels)
            .unwrap_or_else(|| panic!("no sample {} {:?}", e.name, e.labels));
        assert!(
            (got - e.value).abs() <= 1e-9 * e.value.abs().max(1.0),
            "{} {:?}: got {got}, want {}",
            e.name,
            e.labels,
            e.value
        );
    }
}

/// Log output captured in memory: a `MakeWriter` for `logging::subscriber`.
#[derive(Clone, Default)]
pub struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl LogBuffer {
    /// Every line parsed as JSON (panics on a line that is not).
    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        let bytes = self.0.lock().unwrap().clone();
        String::from_utf8(bytes)
            .expect("UTF-8 logs")
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
            .collect()
    }
}

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuffer {
    type Writer = LogBuffer;

    fn make_writer(&'a self) -> LogBuffer {
        self.clone()
    }
}

/// A two-worker runtime whose threads all record into `dispatch`: server tasks spawned on
/// it use this test's subscriber, so tests in one binary keep their own telemetry.
pub fn runtime_with(dispatch: &tracing::Dispatch) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .on_thread_start({
            let dispatch = dispatch.clone();
            move || {
                // Kept for the thread's life, which is the runtime's.
                std::mem::forget(tracing::dispatcher::set_default(&dispatch));
            }
        })
        .build()
        .unwrap()
}

/// Waits until the server closes `stream` (EOF or reset), reading and discarding whatever it
/// sends first; `None` if it is still open after `within`.
pub async fn closed_within(
    stream: &mut tokio::net::TcpStream,
    within: Duration,
) -> Option<std::time::Instant> {
    use tokio::io::AsyncReadExt as _;
    let mut buf = [0u8; 1024];
    tokio::time::timeout(within, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return std::time::Instant::now(),
                Ok(_) => continue,
            }
        }
    })
    .await
    .ok()
}

pub mod exposition;

/// What `promtool check metrics` made of a body.
#[derive(Debug)]
pub enum PromtoolVerdict {
    /// Exit 0: parsed, nothing to say.
    Clean,
    /// Exit 3: parsed; only lint advice (naming, missing HELP), one line each.
    Lint(Vec<String>),
    /// Any other exit (1): the text parser rejected the body ("error while linting: text
    /// format parsing error in line N: ...").
    ParseError(String),
}

/// Runs `promtool check metrics` on `body` and tells a parse error from lint advice by the
/// exit code, which promtool 2.x sets to 3 for lint problems and 1 for failures.
pub fn promtool_verdict(body: &str) -> PromtoolVerdict {
    let output = run_with_stdin(Command::new("promtool").args(["check", "metrics"]), body);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    match output.status.code() {
        Some(0) => PromtoolVerdict::Clean,
        Some(3) => PromtoolVerdict::Lint(text.lines().map(str::to_owned).collect()),
        code => PromtoolVerdict::ParseError(format!("exit {code:?}: {}", text.trim())),
    }
}

/// A sample as the long-lived Python peer parsed it: name, labels, value.
pub type PeerSample = (String, BTreeMap<String, String>, f64);

/// A body as the long-lived Python peer parsed it.
#[derive(Debug, Default)]
pub struct PeerParsed {
    /// Family name to (type, help, unit).
    pub families: BTreeMap<String, (String, String, String)>,
    pub samples: Vec<PeerSample>,
}

/// One `tests/peers/check_stream.py` for the whole test binary: starting Python per body
/// would cost more than the rendering under test.
struct StreamPeer {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    stdout: std::io::BufReader<std::process::ChildStdout>,
}

fn stream_peer() -> &'static Mutex<StreamPeer> {
    static PEER: std::sync::OnceLock<Mutex<StreamPeer>> = std::sync::OnceLock::new();
    PEER.get_or_init(|| {
        let mut child = Command::new(python())
            .arg(root().join("tests/peers/check_stream.py"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start tests/peers/check_stream.py");
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = std::io::BufReader::new(child.stdout.take().expect("piped stdout"));
        Mutex::new(StreamPeer {
            child,
            stdin,
            stdout,
        })
    })
}

/// Parses `body` with Python `prometheus_client` (`format`: `openmetrics`, the strict
/// parser, or `text`) in the shared long-lived peer, legacy name validation on. `Err` is the
/// parser's message.
pub fn prometheus_client_check(format: &str, body: &str) -> Result<PeerParsed, String> {
    use std::io::BufRead;
    let mut peer = stream_peer()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let peer = &mut *peer;
    let sent = writeln!(peer.stdin, "{format} {}", body.len())
        .and_then(|()| peer.stdin.write_all(body.as_bytes()))
        .and_then(|()| peer.stdin.flush());
    let mut answer = String::new();
    let read = sent.and_then(|()| peer.stdout.read_line(&mut answer));
    if !matches!(read, Ok(n) if n > 0) {
        let status = peer.child.try_wait();
        panic!("check_stream.py stopped answering ({read:?}, exit {status:?})");
    }
    let json: serde_json::Value = serde_json::from_str(&answer).expect("peer prints JSON");
    if json["ok"] != serde_json::Value::Bool(true) {
        return Err(json["error"].as_str().unwrap_or("no message").to_owned());
    }
    let number = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => match s.as_str() {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            _ => f64::NAN,
        },
        n => n.as_f64().expect("number"),
    };
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
    let families = json["families"]
        .as_object()
        .expect("families")
        .iter()
        .map(|(name, f)| (name.clone(), (text(&f[0]), text(&f[1]), text(&f[2]))))
        .collect();
    let samples = json["samples"]
        .as_array()
        .expect("samples")
        .iter()
        .map(|s| {
            let labels = s[1]
                .as_object()
                .expect("labels")
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().expect("label").to_owned()))
                .collect();
            (
                s[0].as_str().expect("name").to_owned(),
                labels,
                number(&s[2]),
            )
        })
        .collect();
    Ok(PeerParsed { families, samples })
}

impl Prometheus {
    /// Runs an instant PromQL query; `None` until Prometheus answers with a result vector.
    pub async fn query(
        &self,
        client: &reqwest::Client,
        promql: &str,
    ) -> Option<Vec<serde_json::Value>> {
        let response = client
            .get(format!("{}/api/v1/query", self.url()))
            .query(&[("query", promql)])
            .send()
            .await
            .ok()?;
        let body: serde_json::Value = serde_json::from_slice(&response.bytes().await.ok()?).ok()?;
        (body["status"] == "success").then(|| body["data"]["result"].as_array().cloned())?
    }

    /// Every series matching `selector` (label sets, `__name__` included).
    pub async fn series(
        &self,
        client: &reqwest::Client,
        selector: &str,
    ) -> Option<Vec<BTreeMap<String, String>>> {
        let response = client
            .get(format!("{}/api/v1/series", self.url()))
            .query(&[("match[]", selector)])
            .send()
            .await
            .ok()?;
        let body: serde_json::Value = serde_json::from_slice(&response.bytes().await.ok()?).ok()?;
        let series = body["data"].as_array()?;
        Some(
            series
                .iter()
                .filter_map(|s| {
                    s.as_object().map(|labels| {
                        labels
                            .iter()
                            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                            .collect()
                    })
                })
                .collect(),
        )
    }
}

/// Runs Prometheus's own OpenMetrics parser (the one its scrapes use) on `body` through
/// `promtool tsdb create-blocks-from openmetrics`, which needs a timestamp on every sample:
/// one is appended to each sample line (so `body` must carry no exemplars). `Some` is the
/// parser's complaint.
pub fn promtool_openmetrics_error(body: &str) -> Option<String> {
    let dir = tempfile::tempdir().expect("temp dir");
    let input = dir.path().join("body.om");
    let stamped: String = body
        .split_inclusive('\n')
        .map(|line| match line.strip_suffix('\n') {
            Some(sample) if !sample.starts_with('#') => format!("{sample} 1700000000\n"),
            _ => line.to_owned(),
        })
        .collect();
    std::fs::write(&input, stamped).expect("write body");
    let output = Command::new("promtool")
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&input)
        .arg(dir.path().join("blocks"))
        .output()
        .expect("run promtool");
    (!output.status.success()).then(|| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
        .trim()
        .to_owned()
    })
}
