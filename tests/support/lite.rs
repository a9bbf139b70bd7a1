//! A `streamhouse-lite` server on a free loopback port, an HTTP client for its JSON API,
//! exact reads of its `/metrics` through Python `prometheus_client`, and the `moto` S3 peer.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

pub use super::eventually;
use object_store::ObjectStore;
use reqwest::StatusCode;
use serde_json::Value;
use streamhouse_lite::LiteConfig;
use streamhouse_lite::server::LiteServer;
use streamhouse_observability::Telemetry;
use streamhouse_observability::catalog::{self, MetricDef};
use tokio::sync::oneshot;

use super::{Parsed, parse_with_prometheus_client};

/// Small segments, prompt flush retries, two agents: fast, deterministic tests. Segments
/// seal only when full (the age is an hour), so a test decides exactly when one seals.
pub fn test_config() -> LiteConfig {
    let mut config = LiteConfig::default()
        .with_segment_max_bytes(1_000)
        .with_segment_max_age(Duration::from_secs(3600))
        .with_writer_agents(2)
        .with_cache_max_bytes(1 << 20)
        .with_max_value_bytes(1_024);
    config.flush_retry_initial = Duration::from_millis(10);
    config.flush_retry_max = Duration::from_millis(100);
    config.max_body_bytes = 64 << 10;
    config
}

/// A running server; stopped when dropped.
pub struct LiteTestServer {
    pub addr: SocketAddr,
    pub telemetry: Telemetry,
    pub server: LiteServer,
    pub client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Drop for LiteTestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.abort();
    }
}

/// Starts a server over `store` with `config` and a fresh telemetry instance.
pub async fn start(config: LiteConfig, store: Arc<dyn ObjectStore>) -> LiteTestServer {
    let telemetry = super::telemetry();
    let server = LiteServer::start_with_store(config, &telemetry, store);
    serve(server, telemetry).await
}

/// Starts a server over `store` with `config`, recording into `telemetry` (for a telemetry
/// configuration of the test's own, such as an admin token).
pub async fn start_with_telemetry(
    config: LiteConfig,
    store: Arc<dyn ObjectStore>,
    telemetry: Telemetry,
) -> LiteTestServer {
    let server = LiteServer::start_with_store(config, &telemetry, store);
    serve(server, telemetry).await
}

/// Starts a server the way the main job does: the store `config` names, recovered.
pub async fn start_from_config(config: LiteConfig) -> LiteTestServer {
    let telemetry = super::telemetry();
    let server = LiteServer::start(config, &telemetry)
        .await
        .expect("server starts");
    serve(server, telemetry).await
}

async fn serve(server: LiteServer, telemetry: Telemetry) -> LiteTestServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    let (stop, stopped) = oneshot::channel::<()>();
    let serving = server.clone();
    let task = tokio::spawn(async move {
        serving
            .serve(listener, async {
                let _ = stopped.await;
            })
            .await
    });
    LiteTestServer {
        addr,
        telemetry,
        server,
        client: super::http_client(Duration::from_secs(30)),
        stop: Some(stop),
        task,
    }
}

impl LiteTestServer {
    /// Stops serving and waits for the shutdown flush to finish.
    pub async fn shutdown(self) {
        self.stop().await.expect("serve");
    }

    /// Stops serving and returns what serving returned once the shutdown flush ended.
    pub async fn stop(mut self) -> std::io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await.expect("server task")
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    async fn answer(response: reqwest::Response) -> (StatusCode, Value) {
        let status = response.status();
        let bytes = response.bytes().await.expect("body");
        let body = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!(
                "{status}: body is not JSON ({e}): {}",
                String::from_utf8_lossy(&bytes)
            )
        });
        (status, body)
    }

    /// POSTs raw bytes as JSON; the answer must be JSON.
    pub async fn post_raw(
        &self,
        path: &str,
        body: impl Into<reqwest::Body>,
    ) -> (StatusCode, Value) {
        let response = self
            .client
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("request");
        Self::answer(response).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        self.post_raw(path, serde_json::to_vec(body).expect("json"))
            .await
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        let response = self
            .client
            .get(self.url(path))
            .send()
            .await
            .expect("request");
        Self::answer(response).await
    }

    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        let response = self
            .client
            .delete(self.url(path))
            .send()
            .await
            .expect("request");
        Self::answer(response).await
    }

    /// Scrapes `/metrics` and parses it with `prometheus_client`.
    pub async fn metrics(&self) -> Metrics {
        let response = self
            .client
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("scrape");
        assert_eq!(response.status(), 200);
        let body = response.text().await.expect("body");
        let parsed = parse_with_prometheus_client("text", &body)
            .unwrap_or_else(|e| panic!("prometheus_client rejects /metrics: {e}\n{body}"));
        Metrics { parsed, body }
    }

    /// Produces `records` (`{"value", "partition"?, ...}` objects) to `topic` in one batch,
    /// asserting 200; the answer.
    pub async fn produce_batch(
        &self,
        topic: &str,
        records: Vec<serde_json::Value>,
    ) -> serde_json::Value {
        let (status, body) = self
            .post(
                "/api/v1/produce/batch",
                &serde_json::json!({ "topic": topic, "records": records }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// Creates a topic, asserting 201.
    pub async fn create_topic(&self, name: &str, partitions: u32) {
        let (status, body) = self
            .post(
                "/api/v1/topics",
                &serde_json::json!({ "name": name, "partitions": partitions }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
}

/// One parsed scrape.
pub struct Metrics {
    pub parsed: Parsed,
    pub body: String,
}

impl Metrics {
    /// The value of `def` + `suffix` with exactly `labels`; 0 when the series is absent.
    pub fn get(&self, def: &MetricDef, suffix: &str, labels: &[(&str, &str)]) -> f64 {
        self.find(def, suffix, labels).unwrap_or(0.0)
    }

    /// The value of `def` + `suffix` with exactly `labels`, if the series exists.
    pub fn find(&self, def: &MetricDef, suffix: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.parsed
            .value(&format!("{}{suffix}", def.prometheus_name), labels)
    }

    /// The sum of every series of `def` + `suffix`.
    pub fn sum(&self, def: &MetricDef, suffix: &str) -> f64 {
        let name = format!("{}{suffix}", def.prometheus_name);
        self.parsed
            .samples
            .iter()
            .filter(|s| s.name == name)
            .map(|s| s.value)
            .sum()
    }

    /// Every value the label `key` takes in the series of `def` (`""` where it is absent,
    /// as Prometheus reads an empty label).
    pub fn label_values(&self, def: &MetricDef, key: &str) -> std::collections::BTreeSet<String> {
        self.parsed
            .samples
            .iter()
            .filter(|s| s.name.starts_with(def.prometheus_name))
            .map(|s| s.labels.get(key).cloned().unwrap_or_default())
            .collect()
    }

    /// True when some series of `def` has the label `key="value"`.
    /// `streamhouse_producer_errors_total{topic,error_type}`.
    pub fn producer_errors(&self, topic: &str, kind: &str) -> f64 {
        self.get(
            &catalog::PRODUCER_ERRORS,
            "",
            &[("topic", topic), ("error_type", kind)],
        )
    }

    /// `streamhouse_consumer_errors_total{topic,consumer_group,error_type}`.
    pub fn consumer_errors(&self, topic: &str, group: &str, kind: &str) -> f64 {
        self.get(
            &catalog::CONSUMER_ERRORS,
            "",
            &[
                ("topic", topic),
                ("consumer_group", group),
                ("error_type", kind),
            ],
        )
    }

    pub fn has_label(&self, def: &MetricDef, key: &str, value: &str) -> bool {
        self.parsed.samples.iter().any(|s| {
            s.name.starts_with(def.prometheus_name)
                && s.labels.get(key).map(String::as_str) == Some(value)
        })
    }
}

/// The `moto_server` of the test virtualenv; `scripts/test` installs it.
pub fn moto_server_binary() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/moto_server");
    assert!(
        path.exists(),
        "{} is missing: run ./scripts/test, which installs moto[server] from tests/peers/requirements.txt",
        path.display()
    );
    path
}

/// A `moto` S3 server on a free loopback port; killed when dropped.
pub struct Moto {
    pub endpoint: String,
    child: Child,
}

impl Moto {
    /// Starts moto and waits until it answers.
    pub async fn start() -> Moto {
        let port = super::free_addr().port();
        let child = Command::new(moto_server_binary())
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server");
        let moto = Moto {
            endpoint: format!("http://127.0.0.1:{port}"),
            child,
        };
        let client = reqwest::Client::new();
        let url = format!("{}/moto-api/", moto.endpoint);
        eventually(Duration::from_secs(30), "moto_server to answer", || {
            let request = client.get(&url).send();
            async move { request.await.ok().map(|_| ()) }
        })
        .await;
        moto
    }

    /// Creates a bucket (moto does not check signatures).
    pub async fn create_bucket(&self, bucket: &str) {
        let response = reqwest::Client::new()
            .put(format!("{}/{bucket}", self.endpoint))
            .send()
            .await
            .expect("create bucket");
        assert!(response.status().is_success(), "{}", response.status());
    }

    /// Kills the server now.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Percent-encodes every byte of `raw`, for query strings that carry hostile names.
pub fn urlencode(raw: &str) -> String {
    raw.bytes().map(|b| format!("%{b:02X}")).collect()
}
